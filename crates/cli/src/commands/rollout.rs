//! `sluice rollout start|status|list|pause|resume|promote|rollback|kill|approve`: staged
//! rollouts on a server, and why each one moved.
//!
//! `status` shows a progress bar per stage (bake time and samples per arm, on a terminal with
//! indicatif, as text otherwise), each guardrail's verdict with its numbers, and the history
//! of transitions with their reasons; `--watch` redraws it every second until the rollout is
//! finished. Commands act on the flag's newest unfinished rollout (in `--env` when given).

use std::io::{IsTerminal as _, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use sluice_core::Format;
use sluice_core::rollout::{RolloutPlan, format_duration};

use crate::client::Client;
use crate::output::{print_json, print_table, table, time};

/// Arguments of `sluice rollout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start a staged rollout of a flag in one environment, from a plan file or a template.
    Start(StartArgs),
    /// Show a rollout: a progress bar per stage, each guardrail's verdict with its numbers,
    /// and why it moved.
    Status {
        /// The flag key, or a rollout id (`ro_…`).
        flag: String,
        /// The environment, when the flag has rollouts in several.
        #[arg(long, short)]
        env: Option<String>,
        /// Redraw every second until the rollout is finished.
        #[arg(long, short)]
        watch: bool,
    },
    /// List rollouts, newest first.
    List {
        /// Only this environment.
        #[arg(long, short)]
        env: Option<String>,
        /// Only this flag.
        #[arg(long, short)]
        flag: Option<String>,
        /// Only rollouts that are not finished.
        #[arg(long)]
        active: bool,
    },
    /// Stop advancing; a failing guardrail still rolls back.
    Pause(Steer),
    /// Continue a paused rollout; its stage starts over.
    Resume(Steer),
    /// Skip to the next stage without the evidence. Needs --reason.
    Promote(Steer),
    /// Send everyone back to the old variant now, without analysis.
    Rollback(Steer),
    /// Turn the flag off in the rollout's environment now.
    Kill(Steer),
    /// Approve entering the next stage (the first, while pending).
    Approve(Steer),
}

/// Arguments of `sluice rollout start`.
#[derive(Debug, clap::Args)]
struct StartArgs {
    /// The flag key.
    flag: String,
    /// The environment, such as `production`.
    #[arg(long, short)]
    env: String,
    /// A plan file, YAML or JSON.
    #[arg(
        long,
        conflicts_with = "template",
        required_unless_present = "template"
    )]
    plan: Option<std::path::PathBuf>,
    /// A built-in plan: `standard` or `cautious`.
    #[arg(long)]
    template: Option<String>,
    /// The new variant; the flag's other variant when it has two.
    #[arg(long)]
    treatment: Option<String>,
    /// The old variant; the environment's default variant when left out.
    #[arg(long)]
    control: Option<String>,
    /// Why, for the audit log.
    #[arg(long, short)]
    reason: Option<String>,
}

/// The rollout a command acts on, and why.
#[derive(Debug, clap::Args)]
struct Steer {
    /// The flag key, or a rollout id (`ro_…`).
    flag: String,
    /// The environment, when the flag has rollouts in several.
    #[arg(long, short)]
    env: Option<String>,
    /// Why, for the audit log (required by promote).
    #[arg(long, short)]
    reason: Option<String>,
}

/// Runs a `rollout` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        Command::Start(start) => {
            let reply = client.create_rollout(&start_body(start)?)?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            let rollout = &reply.json;
            writeln!(
                stdout,
                "Started rollout {} of `{}` in {}: `{}` → `{}`, {}.",
                text(&rollout["id"]),
                text(&rollout["flag"]),
                text(&rollout["env"]),
                text(&rollout["control"]),
                text(&rollout["treatment"]),
                describe_status(rollout),
            )?;
            writeln!(
                stdout,
                "Follow it with `sluice rollout status {} --env {} --watch`.",
                text(&rollout["flag"]),
                text(&rollout["env"])
            )?;
        }
        Command::Status { flag, env, watch } => {
            let id = find(client, flag, env.as_deref(), false)?;
            loop {
                let reply = client.get_rollout(&id)?;
                if json {
                    print_json(&mut stdout, &reply.json)?;
                } else {
                    if *watch && std::io::stdout().is_terminal() {
                        // Clear the screen and go home, then draw afresh.
                        write!(stdout, "\x1b[2J\x1b[H")?;
                    }
                    render(&mut stdout, &reply.json)?;
                }
                stdout.flush()?;
                let finished = reply.json["active"] == false;
                if !*watch || finished {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Command::List { env, flag, active } => {
            let mut query = Vec::new();
            if let Some(env) = env {
                query.push(("env", env.as_str()));
            }
            if let Some(flag) = flag {
                query.push(("flag", flag.as_str()));
            }
            if *active {
                query.push(("active", "true"));
            }
            let reply = client.list_rollouts(&query)?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            let rollouts = reply.json["rollouts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if rollouts.is_empty() {
                writeln!(stdout, "No rollouts on {}.", client.base_url())?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&[
                "ID", "FLAG", "ENV", "STATUS", "STAGE", "VARIANTS", "UPDATED",
            ]);
            for rollout in &rollouts {
                rows.add_row(vec![
                    text(&rollout["id"]),
                    text(&rollout["flag"]),
                    text(&rollout["env"]),
                    text(&rollout["status"]),
                    stage_text(rollout),
                    format!(
                        "{} → {}",
                        text(&rollout["control"]),
                        text(&rollout["treatment"])
                    ),
                    time(rollout["updatedMs"].as_i64().unwrap_or(0)),
                ]);
            }
            print_table(&mut stdout, &rows)?;
        }
        Command::Pause(steer) => steer_command(client, &mut stdout, json, steer, "pause")?,
        Command::Resume(steer) => steer_command(client, &mut stdout, json, steer, "resume")?,
        Command::Promote(steer) => {
            if steer.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                bail!("promote skips the analysis, so it needs --reason");
            }
            steer_command(client, &mut stdout, json, steer, "promote")?;
        }
        Command::Rollback(steer) => steer_command(client, &mut stdout, json, steer, "rollback")?,
        Command::Kill(steer) => steer_command(client, &mut stdout, json, steer, "kill")?,
        Command::Approve(steer) => steer_command(client, &mut stdout, json, steer, "approve")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn start_body(start: &StartArgs) -> anyhow::Result<Value> {
    let mut body = json!({"flag": start.flag, "env": start.env});
    if let Some(path) = &start.plan {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the plan {}", path.display()))?;
        let name = path.display().to_string();
        let plan = RolloutPlan::parse(Some(&name), &text, Format::from_file_name(&name))
            .map_err(|errors| anyhow::anyhow!("the plan is invalid:\n{errors}"))?;
        body["plan"] = serde_json::to_value(plan)?;
    }
    if let Some(template) = &start.template {
        body["template"] = json!(template);
    }
    for (field, value) in [
        ("treatment", &start.treatment),
        ("control", &start.control),
        ("reason", &start.reason),
    ] {
        if let Some(value) = value {
            body[field] = json!(value);
        }
    }
    Ok(body)
}

/// The id of the rollout `flag` names: itself when it is an id, else the flag's newest
/// unfinished rollout (or newest of any, for `status`), in `env` when given.
fn find(
    client: &Client,
    flag: &str,
    env: Option<&str>,
    active_only: bool,
) -> anyhow::Result<String> {
    if flag.starts_with("ro_") {
        return Ok(flag.to_owned());
    }
    let mut query = vec![("flag", flag)];
    if let Some(env) = env {
        query.push(("env", env));
    }
    let reply = client.list_rollouts(&query)?;
    let rollouts = reply.json["rollouts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let active: Vec<&Value> = rollouts.iter().filter(|r| r["active"] == true).collect();
    let candidates: Vec<&Value> = if active.is_empty() && !active_only {
        rollouts.iter().take(1).collect()
    } else {
        active
    };
    match candidates.as_slice() {
        [] => bail!(
            "flag `{flag}` has no {}rollout{}; start one with `sluice rollout start {flag} --env ENV --template standard`",
            if active_only { "unfinished " } else { "" },
            env.map(|e| format!(" in {e}")).unwrap_or_default()
        ),
        [one] => Ok(text(&one["id"])),
        many => {
            let envs: Vec<String> = many.iter().map(|r| text(&r["env"])).collect();
            bail!(
                "flag `{flag}` has rollouts in {}; choose one with --env",
                envs.join(", ")
            )
        }
    }
}

fn steer_command(
    client: &Client,
    out: &mut impl Write,
    json: bool,
    steer: &Steer,
    command: &str,
) -> anyhow::Result<()> {
    let id = find(client, &steer.flag, steer.env.as_deref(), true)?;
    let reply = client.steer_rollout(&id, command, steer.reason.as_deref())?;
    if json {
        return print_json(out, &reply.json);
    }
    let rollout = &reply.json;
    if rollout["applied"] == false {
        writeln!(out, "Nothing to do: that was already applied.")?;
    }
    let summary = rollout["transition"]["summary"]
        .as_str()
        .unwrap_or("Done.")
        .to_owned();
    writeln!(out, "{summary}")?;
    writeln!(
        out,
        "Rollout {} of `{}` in {} is {}.",
        text(&rollout["id"]),
        text(&rollout["flag"]),
        text(&rollout["env"]),
        describe_status(rollout)
    )?;
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn stage_text(rollout: &Value) -> String {
    let total = rollout["stages"].as_array().map_or(0, Vec::len);
    format!(
        "{}/{} {}",
        rollout["stage"].as_u64().unwrap_or(0) + 1,
        total,
        text(&rollout["stageLabel"])
    )
}

fn describe_status(rollout: &Value) -> String {
    let status = text(&rollout["status"]).replace('_', " ");
    match rollout["statusReason"].as_str() {
        Some(reason) => format!("{status} ({reason})"),
        None => format!("{status} at stage {}", stage_text(rollout)),
    }
}

/// How far one stage is: bake and samples, each as a fraction, and a line saying so.
fn stage_progress(rollout: &Value, index: usize) -> (f64, String) {
    let current = rollout["stage"].as_u64().unwrap_or(0) as usize;
    let stage = &rollout["stages"][index];
    let finished = rollout["active"] == false;
    if index < current || (index == current && rollout["status"] == "completed") {
        return (1.0, "done".to_owned());
    }
    if index > current {
        return (0.0, "waiting".to_owned());
    }
    if finished {
        return (0.0, text(&rollout["status"]).replace('_', " "));
    }
    let bake = stage["bakeSecs"].as_u64().unwrap_or(0);
    let elapsed = rollout["window"]["elapsedSecs"].as_u64().unwrap_or(0);
    let needed = stage["minSamples"].as_u64().unwrap_or(0);
    let control = rollout["window"]["exposures"]["control"]
        .as_u64()
        .unwrap_or(0);
    let treatment = rollout["window"]["exposures"]["treatment"]
        .as_u64()
        .unwrap_or(0);
    let fraction = |have: u64, need: u64| {
        if need == 0 {
            1.0
        } else {
            (have as f64 / need as f64).min(1.0)
        }
    };
    let bake_done = fraction(elapsed, bake);
    let samples_done = fraction(control.min(treatment), needed);
    let line = format!(
        "bake {} of {}, samples {control} control / {treatment} treatment of {needed} per arm",
        format_duration(Duration::from_secs(elapsed.min(bake))),
        format_duration(Duration::from_secs(bake)),
    );
    (bake_done.min(samples_done), line)
}

/// A number in a metric's unit: latency in ms, means as they are, rates in percent.
fn metric_value(metric: &str, value: &Value) -> String {
    let Some(number) = value.as_f64() else {
        return "-".to_owned();
    };
    if metric.starts_with("latency") {
        format!("{number:.1} ms")
    } else if metric.starts_with("event_mean") {
        format!("{number:.3}")
    } else {
        format!("{:.3}%", number * 100.0)
    }
}

fn outcome_text(outcome: &Value) -> String {
    match outcome {
        Value::String(s) => s.to_uppercase(),
        Value::Object(map) => map
            .values()
            .next()
            .map(|why| format!("inconclusive ({})", text(why).replace('_', " ")))
            .unwrap_or_else(|| "inconclusive".to_owned()),
        _ => "-".to_owned(),
    }
}

/// Draws a rollout for people.
pub(crate) fn render(out: &mut impl Write, rollout: &Value) -> anyhow::Result<()> {
    writeln!(
        out,
        "Rollout {} of `{}` in {}: `{}` → `{}`",
        text(&rollout["id"]),
        text(&rollout["flag"]),
        text(&rollout["env"]),
        text(&rollout["control"]),
        text(&rollout["treatment"]),
    )?;
    writeln!(out, "Status: {}", describe_status(rollout))?;
    writeln!(out)?;
    let stages = rollout["stages"].as_array().cloned().unwrap_or_default();
    let terminal = std::io::stdout().is_terminal();
    for (index, stage) in stages.iter().enumerate() {
        let (fraction, line) = stage_progress(rollout, index);
        let label = format!("{}. {}", index + 1, text(&stage["label"]));
        if terminal {
            out.flush()?;
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template("{prefix:>24} [{bar:30.green/white}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label);
            bar.set_message(line);
            bar.set_position((fraction * 1000.0) as u64);
            bar.abandon();
        } else {
            let filled = (fraction * 30.0).round() as usize;
            writeln!(
                out,
                "{label:>24} [{}{}] {line}",
                "=".repeat(filled),
                " ".repeat(30 - filled.min(30))
            )?;
        }
    }
    writeln!(out)?;
    let decision = &rollout["decision"];
    if let Some(verdicts) = decision["verdicts"].as_array()
        && !verdicts.is_empty()
    {
        let mut rows = table(&[
            "GUARDRAIL",
            "VERDICT",
            "CONTROL",
            "TREATMENT",
            "DIFFERENCE",
            "THRESHOLD",
            "INTERVAL",
            "N (C/T)",
            "TEST",
        ]);
        for verdict in verdicts {
            let evidence = &verdict["evidence"];
            let metric = text(&evidence["metric"]);
            let interval = match (
                evidence["interval"]["lo"].as_f64(),
                evidence["interval"]["hi"].as_f64(),
            ) {
                (Some(_), Some(_)) => format!(
                    "[{}, {}]",
                    metric_value(&metric, &evidence["interval"]["lo"]),
                    metric_value(&metric, &evidence["interval"]["hi"])
                ),
                _ => "-".to_owned(),
            };
            rows.add_row(vec![
                metric.clone(),
                outcome_text(&verdict["outcome"]),
                metric_value(&metric, &evidence["control"]),
                metric_value(&metric, &evidence["treatment"]),
                metric_value(&metric, &evidence["difference"]),
                metric_value(&metric, &evidence["threshold"]),
                interval,
                format!(
                    "{}/{}",
                    text(&evidence["n"]["control"]),
                    text(&evidence["n"]["treatment"])
                ),
                text(&evidence["test"]).replace('_', " "),
            ]);
        }
        print_table(out, &rows)?;
    }
    if let Some(summary) = decision["summary"].as_str() {
        writeln!(out, "Now: {}", summary.replace('\n', "\n     "))?;
    }
    let history = rollout["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        writeln!(out)?;
        writeln!(out, "History:")?;
        for entry in &history {
            let who = entry["actor"]
                .as_str()
                .map_or_else(|| "controller".to_owned(), str::to_owned);
            writeln!(
                out,
                "  {} #{} {} by {}",
                time(entry["atMs"].as_i64().unwrap_or(0)),
                text(&entry["seq"]),
                text(&entry["kind"]),
                who
            )?;
            for line in entry["summary"].as_str().unwrap_or("").lines() {
                writeln!(out, "      {line}")?;
            }
        }
    }
    Ok(())
}
