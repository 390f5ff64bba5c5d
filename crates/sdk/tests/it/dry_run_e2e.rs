//! Dry runs end to end: rules staged on a real server, a seeded population evaluated through
//! a real SDK in server mode and through OFREP, and the would-change counts the server reports
//! equal to what core computes directly for the same population, pair by pair. The SDK keeps
//! serving the current rules throughout, and a stopped dry run counts nothing more.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::{Client, ContextBuilder};
use sluice_core::dry_run::{compile_staged, staged_from_value, variant_of};
use sluice_core::model::{FlagDef, SegmentDef};
use sluice_core::{Context, FlagFile};

use crate::harness::TestServer;
use crate::server_mode::builder;
use crate::wait_until;

const FLAG: &str = "checkout-theme";
const SDK_USERS: u64 = 2_000;
const OFREP_USERS: u64 = 600;

fn segment() -> Value {
    json!({"when": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}]})
}

fn flag() -> Value {
    json!({
        "type": "string",
        "variants": {"classic": "classic", "modern": "modern", "bold": "bold"},
        "default_variant": "classic",
        "environments": {
            "production": {
                "rules": [
                    {"when": [{"segment": "staff"}], "serve": "modern"},
                    {"when": [{"attribute": "country", "op": "in", "values": ["DE", "AT"]}],
                     "split": [{"variant": "classic", "weight": 50000}, {"variant": "modern", "weight": 50000}]}
                ]
            }
        }
    })
}

/// The change under trial: staff get `bold`, the DACH split becomes 20/80, and plan `pro`
/// users everywhere get `modern`.
fn staged() -> Value {
    json!({
        "rules": [
            {"when": [{"segment": "staff"}], "serve": "bold"},
            {"when": [{"attribute": "country", "op": "in", "values": ["DE", "AT", "CH"]}],
             "split": [{"variant": "classic", "weight": 20000}, {"variant": "modern", "weight": 80000}]},
            {"when": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": "modern"}
        ]
    })
}

/// A seeded population: SplitMix64 picks each user's country, plan and email.
fn population(from: u64, count: u64) -> Vec<Context> {
    let mut state: u64 = 0x5EED_0000 + from;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (from..from + count)
        .map(|i| {
            let country = ["DE", "AT", "CH", "US", "FR", "JP"][(next() % 6) as usize];
            let plan = ["free", "pro", "team"][(next() % 3) as usize];
            let email = if next() % 20 == 0 {
                format!("user{i}@example.com")
            } else {
                format!("user{i}@mail.test")
            };
            ContextBuilder::new(format!("user-{i}"))
                .attr("country", country)
                .attr("plan", plan)
                .attr("email", email)
                .build()
        })
        .collect()
}

/// What core says each context is served now and would be served under the staged rules,
/// counted per pair; and the current variant per context.
fn expected(contexts: &[Context]) -> (BTreeMap<(String, String), u64>, Vec<String>) {
    let mut file = FlagFile::default();
    file.segments.insert(
        "staff".into(),
        serde_json::from_value::<SegmentDef>(segment()).unwrap(),
    );
    file.flags.insert(
        FLAG.into(),
        serde_json::from_value::<FlagDef>(flag()).unwrap(),
    );
    let current = sluice_core::compile(&file, Some("production")).unwrap();
    let staged = staged_from_value(staged()).unwrap();
    let staged = compile_staged(&file, FLAG, "production", &staged).unwrap();
    let mut pairs = BTreeMap::new();
    let mut served = Vec::new();
    for context in contexts {
        let now = current.evaluate(FLAG, context);
        let then = staged.evaluate(FLAG, context);
        *pairs
            .entry((variant_of(&now).to_owned(), variant_of(&then).to_owned()))
            .or_default() += 1;
        served.push(variant_of(&now).to_owned());
    }
    (pairs, served)
}

fn reported(report: &Value) -> BTreeMap<(String, String), u64> {
    report["report"]["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (
                    t["from"].as_str().unwrap().to_owned(),
                    t["to"].as_str().unwrap().to_owned(),
                ),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn client_token(server: &TestServer) -> String {
    let (status, token) = server.post(
        "/api/v1/tokens",
        json!({"name": "ofrep", "scope": "client", "environment": "production"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{token}");
    token["secret"].as_str().unwrap().to_owned()
}

fn ofrep(server: &TestServer, token: &str, context: &Context) -> String {
    let url = format!("{}/ofrep/v1/evaluate/flags/{FLAG}", server.url());
    let body = json!({ "context": context });
    let answer: Value = server.block_on(async {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    });
    answer["variant"].as_str().unwrap().to_owned()
}

#[test]
fn would_change_counts_match_core_for_a_seeded_population() {
    let server = TestServer::start();
    let (status, body) = server.post("/api/v1/segments/staff", segment());
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.create_flag(FLAG, flag());
    let (_, token) = server.server_token("production");
    let client_secret = client_token(&server);
    let sdk: Client = builder(&server.url(), &token)
        .telemetry(true)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();

    // Bad staged rules are refused with their path, and nothing starts.
    let (status, refused) = server.post(
        "/api/v1/dry-runs",
        json!({"flag": FLAG, "env": "production", "staged": [{"serve": "purple"}]}),
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(
        refused["errors"][0]["path"], "staged.rules[0].serve",
        "{refused}"
    );
    let (status, missing) = server.post(
        "/api/v1/dry-runs",
        json!({"flag": "nope", "env": "production", "staged": staged()}),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    let (status, started) = server.post(
        "/api/v1/dry-runs",
        json!({"flag": FLAG, "env": "production", "staged": staged(), "reason": "new theme rules"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_i64().unwrap();
    assert_eq!(started["status"], "running");
    let (status, again) = server.post(
        "/api/v1/dry-runs",
        json!({"flag": FLAG, "env": "production", "staged": staged()}),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let version = started["configVersion"].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || sdk.version() >= Some(version)),
        "the SDK never received the dry run"
    );

    let through_sdk = population(0, SDK_USERS);
    let through_ofrep = population(SDK_USERS, OFREP_USERS);
    let (mut pairs, served) = expected(&through_sdk);
    for (context, now) in through_sdk.iter().zip(&served) {
        assert_eq!(
            &sdk.string(FLAG, context, "none"),
            now,
            "the SDK serves the current rules"
        );
    }
    let (more, served) = expected(&through_ofrep);
    for (context, now) in through_ofrep.iter().zip(&served) {
        assert_eq!(
            &ofrep(&server, &client_secret, context),
            now,
            "OFREP serves the current rules"
        );
    }
    for (pair, count) in more {
        *pairs.entry(pair).or_default() += count;
    }
    assert!(
        sdk.flush_telemetry(Duration::from_secs(10)),
        "{:?}",
        sdk.telemetry_stats()
    );

    let (status, report) = server.get(&format!("/api/v1/dry-runs/{id}"));
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(reported(&report), pairs, "{report:#}");
    let would_change: u64 = pairs
        .iter()
        .filter(|((from, to), _)| from != to)
        .map(|(_, count)| count)
        .sum();
    assert!(
        would_change > 200,
        "the staged rules change something: {pairs:?}"
    );
    assert_eq!(report["report"]["evaluations"], SDK_USERS + OFREP_USERS);
    assert_eq!(report["report"]["wouldChange"], would_change);
    let samples = report["report"]["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{report:#}");
    for sample in samples {
        assert_ne!(sample["from"], sample["to"], "{sample}");
        assert!(
            sample["context"].as_str().unwrap().contains("user-"),
            "{sample}"
        );
    }
    assert!(report["problem"].is_null(), "{report:#}");

    // Stopped, it counts nothing more, and its report stays readable.
    let (status, stopped) = server.post(&format!("/api/v1/dry-runs/{id}/stop"), json!({}));
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let (_, audit) = server.get(&format!("/api/v1/audit?resource=dry-run:{id}"));
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 2, "{audit:#}");
    assert!(actions.contains(&"dry_run.start") && actions.contains(&"dry_run.stop"));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let (_, listed) = server.get(&format!("/api/v1/dry-runs?flag={FLAG}"));
            listed["dryRuns"][0]["status"] == "stopped"
        }),
        "the list shows the dry run stopped"
    );
    let latest = server.state().configs().current().unwrap().version;
    assert!(wait_until(Duration::from_secs(5), || sdk.version() >= Some(latest)));
    for context in &through_sdk[..100] {
        sdk.string(FLAG, context, "none");
    }
    ofrep(&server, &client_secret, &through_ofrep[0]);
    assert!(sdk.flush_telemetry(Duration::from_secs(10)));
    let (_, after) = server.get(&format!("/api/v1/dry-runs/{id}"));
    assert_eq!(reported(&after), pairs, "{after:#}");
}
