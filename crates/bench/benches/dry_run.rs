//! What a running dry run costs an SDK evaluation: `client.string(flag, ctx)` on two flags
//! with the same definition in the same snapshot of a server-mode client with telemetry on,
//! one with a running dry run (every evaluation also evaluates the staged rules and counts the
//! pair under a lock) and one without. After the criterion group it prints both medians and
//! the difference, measured in the same run, since the machine is noisy.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use reqwest::Method;
use serde_json::json;
use sluice::{Client, ContextBuilder};
use sluice_bench::criterion_files::{self, median_ns};
use sluice_bench::server::BenchServer;

const GROUP: &str = "dry_run";

fn definition() -> serde_json::Value {
    json!({
        "type": "string",
        "variants": {"classic": "classic", "modern": "modern", "bold": "bold"},
        "default_variant": "classic",
        "environments": {"production": {"rules": [
            {"when": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}], "serve": "modern"},
            {"when": [{"attribute": "country", "op": "in", "values": ["DE", "AT"]}],
             "split": [{"variant": "classic", "weight": 50000}, {"variant": "modern", "weight": 50000}]}
        ]}}
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = BenchServer::start(1)?;
    server.create_flag("theme", &definition())?;
    server.create_flag("theme-plain", &definition())?;
    let token = server.server_token("production")?;
    let staged = json!({"rules": [
        {"when": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}], "serve": "bold"},
        {"when": [{"attribute": "country", "op": "in", "values": ["DE", "AT", "CH"]}],
         "split": [{"variant": "classic", "weight": 20000}, {"variant": "modern", "weight": 80000}]}
    ]});
    let (status, started) = server.call(
        Method::POST,
        "/api/v1/dry-runs",
        Some(&json!({"flag": "theme", "env": "production", "staged": staged})),
    )?;
    if status != 201 {
        return Err(format!("the dry run did not start: {status} {started}").into());
    }
    let version = started["configVersion"]
        .as_i64()
        .ok_or("no configVersion")?;
    let client = Client::builder()
        .server(&server.url)
        .token(&token)
        .env_vars(Vec::<(String, String)>::new())
        .telemetry(true)
        .build()?;
    client.wait_ready(Duration::from_secs(10))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.version() < Some(version) {
        if std::time::Instant::now() > deadline {
            return Err("the client never received the dry run".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let context = ContextBuilder::new("user-42")
        .attr("country", "DE")
        .attr("email", "someone@mail.test")
        .build();
    let since = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group(GROUP);
        for (name, flag) in [("no_dry_run", "theme-plain"), ("dry_run", "theme")] {
            group.bench_function(name, |b| {
                b.iter(|| client.string(black_box(flag), black_box(&context), "none"));
            });
        }
        group.finish();
    }
    criterion.final_summary();
    if criterion_files::measuring() {
        let directory = criterion_files::directory();
        let median = |name: &str| median_ns(&directory, GROUP, name, since);
        if let (Some(plain), Some(dry)) = (median("no_dry_run"), median("dry_run")) {
            println!();
            println!(
                "Medians from this run: without a dry run {plain:.1} ns, with one {dry:.1} ns"
            );
            println!(
                "A running dry run adds {:.1} ns per evaluation of its flag ({:.2}× the evaluation); other flags pay nothing.",
                dry - plain,
                dry / plain
            );
        }
    }
    Ok(())
}
