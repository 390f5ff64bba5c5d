//! `sluice flags dry-run`: stage a rule change beside the rules served and see what it would
//! change before anyone gets it.
//!
//! ```text
//! sluice flags dry-run FLAG --env ENV --rules FILE [--reason WHY]   # start
//! sluice flags dry-run report FLAG --env ENV [--id N]                # would-change counts
//! sluice flags dry-run stop FLAG --env ENV [--reason WHY]
//! sluice flags dry-run apply FLAG --env ENV [--reason WHY] [--force]  # write the rules, stop
//! ```
//!
//! The rules file is YAML or JSON: a mapping with any of `rules`, `default_variant` and
//! `enabled` (what an environment override holds), or a bare list of rules. It is checked
//! here first, so its errors carry lines and columns; the server checks it again against the
//! flag as it is.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_core::Format;
use sluice_core::dry_run::parse_staged;

use crate::client::Client;
use crate::output::{print_json, print_table, table, time};

/// Arguments of `sluice flags dry-run`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// The flag whose rules to stage.
    #[arg(required = true)]
    flag: Option<String>,
    /// The environment, such as `production`.
    #[arg(long, short, required = true)]
    env: Option<String>,
    /// The staged rules: YAML or JSON.
    #[arg(long, required = true)]
    rules: Option<PathBuf>,
    /// Why, for the audit log.
    #[arg(long, short)]
    reason: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Show how many evaluations would get a different variant, pair by pair, with sampled
    /// contexts: the newest dry run of the flag in the environment, or `--id`.
    Report {
        /// The flag key.
        flag: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// A particular dry run.
        #[arg(long)]
        id: Option<i64>,
    },
    /// Write the running dry run's staged rules into the flag (a change request in a
    /// protected environment), then stop it.
    Apply {
        /// The flag key.
        flag: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// Why, for the audit log.
        #[arg(long, short)]
        reason: Option<String>,
        /// Apply although the flag changed since the dry run started.
        #[arg(long)]
        force: bool,
    },
    /// Stop the running dry run of the flag in the environment; its report stays readable.
    Stop {
        /// The flag key.
        flag: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// Why, for the audit log.
        #[arg(long, short)]
        reason: Option<String>,
    },
}

/// Runs `sluice flags dry-run` against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let reply = match &args.action {
        None => {
            let (Some(flag), Some(env), Some(rules)) = (&args.flag, &args.env, &args.rules) else {
                bail!("give FLAG, --env and --rules to start a dry run");
            };
            let text = std::fs::read_to_string(rules)
                .with_context(|| format!("cannot read the staged rules {}", rules.display()))?;
            let name = rules.display().to_string();
            let staged = parse_staged(Some(&name), &text, Format::from_file_name(&name))
                .map_err(|errors| anyhow::anyhow!("{errors}"))?;
            client.call(
                Method::POST,
                &["api", "v1", "dry-runs"],
                &[],
                Some(&json!({
                    "flag": flag,
                    "env": env,
                    "staged": staged,
                    "reason": args.reason,
                })),
            )?
        }
        Some(Action::Report { flag, env, id }) => {
            let id = match id {
                Some(id) => *id,
                None => newest(client, flag, env, false)?,
            };
            client.call(
                Method::GET,
                &["api", "v1", "dry-runs", &id.to_string()],
                &[],
                None,
            )?
        }
        Some(Action::Apply {
            flag,
            env,
            reason,
            force,
        }) => {
            let id = newest(client, flag, env, true)?;
            let reply = client.call(
                Method::POST,
                &["api", "v1", "dry-runs", &id.to_string(), "apply"],
                &[],
                Some(&json!({ "reason": reason, "force": force })),
            )?;
            if let Some(request) = reply.json["changeRequest"]["id"].as_str()
                && !json
            {
                writeln!(
                    stdout,
                    "`{env}` is protected: change request {request} waits for approvals; the dry run keeps running until it is applied."
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            reply
        }
        Some(Action::Stop { flag, env, reason }) => {
            let id = newest(client, flag, env, true)?;
            client.call(
                Method::POST,
                &["api", "v1", "dry-runs", &id.to_string(), "stop"],
                &[],
                Some(&json!({ "reason": reason })),
            )?
        }
    };
    if json {
        print_json(&mut stdout, &reply.json)?;
    } else {
        print_report(&mut stdout, &reply.json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The newest dry run of `flag` in `env` (the running one, with `running`).
fn newest(client: &Client, flag: &str, env: &str, running: bool) -> anyhow::Result<i64> {
    let reply = client.call(
        Method::GET,
        &["api", "v1", "dry-runs"],
        &[("flag", flag), ("env", env)],
        None,
    )?;
    reply.json["dryRuns"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| !running || d["status"] == "running")
        .and_then(|d| d["id"].as_i64())
        .with_context(|| {
            let which = if running {
                "running dry run"
            } else {
                "dry run"
            };
            format!("flag `{flag}` has no {which} in `{env}`")
        })
}

fn print_report(out: &mut impl Write, dry_run: &Value) -> anyhow::Result<()> {
    let text = |value: &Value| value.as_str().unwrap_or("").to_owned();
    let number = |value: &Value| value.as_u64().unwrap_or(0);
    writeln!(
        out,
        "Dry run {} of {} in {}: {} since {}{}.",
        dry_run["id"],
        text(&dry_run["flag"]),
        text(&dry_run["env"]),
        text(&dry_run["status"]),
        time(dry_run["createdMs"].as_i64().unwrap_or(0)),
        dry_run["reason"]
            .as_str()
            .map(|reason| format!(" ({reason})"))
            .unwrap_or_default(),
    )?;
    if let Some(problem) = dry_run["problem"].as_str() {
        writeln!(out, "Warning: {problem}")?;
    }
    let report = &dry_run["report"];
    let evaluations = number(&report["evaluations"]);
    if evaluations == 0 {
        writeln!(
            out,
            "No evaluations compared yet: SDKs and OFREP count them as the flag is evaluated."
        )?;
        return Ok(());
    }
    let would_change = number(&report["wouldChange"]);
    writeln!(
        out,
        "Compared {evaluations} evaluations: {would_change} ({:.1}%) would get a different variant.",
        would_change as f64 * 100.0 / evaluations as f64
    )?;
    let mut rows = table(&["NOW", "STAGED", "EVALUATIONS", "SHARE"]);
    for transition in report["transitions"].as_array().into_iter().flatten() {
        let count = number(&transition["count"]);
        let (from, to) = (text(&transition["from"]), text(&transition["to"]));
        let to = if from == to {
            format!("{to} (same)")
        } else {
            to
        };
        rows.add_row(vec![
            from,
            to,
            count.to_string(),
            format!("{:.1}%", count as f64 * 100.0 / evaluations as f64),
        ]);
    }
    print_table(out, &rows)?;
    let samples: Vec<&Value> = report["samples"].as_array().into_iter().flatten().collect();
    if !samples.is_empty() {
        writeln!(out, "Contexts that would change (newest first):")?;
        for sample in samples {
            writeln!(
                out,
                "  {} -> {}  {}",
                text(&sample["from"]),
                text(&sample["to"]),
                text(&sample["context"])
            )?;
        }
    }
    Ok(())
}
