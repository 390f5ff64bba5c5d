//! `sluice release create|list|show|checklist|evidence|override|start|drill`: releases on a
//! server, their pre-release checklist, and rollback drills.
//!
//! `create FILE` reads a release from YAML or JSON (the format is in docs/releases.md),
//! checks it locally with the same code the server uses, and prints the policy the server
//! chose with the rule that chose it. `checklist` exits 1 while the gate is shut, so it can
//! stop a pipeline; `drill` exits 1 when an instance never acknowledged or a flag was not
//! restored.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use sluice_core::Format;
use sluice_core::release::ReleaseSpec;

use crate::client::Client;
use crate::output::{print_json, print_table, table, time};

/// Arguments of `sluice release`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a release from a YAML or JSON file; shows the effective policy and its rule.
    Create {
        /// The release file.
        file: PathBuf,
    },
    /// List releases, newest first.
    List,
    /// Show a release: policy, plan, checklist, override and timeline.
    Show {
        /// The release's name or id.
        release: String,
    },
    /// Evaluate the checklist now; exits 1 while the gate is shut.
    Checklist {
        /// The release's name or id.
        release: String,
    },
    /// Record evidence for a checklist item, as this token's person.
    Evidence {
        /// The release's name or id.
        release: String,
        /// flag, rollback, monitoring, audience, limitations or escalation.
        item: String,
        /// What was done.
        #[arg(long)]
        text: Option<String>,
        /// Where it can be seen.
        #[arg(long)]
        link: Option<String>,
    },
    /// Open the gate although items fail; audited and shown on the release for good.
    Override {
        /// The release's name or id.
        release: String,
        /// Why; required.
        #[arg(long)]
        reason: String,
    },
    /// Start one rollout per flag in an environment, with the release's plan.
    Start {
        /// The release's name or id.
        release: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// The new variant (the flag's other variant when it has two).
        #[arg(long)]
        treatment: Option<String>,
        /// The old variant (the environment's default when left out).
        #[arg(long)]
        control: Option<String>,
    },
    /// Turn the flags off, time every live SDK's acknowledgement, then restore them.
    Drill {
        /// The release's name or id.
        release: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// How long to wait for acknowledgements, in seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn read_spec(path: &PathBuf) -> anyhow::Result<ReleaseSpec> {
    let content = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the release {}", path.display()))?;
    let name = path.display().to_string();
    ReleaseSpec::parse(Some(&name), &content, Format::from_file_name(&name))
        .map_err(|errors| anyhow::anyhow!("{errors}"))
}

fn print_checklist(out: &mut impl Write, checklist: &Value) -> anyhow::Result<()> {
    let mut rows = table(&["ITEM", "PASSES", "HOW", "DETAIL"]);
    for item in checklist["items"].as_array().into_iter().flatten() {
        let mut detail = text(&item["detail"]);
        if let Some(evidence) = item.get("evidence").filter(|e| !e.is_null()) {
            let what = evidence
                .get("link")
                .or_else(|| evidence.get("text"))
                .map(text)
                .unwrap_or_default();
            detail.push_str(&format!(" — evidence by {}: {what}", text(&evidence["by"])));
        }
        rows.add_row(vec![
            text(&item["title"]),
            if item["passed"] == true { "yes" } else { "NO" }.into(),
            text(&item["source"]),
            detail,
        ]);
    }
    print_table(out, &rows)?;
    if let Some(given) = checklist.get("override").filter(|o| !o.is_null()) {
        writeln!(
            out,
            "OVERRIDDEN by {} at {}: {}",
            text(&given["by"]),
            given["atMs"].as_i64().map(time).unwrap_or_default(),
            text(&given["reason"])
        )?;
    }
    let gate = if checklist["open"] == true {
        "open"
    } else {
        "shut: promotion past the first stage waits"
    };
    writeln!(out, "Gate: {gate}.")?;
    Ok(())
}

fn print_release(out: &mut impl Write, release: &Value) -> anyhow::Result<()> {
    let spec = &release["spec"];
    writeln!(
        out,
        "Release {} ({}): {} flag(s), {} change, {} risk.",
        text(&release["name"]),
        text(&release["id"]),
        spec["flags"].as_array().map_or(0, Vec::len),
        text(&spec["provenance"]["kind"]),
        text(&spec["risk"])
    )?;
    let policy = &release["effectivePolicy"];
    writeln!(
        out,
        "Policy rule `{}`: {}",
        text(&policy["rule"]),
        text(&policy["reason"])
    )?;
    let stages: Vec<String> = release["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| text(&s["label"]))
        .collect();
    writeln!(out, "Plan: {}.", stages.join(" → "))?;
    print_checklist(out, &release["checklist"])
}

fn segments(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// Runs `sluice release`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let release_path = |name: &str, tail: &'static str| -> Vec<String> {
        let mut path = vec![
            "api".into(),
            "v1".into(),
            "releases".into(),
            name.to_owned(),
        ];
        if !tail.is_empty() {
            path.push(tail.into());
        }
        path
    };
    match &args.command {
        Command::Create { file } => {
            let spec = read_spec(file)?;
            let reply = client.post_json(&["api", "v1", "releases"], &json!(spec), None)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
            } else {
                print_release(&mut stdout, &reply.json)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            let reply = client.get_json(&["api", "v1", "releases"], &[])?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["NAME", "PROVENANCE", "RISK", "RULE", "CHECKLIST", "CREATED"]);
            for release in reply.json["releases"].as_array().into_iter().flatten() {
                let checklist = match (
                    release["checklistPassed"] == true,
                    release["overridden"] == true,
                ) {
                    (true, _) => "passes",
                    (false, true) => "overridden",
                    (false, false) => "fails",
                };
                rows.add_row(vec![
                    text(&release["name"]),
                    text(&release["provenance"]),
                    text(&release["risk"]),
                    text(&release["rule"]),
                    checklist.into(),
                    release["createdMs"].as_i64().map(time).unwrap_or_default(),
                ]);
            }
            print_table(&mut stdout, &rows)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { release } => {
            let reply = client.get_json(&segments(&release_path(release, "")), &[])?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            print_release(&mut stdout, &reply.json)?;
            writeln!(stdout, "Timeline:")?;
            for entry in reply.json["timeline"].as_array().into_iter().flatten() {
                let about = match entry["source"].as_str() {
                    Some("rollout") => format!(
                        "{} {} in {}: {}",
                        text(&entry["flag"]),
                        text(&entry["kind"]),
                        text(&entry["env"]),
                        text(&entry["summary"]).lines().next().unwrap_or_default()
                    ),
                    _ => format!(
                        "{} {}",
                        text(&entry["kind"]),
                        entry["detail"]["reason"].as_str().unwrap_or_default()
                    ),
                };
                writeln!(
                    stdout,
                    "  {}  {}",
                    entry["atMs"].as_i64().map(time).unwrap_or_default(),
                    about.trim_end()
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Checklist { release } => {
            let reply = client.get_json(&segments(&release_path(release, "checklist")), &[])?;
            if json {
                print_json(&mut stdout, &reply.json)?;
            } else {
                print_checklist(&mut stdout, &reply.json)?;
            }
            Ok(if reply.json["open"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Evidence {
            release,
            item,
            text: words,
            link,
        } => {
            let body = json!({"item": item, "text": words, "link": link});
            let reply =
                client.post_json(&segments(&release_path(release, "evidence")), &body, None)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
            } else {
                print_checklist(&mut stdout, &reply.json["checklist"])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Override { release, reason } => {
            let body = json!({"reason": reason});
            let reply =
                client.post_json(&segments(&release_path(release, "override")), &body, None)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
            } else {
                print_checklist(&mut stdout, &reply.json["checklist"])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Start {
            release,
            env,
            treatment,
            control,
        } => {
            let body = json!({"env": env, "treatment": treatment, "control": control});
            let reply =
                client.post_json(&segments(&release_path(release, "start")), &body, None)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            for rollout in reply.json["rollouts"].as_array().into_iter().flatten() {
                writeln!(
                    stdout,
                    "Started rollout {} of `{}` in {}: {}.",
                    text(&rollout["id"]),
                    text(&rollout["flag"]),
                    text(&rollout["env"]),
                    text(&rollout["status"])
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Drill {
            release,
            env,
            timeout,
        } => {
            let body = json!({"env": env, "timeoutSecs": timeout});
            let wait = Duration::from_secs_f64(timeout.clamp(0.0, 600.0) + 30.0);
            let reply = client.post_json(
                &segments(&release_path(release, "drills")),
                &body,
                Some(wait),
            )?;
            let report = &reply.json;
            let clean = report["neverAcknowledged"]
                .as_array()
                .is_some_and(Vec::is_empty)
                && report["restored"] == true;
            if json {
                print_json(&mut stdout, report)?;
            } else {
                let timings = &report["timings"];
                writeln!(
                    stdout,
                    "Drill of {} in {}: {} instance(s) live, {} acknowledged.",
                    text(&report["release"]),
                    text(&report["env"]),
                    report["instances"].as_array().map_or(0, Vec::len),
                    timings["acknowledged"].as_u64().unwrap_or(0)
                )?;
                if !timings.is_null() {
                    writeln!(
                        stdout,
                        "Time to kill: p50 {} ms, p99 {} ms, max {} ms.",
                        timings["p50Ms"], timings["p99Ms"], timings["maxMs"]
                    )?;
                }
                for id in report["neverAcknowledged"].as_array().into_iter().flatten() {
                    writeln!(stdout, "Never acknowledged: {}", text(id))?;
                }
                writeln!(
                    stdout,
                    "{}",
                    if report["restored"] == true {
                        "Flags restored.".to_owned()
                    } else {
                        format!("NOT RESTORED: {}", report["restoreErrors"])
                    }
                )?;
            }
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
