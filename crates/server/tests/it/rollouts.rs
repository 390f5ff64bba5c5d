//! Staged rollouts against a real server: the controller's loop driven by `tick` with a
//! virtual clock over real telemetry batches, the automatic rollback and its evidence,
//! idempotent and racing transitions, people's commands, and webhooks (signed, retried,
//! refused for private destinations through a fake resolver).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::rollout::{Command, command};
use sluice_core::telemetry::bucket_start;
use sluice_server::rollouts::tick;
use sluice_server::rollouts::webhooks::{
    AllowList, Deliverer, Resolver, SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver_due, verify,
};
use sluice_server::store::Change;

use crate::helpers::{Options, TestApp, boolean_flag, spawn_with};

const MINUTE: i64 = 60_000;

fn now_ms() -> i64 {
    sluice_server::state::now_ms()
}

/// A server whose controller only moves when the test calls `tick`.
async fn app_without_loop(webhook_allow: &[&str]) -> TestApp {
    spawn_with(Options {
        rollout_interval: Some(0),
        webhook_allow: Some(webhook_allow.iter().map(|s| (*s).to_owned()).collect()),
        ..Options::default()
    })
    .await
}

/// The `internal` segment the templates' first stage targets, and a flag to roll out.
async fn setup(app: &TestApp, flag: &str) {
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/internal",
            json!({"when": [{"attribute": "staff", "op": "eq", "value": true}]}),
        )
        .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "{body}"
    );
    app.create_flag(flag, boolean_flag()).await;
}

async fn start(app: &TestApp, flag: &str) -> Value {
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/rollouts",
            json!({"flag": flag, "env": "production", "template": "standard", "reason": "new checkout"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn rollout(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/rollouts/{id}"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn served_version(app: &TestApp) -> i64 {
    app.state
        .configs()
        .environment("production")
        .unwrap()
        .version
}

/// Posts one batch: `(variant, exposures, errors)` for `flag` in the bucket holding `at_ms`.
async fn report(
    app: &TestApp,
    token: &str,
    id: &str,
    flag: &str,
    at_ms: i64,
    arms: &[(&str, u64, u64)],
) {
    let version = served_version(app);
    let buckets: Vec<Value> = arms
        .iter()
        .map(|(variant, exposures, errors)| {
            json!({
                "startMs": bucket_start(at_ms),
                "flag": flag,
                "variant": variant,
                "configVersion": version,
                "exposures": exposures,
                "errors": errors,
            })
        })
        .collect();
    let body = json!({
        "batchId": id,
        "instance": {"id": "test-instance", "sdk": "test", "configVersion": version},
        "sentAtMs": now_ms(),
        "buckets": buckets,
    });
    let response = app
        .request(Method::POST, "/api/v1/metrics", Some(token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
}

async fn variant(app: &TestApp, client: &str, flag: &str, context: Value) -> String {
    let (status, body) = app.ofrep(client, flag, context).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["variant"].as_str().unwrap().to_owned()
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/audit?action={action}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_controller_advances_on_evidence_and_rolls_back_a_regression() {
    let app = app_without_loop(&[]).await;
    setup(&app, "checkout").await;
    let server = app.token("server", Some("production")).await;
    let client = app.token("client", Some("production")).await;

    let started = start(&app, "checkout").await;
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["status"], "running");
    assert_eq!(started["stage"], 0);
    let t0 = started["stageStartedMs"].as_i64().unwrap();
    // The first stage's exposure is in the flag already: staff get the new variant.
    let staff = json!({"targetingKey": "u-staff", "staff": true});
    let beta = json!({"targetingKey": "u-beta", "beta_opt_in": true});
    let someone = json!({"targetingKey": "u-1"});
    assert_eq!(
        variant(&app, &client, "checkout", staff.clone()).await,
        "on"
    );
    assert_eq!(
        variant(&app, &client, "checkout", beta.clone()).await,
        "off"
    );
    assert_eq!(
        variant(&app, &client, "checkout", someone.clone()).await,
        "off"
    );

    // Past the bake time but with no samples: it holds.
    let report_ = tick(&app.state, t0 + 31 * MINUTE).await.unwrap();
    assert_eq!(report_.examined, 1);
    assert_eq!(report_.applied().count(), 0, "{report_:?}");
    let held = rollout(&app, &id).await;
    let reasons = held["decision"]["action"]["hold"]["reasons"]
        .as_array()
        .unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r["not_enough_samples"]["required"] == 100),
        "{held:#}"
    );

    // Healthy traffic; still baking: it holds.
    report(
        &app,
        &server,
        "b1",
        "checkout",
        t0,
        &[("off", 5_000, 50), ("on", 400, 4)],
    )
    .await;
    let early = tick(&app.state, t0 + MINUTE).await.unwrap();
    assert_eq!(early.applied().count(), 0, "{early:?}");
    assert_eq!(rollout(&app, &id).await["stage"], 0);

    // Baked and sampled: it advances to the beta stage.
    let t1 = t0 + 31 * MINUTE;
    let advanced = tick(&app.state, t1).await.unwrap();
    let outcome = advanced.applied().next().expect("an advance");
    assert_eq!(
        outcome.kind,
        Some(sluice_core::rollout::TransitionKind::Advance)
    );
    let now = rollout(&app, &id).await;
    assert_eq!(now["stage"], 1, "{now:#}");
    assert_eq!(now["stageStartedMs"], t1);
    assert_eq!(variant(&app, &client, "checkout", beta.clone()).await, "on");
    // Telemetry from before the advance is not judged as the new stage.
    assert_eq!(now["window"]["exposures"]["control"], 0, "{now:#}");

    // A regression: the new variant errors five times as often.
    let t2 = t1 + 2 * MINUTE;
    report(
        &app,
        &server,
        "b2",
        "checkout",
        t2,
        &[("off", 20_000, 200), ("on", 5_000, 250)],
    )
    .await;
    let versions_before = app.state.store().config_version().await.unwrap();
    let rolled = tick(&app.state, t2 + MINUTE).await.unwrap();
    let outcome = rolled.applied().next().expect("a rollback");
    assert_eq!(
        outcome.kind,
        Some(sluice_core::rollout::TransitionKind::Rollback)
    );
    assert_eq!(
        app.state.store().config_version().await.unwrap(),
        versions_before + 1
    );

    // Everyone is back on the old variant, at once (the tick reloaded the configuration).
    for context in [staff, beta, someone] {
        assert_eq!(variant(&app, &client, "checkout", context).await, "off");
    }
    let (_, flag) = app.get("/api/v1/flags/checkout", &app.admin).await;
    let rules = &flag["definition"]["environments"]["production"]["rules"];
    assert_eq!(rules[0]["name"], "rollout: everyone", "{flag:#}");
    assert_eq!(rules[0]["serve"], "off");

    // The audit record carries the evidence: n per arm, estimates, interval, test, threshold.
    let records = audit(&app, "rollout.rollback").await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["resource"], "flag:checkout");
    assert!(record["actor"].is_null(), "the controller acted: {record}");
    assert!(
        record["reason"].as_str().unwrap().contains("Rolled back"),
        "{record}"
    );
    let after: Value = serde_json::from_str(record["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["rollout"], id.as_str());
    let verdicts = after["evidence"]["decision"]["verdicts"]
        .as_array()
        .unwrap();
    let errors = verdicts
        .iter()
        .find(|v| v["evidence"]["metric"] == "error_rate")
        .unwrap();
    assert_eq!(errors["outcome"], "fail", "{errors:#}");
    let evidence = &errors["evidence"];
    assert_eq!(evidence["n"]["control"], 20_000);
    assert_eq!(evidence["n"]["treatment"], 5_000);
    assert!((evidence["control"].as_f64().unwrap() - 0.01).abs() < 1e-9);
    assert!((evidence["treatment"].as_f64().unwrap() - 0.05).abs() < 1e-9);
    assert_eq!(evidence["test"], "proportion_sequence");
    let lo = evidence["interval"]["lo"].as_f64().unwrap();
    let threshold = evidence["threshold"].as_f64().unwrap();
    assert!(
        lo > threshold,
        "the whole interval is beyond the threshold: {evidence:#}"
    );
    assert_eq!(
        after["flag"]["environments"]["production"]["rules"][0]["serve"],
        "off"
    );

    // Anyone asking why gets the answer with its numbers.
    let why = rollout(&app, &id).await;
    assert_eq!(why["status"], "rolled_back");
    let history = why["history"].as_array().unwrap();
    let kinds: Vec<&str> = history
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "advance", "rollback"]);
    assert!(
        history[2]["summary"]
            .as_str()
            .unwrap()
            .contains("error_rate"),
        "{:#}",
        history[2]
    );

    // Replaying the rollback writes nothing.
    let transition: sluice_core::rollout::Transition = serde_json::from_value(json!(
        app.state.store().rollout_transitions(&id).await.unwrap()[2].transition
    ))
    .unwrap();
    let version = app.state.store().config_version().await.unwrap();
    let replay = app
        .state
        .store()
        .apply_transition(&Change::at(now_ms()), &id, &transition)
        .await
        .unwrap();
    assert!(!replay.value.applied);
    assert_eq!(app.state.store().config_version().await.unwrap(), version);
    assert_eq!(audit(&app, "rollout.rollback").await.len(), 1);
    // A finished rollout is no longer judged.
    assert_eq!(
        tick(&app.state, t2 + 10 * MINUTE).await.unwrap().examined,
        0
    );
    let verified = app.get("/api/v1/audit/verify", &app.admin).await.1;
    assert_eq!(verified["ok"], true);
}

#[tokio::test]
async fn two_writers_applying_one_transition_record_it_once() {
    let app = app_without_loop(&[]).await;
    setup(&app, "search").await;
    let id = start(&app, "search").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = app.state.store();
    let state = store.get_rollout(&id).await.unwrap().state;
    let pause = command(
        &state,
        now_ms(),
        Command::Pause {
            reason: "crash drill".into(),
            actor: "tok_a".into(),
        },
    )
    .unwrap();
    // A crash between deciding and writing, retried: both attempts race.
    let change = Change::at(now_ms());
    let (a, b) = tokio::join!(
        store.apply_transition(&change, &id, &pause),
        store.apply_transition(&change, &id, &pause)
    );
    let applied = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|c| c.value.applied)
        .count();
    assert_eq!(applied, 1);
    let history = store.rollout_transitions(&id).await.unwrap();
    assert_eq!(history.len(), 2, "start and one pause");
    assert_eq!(audit(&app, "rollout.pause").await.len(), 1);

    // A different transition with the same seq, decided from the old state, conflicts.
    let rollback = command(
        &state,
        now_ms(),
        Command::Rollback {
            reason: "late".into(),
            actor: "tok_b".into(),
        },
    )
    .unwrap();
    let error = store
        .apply_transition(&change, &id, &rollback)
        .await
        .unwrap_err();
    assert!(
        matches!(error, sluice_server::store::StoreError::Conflict { .. }),
        "{error:?}"
    );
    assert_eq!(
        store.get_rollout(&id).await.unwrap().state.status.name(),
        "paused"
    );
}

async fn steer(app: &TestApp, id: &str, what: &str, reason: Option<&str>) -> (StatusCode, Value) {
    let body = match reason {
        Some(reason) => json!({"reason": reason}),
        None => json!({}),
    };
    app.admin_json(Method::POST, &format!("/api/v1/rollouts/{id}/{what}"), body)
        .await
}

#[tokio::test]
async fn people_steer_rollouts_and_every_command_is_audited() {
    let app = app_without_loop(&[]).await;
    setup(&app, "banner").await;
    let client = app.token("client", Some("production")).await;
    let id = start(&app, "banner").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // One unfinished rollout per flag and environment.
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/rollouts",
            json!({"flag": "banner", "env": "production", "template": "standard"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Bad requests name their field.
    for (body, field) in [
        (
            json!({"flag": "banner", "env": "staging", "template": "bold"}),
            "template",
        ),
        (
            json!({"flag": "nope", "env": "staging", "template": "standard"}),
            "flag",
        ),
        (
            json!({"flag": "banner", "env": "staging", "template": "standard", "treatment": "maybe"}),
            "treatment",
        ),
        (
            json!({"flag": "banner", "env": "staging", "plan": {"stages": [{"percent": 200}]}}),
            "plan.stages[0].percent",
        ),
    ] {
        let (status, answer) = app.admin_json(Method::POST, "/api/v1/rollouts", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["path"], field, "{answer}");
    }

    let (status, paused) = steer(&app, &id, "pause", Some("waiting for the on-call")).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["applied"], true);
    let (status, _) = steer(&app, &id, "pause", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, resumed) = steer(&app, &id, "resume", None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "running");
    let (status, refused) = steer(&app, &id, "promote", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("reason"),
        "{refused}"
    );
    let (status, promoted) = steer(&app, &id, "promote", Some("staff saw no issues")).await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["stage"], 1);
    assert_eq!(
        variant(
            &app,
            &client,
            "banner",
            json!({"targetingKey": "b", "beta_opt_in": true})
        )
        .await,
        "on"
    );
    let (status, _) = steer(&app, &id, "approve", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "no approvals needed");

    let (status, rolled) = steer(&app, &id, "rollback", Some("support tickets")).await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["status"], "rolled_back");
    assert_eq!(
        variant(
            &app,
            &client,
            "banner",
            json!({"targetingKey": "b", "beta_opt_in": true})
        )
        .await,
        "off"
    );
    let (status, killed) = steer(&app, &id, "kill", Some("for good")).await;
    assert_eq!(status, StatusCode::OK, "{killed}");
    assert_eq!(killed["status"], "killed");
    let (_, evaluated) = app
        .ofrep(
            &client,
            "banner",
            json!({"targetingKey": "b", "plan": "pro"}),
        )
        .await;
    assert_eq!(evaluated["reason"], "DISABLED", "{evaluated}");
    let (status, _) = steer(&app, &id, "resume", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = steer(&app, "ro_0000000000000000", "pause", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Each command is one audit record with its actor and reason.
    for (action, reason) in [
        ("rollout.start", Some("new checkout")),
        ("rollout.pause", Some("waiting for the on-call")),
        ("rollout.resume", None),
        ("rollout.promote", Some("staff saw no issues")),
        ("rollout.rollback", Some("support tickets")),
        ("rollout.kill", Some("for good")),
    ] {
        let records = audit(&app, action).await;
        assert_eq!(records.len(), 1, "{action}: {records:?}");
        assert!(records[0]["actor"].as_str().unwrap().starts_with("tok_"));
        assert_eq!(records[0]["reason"].as_str(), reason, "{action}");
    }
    // A finished rollout leaves room for the next one.
    let (status, listed) = app.get("/api/v1/rollouts?flag=banner", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["rollouts"][0]["status"], "killed");
    start(&app, "banner").await;
}

#[tokio::test]
async fn server_tokens_read_only_their_environments_rollouts() {
    let app = app_without_loop(&[]).await;
    setup(&app, "reader").await;
    let id = start(&app, "reader").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let production = app.token("server", Some("production")).await;
    let staging = app.token("server", Some("staging")).await;
    let (status, _) = app
        .get(&format!("/api/v1/rollouts/{id}"), &production)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/api/v1/rollouts/{id}"), &staging).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, listed) = app.get("/api/v1/rollouts", &staging).await;
    assert_eq!(listed["rollouts"].as_array().unwrap().len(), 0);
    let (status, _) = steer_with(&app, &production, &id, "rollback").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn steer_with(app: &TestApp, token: &str, id: &str, what: &str) -> (StatusCode, Value) {
    crate::helpers::split(
        app.request(
            Method::POST,
            &format!("/api/v1/rollouts/{id}/{what}"),
            Some(token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await
}

/// What the receiver saw: headers and body of each request.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver on 127.0.0.1 that answers 500 first, then 200.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let recorded = recorded.clone();
            async move {
                let mut seen = recorded.lock().unwrap();
                seen.push((headers, body));
                if seen.len() == 1 {
                    AxumStatus::INTERNAL_SERVER_ERROR
                } else {
                    AxumStatus::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/hook"), seen)
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_after_a_failure() {
    let app = app_without_loop(&["127.0.0.1"]).await;
    setup(&app, "hooked").await;
    let (url, seen) = receiver().await;
    let (status, hook) = app
        .admin_json(
            Method::POST,
            "/api/v1/webhooks",
            json!({"url": url, "secret": "s3cret", "events": ["start", "rollback"], "env": "production"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert_eq!(hook["secret"], "s3cret");
    let (_, listed) = app.get("/api/v1/webhooks", &app.admin).await;
    assert!(
        !listed.to_string().contains("s3cret"),
        "secrets are never listed: {listed}"
    );
    let (_, audited) = app
        .get("/api/v1/audit?action=webhook.create", &app.admin)
        .await;
    assert!(!audited.to_string().contains("s3cret"), "nor audited");

    let id = start(&app, "hooked").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = steer(&app, &id, "pause", Some("not announced")).await;
    assert_eq!(status, StatusCode::OK);
    let deliverer = Deliverer::system(&["127.0.0.1".to_owned()]);
    let store = app.state.store();

    let now = now_ms();
    let first = deliver_due(store, &deliverer, now).await.unwrap();
    assert_eq!(
        (first.delivered, first.retried, first.gave_up),
        (0, 1, 0),
        "only `start` is subscribed"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Not due again yet.
    let idle = deliver_due(store, &deliverer, now).await.unwrap();
    assert_eq!(idle.delivered + idle.retried, 0);
    let second = deliver_due(store, &deliverer, now + 60 * MINUTE)
        .await
        .unwrap();
    assert_eq!(second.delivered, 1, "{second:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (headers, body) in &seen {
        let timestamp: i64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
        let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(verify("s3cret", timestamp, body, signature), "{signature}");
        assert!(!verify("wrong", timestamp, body, signature));
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["event"], "rollout.start");
        assert_eq!(payload["rollout"], id.as_str());
        assert_eq!(headers["x-sluice-delivery"], format!("{id}.1").as_str());
    }
    let deliveries = store.deliveries(Some(&id), 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].attempts, 2);
    assert!(deliveries[0].delivered_ms.is_some());
}

/// Resolves every name to the addresses given. Never touches the network.
#[derive(Debug)]
struct FakeResolver(HashMap<String, Vec<IpAddr>>);

#[async_trait::async_trait]
impl Resolver for FakeResolver {
    async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::other("unknown host"))
    }
}

#[tokio::test]
async fn webhooks_to_private_destinations_are_refused() {
    let app = app_without_loop(&[]).await;
    setup(&app, "guarded").await;
    // Addresses written in the URL are refused at once.
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        // Other notations of loopback and link-local: decimal, octal, hex, short forms,
        // IPv4-mapped IPv6, and the unspecified address.
        "http://2130706433/x",
        "http://0177.0.0.1/x",
        "http://0x7f.0.0.1/x",
        "http://127.1/x",
        "http://0/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[::ffff:a9fe:a9fe]/x",
        "http://2852039166/latest",
    ] {
        let (status, body) = app
            .admin_json(Method::POST, "/api/v1/webhooks", json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["errors"][0]["path"], "url");
    }
    // Names are resolved at delivery: one resolving to a private address is given up.
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/webhooks",
            json!({"url": "http://hooks.sneaky.test/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = start(&app, "guarded").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resolver = FakeResolver(HashMap::from([(
        "hooks.sneaky.test".to_owned(),
        vec![
            "93.184.216.34".parse().unwrap(),
            "10.0.0.8".parse().unwrap(),
        ],
    )]));
    let deliverer = Deliverer::new(Arc::new(resolver), AllowList::default());
    let report = deliver_due(app.state.store(), &deliverer, now_ms())
        .await
        .unwrap();
    assert_eq!(
        (report.delivered, report.retried, report.gave_up),
        (0, 0, 1)
    );
    let deliveries = app.state.store().deliveries(Some(&id), 10).await.unwrap();
    let error = deliveries[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("10.0.0.8") && error.contains("not a public address"),
        "{error}"
    );
    // Given up: never attempted again.
    let later = deliver_due(app.state.store(), &deliverer, now_ms() + 600 * MINUTE)
        .await
        .unwrap();
    assert_eq!(later.gave_up + later.retried + later.delivered, 0);
}
