//! The auth matrix: every operation of the served OpenAPI document, and every route the
//! router serves outside it, called with every kind of credential.
//!
//! The table is generated from `GET /api/v1/openapi.json`: each operation's method and path
//! come from the document, and the least access that may use it from its `x-sluice-access`.
//! [`calls`] only fills in what a call needs to succeed (path parameters, query, body) and
//! the order of the writes; an operation it does not name is still called, with
//! [`DEFAULT_PARAMETERS`] and the document's example body, so a new operation is covered
//! without editing this file. Only credentials with the operation's access may get 2xx or
//! 304; the others get 401 when they are no live token (none, malformed, a wrong scheme,
//! unknown, revoked) and 403 when the token's scope is wrong. Environment-scoped operations
//! serve a staging token staging's data, which is checked too. No response to a client
//! token may carry rules (`"rules"` or `"when"`), except public documentation that anyone
//! may read.
//!
//! Routes the document leaves out on purpose (the web console's pages and assets) are listed
//! in [`undocumented_routes`]. `every_route_is_documented_or_listed_as_undocumented` reads
//! the router's sources and fails when a route is in neither, so none escapes both. The
//! console's pages and forms ([`Access::Console`]) ignore API credentials: they run on a
//! session cookie, and without one every credential is sent to `/login` (303).
//! `tests/it/console.rs` tests what sessions may do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, boolean_flag, spawn_app};

/// A credential to call with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    None,
    Malformed,
    /// The admin's secret under `Authorization: Basic`, which is not a scheme Sluice reads.
    BasicScheme,
    /// The admin's secret under `Authorization: Token`.
    TokenScheme,
    /// `sluice_` and 64 hex digits, matching no token.
    Unknown,
    Revoked,
    ClientProduction,
    ServerProduction,
    ClientStaging,
    ServerStaging,
    Admin,
}

/// Admin last, so that a write wrongly allowed to another credential meets a resource that
/// still exists and shows as an unexpected 2xx.
const CREDENTIALS: [Credential; 11] = [
    Credential::None,
    Credential::Malformed,
    Credential::BasicScheme,
    Credential::TokenScheme,
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
            Credential::None
                | Credential::Malformed
                | Credential::BasicScheme
                | Credential::TokenScheme
                | Credential::Unknown
                | Credential::Revoked
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

/// The secrets behind the credentials.
struct Secrets {
    admin: String,
    unknown: String,
    revoked: String,
    client_production: String,
    server_production: String,
    client_staging: String,
    server_staging: String,
}

impl Secrets {
    /// `request` carrying `credential`.
    fn authorize(&self, request: RequestBuilder, credential: Credential) -> RequestBuilder {
        let bearer = |secret: &str| format!("Bearer {secret}");
        let value = match credential {
            Credential::None => return request,
            Credential::BasicScheme => return request.basic_auth("admin", Some(&self.admin)),
            Credential::TokenScheme => format!("Token {}", self.admin),
            Credential::Malformed => bearer("not a sluice token"),
            Credential::Unknown => bearer(&self.unknown),
            Credential::Revoked => bearer(&self.revoked),
            Credential::ClientProduction => bearer(&self.client_production),
            Credential::ServerProduction => bearer(&self.server_production),
            Credential::ClientStaging => bearer(&self.client_staging),
            Credential::ServerStaging => bearer(&self.server_staging),
            Credential::Admin => bearer(&self.admin),
        };
        request.header(reqwest::header::AUTHORIZATION, value)
    }
}

/// The least access an operation needs.
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
    /// `/login`. Never in the document.
    Console,
}

impl Access {
    /// The access an operation's `x-sluice-access` names.
    fn from_document(name: &str) -> Option<Access> {
        Some(match name {
            "public" => Access::Public,
            "client or server" => Access::Evaluate,
            "server" => Access::Server,
            "admin" => Access::Admin,
            "admin or server" => Access::Observe,
            _ => return None,
        })
    }

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

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    id: String,
    method: Method,
    /// The path as the document writes it, with `{parameters}`.
    template: String,
    access: Access,
    /// Its 200 is a server-sent event stream, which never ends by itself.
    stream: bool,
    /// The request body's example, if the document gives one.
    example: Option<Value>,
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every operation in `document`, or what is wrong with the document for this table.
fn documented_operations(document: &Value) -> Result<Vec<Operation>, Vec<String>> {
    let mut operations = Vec::new();
    let mut problems = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return Err(vec!["the document has no `paths`".into()]);
    };
    for (template, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            let label = format!("{} {template} ({id})", method.to_uppercase());
            if id.is_empty() {
                problems.push(format!("{label}: no operationId"));
            }
            let access = op["x-sluice-access"]
                .as_str()
                .and_then(Access::from_document);
            let Some(access) = access else {
                problems.push(format!(
                    "{label}: `x-sluice-access` is {}, not one the matrix knows",
                    op["x-sluice-access"]
                ));
                continue;
            };
            let stream = op["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some();
            let example = op["requestBody"]["content"]["application/json"]
                .get("example")
                .cloned();
            operations.push(Operation {
                id,
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                access,
                stream,
                example,
            });
        }
    }
    if problems.is_empty() {
        Ok(operations)
    } else {
        Err(problems)
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

/// How to call one operation so that the least credential succeeds.
#[derive(Debug, Clone)]
struct Call {
    operation: &'static str,
    parameters: Vec<(&'static str, String)>,
    query: &'static str,
    body: Option<Body>,
}

fn call(operation: &'static str) -> Call {
    Call {
        operation,
        parameters: Vec::new(),
        query: "",
        body: None,
    }
}

impl Call {
    fn param(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.parameters.push((name, value.into()));
        self
    }

    fn query(mut self, query: &'static str) -> Call {
        self.query = query;
        self
    }

    fn json(mut self, body: Value) -> Call {
        self.body = Some(Body::Json(body));
        self
    }

    /// No body, even where the document has an example.
    fn empty(mut self) -> Call {
        self.body = Some(Body::Empty);
        self
    }
}

/// Path parameters whose value is the same wherever they appear: fixtures the test creates.
const DEFAULT_PARAMETERS: [(&str, &str); 9] = [
    ("key", "checkout"),
    ("app", "matrix"),
    ("channel", "stable"),
    ("version", "2.0.0"),
    ("command", "halt"),
    ("file", "stable.yml"),
    ("target", "darwin"),
    ("arch", "aarch64"),
    ("current_version", "0.1.0"),
];

/// One row of the table: a documented operation or an undocumented route, ready to call.
#[derive(Debug, Clone)]
struct Route {
    method: Method,
    /// The path as the document (or the router) writes it.
    template: String,
    /// The path with real keys and names filled in, and the query.
    path: String,
    access: Access,
    body: Body,
    stream: bool,
}

/// Names of the fixtures the table's paths refer to.
struct Fixtures {
    /// A token id that the DELETE operation revokes.
    victim_token: String,
    /// Rollouts in production: running (paused, resumed, promoted), running with an
    /// approval due, pending with its approval given (started), running (rolled back, then
    /// killed).
    rollouts: [String; 4],
    /// A webhook id that the DELETE operation removes.
    webhook: String,
    /// Change requests by another admin: one to approve (and apply), one to reject, one
    /// already approved to apply.
    changes: [String; 3],
}

impl Fixtures {
    /// Ids that name nothing, for the checks that run without a server.
    fn placeholders() -> Fixtures {
        Fixtures {
            victim_token: "tok_0".into(),
            rollouts: ["ro_0".into(), "ro_1".into(), "ro_2".into(), "ro_3".into()],
            webhook: "whk_0".into(),
            changes: ["cr_0".into(), "cr_1".into(), "cr_2".into()],
        }
    }
}

/// How to call the documented operations, in the order they are called: reads first, then
/// writes, each on its own resource so that every admin call can succeed, and writes that
/// change what later calls need (revocation, protection) after those calls.
#[allow(clippy::too_many_lines)]
fn calls(fixtures: &Fixtures) -> Vec<Call> {
    let evaluation = json!({"context": {"targetingKey": "user-1"}});
    let rollout = |index: usize| fixtures.rollouts[index].clone();
    let change = |index: usize| fixtures.changes[index].clone();
    let reason = json!({"reason": "matrix"});
    vec![
        // Public: health, documentation and metrics.
        call("health"),
        call("ready"),
        call("metrics"),
        call("openapi"),
        call("docs"),
        // OFREP: client or server tokens. `env-probe` tells environments apart.
        call("evaluateFlag")
            .param("key", "env-probe")
            .json(evaluation.clone()),
        call("evaluateFlags").json(evaluation),
        call("ofrepEvents"),
        // Server SDKs: server tokens only.
        call("stream"),
        call("config"),
        // Telemetry: server tokens report; admins and the environment's server tokens read.
        call("postMetrics").json(metrics_batch()),
        call("flagMetrics").query("env=production"),
        call("listInstances").query("env=production"),
        call("abReport").query("env=production&metric=purchase"),
        call("shadowReport").query("env=production"),
        // Dry runs, admin only. The start is the store's first dry run, which the calls after
        // it read, apply and stop.
        call("startDryRun")
            .json(json!({"flag": "checkout", "env": "staging", "staged": {"enabled": false}})),
        call("listDryRuns").query("env=staging"),
        call("getDryRun").param("id", "1"),
        call("applyDryRun").param("id", "1").empty(),
        call("stopDryRun").param("id", "1").empty(),
        // Admin: reads.
        call("status"),
        call("listFlags"),
        call("getFlag"),
        call("listSegments"),
        call("getSegment").param("name", "beta"),
        call("listEnvironments"),
        call("getEnvironment").param("name", "staging"),
        call("listTokens"),
        call("listAudit").query("resource=flag:checkout"),
        call("verifyAudit"),
        call("exportFlags").query("format=json"),
        // Admin: writes, each on its own resource so that every admin call can succeed.
        call("createFlag")
            .param("key", "matrix-created")
            .json(boolean_flag()),
        call("updateFlag").json(boolean_flag()),
        call("killFlag").query("env=production").empty(),
        call("restoreFlag").query("env=production").empty(),
        call("deleteFlag").param("key", "doomed-flag"),
        call("createSegment")
            .param("name", "matrix-created")
            .json(segment()),
        call("updateSegment").param("name", "beta").json(segment()),
        call("deleteSegment").param("name", "doomed-segment"),
        call("createEnvironment")
            .param("name", "matrix-created")
            .json(json!({"description": "made by the auth matrix"})),
        call("updateEnvironment")
            .param("name", "staging")
            .json(json!({"description": "pre-production"})),
        call("deleteEnvironment").param("name", "doomed-env"),
        call("createToken")
            .json(json!({"name": "matrix", "scope": "client", "environment": "production"})),
        call("revokeToken").param("id", fixtures.victim_token.clone()),
        Call {
            body: Some(Body::CurrentExport),
            ..call("importFlags").query("reason=auth-matrix")
        },
        // Rollouts: admins steer, admins and the environment's server tokens read.
        call("listRollouts").query("env=production"),
        call("getRollout").param("id", rollout(0)),
        call("createRollout")
            .json(json!({"flag": "ro-new", "env": "production", "plan": rollout_plan(None)})),
        call("pauseRollout")
            .param("id", rollout(0))
            .json(reason.clone()),
        call("resumeRollout").param("id", rollout(0)).empty(),
        call("promoteRollout")
            .param("id", rollout(0))
            .json(reason.clone()),
        call("approveRollout").param("id", rollout(1)).empty(),
        call("startRollout").param("id", rollout(2)).empty(),
        call("rollbackRollout")
            .param("id", rollout(3))
            .json(reason.clone()),
        call("killRollout")
            .param("id", rollout(3))
            .json(reason.clone()),
        // Releases: admin only.
        call("listReleases"),
        call("createRelease").json(json!({
            "name": "matrix-new", "flags": ["ro-release"], "provenance": {"kind": "human"},
            "risk": "low", "rollback": {"kind": "flag-off"}
        })),
        call("getRelease").param("id", "matrix-release"),
        call("getReleaseChecklist").param("id", "matrix-release"),
        call("addReleaseEvidence")
            .param("id", "matrix-release")
            .json(json!({"item": "monitoring", "text": "matrix"})),
        call("overrideReleaseChecklist")
            .param("id", "matrix-release")
            .json(reason),
        call("startRelease")
            .param("id", "matrix-release")
            .json(json!({"env": "staging"})),
        call("drillRelease")
            .param("id", "matrix-release")
            .json(json!({"env": "development", "timeoutSecs": 0.2})),
        call("releaseReport"),
        // Webhooks: admin only.
        call("listWebhooks"),
        call("createWebhook").json(json!({"url": "https://hooks.example.com/sluice"})),
        call("deleteWebhook").param("id", fixtures.webhook.clone()),
        // The flag lifecycle.
        call("staleFlags").query("days=1"),
        call("archiveFlag").empty(),
        call("unarchiveFlag").empty(),
        call("getProtection").param("name", "development"),
        // Last of the flag writes: protecting an environment gates flag writes after it.
        call("protectEnvironment")
            .param("name", "development")
            .json(json!({"requiredApprovals": 2})),
        call("createChangeRequest").json(json!({"payload": {
            "kind": "environment.protect", "name": "development",
            "protection": {"requiredApprovals": 0, "allowSelfApproval": false}
        }})),
        call("listChangeRequests"),
        call("getChangeRequest").param("id", change(0)),
        call("approveChangeRequest").param("id", change(0)).empty(),
        call("rejectChangeRequest").param("id", change(1)).empty(),
        call("applyChangeRequest").param("id", change(2)).empty(),
        // Desktop apps: admin only.
        call("listApps"),
        call("createApp").json(json!({"key": "matrix-new"})),
        call("getApp"),
        call("appStatus"),
        call("listAppReleases"),
        call("createAppRelease").json(app_release("3.0.0", 0)),
        call("getAppRelease"),
        call("appReleaseCommand").empty(),
        // Desktop update feeds and session reports: public, read-only or bounded.
        call("electronFeed"),
        call("sparkleFeed"),
        call("tauriFeed"),
        call("reportSessions")
            .json(json!({"installId": "i-1", "version": "1.0.0", "channel": "stable", "clean": 1})),
    ]
}

/// The documented operations joined with their calls, in the calls' order and then the
/// document's; or every problem found (a call naming no operation, a parameter without a
/// value).
fn documented_routes(
    operations: &[Operation],
    calls: Vec<Call>,
) -> Result<Vec<Route>, Vec<String>> {
    let mut problems = Vec::new();
    let by_id: BTreeMap<&str, &Operation> =
        operations.iter().map(|op| (op.id.as_str(), op)).collect();
    if by_id.len() != operations.len() {
        problems.push("two operations share an operationId".to_owned());
    }
    let named: BTreeSet<&str> = calls.iter().map(|c| c.operation).collect();
    if named.len() != calls.len() {
        problems.push("`calls` names an operation twice".to_owned());
    }
    let mut ordered: Vec<(&Operation, Call)> = Vec::new();
    for call in calls {
        match by_id.get(call.operation) {
            Some(op) => ordered.push((op, call)),
            None => problems.push(format!(
                "`calls` names `{}`, which is not an operation of the document",
                call.operation
            )),
        }
    }
    for op in operations {
        if !named.contains(op.id.as_str()) {
            ordered.push((op, call("")));
        }
    }
    let mut routes = Vec::new();
    for (op, call) in ordered {
        let mut path = op.template.clone();
        for (name, value) in call.parameters.iter().map(|(n, v)| (*n, v.as_str())).chain(
            DEFAULT_PARAMETERS
                .iter()
                .map(|(name, value)| (*name, *value)),
        ) {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        if path.contains('{') {
            problems.push(format!(
                "{} {} ({}): no value for a path parameter in `{path}`; give one in `calls`",
                op.method, op.template, op.id
            ));
            continue;
        }
        if !call.query.is_empty() {
            path = format!("{path}?{}", call.query);
        }
        let body = call.body.unwrap_or_else(|| match &op.example {
            Some(example) => Body::Json(example.clone()),
            None => Body::Empty,
        });
        routes.push(Route {
            method: op.method.clone(),
            template: op.template.clone(),
            path,
            access: op.access,
            body,
            stream: op.stream,
        });
    }
    if problems.is_empty() {
        Ok(routes)
    } else {
        Err(problems)
    }
}

/// Every route the router serves that the document leaves out on purpose, with a path to
/// call: the web console, which is HTML for people. Public sign-in and assets; everything
/// else needs a session.
fn undocumented_routes(fixtures: &Fixtures) -> Vec<Route> {
    use Access::{Console, Public};
    let row = |method: Method, template: &str, path: &str, access: Access| Route {
        method,
        template: template.to_owned(),
        path: path.to_owned(),
        access,
        body: Body::Empty,
        stream: false,
    };
    let rollout = format!("/rollouts/{}", fixtures.rollouts[0]);
    vec![
        row(Method::GET, "/login", "/login", Public),
        row(Method::GET, "/console.css", "/console.css", Public),
        row(Method::GET, "/console.js", "/console.js", Public),
        row(Method::POST, "/login", "/login", Console),
        row(Method::POST, "/logout", "/logout", Console),
        row(Method::GET, "/", "/", Console),
        row(Method::GET, "/flags", "/flags", Console),
        row(Method::GET, "/flags/{key}", "/flags/checkout", Console),
        row(
            Method::GET,
            "/flags/{key}/kill",
            "/flags/checkout/kill?env=production",
            Console,
        ),
        row(
            Method::POST,
            "/flags/{key}/kill",
            "/flags/checkout/kill",
            Console,
        ),
        row(Method::GET, "/rollouts", "/rollouts", Console),
        row(Method::GET, "/rollouts/{id}", &rollout, Console),
        row(
            Method::GET,
            "/rollouts/{id}/events",
            &format!("{rollout}/events"),
            Console,
        ),
        row(
            Method::POST,
            "/rollouts/{id}/{command}",
            &format!("{rollout}/pause"),
            Console,
        ),
        row(Method::GET, "/releases", "/releases", Console),
        row(
            Method::GET,
            "/releases/{id}",
            "/releases/matrix-release",
            Console,
        ),
        row(Method::GET, "/audit", "/audit", Console),
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
    let (what, actual, expected) = match route.template.as_str() {
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
async fn every_operation_answers_only_the_credentials_it_should() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    let (status, document) = crate::helpers::split(response).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let operations = documented_operations(&document)
        .unwrap_or_else(|problems| panic!("the served document:\n{}", problems.join("\n")));
    assert!(
        operations.len() >= 80,
        "only {} operations in the served document",
        operations.len()
    );
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
    let secrets = Secrets {
        admin: app.admin.clone(),
        unknown: format!("sluice_{}", "0123456789abcdef".repeat(4)),
        revoked,
        client_production,
        server_production,
        client_staging,
        server_staging,
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
    let fixtures = Fixtures {
        victim_token,
        rollouts,
        webhook,
        changes,
    };
    let mut table = documented_routes(&operations, calls(&fixtures))
        .unwrap_or_else(|problems| panic!("the table:\n{}", problems.join("\n")));
    table.extend(undocumented_routes(&fixtures));
    let console_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut problems = Vec::new();
    let mut calls = 0;
    for route in &table {
        for credential in CREDENTIALS {
            calls += 1;
            if route.access == Access::Console {
                let request = console_client.request(
                    route.method.clone(),
                    format!("{}{}", app.address, route.path),
                );
                let response = secrets.authorize(request, credential).send().await.unwrap();
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
            let mut request = secrets.authorize(
                app.request(route.method.clone(), &route.path, None),
                credential,
            );
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

/// `(METHOD, path)` of every operation in `document`.
fn documented_pairs(operations: &[Operation]) -> BTreeSet<(String, String)> {
    operations
        .iter()
        .map(|op| (op.method.to_string(), op.template.clone()))
        .collect()
}

#[test]
fn every_route_is_documented_or_listed_as_undocumented() {
    let operations = documented_operations(&sluice_server::http::openapi::document())
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    let documented = documented_pairs(&operations);
    let undocumented: BTreeSet<(String, String)> = undocumented_routes(&Fixtures::placeholders())
        .iter()
        .map(|r| (r.method.to_string(), r.template.clone()))
        .collect();
    let declared = declared_routes();
    let escaped: Vec<_> = declared
        .iter()
        .filter(|route| !documented.contains(*route) && !undocumented.contains(*route))
        .collect();
    let both: Vec<_> = documented.intersection(&undocumented).collect();
    let stale: Vec<_> = undocumented.difference(&declared).collect();
    let unserved: Vec<_> = documented.difference(&declared).collect();
    assert!(
        escaped.is_empty() && both.is_empty() && stale.is_empty() && unserved.is_empty(),
        "the auth matrix does not cover the router exactly.\n  \
         declared in src/ but neither documented nor listed as undocumented: {escaped:?}\n  \
         listed as undocumented but documented: {both:?}\n  \
         listed as undocumented but not declared: {stale:?}\n  \
         documented but not declared: {unserved:?}"
    );
    let paths: BTreeSet<&str> = declared.iter().map(|(_, path)| path.as_str()).collect();
    assert!(
        paths.len() >= 20,
        "only {} distinct paths were found in src/",
        paths.len()
    );
    assert!(
        undocumented
            .iter()
            .all(|(_, path)| !path.starts_with("/api/")),
        "an /api/ route must be documented: {undocumented:?}"
    );
}

#[test]
fn every_call_names_an_operation_and_fills_its_parameters() {
    let document = sluice_server::http::openapi::document();
    let operations = documented_operations(&document)
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    let routes = documented_routes(&operations, calls(&Fixtures::placeholders()))
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    assert_eq!(routes.len(), operations.len());
    // The access comes from the document, not from the test: a few it must say.
    let access = |method: &str, template: &str| {
        operations
            .iter()
            .find(|op| op.method.as_str() == method && op.template == template)
            .map(|op| op.access)
    };
    assert_eq!(access("GET", "/health"), Some(Access::Public));
    assert_eq!(access("POST", "/api/v1/flags/{key}"), Some(Access::Admin));
    assert_eq!(access("GET", "/api/v1/config"), Some(Access::Server));
    assert_eq!(
        access("POST", "/ofrep/v1/evaluate/flags"),
        Some(Access::Evaluate)
    );
    assert_eq!(access("GET", "/api/v1/rollouts"), Some(Access::Observe));
    assert_eq!(
        routes.iter().filter(|r| r.stream).count(),
        2,
        "the two live streams, read from their event-stream responses"
    );
    // An operation without an access, or with one the matrix does not know, is refused.
    let mut broken = document.clone();
    broken["paths"]["/health"]["get"]
        .as_object_mut()
        .unwrap()
        .remove("x-sluice-access");
    assert!(documented_operations(&broken).is_err());
    // A call naming no operation is refused, and so is a parameter left without a value.
    let mut extra = calls(&Fixtures::placeholders());
    extra.push(call("noSuchOperation"));
    assert!(documented_routes(&operations, extra).is_err());
    let without_name: Vec<Call> = calls(&Fixtures::placeholders())
        .into_iter()
        .filter(|c| c.operation != "getSegment")
        .collect();
    assert!(documented_routes(&operations, without_name).is_err());
}
