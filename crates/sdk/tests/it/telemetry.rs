//! Telemetry against a real server: what the server aggregates is what the application did,
//! a batch whose answer was lost is retried and counted once, the applied configuration
//! version is acknowledged and advances, and the crash hook reports panics with the variants
//! that were active.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice::{Client, ContextBuilder};

use crate::harness::{Mode, Proxy, TestServer};
use crate::server_mode::builder;
use crate::wait_until;

const FLAG: &str = "checkout";

/// A boolean flag split 50/50 between `on` and `off`.
fn split_flag() -> Value {
    json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "rules": [{"split": [
            {"variant": "on", "weight": 50000},
            {"variant": "off", "weight": 50000}
        ]}]
    })
}

/// A server with the split flag and a production server token.
fn setup() -> (TestServer, String) {
    let server = TestServer::start();
    server.create_flag(FLAG, split_flag());
    let (_, token) = server.server_token("production");
    (server, token)
}

/// A client with telemetry on, flushing only when asked (or on a new configuration).
fn telemetry_client(url: &str, token: &str) -> Client {
    let client = builder(url, token)
        .telemetry(true)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert!(client.telemetry_stats().enabled);
    client
}

/// The server's totals for the flag, by variant.
fn totals(server: &TestServer) -> BTreeMap<String, Value> {
    let (status, body) = server.get(&format!("/api/v1/flags/{FLAG}/metrics?env=production"));
    assert!(status.is_success(), "{status}: {body}");
    body["totals"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(variant, total)| (variant.clone(), total.clone()))
        .collect()
}

/// The instance's entry in `GET /api/v1/instances`, once it has one.
fn instance(server: &TestServer, id: &str) -> Option<Value> {
    let (status, body) = server.get("/api/v1/instances?env=production");
    assert!(status.is_success(), "{status}: {body}");
    body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|instance| instance["id"] == id)
        .cloned()
}

/// Waits until every batch was delivered.
fn wait_delivered(client: &Client) {
    assert!(
        wait_until(Duration::from_secs(15), || {
            let stats = client.telemetry_stats();
            stats.pending_batches == 0 && stats.batches_sent > 0
        }),
        "{:?}",
        client.telemetry_stats()
    );
}

#[test]
fn the_server_aggregates_exactly_what_the_application_did() {
    let (server, token) = setup();
    let client = telemetry_client(&server.url(), &token);
    sluice::clear_active_variants();

    #[derive(Default, Debug)]
    struct Expected {
        exposures: u64,
        errors: u64,
        latencies: u64,
        purchases: u64,
        revenue: f64,
    }
    let mut expected: BTreeMap<&str, Expected> = BTreeMap::new();
    for i in 0..400_u32 {
        let user = ContextBuilder::new(format!("user-{i}")).build();
        let on = client.bool(FLAG, &user, false);
        let arm = expected.entry(if on { "on" } else { "off" }).or_default();
        arm.exposures += 1;
        if i % 10 == 0 {
            client.record_error(FLAG);
            arm.errors += 1;
        }
        if i % 4 == 0 {
            let doubled = client.time(FLAG, || i * 2);
            assert_eq!(doubled, i * 2);
            arm.latencies += 1;
        }
        if i % 5 == 0 {
            client.track("purchase", f64::from(i));
            arm.purchases += 1;
            arm.revenue += f64::from(i);
        }
    }
    // The explicit forms, for a user not evaluated on this thread: no exposure.
    let stranger = ContextBuilder::new("stranger").build();
    let stranger_arm = if client.details(FLAG, &stranger).variant.as_deref() == Some("on") {
        "on"
    } else {
        "off"
    };
    expected.get_mut(stranger_arm).unwrap().exposures += 1;
    client.record_error_for(FLAG, &stranger);
    client.record_latency_for(FLAG, &stranger, Duration::from_millis(40));
    client.track_for(FLAG, &stranger, "purchase", 1.5);
    let arm = expected.get_mut(stranger_arm).unwrap();
    arm.errors += 1;
    arm.latencies += 1;
    arm.purchases += 1;
    arm.revenue += 1.5;
    assert!(expected["on"].exposures > 100 && expected["off"].exposures > 100);

    assert!(client.flush_telemetry(Duration::from_secs(10)));
    let totals = totals(&server);
    for (variant, want) in &expected {
        let got = &totals[*variant];
        assert_eq!(got["exposures"], want.exposures, "{variant}: {got}");
        assert_eq!(got["errors"], want.errors, "{variant}: {got}");
        assert_eq!(got["latencyCount"], want.latencies, "{variant}: {got}");
        assert_eq!(
            got["events"]["purchase"]["count"], want.purchases,
            "{variant}: {got}"
        );
        let sum = got["events"]["purchase"]["sum"].as_f64().unwrap();
        assert!(
            (sum - want.revenue).abs() < 1e-6,
            "{variant}: {sum} vs {want:?}"
        );
    }
    let stats = client.telemetry_stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.pending_batches, 0);
    let id = client.instance_id().unwrap();
    let reported = instance(&server, id).expect("the instance is listed");
    assert_eq!(reported["dropped"], 0);
    assert!(
        reported["sdk"]
            .as_str()
            .unwrap()
            .starts_with("sluice-rust/")
    );
}

#[test]
fn a_batch_whose_answer_was_lost_is_retried_and_counted_once() {
    let (server, token) = setup();
    let proxy = Proxy::start(server.address, Mode::Forward);
    let client = telemetry_client(&proxy.url(), &token);
    // The acknowledgement of the first configuration goes through untouched.
    wait_delivered(&client);
    let sent_before = client.telemetry_stats().batches_sent;

    proxy.set_mode(Mode::LoseAnswer("/api/v1/metrics".into()));
    let evaluations = 250_u64;
    for i in 0..evaluations {
        client.bool(
            FLAG,
            &ContextBuilder::new(format!("user-{i}")).build(),
            false,
        );
    }
    // The server records the batch, the answer is lost: the flush reports it undelivered.
    assert!(!client.flush_telemetry(Duration::from_secs(10)));
    assert!(client.telemetry_stats().failed_attempts >= 1);
    // The retry (after a backoff of 0.5 to 1 s) carries the same batch id.
    wait_delivered(&client);
    assert!(client.telemetry_stats().batches_sent > sent_before);

    let metrics: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|seen| seen.path.starts_with("/api/v1/metrics"))
        .collect();
    assert!(
        metrics.iter().any(|seen| seen.mode == "lose answer"),
        "{metrics:?}"
    );
    let totals = totals(&server);
    let exposures: u64 = totals
        .values()
        .map(|total| total["exposures"].as_u64().unwrap())
        .sum();
    assert_eq!(exposures, evaluations, "{totals:?}");
    assert_eq!(client.telemetry_stats().dropped, 0);
}

#[test]
fn the_applied_version_is_acknowledged_and_advances() {
    let (server, token) = setup();
    let client = telemetry_client(&server.url(), &token);
    let id = client.instance_id().unwrap().to_owned();
    let first = client.version().unwrap();
    // Acknowledged at once, without waiting for the hour-long flush interval.
    assert!(
        wait_until(Duration::from_secs(10), || {
            instance(&server, &id).is_some_and(|i| i["configVersion"] == first)
        }),
        "{:?}",
        instance(&server, &id)
    );
    let seen_first = instance(&server, &id).unwrap()["lastSeenMs"]
        .as_i64()
        .unwrap();

    let mut changed = split_flag();
    changed["default_variant"] = json!("on");
    server.update_flag(FLAG, changed);
    assert!(wait_until(Duration::from_secs(10), || client
        .version()
        .is_some_and(|v| v > first)));
    let second = client.version().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            instance(&server, &id).is_some_and(|i| i["configVersion"] == second)
        }),
        "{:?}",
        instance(&server, &id)
    );
    let now = instance(&server, &id).unwrap();
    assert!(now["lastSeenMs"].as_i64().unwrap() >= seen_first);
    let (_, listing) = server.get("/api/v1/instances?env=production");
    assert_eq!(listing["currentConfigVersion"], second);
    assert_eq!(listing["behind"], 0, "{listing}");
}

#[test]
fn the_crash_hook_reports_a_panic_with_the_active_variants() {
    let (server, token) = setup();
    server.create_flag(
        "color",
        json!({"type": "string", "variants": {"red": "red", "blue": "blue"}, "default_variant": "blue"}),
    );
    let client = builder(&server.url(), &token)
        .telemetry(true)
        .flush_interval(Duration::from_secs(3600))
        .crash_hook(true)
        .build()
        .unwrap();
    // Installed once per client.
    assert!(!sluice::install_crash_hook(&client));
    wait_delivered(&client);

    let panicking = client.clone();
    let (served, outcome) = std::thread::spawn(move || {
        let user = ContextBuilder::new("user-1").build();
        let on = panicking.bool(FLAG, &user, false);
        assert_eq!(panicking.string("color", &user, "x"), "blue");
        let outcome = std::panic::catch_unwind(|| panic!("checkout exploded"));
        (if on { "on" } else { "off" }, outcome.is_err())
    })
    .join()
    .unwrap();
    assert!(outcome);

    // The hook flushed on its own, within its bound; wait for the server to have it.
    let reports = || {
        server
            .block_on(server.state().store().crash_reports("production", 0, 10))
            .unwrap()
    };
    assert!(wait_until(Duration::from_secs(10), || !reports().is_empty()));
    let reports = reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let crash = &reports[0];
    assert_eq!(crash.instance_id, client.instance_id().unwrap());
    assert_eq!(crash.report.message, "checkout exploded");
    let location = crash.report.location.as_deref().unwrap();
    assert!(location.contains("telemetry.rs"), "{location}");
    assert_eq!(
        crash.report.variants,
        BTreeMap::from([
            (FLAG.to_owned(), served.to_owned()),
            ("color".to_owned(), "blue".to_owned()),
        ])
    );
    assert!(wait_until(Duration::from_secs(10), || totals(&server)
        .get(served)
        .is_some_and(|total| total["crashes"] == 1)));
}

#[test]
fn without_telemetry_nothing_is_sent() {
    let (server, token) = setup();
    let proxy = Proxy::start(server.address, Mode::Forward);
    let client = builder(&proxy.url(), &token).build().unwrap();
    let user = ContextBuilder::new("u").build();
    client.bool(FLAG, &user, false);
    client.record_error(FLAG);
    client.track("purchase", 1.0);
    assert!(!client.flush_telemetry(Duration::from_millis(100)));
    assert!(!sluice::install_crash_hook(&client));
    assert_eq!(client.instance_id(), None);
    let stats = client.telemetry_stats();
    assert!(!stats.enabled);
    drop(client);
    assert!(
        proxy
            .seen()
            .iter()
            .all(|seen| !seen.path.starts_with("/api/v1/metrics"))
    );
}
