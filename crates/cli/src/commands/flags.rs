//! `sluice flags list|get|kill|restore|stale|archive|dry-run`: read flags on a server, flip
//! their kill switch, list stale flags with their reasons, archive them, and stage rule
//! changes as dry runs (`dry_run.rs`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::client::{Client, StoredFlag};
use crate::output::{enabled_in, on_off, print_json, print_table, state, table, time};

/// Arguments of `sluice flags`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List every flag with its type, kill switch per environment and version.
    List,
    /// Show one flag: its versions, times, kill switches and full definition.
    Get {
        /// The flag key.
        key: String,
    },
    /// Turn a flag off in one environment: it serves its off variant (or the caller's
    /// default when it has none) until restored.
    Kill(Switch),
    /// Turn a killed flag back on in one environment: its rules apply again.
    Restore(Switch),
    /// List stale flags with the reason for each: at 0% or 100% in every environment and
    /// unchanged for N days, not evaluated by any SDK for N days, or past its `expires` date.
    Stale {
        /// The window in days.
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// List every flag with its lifecycle stage (active, rolled-out, stale, archived).
        #[arg(long)]
        all: bool,
    },
    /// Stage a rule change as a dry run: the current rules keep serving, and SDKs and the
    /// server count how many evaluations the staged rules would change. `report` and `stop`
    /// follow it.
    DryRun(super::dry_run::Args),
    /// Archive a flag (or, with --undo, unarchive it): it leaves the stale list; how it is
    /// served does not change.
    Archive {
        /// The flag key.
        key: String,
        /// Unarchive instead.
        #[arg(long)]
        undo: bool,
        /// Why, for the audit log.
        #[arg(long, short)]
        reason: Option<String>,
    },
}

/// The flag, the environment and why, for `kill` and `restore`.
#[derive(Debug, clap::Args)]
struct Switch {
    /// The flag key.
    key: String,
    /// The environment, such as `production`.
    #[arg(long, short)]
    env: String,
    /// Why, for the audit log.
    #[arg(long, short)]
    reason: Option<String>,
}

/// Runs a `flags` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        Command::List => {
            let reply = client.list_flags()?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            if reply.data.flags.is_empty() {
                writeln!(
                    stdout,
                    "No flags on {}; add some with `sluice apply FILE`.",
                    client.base_url()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&[
                "KEY", "TYPE", "STATE", "DEFAULT", "RULES", "VERSION", "UPDATED",
            ]);
            for flag in &reply.data.flags {
                let definition = &flag.definition;
                rows.add_row(vec![
                    flag.key.clone(),
                    definition.flag_type.as_str().to_owned(),
                    state(definition),
                    definition.default_variant.clone(),
                    definition.rules.len().to_string(),
                    flag.version.to_string(),
                    time(flag.updated_at),
                ]);
            }
            print_table(&mut stdout, &rows)?;
        }
        Command::Get { key } => {
            let reply = client.get_flag(key)?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            print_flag(&mut stdout, &reply.data)?;
        }
        Command::Kill(switch) | Command::Restore(switch) => {
            let enabled = matches!(args.command, Command::Restore(_));
            let verb = if enabled { "restore" } else { "kill" };
            let mut query = vec![("env", switch.env.as_str())];
            if let Some(reason) = &switch.reason {
                query.push(("reason", reason.as_str()));
            }
            let reply = client.call(
                reqwest::Method::POST,
                &["api", "v1", "flags", &switch.key, verb],
                &query,
                None,
            )?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            if let Some(request) = reply.json.get("changeRequest") {
                writeln!(
                    stdout,
                    "{} is protected: change request {} waits for {} approval(s); see `sluice changes show {}`.",
                    switch.env,
                    request["id"].as_str().unwrap_or("?"),
                    request["approvalsNeeded"],
                    request["id"].as_str().unwrap_or("?"),
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let flag: StoredFlag = serde_json::from_value(reply.json.clone())
                .context("the server's answer is not a flag")?;
            let now = on_off(enabled_in(&flag.definition, &switch.env));
            let what = if enabled {
                "restored: its rules and default apply again"
            } else if flag.definition.off_variant.is_some() {
                "killed: it serves its off variant"
            } else {
                "killed: callers get their own default"
            };
            writeln!(
                stdout,
                "{} in {}: {what} (now {now}, flag version {}).",
                flag.key, switch.env, flag.version
            )?;
        }
        Command::Stale { days, all } => {
            let days_text = days.to_string();
            let mut query = vec![("days", days_text.as_str())];
            if *all {
                query.push(("all", "true"));
            }
            let reply = client.call(
                reqwest::Method::GET,
                &["api", "v1", "flags", "stale"],
                &query,
                None,
            )?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            let flags = reply.json["flags"].as_array().cloned().unwrap_or_default();
            if flags.is_empty() {
                writeln!(stdout, "No stale flags (window: {days} days).")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["KEY", "STAGE", "WHY", "LAST CHANGED", "LAST EVALUATED"]);
            for flag in &flags {
                let reasons: Vec<&str> = flag["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["message"].as_str())
                    .collect();
                rows.add_row(vec![
                    flag["key"].as_str().unwrap_or("").to_owned(),
                    flag["stage"].as_str().unwrap_or("").to_owned(),
                    reasons.join("; "),
                    time(flag["lastChangedMs"].as_i64().unwrap_or(0)),
                    flag["lastEvaluatedMs"]
                        .as_i64()
                        .map_or_else(|| "never".to_owned(), time),
                ]);
            }
            print_table(&mut stdout, &rows)?;
        }
        Command::DryRun(args) => return super::dry_run::run(args, client, json),
        Command::Archive { key, undo, reason } => {
            let verb = if *undo { "unarchive" } else { "archive" };
            let reply = client.call(
                reqwest::Method::POST,
                &["api", "v1", "flags", key, verb],
                &[],
                Some(&serde_json::json!({ "reason": reason })),
            )?;
            if json {
                return print_json(&mut stdout, &reply.json).map(|()| ExitCode::SUCCESS);
            }
            let state = if reply.json["archived"].as_bool().unwrap_or(false) {
                "archived"
            } else {
                "not archived"
            };
            writeln!(stdout, "{key}: {state}.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_flag(out: &mut impl Write, flag: &StoredFlag) -> anyhow::Result<()> {
    let definition = &flag.definition;
    let mut rows = table(&["FIELD", "VALUE"]);
    rows.add_row(vec!["key".to_owned(), flag.key.clone()]);
    rows.add_row(vec![
        "type".to_owned(),
        definition.flag_type.as_str().to_owned(),
    ]);
    rows.add_row(vec!["state".to_owned(), state(definition)]);
    rows.add_row(vec!["version".to_owned(), flag.version.to_string()]);
    rows.add_row(vec!["created".to_owned(), time(flag.created_at)]);
    rows.add_row(vec!["updated".to_owned(), time(flag.updated_at)]);
    if let Some(owner) = &definition.owner {
        rows.add_row(vec!["owner".to_owned(), owner.clone()]);
    }
    if let Some(description) = &definition.description {
        rows.add_row(vec!["description".to_owned(), description.clone()]);
    }
    print_table(out, &rows)?;
    let yaml = yaml_serde::to_string(definition).context("cannot show the definition as YAML")?;
    writeln!(out, "definition:")?;
    for line in yaml.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
