//! `sluice experiment report|shadow`: an A/B experiment's report on one goal event, and a
//! shadow experiment's results, over `GET /api/v1/experiments/{key}/report|shadow`.
//!
//! `report` exits 0 whatever the verdict: it is a read, and the verdict is in the output
//! (`--json` for scripts). Without `--metric` it reports every goal the flag declares, the
//! primary one first (`--json`: a list of the API's answers).

use std::io::Write as _;
use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;
use crate::output::{print_json, print_table, table};

/// Arguments of `sluice experiment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// An A/B experiment's report: n per variant, conversion rate or mean, lift against the
    /// control with an always-valid interval, the SRM check, and a verdict in plain words.
    Report {
        /// The flag whose variants are compared.
        flag: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// The goal event, as tracked through the SDK's `track`; every goal the flag declares
        /// when not given.
        #[arg(long, short)]
        metric: Option<String>,
        /// `conversion`: events per exposure. `mean`: the summed value per exposure. By
        /// default what the flag declares for the goal, else `conversion`.
        #[arg(long, value_parser = ["conversion", "mean"])]
        kind: Option<String>,
        /// `higher` or `lower`: which way is an improvement. By default what the flag
        /// declares for the goal, else `higher`.
        #[arg(long, value_parser = ["higher", "lower"])]
        better: Option<String>,
        /// The control variant, when it is not `control`, `off`, the flag's off variant or
        /// its default.
        #[arg(long)]
        control: Option<String>,
        /// The window's start, Unix milliseconds (seven days ago by default).
        #[arg(long)]
        since: Option<i64>,
    },
    /// A shadow experiment's results: mismatch rate with its interval, noise floor,
    /// candidate errors and timeouts, latency of both sides, and sampled mismatches.
    Shadow {
        /// The experiment's key: the flag that samples it.
        key: String,
        /// The environment.
        #[arg(long, short)]
        env: String,
        /// The window's start, Unix milliseconds (a day ago by default).
        #[arg(long)]
        since: Option<i64>,
    },
}

fn percent(value: &Value, signed: bool) -> String {
    value.as_f64().map_or_else(
        || "-".into(),
        |x| {
            if signed {
                format!("{:+.2}%", x * 100.0)
            } else {
                format!("{:.2}%", x * 100.0)
            }
        },
    )
}

fn number(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.4}"))
}

/// Runs `sluice experiment`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Report {
            flag,
            env,
            metric,
            kind,
            better,
            control,
            since,
        } => {
            let since = since.map(|s| s.to_string());
            let read = |metric: Option<&str>| {
                let mut query = vec![("env", env.as_str())];
                let optional = [
                    ("metric", metric),
                    ("kind", kind.as_deref()),
                    ("better", better.as_deref()),
                    ("control", control.as_deref()),
                    ("since", since.as_deref()),
                ];
                query.extend(
                    optional
                        .iter()
                        .filter_map(|(name, v)| v.map(|v| (*name, v))),
                );
                client
                    .get_json(&["api", "v1", "experiments", flag, "report"], &query)
                    .map(|reply| reply.json)
            };
            let first = read(metric.as_deref())?;
            let mut answers = vec![first];
            if metric.is_none() {
                // The API answered for the primary goal; read the others too.
                let others: Vec<String> = answers[0]["goals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .skip(1)
                    .filter_map(|goal| goal["event"].as_str().map(str::to_owned))
                    .collect();
                for goal in &others {
                    answers.push(read(Some(goal))?);
                }
            }
            let mut stdout = std::io::stdout().lock();
            if json {
                let value = if metric.is_some() {
                    answers.swap_remove(0)
                } else {
                    Value::Array(answers)
                };
                print_json(&mut stdout, &value)?;
                return Ok(ExitCode::SUCCESS);
            }
            for (index, answer) in answers.iter().enumerate() {
                if index > 0 {
                    writeln!(stdout)?;
                }
                print_report(&mut stdout, answer)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Shadow { key, env, since } => {
            let since = since.map(|s| s.to_string());
            let mut query = vec![("env", env.as_str())];
            if let Some(since) = &since {
                query.push(("since", since.as_str()));
            }
            let reply = client.get_json(&["api", "v1", "experiments", key, "shadow"], &query)?;
            let mut stdout = std::io::stdout().lock();
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            print_shadow(&mut stdout, &reply.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(out: &mut impl std::io::Write, body: &Value) -> anyhow::Result<()> {
    let report = &body["report"];
    let kind = body["kind"].as_str().unwrap_or("conversion");
    let value_header = if kind == "mean" { "MEAN" } else { "CONVERSION" };
    let mut rows = table(&[
        "VARIANT",
        "N",
        "EVENTS",
        value_header,
        "DIFFERENCE",
        "INTERVAL",
        "LIFT",
        "LIFT INTERVAL",
        "CALL",
    ]);
    for arm in report["arms"].as_array().into_iter().flatten() {
        let c = &arm["comparison"];
        let name = if arm["control"] == true {
            format!("{} (control)", arm["variant"].as_str().unwrap_or_default())
        } else {
            arm["variant"].as_str().unwrap_or_default().to_owned()
        };
        let value = if kind == "mean" {
            number(&arm["value"])
        } else {
            percent(&arm["value"], false)
        };
        let (diff, interval) = if c.is_null() {
            ("-".to_owned(), "-".to_owned())
        } else if kind == "mean" {
            (
                number(&c["difference"]),
                format!("[{}, {}]", number(&c["lo"]), number(&c["hi"])),
            )
        } else {
            (
                format!(
                    "{} pp",
                    number(&(c["difference"].as_f64().map(|d| d * 100.0).into()))
                ),
                format!(
                    "[{}, {}] pp",
                    number(&(c["lo"].as_f64().map(|d| d * 100.0).into())),
                    number(&(c["hi"].as_f64().map(|d| d * 100.0).into()))
                ),
            )
        };
        rows.add_row(vec![
            name,
            arm["n"].to_string(),
            arm["events"].to_string(),
            value,
            diff,
            interval,
            percent(&c["lift"], true),
            if c.is_null() {
                "-".into()
            } else {
                format!(
                    "[{}, {}]",
                    percent(&c["liftLo"], true),
                    percent(&c["liftHi"], true)
                )
            },
            c["call"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    writeln!(
        out,
        "Experiment {} in {}, goal `{}` ({}, {} is better), since {}",
        body["flag"].as_str().unwrap_or_default(),
        body["env"].as_str().unwrap_or_default(),
        body["metric"].as_str().unwrap_or_default(),
        kind,
        body["better"].as_str().unwrap_or("higher"),
        body["since"]
    )?;
    print_table(out, &rows)?;
    writeln!(
        out,
        "SRM: {}",
        report["srm"]["note"].as_str().unwrap_or("-")
    )?;
    writeln!(
        out,
        "Verdict: {}. {}",
        report["verdict"].as_str().unwrap_or("-"),
        report["summary"].as_str().unwrap_or_default()
    )?;
    Ok(())
}

fn print_shadow(out: &mut impl std::io::Write, body: &Value) -> anyhow::Result<()> {
    let a = &body["analysis"];
    writeln!(
        out,
        "Shadow experiment {} in {}, since {}",
        body["experiment"].as_str().unwrap_or_default(),
        body["env"].as_str().unwrap_or_default(),
        body["since"]
    )?;
    let mut rows = table(&["FIGURE", "K / N", "RATE", "ALWAYS-VALID INTERVAL"]);
    for (name, key) in [
        ("mismatch rate", "mismatchRate"),
        ("noise floor", "noiseFloor"),
        ("candidate error rate", "errorRate"),
        ("candidate timeout rate", "timeoutRate"),
    ] {
        let r = &a[key];
        if r.is_null() {
            rows.add_row(vec![
                name.to_owned(),
                "0 / 0".into(),
                "-".into(),
                "-".into(),
            ]);
        } else {
            rows.add_row(vec![
                name.to_owned(),
                format!("{} / {}", r["k"], r["n"]),
                percent(&r["rate"], false),
                format!(
                    "[{}, {}]",
                    percent(&r["lo"], false),
                    percent(&r["hi"], false)
                ),
            ]);
        }
    }
    let l = &a["latency"];
    let ms = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".into(), |x| format!("{x:.2} ms"))
    };
    rows.add_row(vec![
        "latency p50 control / candidate".into(),
        String::new(),
        format!("{} / {}", ms(&l["controlP50"]), ms(&l["candidateP50"])),
        format!("difference {}", ms(&l["p50Difference"])),
    ]);
    rows.add_row(vec![
        "latency p99 control / candidate".into(),
        String::new(),
        format!("{} / {}", ms(&l["controlP99"]), ms(&l["candidateP99"])),
        format!("difference {}", ms(&l["p99Difference"])),
    ]);
    writeln!(
        out,
        "runs {}, ignored {}, noisy {}, dropped {}",
        a["runs"], a["ignored"], a["noisy"], a["dropped"]
    )?;
    print_table(out, &rows)?;
    if let Some(summary) = a["summary"].as_str() {
        writeln!(out, "{summary}")?;
    }
    let samples = body["samples"].as_array().map_or(&[][..], Vec::as_slice);
    if !samples.is_empty() {
        writeln!(out, "Newest mismatches:")?;
        for sample in samples {
            writeln!(
                out,
                "  control: {}  candidate: {}",
                sample["control"].as_str().unwrap_or_default(),
                sample["candidate"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(())
}
