//! `sluice demo`: the whole loop on an embedded default, in under two minutes. Starts the
//! server in-process on a fresh SQLite file, seeds a flag, a release and a time-compressed
//! rollout, drives real SDK traffic at it, and shows the controller advancing or rolling
//! back on the evidence, the change reaching every SDK, and the audit trail verified.

mod scenario;
mod seed;
mod traffic;
mod view;

use std::io::IsTerminal as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sluice_server::{ServeArgs, Settings};
use tokio::net::TcpListener;

use crate::client::Client;
use scenario::{ENV, FLAG, RELEASE, Scenario, USERS, population};
use traffic::Traffic;
use view::{Mode, View, verdict_lines, verdicts_of};

/// The longest the rollout may take before the demo gives up.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(100);
/// The longest the SDKs may take to acknowledge the final configuration.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(15);
/// How many application instances (SDK clients) serve traffic.
const INSTANCES: usize = 3;

/// `sluice demo` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which story to tell: a regression caught at 10% and rolled back, a healthy rollout to
    /// 100%, or a latency regression caught and rolled back.
    #[arg(long, value_enum, default_value = "regression")]
    scenario: Scenario,
    /// Keep the data here instead of in a temporary directory removed at the end. It must
    /// not hold a Sluice database already; `sluice serve --data-dir DIR` reopens it later.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The port on 127.0.0.1; 0 (the default) picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Keep the server running after the demo, until Ctrl-C, to explore the console and CLI.
    #[arg(long)]
    keep: bool,
    /// Print a line per event instead of the live view (with the global --json, a JSON
    /// object per line).
    #[arg(long)]
    headless: bool,
}

/// Runs the demo.
pub fn run(args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let mode = if json {
        Mode::Json
    } else if args.headless || !std::io::stdout().is_terminal() {
        Mode::Text
    } else {
        Mode::Live
    };
    let mut view = View::new(mode);

    // The data directory: the one given (fresh), or a temporary one removed at the end.
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => {
            if dir.join("sluice.db").exists() {
                bail!(
                    "{} already holds a Sluice database; give `sluice demo` an empty or new --data-dir (or run `sluice serve --data-dir {}` to open it)",
                    dir.display(),
                    dir.display()
                );
            }
            (dir.clone(), None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("sluice-demo-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let settings = Settings::load(ServeArgs {
        bind: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port: Some(args.port),
        data_dir: Some(data_dir.clone()),
        // The controller ticks every second, so seconds-long bakes end on time.
        rollout_interval: Some(1),
        ..ServeArgs::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (listener, started) = runtime.block_on(async {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let started = sluice_server::start(settings).await?;
        anyhow::Ok((listener, started))
    })?;
    let address = listener.local_addr()?;
    let token = started
        .admin_token
        .clone()
        .context("the data directory already had an admin token")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let keep = args.keep;
    let server = runtime.spawn(sluice_server::serve(listener, started.state, async move {
        if keep {
            tokio::select! {
                _ = stopped => {}
                () = sluice_server::shutdown_signal() => {}
            }
        } else {
            let _ = stopped.await;
        }
    }));

    let url = format!("http://{address}");
    let console = format!("{url}/");
    let outcome = demo(args, &mut view, &url, &console, &token, &data_dir);

    if args.keep && outcome.is_ok() {
        let text = format!(
            "Sluice keeps serving at {console} until Ctrl-C.\n  export SLUICE_URL={url} SLUICE_TOKEN={token}"
        );
        view.event("keep", json!({"url": url}), &text)?;
        let _ = runtime.block_on(server);
    } else {
        let _ = stop.send(());
        let _ =
            runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(temporary);
    outcome
}

/// Everything between the server starting and stopping.
fn demo(
    args: &Args,
    view: &mut View,
    url: &str,
    console: &str,
    token: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let scenario = args.scenario;
    view.header(format!(
        "Sluice demo: scenario `{}` · console {console}",
        scenario.name()
    ));
    view.header(format!("admin token: {token}"));
    view.event(
        "server",
        json!({
            "url": url,
            "console": console,
            "adminToken": token,
            "dataDir": data_dir.display().to_string(),
            "scenario": scenario.name(),
        }),
        &format!(
            "Sluice is serving on {url} (SQLite in {})\n  console: {console}\n  admin token: {token}",
            data_dir.display()
        ),
    )?;

    let client = Client::new(url, Some(token))?;
    let server_token = seed::seed(&client, console)?;
    view.event(
        "seeded",
        json!({
            "flags": [FLAG],
            "segments": seed::SEGMENTS.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            "release": RELEASE,
            "provenance": "ai-assisted",
            "risk": "high",
        }),
        &format!(
            "Seeded: flag `{FLAG}` (ships dark: everyone gets `control`), segments internal and beta-testers,\n  release `{RELEASE}` (provenance ai-assisted, risk high, rollback plan, limitations, escalation, audience)"
        ),
    )?;

    let users = population(USERS);
    let traffic = Traffic::start(url, &server_token, scenario, users, INSTANCES)?;
    let instance_ids = traffic.instance_ids();
    view.event(
        "traffic",
        json!({"instances": instance_ids, "users": USERS, "mix": {"internal": 0.0005, "beta": 0.001, "customer": 0.9985}}),
        &format!(
            "Traffic: {INSTANCES} checkout-service instances (the real Rust SDK, telemetry every {} ms) serving {USERS} users: 0.05% staff, 0.1% beta testers, the rest customers",
            traffic::FLUSH_INTERVAL.as_millis()
        ),
    )?;
    let outcome = drive(&client, view, &traffic);
    view.end_live();
    traffic.stop();
    let (ended, started_at) = outcome?;

    // The audit trail, verified end to end.
    let verified = client
        .get_json(&["api", "v1", "audit", "verify"], &[])
        .context("verifying the audit trail")?
        .json;
    let records = verified["report"]["records"].as_i64().unwrap_or(0);
    let ok = verified["ok"] == true;
    view.event(
        "audit",
        json!({"ok": ok, "records": records, "report": verified["report"]}),
        &format!(
            "Audit trail: {records} hash-chained records, chain {}",
            if ok { "verified" } else { "BROKEN" }
        ),
    )?;

    let status = ended["status"].as_str().unwrap_or("unknown").to_owned();
    let took = started_at.elapsed();
    let next = vec![
        format!("the console: {console} (with --keep)"),
        format!("sluice rollout status {FLAG} --env {ENV}"),
        format!("sluice release show {RELEASE}"),
        format!("sluice audit list --resource flag:{FLAG}"),
        "docs/demo.md, docs/releases.md and docs/statistics.md".to_owned(),
    ];
    let headline = match status.as_str() {
        "rolled_back" => {
            "The regression was caught and rolled back automatically; every SDK serves the old checkout."
        }
        "completed" => "The new checkout rolled out to 100% on passing guardrails.",
        _ => "The rollout stopped without finishing.",
    };
    let mut text = format!(
        "{headline}\n  rollout {} of `{FLAG}` ended `{status}` in {:.1}s; {} requests served",
        ended["id"].as_str().unwrap_or("?"),
        took.as_secs_f64(),
        ended["requests"],
    );
    text.push_str("\n  Open next:");
    for item in &next {
        text.push_str(&format!("\n    {item}"));
    }
    if !args.keep {
        text.push_str("\n  (run with --keep to keep the server up for them; with --data-dir DIR, `sluice serve --data-dir DIR` reopens this run)");
    }
    view.event(
        "summary",
        json!({
            "scenario": scenario.name(),
            "outcome": status,
            "expected": scenario.expected(),
            "rolloutSecs": took.as_secs_f64(),
            "auditVerified": ok,
            "console": console,
            "next": next,
        }),
        &text,
    )?;
    if status != scenario.expected() || !ok {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the checklist, starts the rollout, follows it to its end and the SDKs'
/// acknowledgement; returns the final rollout (with `requests`) and when it started.
fn drive(client: &Client, view: &mut View, traffic: &Traffic) -> anyhow::Result<(Value, Instant)> {
    // The `monitoring` item needs an SDK that sent telemetry: wait for the first batches.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let list = client
            .get_json(&["api", "v1", "instances"], &[("env", ENV)])?
            .json;
        if list["instances"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let started = seed::start_rollout(client)?;
    let id = started["id"]
        .as_str()
        .context("the server did not return the rollout's id")?
        .to_owned();
    let started_at = Instant::now();
    let labels: Vec<String> = started["stages"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|stage| stage["label"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    view.event(
        "rollout_started",
        json!({"id": id, "stages": labels, "plan": scenario::plan()}),
        &format!(
            "Rollout {id} started: {} (bakes of seconds; guardrails error_rate `25% or 1pp`, latency_p95 `20% or 10ms`)",
            labels.join(" → ")
        ),
    )?;

    let checklist = seed::checklist(client)?;
    let items: Vec<Value> = checklist["items"].as_array().cloned().unwrap_or_default();
    let passed = items.iter().all(|i| i["passed"] == true);
    let lines = items
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                if i["passed"] == true { "✓" } else { "✗" },
                i["item"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("  ");
    view.event(
        "checklist",
        json!({"release": RELEASE, "passed": passed, "items": items}),
        &format!(
            "Release checklist {}: {lines}",
            if passed { "passes" } else { "holds" }
        ),
    )?;

    // Follow the rollout: every transition as an event, the guardrails as they move.
    let mut seen = 0_i64;
    let rollout = loop {
        let rollout = client.get_rollout(&id)?.json;
        if let Some(history) = rollout["history"].as_array() {
            for transition in history {
                let seq = transition["seq"].as_i64().unwrap_or(0);
                if seq <= seen {
                    continue;
                }
                seen = seq;
                transition_event(view, &rollout, transition)?;
            }
        }
        let counts = &traffic.counts;
        let status = format!(
            "traffic: {} requests, {} on the new checkout, {} errors · {INSTANCES} SDK instances",
            counts.requests.load(std::sync::atomic::Ordering::Relaxed),
            counts.treatment.load(std::sync::atomic::Ordering::Relaxed),
            counts.errors.load(std::sync::atomic::Ordering::Relaxed),
        );
        view.rollout(&rollout, &status)?;
        if rollout["active"] == false {
            view.end_live();
            break rollout;
        }
        if started_at.elapsed() > ROLLOUT_LIMIT {
            bail!(
                "the rollout did not finish within {}s (status {}, stage {})",
                ROLLOUT_LIMIT.as_secs(),
                rollout["status"],
                rollout["stageLabel"]
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    propagate(client, view, traffic, &rollout)?;
    let mut ended = rollout;
    ended["requests"] = json!(
        traffic
            .counts
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok((ended, started_at))
}

/// Reports one transition of the rollout's history.
fn transition_event(view: &mut View, rollout: &Value, transition: &Value) -> anyhow::Result<()> {
    let kind = transition["kind"].as_str().unwrap_or("?");
    let stage_label = |index: &Value| {
        index
            .as_u64()
            .and_then(|i| rollout["stages"][i as usize]["label"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let from = stage_label(&transition["from"]["stage"]);
    let to = stage_label(&transition["to"]["stage"]);
    let verdicts = verdicts_of(&transition["decision"]);
    let summary = transition["summary"].as_str().unwrap_or("");
    // The summary's last line says what was decided; the verdicts follow as numbers.
    let decided = summary.lines().last().unwrap_or("");
    let (event, text) = match kind {
        "start" => ("stage", format!("Stage {to}: exposure written")),
        "advance" | "promote" => ("stage", format!("Stage {from} → {to}: {decided}")),
        "complete" => ("completed", format!("Completed at 100%: {decided}")),
        "rollback" | "kill" => (
            "rollback",
            format!(
                "ROLLED BACK at stage {from} by the controller: {}\n{}",
                transition["reason"].as_str().unwrap_or(decided),
                verdict_lines(&verdicts)
            ),
        ),
        _ => ("transition", format!("{kind}: {decided}")),
    };
    let text = if event == "stage" && !verdicts.is_empty() {
        format!("{text}\n{}", verdict_lines(&verdicts))
    } else {
        text
    };
    let to_percent = transition["to"]["stage"]
        .as_u64()
        .and_then(|i| rollout["stages"][i as usize]["percent"].as_f64());
    view.event(
        event,
        json!({
            "kind": kind,
            "seq": transition["seq"],
            "from": from,
            "to": to,
            "toPercent": to_percent,
            "configVersion": transition["configVersion"],
            "actor": transition["actor"],
            "reason": transition["reason"],
            "summary": summary,
            "verdicts": verdicts,
        }),
        &text,
    )
}

/// Waits until every SDK instance acknowledged the configuration the final transition wrote
/// (`GET /api/v1/instances`: `behind` 0), and checks what the SDKs now serve.
fn propagate(
    client: &Client,
    view: &mut View,
    traffic: &Traffic,
    rollout: &Value,
) -> anyhow::Result<()> {
    let last = rollout["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or(Value::Null);
    let version = last["configVersion"].as_i64().unwrap_or(0);
    let at_ms = last["atMs"].as_i64().unwrap_or(0);
    let ours = traffic.instance_ids();
    let deadline = Instant::now() + PROPAGATION_LIMIT;
    let (instances, behind) = loop {
        let list = client
            .get_json(&["api", "v1", "instances"], &[("env", ENV)])?
            .json;
        let listed: Vec<Value> = list["instances"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|i| {
                        i["id"]
                            .as_str()
                            .is_some_and(|id| ours.iter().any(|o| o == id))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let acknowledged = listed
            .iter()
            .filter(|i| i["configVersion"].as_i64().is_some_and(|v| v >= version))
            .count();
        let behind = list["behind"].as_u64().unwrap_or(u64::MAX);
        if (acknowledged == ours.len() && behind == 0) || Instant::now() > deadline {
            break (listed, behind);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let acknowledged: Vec<Value> = instances
        .iter()
        .map(|i| {
            json!({
                "id": i["id"],
                "configVersion": i["configVersion"],
                "acknowledgedAfterMs": i["lastSeenMs"].as_i64().map(|seen| (seen - at_ms).max(0)),
            })
        })
        .collect();
    let all = behind == 0
        && instances.len() == ours.len()
        && instances
            .iter()
            .all(|i| i["configVersion"].as_i64().is_some_and(|v| v >= version));
    let serving = traffic.on_treatment();
    let slowest = acknowledged
        .iter()
        .filter_map(|i| i["acknowledgedAfterMs"].as_i64())
        .max()
        .unwrap_or(0);
    let what = if rollout["status"] == "rolled_back" {
        "rollback"
    } else {
        "final configuration"
    };
    view.event(
        "propagated",
        json!({
            "configVersion": version,
            "allAcknowledged": all,
            "behind": behind,
            "instances": acknowledged,
            "usersOnTreatment": serving,
            "users": USERS,
        }),
        &format!(
            "The {what} (configuration version {version}) reached {}/{} SDK instances (behind: {behind}; slowest acknowledgement {slowest} ms); users on the new checkout per instance: {:?} of {USERS}",
            instances.len(),
            ours.len(),
            serving
        ),
    )?;
    if !all {
        bail!("not every SDK instance acknowledged configuration version {version}");
    }
    Ok(())
}
