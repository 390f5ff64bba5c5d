//! Releases against a real server: the checklist gate holding promotion until all six items
//! pass, the audited override, the policy's stricter plan for AI-assisted high-risk changes,
//! and the learning report from a seeded history.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::release::ReleaseSpec;
use sluice_core::rollout::{Command, RolloutState, Template, command, policy};
use sluice_server::store::{Change, NewRelease, NewRollout};

use crate::helpers::{Options, TestApp, boolean_flag, spawn_with};

fn now_ms() -> i64 {
    sluice_server::state::now_ms()
}

async fn app() -> TestApp {
    spawn_with(Options {
        rollout_interval: Some(0),
        ..Options::default()
    })
    .await
}

/// The `internal` segment the templates' first stage targets, and the flags.
async fn setup(app: &TestApp, flags: &[&str]) {
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/internal",
            json!({"when": [{"attribute": "staff", "op": "eq", "value": true}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for flag in flags {
        app.create_flag(flag, boolean_flag()).await;
    }
}

fn release(name: &str, flag: &str, provenance: &str, risk: &str) -> Value {
    json!({
        "name": name,
        "description": "the new checkout",
        "flags": [flag],
        "provenance": {"kind": provenance, "tool": "an assistant", "link": "https://git.example/pr/7", "reviewer": "ana"},
        "risk": risk,
        "rollback": {
            "kind": "git-revert", "commit": "4f2a9c1",
            "steps": ["turn the flag off", "revert 4f2a9c1"],
            "expected_time_to_restore": "10m", "data_at_risk": "none", "on_call": "ana"
        },
        "known_limitations": ["no gift cards"],
        "escalation": ["ana", "payments on-call"],
        "audience": "beta-testers"
    })
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, body) = app.admin_json(Method::POST, "/api/v1/releases", body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn start(app: &TestApp, name: &str) -> String {
    let (status, body) = app
        .admin_json(
            Method::POST,
            &format!("/api/v1/releases/{name}/start"),
            json!({"env": "production"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["rollouts"][0]["id"].as_str().unwrap().to_owned()
}

async fn promote(app: &TestApp, rollout: &str) -> (StatusCode, Value) {
    app.admin_json(
        Method::POST,
        &format!("/api/v1/rollouts/{rollout}/promote"),
        json!({"reason": "looks fine"}),
    )
    .await
}

async fn failing(app: &TestApp, name: &str) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/api/v1/releases/{name}/checklist"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["passed"] == false)
        .map(|i| i["item"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_actions(app: &TestApp, resource: &str) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/audit?resource={resource}&limit=100"),
            &app.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_gate_holds_promotion_until_all_six_items_pass() {
    let app = app().await;
    setup(&app, &["checkout"]).await;
    let created = create(&app, release("checkout-v2", "checkout", "human", "low")).await;
    assert_eq!(created["checklist"]["items"].as_array().unwrap().len(), 6);
    // On in production with no rollout yet; no telemetry; no audience segment.
    assert_eq!(
        failing(&app, "checkout-v2").await,
        ["flag", "monitoring", "audience"]
    );

    let rollout = start(&app, "checkout-v2").await;
    assert_eq!(
        failing(&app, "checkout-v2").await,
        ["monitoring", "audience"]
    );
    let (status, body) = promote(&app, &rollout).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("held by the release checklist"),
        "{message}"
    );
    assert!(
        message.contains("segment `beta-testers` does not exist"),
        "{message}"
    );
    let (_, state) = app
        .get(&format!("/api/v1/rollouts/{rollout}"), &app.admin)
        .await;
    assert_eq!(state["stage"], 0);

    // The hold is evidence on the release, audited, and written once per reason.
    promote(&app, &rollout).await;
    let (_, detail) = app.get("/api/v1/releases/checkout-v2", &app.admin).await;
    let holds: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "hold")
        .collect();
    assert_eq!(holds.len(), 1, "{detail}");
    assert_eq!(holds[0]["detail"]["rollout"], rollout.as_str());
    let audited = audit_actions(&app, "release:checkout-v2").await;
    assert_eq!(
        audited
            .iter()
            .filter(|r| r["action"] == "release.hold")
            .count(),
        1
    );

    // The audience: a segment with include keys.
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/beta-testers",
            json!({"include": ["user-1", "user-2"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(failing(&app, "checkout-v2").await, ["monitoring"]);
    let (status, _) = promote(&app, &rollout).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Monitoring: guardrails are on the plan; an SDK reports telemetry.
    let server = app.token("server", Some("production")).await;
    let batch = json!({
        "batchId": "b1",
        "instance": {"id": "sdk-1", "sdk": "sluice-rust/0.1.0", "configVersion": 1},
        "sentAtMs": now_ms(),
        "buckets": [],
        "crashes": [],
        "dropped": 0,
    });
    let response = app
        .request(Method::POST, "/api/v1/metrics", Some(&server))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(failing(&app, "checkout-v2").await.is_empty());

    let (status, body) = promote(&app, &rollout).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stage"], 1);
    let (_, detail) = app.get("/api/v1/releases/checkout-v2", &app.admin).await;
    assert_eq!(detail["checklist"]["passed"], true);
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"create"));
    assert!(
        kinds.contains(&"start") && kinds.contains(&"promote"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn evidence_passes_an_item_and_an_override_is_audited_and_kept() {
    let app = app().await;
    setup(&app, &["search"]).await;
    let mut body = release("search-v3", "search", "mixed", "medium");
    body["escalation"] = json!([]);
    create(&app, body).await;
    let rollout = start(&app, "search-v3").await;
    assert_eq!(
        failing(&app, "search-v3").await,
        ["monitoring", "audience", "escalation"]
    );

    // Evidence from a named person passes an item the data cannot.
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases/search-v3/evidence",
            json!({"item": "escalation", "link": "https://wiki.example/search-escalation"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = &body["checklist"]["items"][5];
    assert_eq!(
        (item["passed"].clone(), item["source"].clone()),
        (json!(true), json!("evidence"))
    );
    assert!(
        item["evidence"]["by"].as_str().unwrap().contains("tok_"),
        "{item}"
    );
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases/search-v3/evidence",
            json!({"item": "vibes", "text": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["path"], "item");
    let (status, _) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases/search-v3/evidence",
            json!({"item": "monitoring"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, _) = promote(&app, &rollout).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // An override needs a reason and an admin.
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases/search-v3/override",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "reason");
    let server = app.token("server", Some("production")).await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/releases/search-v3/override",
            Some(&server),
        )
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases/search-v3/override",
            json!({"reason": "security fix, watched by hand"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checklist"]["passed"], false);
    assert_eq!(body["checklist"]["open"], true);
    assert_eq!(body["override"]["reason"], "security fix, watched by hand");

    let audited = audit_actions(&app, "release:search-v3").await;
    let record = audited
        .iter()
        .find(|r| r["action"] == "release.override")
        .expect("the override is audited");
    assert_eq!(record["reason"], "security fix, watched by hand");
    assert!(record["actor"].as_str().unwrap().starts_with("tok_"));

    let (status, body) = promote(&app, &rollout).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stage"], 1);

    // Kept for good: a second override is refused, and the first is still shown.
    let (status, _) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases/search-v3/override",
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, detail) = app.get("/api/v1/releases/search-v3", &app.admin).await;
    assert_eq!(
        detail["override"]["reason"],
        "security fix, watched by hand"
    );
    assert!(
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "override")
    );

    // Unauthenticated and unknown.
    let response = app
        .request(Method::GET, "/api/v1/releases/search-v3", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/v1/releases/nope", &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_policy_gives_ai_assisted_high_risk_releases_the_stricter_plan() {
    let app = app().await;
    setup(&app, &["payments", "banner"]).await;
    let strict = create(
        &app,
        release("payments-v2", "payments", "ai-assisted", "high"),
    )
    .await;
    let relaxed = create(&app, release("banner-v2", "banner", "human", "low")).await;

    let policy_of = |body: &Value| body["effectivePolicy"].clone();
    assert_eq!(policy_of(&strict)["rule"], "ai-assisted-high");
    assert_eq!(policy_of(&strict)["template"], "cautious");
    assert_eq!(policy_of(&strict)["approvals"], 2);
    assert_eq!(
        policy_of(&strict)["requiredStages"],
        json!(["internal", "beta", "shadow"])
    );
    assert_eq!(policy_of(&strict)["missingStages"], json!([]));
    assert!(
        policy_of(&strict)["reason"]
            .as_str()
            .unwrap()
            .starts_with("ai-assisted change, high risk")
    );
    assert_eq!(policy_of(&relaxed)["rule"], "default");
    assert_eq!(policy_of(&relaxed)["template"], "standard");
    assert_eq!(policy_of(&relaxed)["approvals"], 0);

    let stages = |body: &Value| body["stages"].as_array().unwrap().clone();
    let total_bake = |body: &Value| -> u64 {
        stages(body)
            .iter()
            .map(|s| s["bakeSecs"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(stages(&strict).len(), 8);
    assert_eq!(stages(&relaxed).len(), 5);
    assert!(total_bake(&strict) > 2 * total_bake(&relaxed));
    let approvals: Vec<u64> = stages(&strict)
        .iter()
        .map(|s| s["approvals"].as_u64().unwrap())
        .collect();
    assert_eq!(approvals, [0, 0, 2, 0, 0, 0, 0, 2]);

    // The rollouts it starts follow that plan.
    let rollout = start(&app, "payments-v2").await;
    let (_, state) = app
        .get(&format!("/api/v1/rollouts/{rollout}"), &app.admin)
        .await;
    assert_eq!(state["stages"].as_array().unwrap().len(), 8);
    assert_eq!(state["stages"][2]["approvals"], 2);

    // Bad input names its path.
    let mut bad = release("x", "payments", "ai-assisted", "extreme");
    bad["rollback"]["commit"] = json!("");
    let (status, body) = app.admin_json(Method::POST, "/api/v1/releases", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "risk");
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases",
            release("payments-v2", "payments", "human", "low"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "name");
}

fn spec(name: &str, flag: &str, provenance: &str, risk: &str) -> ReleaseSpec {
    ReleaseSpec::from_value(release(name, flag, provenance, risk)).unwrap()
}

/// Creates a release at `at` and, when `start_at` is given, starts a rollout of its flag in
/// staging then; returns the release id and the rollout state.
async fn seed(
    app: &TestApp,
    release_spec: ReleaseSpec,
    at: i64,
    start_at: Option<i64>,
) -> (String, Option<(String, RolloutState)>) {
    let store = app.state.store();
    let chosen = policy(release_spec.provenance.kind, release_spec.risk);
    let plan = Template::Standard.plan();
    let flag = release_spec.flags[0].clone();
    let created = store
        .create_release(
            &Change::at(at).by("seeder"),
            &NewRelease {
                spec: release_spec,
                policy: chosen,
                plan: plan.clone(),
            },
        )
        .await
        .unwrap();
    let Some(start_at) = start_at else {
        return (created.value.id, None);
    };
    let pending = RolloutState::new(plan, &flag, "staging", "on", "off");
    let start = command(
        &pending,
        start_at,
        Command::Start {
            actor: "seeder".into(),
        },
    )
    .unwrap();
    let applied = store
        .start_release_rollout(
            &Change::at(start_at).by("seeder"),
            &created.value.id,
            &NewRollout {
                state: pending,
                start: Some(start),
            },
        )
        .await
        .unwrap();
    let rollout = applied.value.rollout;
    (created.value.id, Some((rollout.id, rollout.state)))
}

async fn steer(
    app: &TestApp,
    id: &str,
    state: RolloutState,
    at: i64,
    instruction: Command,
) -> RolloutState {
    let transition = command(&state, at, instruction).unwrap();
    let applied = app
        .state
        .store()
        .apply_transition(&Change::at(at).by("seeder"), id, &transition)
        .await
        .unwrap();
    applied.value.rollout.state
}

async fn promote_to_the_end(
    app: &TestApp,
    id: &str,
    mut state: RolloutState,
    start: i64,
    step: i64,
) -> i64 {
    let mut at = start;
    while state.status.is_active() {
        at += step;
        state = steer(
            app,
            id,
            state,
            at,
            Command::Promote {
                reason: "seeded".into(),
                actor: "seeder".into(),
            },
        )
        .await;
    }
    at
}

#[tokio::test]
async fn the_report_is_computed_from_a_seeded_history() {
    let app = app().await;
    setup(&app, &["a", "b", "c", "d"]).await;
    // A: AI-assisted, high risk; started at 1,000, promoted through its 5 stages 2,500 ms
    // apart: fully rolled out 10,000 ms after it started.
    let (_, a) = seed(
        &app,
        spec("a", "a", "ai-assisted", "high"),
        500,
        Some(1_000),
    )
    .await;
    let (id, state) = a.unwrap();
    let done = promote_to_the_end(&app, &id, state, 1_000, 2_500).await;
    assert_eq!(done, 11_000);
    // B: AI-assisted, high risk; started at 2,000, promoted at 3,000, rolled back by a person
    // at 7,000: restored 4,000 ms after the failing stage began.
    let (_, b) = seed(
        &app,
        spec("b", "b", "ai-assisted", "high"),
        600,
        Some(2_000),
    )
    .await;
    let (id, state) = b.unwrap();
    let state = steer(
        &app,
        &id,
        state,
        3_000,
        Command::Promote {
            reason: "go".into(),
            actor: "seeder".into(),
        },
    )
    .await;
    steer(
        &app,
        &id,
        state,
        7_000,
        Command::Rollback {
            reason: "errors".into(),
            actor: "ana".into(),
        },
    )
    .await;
    // C: human, low risk; fully rolled out 20,000 ms after it started at 0.
    let (_, c) = seed(&app, spec("c", "c", "human", "low"), 0, Some(0)).await;
    let (id, state) = c.unwrap();
    assert_eq!(promote_to_the_end(&app, &id, state, 0, 5_000).await, 20_000);
    // D: human, low risk; created at 50,000, never started.
    seed(&app, spec("d", "d", "human", "low"), 50_000, None).await;

    let (status, body) = app.get("/api/v1/reports/releases", &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total = &body["report"]["total"];
    assert_eq!(total["releases"], 4);
    assert_eq!(total["started"], 3);
    assert_eq!(total["failed"], 1);
    assert_eq!(total["changeFailureRate"], json!(1.0 / 3.0));
    assert_eq!(total["fullRollouts"], 2);
    assert_eq!(total["medianTimeToFullRolloutMs"], json!(15_000.0));
    assert_eq!(total["restores"], 1);
    assert_eq!(total["meanTimeToRestoreMs"], json!(4_000.0));
    assert_eq!(total["rollbacksByCause"], json!({"manual": 1}));

    let ai = &body["report"]["byProvenance"][0];
    assert_eq!(ai["provenance"], "ai-assisted");
    assert_eq!(
        (
            ai["releases"].clone(),
            ai["started"].clone(),
            ai["failed"].clone()
        ),
        (json!(2), json!(2), json!(1))
    );
    assert_eq!(ai["changeFailureRate"], json!(0.5));
    assert_eq!(ai["medianTimeToFullRolloutMs"], json!(10_000.0));
    let human = &body["report"]["byProvenance"][1];
    assert_eq!(human["provenance"], "human");
    assert_eq!(human["changeFailureRate"], json!(0.0));
    assert_eq!(human["medianTimeToFullRolloutMs"], json!(20_000.0));
    assert_eq!(human["meanTimeToRestoreMs"], Value::Null);
    let pairs: Vec<(Value, Value, Value)> = body["report"]["byProvenanceAndRisk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["provenance"].clone(),
                g["risk"].clone(),
                g["releases"].clone(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (json!("ai-assisted"), json!("high"), json!(2)),
            (json!("human"), json!("low"), json!(2))
        ]
    );

    let (_, since) = app
        .get("/api/v1/reports/releases?since=40000", &app.admin)
        .await;
    assert_eq!(since["report"]["total"]["releases"], 1);
    assert_eq!(since["report"]["total"]["started"], 0);
    assert_eq!(since["report"]["total"]["changeFailureRate"], Value::Null);
}
