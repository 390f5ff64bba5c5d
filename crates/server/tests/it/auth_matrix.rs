//! The auth matrix: every route the router serves, called with every kind of credential.
//!
//! [`routes`] must list every route (method and path) that a `.route(…)` in `src/` declares;
//! `the_route_table_lists_every_route` reads the sources at test time and fails when one is
//! missing or stale, so a new route cannot slip past this test. Each route names the least
//! access that may use it. Only credentials with that access may get 2xx or 304; the others
//! get 401 when they are no live token (none, malformed, unknown, revoked) and 403 when the
//! token's scope is wrong. Environment-scoped routes serve a staging token staging's data,
//! which is checked too. No response to a client token may carry rules (`"rules"` or
//! `"when"`), except public documentation that anyone may read.
//!
//! The web console's pages and forms ([`Access::Console`]) ignore API credentials: they
//! run on a session cookie, and without one every credential is sent to `/login` (303).
//! `tests/it/console.rs` tests what sessions may do.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, boolean_flag, spawn_app};

/// A credential to call with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    None,
    Malformed,
    /// `sluice_` and 64 hex digits, matching no token.
    Unknown,
    Revoked,
    ClientProduction,
    ServerProduction,
    ClientStaging,
    ServerStaging,
    Admin,
}

const CREDENTIALS: [Credential; 9] = [
    Credential::None,
    Credential::Malformed,
    Credential::Unknown,
    Credential::Revoked,
    Credential::ClientProduction,
    Credential::ServerProduction,
    Credential::ClientStaging,
    Credential::ServerStaging,
    Credential::Admin,
];

impl Credential {
    /// Whether this is no live token at all, which is a 401 everywhere it is not public.
    fn unauthenticated(self) -> bool {
        matches!(
            self,
            Credential::None | Credential::Malformed | Credential::Unknown | Credential::Revoked
        )
    }

    fn is_client(self) -> bool {
        matches!(
            self,
            Credential::ClientProduction | Credential::ClientStaging
        )
    }

    /// The environment of an environment-scoped token.
    fn environment(self) -> Option<&'static str> {
        match self {
            Credential::ClientProduction | Credential::ServerProduction => Some("production"),
            Credential::ClientStaging | Credential::ServerStaging => Some("staging"),
            _ => None,
        }
    }
}

/// The least access a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone, with or without a credential.
    Public,
    /// A client or server token, which selects the environment evaluated.
    Evaluate,
    /// A server token, which selects the environment whose configuration is read.
    Server,
    /// An admin token.
    Admin,
    /// An admin token, or a server token of the environment read (production in the table).
    Observe,
    /// A console page or form: API credentials are no session, so every one is 303 to
    /// `/login`.
    Console,
}

impl Access {
    fn allows(self, credential: Credential) -> bool {
        match self {
            Access::Public => true,
            Access::Evaluate => matches!(
                credential,
                Credential::ClientProduction
                    | Credential::ServerProduction
                    | Credential::ClientStaging
                    | Credential::ServerStaging
            ),
            Access::Server => matches!(
                credential,
                Credential::ServerProduction | Credential::ServerStaging
            ),
            Access::Admin => credential == Credential::Admin,
            Access::Observe => {
                matches!(credential, Credential::ServerProduction | Credential::Admin)
            }
            Access::Console => false,
        }
    }

    /// The least credential that succeeds, for the table's readers and its messages.
    fn minimal(self) -> &'static str {
        match self {
            Access::Public => "none",
            Access::Evaluate => "client (production)",
            Access::Server => "server (production)",
            Access::Admin => "admin",
            Access::Observe => "server (production) or admin",
            Access::Console => "a console session",
        }
    }
}

/// What a route is sent.
#[derive(Debug, Clone)]
enum Body {
    Empty,
    Json(Value),
    /// The current export, fetched just before the call (an import that changes nothing).
    CurrentExport,
}

/// One row of the table.
#[derive(Debug, Clone)]
struct Route {
    method: Method,
    /// The path as the router declares it.
    template: &'static str,
    /// The path with real keys and names filled in.
    path: String,
    access: Access,
    body: Body,
    /// A server-sent event stream, which never ends by itself.
    stream: bool,
}

/// Names of the fixtures the table's paths refer to.
struct Fixtures {
    /// A token id that the DELETE route revokes.
    victim_token: String,
    /// Rollouts in production: running (paused, resumed, promoted), running with an
    /// approval due, pending with its approval given (started), running (rolled back, then
    /// killed).
    rollouts: [String; 4],
    /// A webhook id that the DELETE route removes.
    webhook: String,
    /// Change requests by another admin: one to approve (and apply), one to reject, one
    /// already approved to apply.
    changes: [String; 3],
}

/// Every route the router serves. Keep it complete: the sources are checked against it.
fn routes(fixtures: &Fixtures) -> Vec<Route> {
    use Access::{Admin, Console, Evaluate, Observe, Public, Server};
    let row =
        |method: Method, template: &'static str, path: &str, access: Access, body: Body| Route {
            method,
            template,
            path: path.to_owned(),
            access,
            body,
            stream: false,
        };
    let json = Body::Json;
    let evaluation = json!({"context": {"targetingKey": "user-1"}});
    let rollout = format!("/rollouts/{}", fixtures.rollouts[0]);
    vec![
        // Public: health, documentation and metrics.
        row(Method::GET, "/health", "/health", Public, Body::Empty),
        row(Method::GET, "/ready", "/ready", Public, Body::Empty),
        row(Method::GET, "/metrics", "/metrics", Public, Body::Empty),
        row(
            Method::GET,
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            Public,
            Body::Empty,
        ),
        row(Method::GET, "/api/docs", "/api/docs", Public, Body::Empty),
        // OFREP: client or server tokens.
        row(
            Method::POST,
            "/ofrep/v1/evaluate/flags/{key}",
            "/ofrep/v1/evaluate/flags/env-probe",
            Evaluate,
            json(evaluation.clone()),
        ),
        row(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            "/ofrep/v1/evaluate/flags",
            Evaluate,
            json(evaluation),
        ),
        Route {
            stream: true,
            ..row(
                Method::GET,
                "/ofrep/v1/events",
                "/ofrep/v1/events",
                Evaluate,
                Body::Empty,
            )
        },
        // Server SDKs: server tokens only.
        Route {
            stream: true,
            ..row(
                Method::GET,
                "/api/v1/stream",
                "/api/v1/stream",
                Server,
                Body::Empty,
            )
        },
        row(
            Method::GET,
            "/api/v1/config",
            "/api/v1/config",
            Server,
            Body::Empty,
        ),
        // Telemetry: server tokens report; admins and the environment's server tokens read.
        row(
            Method::POST,
            "/api/v1/metrics",
            "/api/v1/metrics",
            Server,
            json(metrics_batch()),
        ),
        row(
            Method::GET,
            "/api/v1/flags/{key}/metrics",
            "/api/v1/flags/checkout/metrics?env=production",
            Observe,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/instances",
            "/api/v1/instances?env=production",
            Observe,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/experiments/{key}/report",
            "/api/v1/experiments/checkout/report?env=production&metric=purchase",
            Observe,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/experiments/{key}/shadow",
            "/api/v1/experiments/checkout/shadow?env=production",
            Observe,
            Body::Empty,
        ),
        // Dry runs, admin only. The POST starts the store's first dry run, which the rows
        // after it read and stop.
        row(
            Method::POST,
            "/api/v1/dry-runs",
            "/api/v1/dry-runs",
            Admin,
            json(
                serde_json::json!({"flag": "checkout", "env": "staging", "staged": {"enabled": false}}),
            ),
        ),
        row(
            Method::GET,
            "/api/v1/dry-runs",
            "/api/v1/dry-runs?env=staging",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/dry-runs/{id}",
            "/api/v1/dry-runs/1",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/dry-runs/{id}/apply",
            "/api/v1/dry-runs/1/apply",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/dry-runs/{id}/stop",
            "/api/v1/dry-runs/1/stop",
            Admin,
            Body::Empty,
        ),
        // Admin: reads.
        row(
            Method::GET,
            "/api/v1/status",
            "/api/v1/status",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/flags",
            "/api/v1/flags",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/flags/{key}",
            "/api/v1/flags/checkout",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/segments",
            "/api/v1/segments",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/segments/{name}",
            "/api/v1/segments/beta",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/environments",
            "/api/v1/environments",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/environments/{name}",
            "/api/v1/environments/staging",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/tokens",
            "/api/v1/tokens",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/audit",
            "/api/v1/audit?resource=flag:checkout",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/audit/verify",
            "/api/v1/audit/verify",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/export",
            "/api/v1/export?format=json",
            Admin,
            Body::Empty,
        ),
        // Admin: writes, each on its own resource so that every admin call can succeed.
        row(
            Method::POST,
            "/api/v1/flags/{key}",
            "/api/v1/flags/matrix-created",
            Admin,
            json(boolean_flag()),
        ),
        row(
            Method::PUT,
            "/api/v1/flags/{key}",
            "/api/v1/flags/checkout",
            Admin,
            json(boolean_flag()),
        ),
        row(
            Method::POST,
            "/api/v1/flags/{key}/kill",
            "/api/v1/flags/checkout/kill?env=production",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/flags/{key}/restore",
            "/api/v1/flags/checkout/restore?env=production",
            Admin,
            Body::Empty,
        ),
        row(
            Method::DELETE,
            "/api/v1/flags/{key}",
            "/api/v1/flags/doomed-flag",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/segments/{name}",
            "/api/v1/segments/matrix-created",
            Admin,
            json(segment()),
        ),
        row(
            Method::PUT,
            "/api/v1/segments/{name}",
            "/api/v1/segments/beta",
            Admin,
            json(segment()),
        ),
        row(
            Method::DELETE,
            "/api/v1/segments/{name}",
            "/api/v1/segments/doomed-segment",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/environments/{name}",
            "/api/v1/environments/matrix-created",
            Admin,
            json(json!({"description": "made by the auth matrix"})),
        ),
        row(
            Method::PUT,
            "/api/v1/environments/{name}",
            "/api/v1/environments/staging",
            Admin,
            json(json!({"description": "pre-production"})),
        ),
        row(
            Method::DELETE,
            "/api/v1/environments/{name}",
            "/api/v1/environments/doomed-env",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/tokens",
            "/api/v1/tokens",
            Admin,
            json(json!({"name": "matrix", "scope": "client", "environment": "production"})),
        ),
        row(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            &format!("/api/v1/tokens/{}", fixtures.victim_token),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/import",
            "/api/v1/import?reason=auth-matrix",
            Admin,
            Body::CurrentExport,
        ),
        // Rollouts: admins steer, admins and the environment's server tokens read.
        row(
            Method::GET,
            "/api/v1/rollouts",
            "/api/v1/rollouts?env=production",
            Observe,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/rollouts/{id}",
            &format!("/api/v1/rollouts/{}", fixtures.rollouts[0]),
            Observe,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/rollouts",
            "/api/v1/rollouts",
            Admin,
            json(json!({"flag": "ro-new", "env": "production", "plan": rollout_plan(None)})),
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/pause",
            &format!("/api/v1/rollouts/{}/pause", fixtures.rollouts[0]),
            Admin,
            json(json!({"reason": "matrix"})),
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/resume",
            &format!("/api/v1/rollouts/{}/resume", fixtures.rollouts[0]),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/promote",
            &format!("/api/v1/rollouts/{}/promote", fixtures.rollouts[0]),
            Admin,
            json(json!({"reason": "matrix"})),
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/approve",
            &format!("/api/v1/rollouts/{}/approve", fixtures.rollouts[1]),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/start",
            &format!("/api/v1/rollouts/{}/start", fixtures.rollouts[2]),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/rollback",
            &format!("/api/v1/rollouts/{}/rollback", fixtures.rollouts[3]),
            Admin,
            json(json!({"reason": "matrix"})),
        ),
        row(
            Method::POST,
            "/api/v1/rollouts/{id}/kill",
            &format!("/api/v1/rollouts/{}/kill", fixtures.rollouts[3]),
            Admin,
            json(json!({"reason": "matrix"})),
        ),
        // Releases: admin only.
        row(
            Method::GET,
            "/api/v1/releases",
            "/api/v1/releases",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/releases",
            "/api/v1/releases",
            Admin,
            json(json!({
                "name": "matrix-new", "flags": ["ro-release"], "provenance": {"kind": "human"},
                "risk": "low", "rollback": {"kind": "flag-off"}
            })),
        ),
        row(
            Method::GET,
            "/api/v1/releases/{id}",
            "/api/v1/releases/matrix-release",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/releases/{id}/checklist",
            "/api/v1/releases/matrix-release/checklist",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/releases/{id}/evidence",
            "/api/v1/releases/matrix-release/evidence",
            Admin,
            json(json!({"item": "monitoring", "text": "matrix"})),
        ),
        row(
            Method::POST,
            "/api/v1/releases/{id}/override",
            "/api/v1/releases/matrix-release/override",
            Admin,
            json(json!({"reason": "matrix"})),
        ),
        row(
            Method::POST,
            "/api/v1/releases/{id}/start",
            "/api/v1/releases/matrix-release/start",
            Admin,
            json(json!({"env": "staging"})),
        ),
        row(
            Method::POST,
            "/api/v1/releases/{id}/drills",
            "/api/v1/releases/matrix-release/drills",
            Admin,
            json(json!({"env": "development", "timeoutSecs": 0.2})),
        ),
        row(
            Method::GET,
            "/api/v1/reports/releases",
            "/api/v1/reports/releases",
            Admin,
            Body::Empty,
        ),
        // Webhooks: admin only.
        row(
            Method::GET,
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            Admin,
            json(json!({"url": "https://hooks.example.com/sluice"})),
        ),
        row(
            Method::DELETE,
            "/api/v1/webhooks/{id}",
            &format!("/api/v1/webhooks/{}", fixtures.webhook),
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/flags/stale",
            "/api/v1/flags/stale?days=1",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/flags/{key}/archive",
            "/api/v1/flags/checkout/archive",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/flags/{key}/unarchive",
            "/api/v1/flags/checkout/unarchive",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/environments/{name}/protection",
            "/api/v1/environments/development/protection",
            Admin,
            Body::Empty,
        ),
        // Last of the writes: protecting an environment gates flag writes after it.
        row(
            Method::PUT,
            "/api/v1/environments/{name}/protection",
            "/api/v1/environments/development/protection",
            Admin,
            json(json!({"requiredApprovals": 2})),
        ),
        row(
            Method::POST,
            "/api/v1/change-requests",
            "/api/v1/change-requests",
            Admin,
            json(
                json!({"payload": {"kind": "environment.protect", "name": "development", "protection": {"requiredApprovals": 0, "allowSelfApproval": false}}}),
            ),
        ),
        row(
            Method::GET,
            "/api/v1/change-requests",
            "/api/v1/change-requests",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/change-requests/{id}",
            &format!("/api/v1/change-requests/{}", fixtures.changes[0]),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/change-requests/{id}/approve",
            &format!("/api/v1/change-requests/{}/approve", fixtures.changes[0]),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/change-requests/{id}/reject",
            &format!("/api/v1/change-requests/{}/reject", fixtures.changes[1]),
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/change-requests/{id}/apply",
            &format!("/api/v1/change-requests/{}/apply", fixtures.changes[2]),
            Admin,
            Body::Empty,
        ),
        // Desktop apps: admin only.
        row(
            Method::GET,
            "/api/v1/apps",
            "/api/v1/apps",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/apps",
            "/api/v1/apps",
            Admin,
            json(json!({"key": "matrix-new"})),
        ),
        row(
            Method::GET,
            "/api/v1/apps/{app}",
            "/api/v1/apps/matrix",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/apps/{app}/status",
            "/api/v1/apps/matrix/status",
            Admin,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/api/v1/apps/{app}/releases",
            "/api/v1/apps/matrix/releases",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/apps/{app}/releases",
            "/api/v1/apps/matrix/releases",
            Admin,
            json(app_release("3.0.0", 0)),
        ),
        row(
            Method::GET,
            "/api/v1/apps/{app}/channels/{channel}/releases/{version}",
            "/api/v1/apps/matrix/channels/stable/releases/2.0.0",
            Admin,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/api/v1/apps/{app}/channels/{channel}/releases/{version}/{command}",
            "/api/v1/apps/matrix/channels/stable/releases/2.0.0/halt",
            Admin,
            Body::Empty,
        ),
        // Desktop update feeds and session reports: public, read-only or bounded.
        row(
            Method::GET,
            "/apps/{app}/{file}",
            "/apps/matrix/stable.yml",
            Public,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/apps/{app}/{channel}/appcast.xml",
            "/apps/matrix/stable/appcast.xml",
            Public,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/apps/{app}/{channel}/tauri/{target}/{arch}/{current_version}",
            "/apps/matrix/stable/tauri/darwin/aarch64/0.1.0",
            Public,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/apps/{app}/sessions",
            "/apps/matrix/sessions",
            Public,
            json(json!({"installId": "i-1", "version": "1.0.0", "channel": "stable", "clean": 1})),
        ),
        // The web console: public sign-in and assets; everything else needs a session.
        row(Method::GET, "/login", "/login", Public, Body::Empty),
        row(
            Method::GET,
            "/console.css",
            "/console.css",
            Public,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/console.js",
            "/console.js",
            Public,
            Body::Empty,
        ),
        row(Method::POST, "/login", "/login", Console, Body::Empty),
        row(Method::POST, "/logout", "/logout", Console, Body::Empty),
        row(Method::GET, "/", "/", Console, Body::Empty),
        row(Method::GET, "/flags", "/flags", Console, Body::Empty),
        row(
            Method::GET,
            "/flags/{key}",
            "/flags/checkout",
            Console,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/flags/{key}/kill",
            "/flags/checkout/kill?env=production",
            Console,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/flags/{key}/kill",
            "/flags/checkout/kill",
            Console,
            Body::Empty,
        ),
        row(Method::GET, "/rollouts", "/rollouts", Console, Body::Empty),
        row(
            Method::GET,
            "/rollouts/{id}",
            &rollout,
            Console,
            Body::Empty,
        ),
        row(
            Method::GET,
            "/rollouts/{id}/events",
            &format!("{rollout}/events"),
            Console,
            Body::Empty,
        ),
        row(
            Method::POST,
            "/rollouts/{id}/{command}",
            &format!("{rollout}/pause"),
            Console,
            Body::Empty,
        ),
        row(Method::GET, "/releases", "/releases", Console, Body::Empty),
        row(
            Method::GET,
            "/releases/{id}",
            "/releases/matrix-release",
            Console,
            Body::Empty,
        ),
        row(Method::GET, "/audit", "/audit", Console, Body::Empty),
    ]
}

/// A release of the `matrix` app on stable, offered to `percent` of installs.
fn app_release(version: &str, percent: u32) -> Value {
    json!({
        "channel": "stable", "version": version, "percent": percent,
        "artifacts": [
            {"os": "windows", "arch": "x64", "url": "https://dl.example.com/m.exe", "size": 1,
             "sha512": format!("{}==", "A".repeat(86))},
            {"os": "macos", "arch": "arm64", "url": "https://dl.example.com/m.zip", "size": 1,
             "sha512": format!("{}==", "A".repeat(86)), "signature": "sig"},
        ],
    })
}

/// Change requests filed through the store by another admin, each creating a new flag:
/// one to approve, one to reject, and one already approved (by a third) to apply.
async fn change_fixtures(app: &TestApp) -> [String; 3] {
    use sluice_core::governance::Requirement;
    use sluice_server::store::{Change, ChangePayload, NewChangeRequest};
    let store = app.state.store();
    let now = sluice_server::state::now_ms();
    let mut ids = Vec::new();
    for key in ["cr-approved", "cr-rejected", "cr-applied"] {
        let request = NewChangeRequest {
            payload: ChangePayload::FlagCreate {
                key: key.into(),
                definition: serde_json::from_value(boolean_flag()).unwrap(),
            },
            base_version: 0,
            requirement: Requirement {
                environments: vec!["production".into()],
                required_approvals: 1,
                allow_self_approval: false,
            },
        };
        let filed = store
            .create_change_request(&Change::at(now).by("tok_otheradmin0000"), &request)
            .await
            .unwrap();
        ids.push(filed.value.id);
    }
    store
        .approve_change_request(&Change::at(now).by("tok_reviewer000000"), &ids[2])
        .await
        .unwrap();
    [ids[0].clone(), ids[1].clone(), ids[2].clone()]
}

/// A three-stage plan; `approval_at` is the stage that needs one approval, if any.
fn rollout_plan(approval_at: Option<usize>) -> Value {
    let stages: Vec<Value> = [10, 50, 100]
        .iter()
        .enumerate()
        .map(|(index, percent)| {
            let approvals = u32::from(approval_at == Some(index));
            json!({"percent": percent, "bake": "1h", "min_samples": 100, "approvals": approvals})
        })
        .collect();
    json!({"stages": stages})
}

/// Starts a rollout of `flag` in production; returns its id.
async fn create_rollout(app: &TestApp, flag: &str, plan: Value) -> String {
    app.create_flag(flag, boolean_flag()).await;
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/rollouts",
            json!({"flag": flag, "env": "production", "plan": plan}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A telemetry batch for `checkout`, in the current 10-second bucket.
fn metrics_batch() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    json!({
        "batchId": "auth-matrix",
        "instance": {"id": "matrix-instance", "sdk": "test", "configVersion": 1},
        "sentAtMs": now,
        "buckets": [{
            "startMs": sluice_core::telemetry::bucket_start(now),
            "flag": "checkout",
            "variant": "on",
            "configVersion": 1,
            "exposures": 1,
        }],
    })
}

fn segment() -> Value {
    json!({"when": [{"attribute": "plan", "op": "eq", "value": "beta"}]})
}

/// A flag that is on in production and disabled in staging, to tell environments apart.
fn env_probe() -> Value {
    json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "on",
        "off_variant": "off",
        "environments": {"staging": {"enabled": false}}
    })
}

/// Creates a token; returns its id and secret.
async fn create_token(app: &TestApp, scope: &str, environment: Option<&str>) -> (String, String) {
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/tokens",
            json!({"name": format!("matrix {scope}"), "scope": scope, "environment": environment}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Reads the first complete server-sent event frame, or what arrived within five seconds.
async fn first_frame(response: reqwest::Response) -> String {
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\n\n") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    text
}

/// The JSON `data` of the first event in a frame.
fn event_data(frame: &str) -> Option<Value> {
    let data: String = frame
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    serde_json::from_str(&data).ok()
}

/// For a 2xx on an environment-scoped route: does the body belong to the token's environment?
fn environment_mismatch(route: &Route, credential: Credential, body: &str) -> Option<String> {
    let environment = credential.environment()?;
    // `env-probe` is disabled in staging only.
    let probe_reason = if environment == "staging" {
        "DISABLED"
    } else {
        "STATIC"
    };
    let json = || serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    let (what, actual, expected) = match route.template {
        "/ofrep/v1/evaluate/flags/{key}" => {
            ("reason", json()["reason"].clone(), json!(probe_reason))
        }
        "/ofrep/v1/evaluate/flags" => {
            let all = json();
            let probe = all["flags"]
                .as_array()
                .and_then(|flags| flags.iter().find(|f| f["key"] == "env-probe"))
                .cloned()
                .unwrap_or(Value::Null);
            (
                "env-probe's reason",
                probe["reason"].clone(),
                json!(probe_reason),
            )
        }
        "/api/v1/config" => (
            "environment",
            json()["environment"].clone(),
            json!(environment),
        ),
        "/api/v1/stream" => (
            "environment",
            event_data(body).map_or(Value::Null, |data| data["environment"].clone()),
            json!(environment),
        ),
        _ => return None,
    };
    (actual != expected)
        .then(|| format!("{what} is {actual}, expected {expected} for a {environment} token"))
}

#[tokio::test]
async fn every_route_answers_only_the_credentials_it_should() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    app.create_flag("env-probe", env_probe()).await;
    app.create_flag("doomed-flag", boolean_flag()).await;
    for name in ["beta", "doomed-segment"] {
        let (status, body) = app
            .admin_json(Method::POST, &format!("/api/v1/segments/{name}"), segment())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app
        .admin_json(Method::POST, "/api/v1/environments/doomed-env", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (_, client_production) = create_token(&app, "client", Some("production")).await;
    let (_, server_production) = create_token(&app, "server", Some("production")).await;
    let (_, client_staging) = create_token(&app, "client", Some("staging")).await;
    let (_, server_staging) = create_token(&app, "server", Some("staging")).await;
    let (victim_token, _) = create_token(&app, "client", Some("production")).await;
    let (revoked_id, revoked) = create_token(&app, "server", Some("production")).await;
    let response = app
        .request(
            Method::DELETE,
            &format!("/api/v1/tokens/{revoked_id}"),
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let unknown = format!("sluice_{}", "0123456789abcdef".repeat(4));

    let secret = |credential: Credential| -> Option<&str> {
        match credential {
            Credential::None => None,
            Credential::Malformed => Some("not a sluice token"),
            Credential::Unknown => Some(&unknown),
            Credential::Revoked => Some(&revoked),
            Credential::ClientProduction => Some(&client_production),
            Credential::ServerProduction => Some(&server_production),
            Credential::ClientStaging => Some(&client_staging),
            Credential::ServerStaging => Some(&server_staging),
            Credential::Admin => Some(&app.admin),
        }
    };

    app.create_flag("ro-new", boolean_flag()).await;
    let rollouts = [
        create_rollout(&app, "ro-steered", rollout_plan(None)).await,
        create_rollout(&app, "ro-approved", rollout_plan(Some(1))).await,
        create_rollout(&app, "ro-pending", rollout_plan(Some(0))).await,
        create_rollout(&app, "ro-rolled", rollout_plan(None)).await,
    ];
    let (status, body) = app
        .admin_json(
            Method::POST,
            &format!("/api/v1/rollouts/{}/approve", rollouts[2]),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending", "{body}");
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/webhooks",
            json!({"url": "https://hooks.example.com/doomed"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let webhook = body["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .admin_json(Method::POST, "/api/v1/apps", json!({"key": "matrix"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (version, percent) in [("1.0.0", 100), ("2.0.0", 10)] {
        let (status, body) = app
            .admin_json(
                Method::POST,
                "/api/v1/apps/matrix/releases",
                app_release(version, percent),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let changes = change_fixtures(&app).await;
    app.create_flag("ro-release", boolean_flag()).await;
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/internal",
            json!({"include": ["staff-1"]}),
        )
        .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "{body}"
    );
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases",
            json!({
                "name": "matrix-release", "flags": ["ro-release"], "provenance": {"kind": "human"},
                "risk": "low", "rollback": {"kind": "flag-off"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let table = routes(&Fixtures {
        victim_token,
        rollouts,
        webhook,
        changes,
    });
    let console_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut problems = Vec::new();
    let mut calls = 0;
    for route in &table {
        // Admin last, so that a write wrongly allowed to another credential meets a resource
        // that still exists and shows as an unexpected 2xx.
        for credential in CREDENTIALS {
            calls += 1;
            if route.access == Access::Console {
                let mut request = console_client.request(
                    route.method.clone(),
                    format!("{}{}", app.address, route.path),
                );
                if let Some(secret) = secret(credential) {
                    request = request.bearer_auth(secret);
                }
                let response = request.send().await.unwrap();
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if response.status() != StatusCode::SEE_OTHER || !location.starts_with("/login") {
                    problems.push(format!(
                        "{} {} with {credential:?}: {} to `{location}`, expected 303 to /login",
                        route.method,
                        route.path,
                        response.status()
                    ));
                }
                continue;
            }
            let mut request = app.request(route.method.clone(), &route.path, secret(credential));
            request = match &route.body {
                Body::Empty => request,
                Body::Json(body) => request.json(body),
                Body::CurrentExport => {
                    let (status, export) = app.get("/api/v1/export", &app.admin).await;
                    assert_eq!(status, StatusCode::OK, "{export}");
                    request.json(&export)
                }
            };
            let response = request.send().await.unwrap();
            let status = response.status();
            let success = status.is_success() || status == StatusCode::NOT_MODIFIED;
            let body = if route.stream && success {
                // Only what a client could read first: the stream never ends.
                if credential.is_client() || route.template == "/api/v1/stream" {
                    first_frame(response).await
                } else {
                    String::new()
                }
            } else {
                response.text().await.unwrap_or_default()
            };
            let label = format!("{} {} with {credential:?}", route.method, route.path);
            let allowed = route.access.allows(credential);
            if allowed && !success {
                problems.push(format!(
                    "{label}: {status}, expected success (least access: {}): {body}",
                    route.access.minimal()
                ));
            } else if !allowed && success {
                problems.push(format!("{label}: UNEXPECTED {status}: {body}"));
            } else if !allowed {
                let expected = if credential.unauthenticated() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                if status != expected {
                    problems.push(format!("{label}: {status}, expected {expected}: {body}"));
                }
            } else if let Some(mismatch) = environment_mismatch(route, credential, &body) {
                problems.push(format!("{label}: {mismatch}"));
            }
            if credential.is_client()
                && route.access != Access::Public
                && (body.contains("\"rules\"") || body.contains("\"when\""))
            {
                problems.push(format!("{label}: a client token received rules: {body}"));
            }
        }
    }
    assert!(calls >= table.len() * CREDENTIALS.len());
    assert!(
        problems.is_empty(),
        "{} problems in the auth matrix:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every `(METHOD, path)` a `.route(…)` call in the server's sources declares.
pub(crate) fn declared_routes() -> BTreeSet<(String, String)> {
    let method =
        regex::Regex::new(r"\b(get|post|put|delete|patch|head|options|trace|any|on)\(").unwrap();
    let mut files = Vec::new();
    let mut pending = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut found = BTreeSet::new();
    for file in files {
        let text: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            // Unit-test modules, which close each file, build routers of their own.
            .take_while(|line| line.trim() != "#[cfg(test)]")
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = text.as_str();
        while let Some(start) = rest.find(".route(") {
            let call = &rest[start + ".route(".len()..];
            // The call's arguments, up to its closing parenthesis.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or_else(|| panic!("{}: unclosed .route(", file.display()));
            let arguments = &call[..end];
            let path = arguments
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split_once('"'))
                .map(|(path, _)| path.to_owned())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: a .route( whose path is not a literal: {arguments}",
                        file.display()
                    )
                });
            let methods: Vec<&str> = method
                .captures_iter(arguments)
                .map(|c| c.get(1).unwrap().as_str())
                .collect();
            assert!(
                !methods.is_empty(),
                "{}: no method in .route({arguments})",
                file.display()
            );
            for name in methods {
                assert!(
                    !matches!(name, "any" | "on"),
                    "{}: `{name}(…)` on {path}: list its methods in the auth matrix by hand",
                    file.display()
                );
                found.insert((name.to_uppercase(), path.clone()));
            }
            rest = &call[end..];
        }
    }
    found
}

#[test]
fn the_route_table_lists_every_route() {
    let fixtures = Fixtures {
        victim_token: "tok_0".into(),
        rollouts: ["ro_0".into(), "ro_1".into(), "ro_2".into(), "ro_3".into()],
        webhook: "whk_0".into(),
        changes: ["cr_0".into(), "cr_1".into(), "cr_2".into()],
    };
    let table: BTreeSet<(String, String)> = routes(&fixtures)
        .iter()
        .map(|r| (r.method.to_string(), r.template.to_owned()))
        .collect();
    assert_eq!(
        table.len(),
        routes(&fixtures).len(),
        "the table lists a route twice"
    );
    let declared = declared_routes();
    let missing: Vec<_> = declared.difference(&table).collect();
    let stale: Vec<_> = table.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "the auth matrix's route table is out of date.\n  declared in src/ but not in the table: {missing:?}\n  \
         in the table but not declared: {stale:?}"
    );
    let paths: BTreeSet<&str> = declared.iter().map(|(_, path)| path.as_str()).collect();
    assert!(
        paths.len() >= 20,
        "only {} distinct paths were found in src/",
        paths.len()
    );
}
