//! `sluice changes list|show|approve|reject|apply`: change requests to protected environments.

use std::io::Write;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::output::{print_json, print_table, table, time};

/// Arguments of `sluice changes`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List change requests, newest first.
    List {
        /// Only those in this status: pending, approved, rejected or applied.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one change request with its payload and approvals.
    Show {
        /// The change request id (`cr_…`).
        id: String,
    },
    /// Approve a change request; the approval that completes the count applies it.
    Approve(Step),
    /// Reject a change request: it never applies.
    Reject(Step),
    /// Apply an approved change request again, after a failure.
    Apply(Step),
}

/// A change request and why.
#[derive(Debug, clap::Args)]
struct Step {
    /// The change request id (`cr_…`).
    id: String,
    /// Why, for the audit log.
    #[arg(long, short)]
    reason: Option<String>,
}

fn summary(request: &Value) -> String {
    format!(
        "{} {} on {}: {} ({} of {} approvals)",
        request["id"].as_str().unwrap_or("?"),
        request["kind"].as_str().unwrap_or("?"),
        request["resource"].as_str().unwrap_or("?"),
        request["status"].as_str().unwrap_or("?"),
        request["approvals"].as_array().map_or(0, Vec::len),
        request["requirement"]["requiredApprovals"]
            .as_u64()
            .unwrap_or(0),
    )
}

/// Runs a `changes` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let step = |id: &str, verb: &str, reason: &Option<String>| {
        client.call(
            Method::POST,
            &["api", "v1", "change-requests", id, verb],
            &[],
            Some(&json!({ "reason": reason })),
        )
    };
    let reply = match &args.command {
        Command::List { status } => {
            let query: Vec<(&str, &str)> = status.iter().map(|s| ("status", s.as_str())).collect();
            let reply =
                client.call(Method::GET, &["api", "v1", "change-requests"], &query, None)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let requests = reply.json["changeRequests"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                writeln!(stdout, "No change requests.")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&[
                "ID",
                "KIND",
                "RESOURCE",
                "STATUS",
                "APPROVALS",
                "AUTHOR",
                "CREATED",
            ]);
            for request in &requests {
                rows.add_row(vec![
                    request["id"].as_str().unwrap_or("").to_owned(),
                    request["kind"].as_str().unwrap_or("").to_owned(),
                    request["resource"].as_str().unwrap_or("").to_owned(),
                    request["status"].as_str().unwrap_or("").to_owned(),
                    format!(
                        "{}/{}",
                        request["approvals"].as_array().map_or(0, Vec::len),
                        request["requirement"]["requiredApprovals"]
                            .as_u64()
                            .unwrap_or(0)
                    ),
                    request["author"].as_str().unwrap_or("").to_owned(),
                    time(request["createdMs"].as_i64().unwrap_or(0)),
                ]);
            }
            print_table(&mut stdout, &rows)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Show { id } => {
            let reply = client.call(
                Method::GET,
                &["api", "v1", "change-requests", id],
                &[],
                None,
            )?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let request = &reply.json;
            writeln!(stdout, "{}", summary(request))?;
            writeln!(
                stdout,
                "author:   {}",
                request["author"].as_str().unwrap_or("?")
            )?;
            if let Some(reason) = request["reason"].as_str() {
                writeln!(stdout, "reason:   {reason}")?;
            }
            writeln!(stdout, "base:     version {}", request["baseVersion"])?;
            for approval in request["approvals"].as_array().into_iter().flatten() {
                writeln!(
                    stdout,
                    "approved: {} at {}",
                    approval["actor"].as_str().unwrap_or("?"),
                    time(approval["atMs"].as_i64().unwrap_or(0))
                )?;
            }
            writeln!(stdout, "payload:")?;
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&request["payload"])?
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Approve(Step { id, reason }) => step(id, "approve", reason)?,
        Command::Reject(Step { id, reason }) => step(id, "reject", reason)?,
        Command::Apply(Step { id, reason: _ }) => client.call(
            Method::POST,
            &["api", "v1", "change-requests", id, "apply"],
            &[],
            None,
        )?,
    };
    if json {
        print_json(&mut stdout, &reply.json)?;
    } else {
        writeln!(stdout, "{}", summary(&reply.json))?;
    }
    Ok(ExitCode::SUCCESS)
}
