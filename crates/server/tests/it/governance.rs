//! Protected environments, change requests and stale flags against a real server: approvals
//! from other admins only, N of them, a rejection that stops a change, a conflict that
//! changes nothing when the base version moved, an ungated kill switch, gated rollout
//! commands, and the stale-flag report from real audit records and telemetry.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::telemetry::bucket_start;

use crate::helpers::{TestApp, boolean_flag, spawn_app, split};

const DAY: i64 = 86_400_000;

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.request(method, path, Some(token));
    if let Some(body) = body {
        request = request.json(&body);
    }
    split(request.send().await.unwrap()).await
}

async fn protect(app: &TestApp, env: &str, approvals: u32, allow_self: bool) {
    let (status, body) = app
        .admin_json(
            Method::PUT,
            &format!("/api/v1/environments/{env}/protection"),
            json!({"requiredApprovals": approvals, "allowSelfApproval": allow_self}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn flag(app: &TestApp, key: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/flags/{key}"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn audit_actions(app: &TestApp, resource: &str) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/api/v1/audit?resource={resource}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

fn with_default(variant: &str) -> Value {
    let mut def = boolean_flag();
    def["default_variant"] = json!(variant);
    def
}

/// The admin changes `checkout`'s default to `on` in a protected environment: the write is
/// filed as a change request (202), which this returns.
async fn file_default_change(app: &TestApp) -> Value {
    let (status, body) = call(
        app,
        &app.admin,
        Method::PUT,
        "/api/v1/flags/checkout",
        Some(with_default("on")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["changeRequest"].clone()
}

#[tokio::test]
async fn a_protected_change_needs_n_approvals_from_other_admins() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    protect(&app, "production", 2, false).await;
    let bob = app.token("admin", None).await;
    let carol = app.token("admin", None).await;

    let request = &file_default_change(&app).await;
    assert_eq!(request["kind"], "flag.update");
    assert_eq!(request["status"], "pending");
    assert_eq!(request["baseVersion"], 1);
    assert_eq!(request["requirement"]["requiredApprovals"], 2);
    assert_eq!(
        request["requirement"]["environments"],
        json!(["production"])
    );
    assert!(request["author"].as_str().unwrap().starts_with("tok_"));
    let id = request["id"].as_str().unwrap().to_owned();
    // Nothing changed yet.
    assert_eq!(flag(&app, "checkout").await["version"], 1);

    // The author may not approve.
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may not approve"),
        "{body}"
    );

    // One approval of two: still pending, still unchanged; the same admin counts once.
    let (status, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["approvalsNeeded"], 1);
    let (status, _) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(flag(&app, "checkout").await["version"], 1);

    // The second applies it at once, through the ordinary write.
    let (status, body) = call(
        &app,
        &carol,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "applied");
    let applied = flag(&app, "checkout").await;
    assert_eq!(applied["version"], 2);
    assert_eq!(applied["definition"]["default_variant"], "on");

    // Audited: the request's steps on it, and one flag.update on the flag naming it.
    assert_eq!(
        audit_actions(&app, &format!("change:{id}")).await,
        vec!["change.approve", "change.approve", "change.create"]
    );
    let (_, records) = app
        .get("/api/v1/audit?resource=flag:checkout", &app.admin)
        .await;
    let latest = &records["records"][0];
    assert_eq!(latest["action"], "flag.update");
    let reason = latest["reason"].as_str().unwrap();
    assert!(reason.contains(&id), "{reason}");
    assert_eq!(
        records["records"].as_array().unwrap().len(),
        2,
        "create and one update"
    );
    let (status, verify) = app.get("/api/v1/audit/verify", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verify["ok"], true, "{verify}");

    // Listing by status finds it applied; applying again is refused.
    let (_, listed) = app
        .get("/api/v1/change-requests?status=applied", &app.admin)
        .await;
    assert_eq!(listed["changeRequests"][0]["id"], id.as_str());
    let (status, _) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/apply"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn self_approval_counts_when_allowed() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    protect(&app, "production", 1, true).await;
    let (status, body) = call(
        &app,
        &app.admin,
        Method::DELETE,
        "/api/v1/flags/checkout",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["changeRequest"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "applied");
    let (status, _) = app.get("/api/v1/flags/checkout", &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rejected_change_never_applies() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    protect(&app, "production", 1, false).await;
    let bob = app.token("admin", None).await;
    let id = file_default_change(&app).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/reject"),
        Some(json!({"reason": "not now"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rejected");
    for step in ["approve", "apply"] {
        let (status, body) = call(
            &app,
            &bob,
            Method::POST,
            &format!("/api/v1/change-requests/{id}/{step}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{step}: {body}");
    }
    let after = flag(&app, "checkout").await;
    assert_eq!(after["version"], 1);
    assert_eq!(after["definition"]["default_variant"], "off");
}

#[tokio::test]
async fn a_change_whose_base_moved_conflicts_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    protect(&app, "production", 1, false).await;
    let bob = app.token("admin", None).await;
    let id = file_default_change(&app).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The kill switch is never gated, and it moves the flag past the request's base.
    let (status, body) = call(
        &app,
        &bob,
        Method::POST,
        "/api/v1/flags/checkout/kill?env=production",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    let config_version = app.state.store().config_version().await.unwrap();

    let (status, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("changed since"),
        "{body}"
    );
    // Nothing changed: the flag is as the kill left it, and no write happened.
    let after = flag(&app, "checkout").await;
    assert_eq!(after["version"], 2);
    assert_eq!(after["definition"]["default_variant"], "off");
    assert_eq!(
        after["definition"]["environments"]["production"]["enabled"],
        false
    );
    let (_, request) = app
        .get(&format!("/api/v1/change-requests/{id}"), &app.admin)
        .await;
    assert_eq!(request["status"], "approved");
    let (status, _) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/apply"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The approval was one audited write; the failed applications wrote nothing.
    let now_version = app.state.store().config_version().await.unwrap();
    assert_eq!(now_version, config_version + 1);
    assert_eq!(
        audit_actions(&app, "flag:checkout").await,
        vec!["flag.kill", "flag.create"]
    );
}

#[tokio::test]
async fn kill_is_instant_but_restore_and_overrides_of_other_environments_differ() {
    let app = spawn_app().await;
    app.create_flag("checkout", boolean_flag()).await;
    protect(&app, "production", 1, false).await;
    // Off in production: applied at once.
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        "/api/v1/flags/checkout/kill?env=production",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Back on in production: a change request.
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        "/api/v1/flags/checkout/restore?env=production",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["changeRequest"]["kind"], "flag.restore");
    // On in staging, which is not protected: applied at once.
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        "/api/v1/flags/checkout/restore?env=staging",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An override of staging alone is not gated either; the base definition is.
    let mut staging_only = flag(&app, "checkout").await["definition"].clone();
    staging_only["environments"]["staging"]["default_variant"] = json!("on");
    let (status, body) = call(
        &app,
        &app.admin,
        Method::PUT,
        "/api/v1/flags/checkout",
        Some(staging_only),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Segments are shared: updating one is gated, creating one is not.
    let (status, _) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/staff",
            json!({"when": [{"attribute": "staff", "op": "eq", "value": true}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .admin_json(
            Method::PUT,
            "/api/v1/segments/staff",
            json!({"when": [{"attribute": "staff", "op": "eq", "value": false}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // An import that changes production is refused.
    let (status, body) = split(
        app.request(Method::POST, "/api/v1/import", Some(&app.admin))
            .header("content-type", "application/json")
            .body(json!({"flags": {}}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn rollout_starts_and_promotions_wait_but_rollbacks_do_not() {
    let app = spawn_app().await;
    let (status, _) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/internal",
            json!({"when": [{"attribute": "staff", "op": "eq", "value": true}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.create_flag("checkout", boolean_flag()).await;
    protect(&app, "production", 1, false).await;
    let bob = app.token("admin", None).await;
    let (status, body) = app
        .admin_json(Method::POST, "/api/v1/rollouts", json!({"flag": "checkout", "env": "production", "template": "standard", "reason": "new checkout"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["rollout"]["status"], "pending");
    let rollout = body["rollout"]["id"].as_str().unwrap().to_owned();
    let id = body["changeRequest"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["changeRequest"]["payload"]["command"], "start");
    let (status, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "applied");
    let (_, started) = app
        .get(&format!("/api/v1/rollouts/{rollout}"), &app.admin)
        .await;
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["seq"], 1);

    // Promote waits for a change request; rollback does not.
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        &format!("/api/v1/rollouts/{rollout}/promote"),
        Some(json!({"reason": "looks fine"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let promote = body["changeRequest"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        &format!("/api/v1/rollouts/{rollout}/rollback"),
        Some(json!({"reason": "errors"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rolled_back");
    // The promotion was computed from an older rollout state: it conflicts.
    let (status, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{promote}/approve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn weakening_a_protection_is_itself_a_change_request() {
    let app = spawn_app().await;
    protect(&app, "production", 2, false).await;
    let (status, body) = app
        .admin_json(
            Method::PUT,
            "/api/v1/environments/production/protection",
            json!({"requiredApprovals": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["changeRequest"]["requirement"]["requiredApprovals"], 2);
    // Strengthening is immediate.
    let (status, body) = app
        .admin_json(
            Method::PUT,
            "/api/v1/environments/production/protection",
            json!({"requiredApprovals": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requiredApprovals"], 3);
    assert_eq!(
        audit_actions(&app, "environment:production").await,
        vec!["environment.protect", "environment.protect"]
    );
}

async fn post_exposures(app: &TestApp, server: &str, flag: &str, start: i64) {
    let body = json!({
        "batchId": format!("batch-{flag}-{start}"),
        "instance": {"id": "instance-1", "sdk": "sluice-rust/0.1.0", "configVersion": 1},
        "sentAtMs": sluice_server::state::now_ms(),
        "buckets": [{"startMs": start, "flag": flag, "variant": "on", "configVersion": 1, "exposures": 5, "errors": 0, "crashes": 0, "events": {}}],
        "crashes": [],
        "dropped": 0,
    });
    let (status, body) = call(app, server, Method::POST, "/api/v1/metrics", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn stale_flags_are_classified_from_audit_records_and_telemetry() {
    let app = spawn_app().await;
    let now = sluice_server::state::now_ms();
    let split_flag = json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "rules": [{"split": [{"variant": "on", "weight": 50000}, {"variant": "off", "weight": 50000}]}]
    });
    let mut settled = split_flag.clone();
    settled["rules"] = json!([]);
    settled["default_variant"] = json!("on");
    let mut expired = split_flag.clone();
    expired["expires"] = json!("2020-01-01");
    app.create_flag("settled", settled).await;
    app.create_flag("experiment", split_flag.clone()).await;
    app.create_flag("never-seen", split_flag).await;
    app.create_flag("expired", expired).await;
    let server = app.token("server", Some("production")).await;
    // Evaluated a day from now (the newest bucket an SDK may report).
    let later = bucket_start(now + DAY - 60_000);
    for key in ["settled", "experiment", "expired"] {
        post_exposures(&app, &server, key, later).await;
    }

    // Now: only the expired flag is stale; the settled one was just written.
    let (status, body) = app
        .get("/api/v1/flags/stale?days=1&all=true", &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stage = |body: &Value, key: &str| {
        body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .cloned()
    };
    assert_eq!(stage(&body, "settled").unwrap()["stage"], "rolled-out");
    assert_eq!(stage(&body, "experiment").unwrap()["stage"], "active");
    assert_eq!(stage(&body, "expired").unwrap()["stage"], "stale");
    assert_eq!(
        stage(&body, "expired").unwrap()["reasons"][0]["reason"],
        "expired"
    );

    // A day and a half on, with a one-day window.
    let at = now + DAY + DAY / 2;
    let (_, body) = app
        .get(&format!("/api/v1/flags/stale?days=1&at={at}"), &app.admin)
        .await;
    let keys: Vec<&str> = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["expired", "never-seen", "settled"], "{body}");
    let settled = stage(&body, "settled").unwrap();
    assert_eq!(
        settled["reasons"],
        json!([{"reason": "settled", "lastChangedMs": settled["lastChangedMs"], "days": 1, "message": "at 0% or 100% in every environment and unchanged for 1 days"}])
    );
    assert_eq!(
        settled["serving"]["production"],
        json!({"serves": "everyone", "variant": "on"})
    );
    let never = stage(&body, "never-seen").unwrap();
    assert_eq!(never["reasons"][0]["reason"], "not-evaluated");
    assert_eq!(never["reasons"][0]["lastEvaluatedMs"], Value::Null);
    assert_eq!(never["lastEvaluatedMs"], Value::Null);
    assert_eq!(stage(&body, "expired").unwrap()["lastEvaluatedMs"], later);

    // Archived flags leave the stale list, and archiving is not a change of the flag.
    let (status, body) = call(
        &app,
        &app.admin,
        Method::POST,
        "/api/v1/flags/settled/archive",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["archived"], true);
    let (_, body) = app
        .get(
            &format!("/api/v1/flags/stale?days=1&at={at}&all=true"),
            &app.admin,
        )
        .await;
    let archived = stage(&body, "settled").unwrap();
    assert_eq!(archived["stage"], "archived");
    assert_eq!(archived["reasons"][0]["reason"], "settled");
    assert_eq!(
        audit_actions(&app, "flag:settled").await,
        vec!["flag.archive", "flag.create"]
    );
}
