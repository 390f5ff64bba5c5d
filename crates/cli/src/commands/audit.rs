//! `sluice audit list|verify`: read the server's audit log and check its hash chain.

use std::io::Write;
use std::process::ExitCode;

use crate::client::{AuditQuery, Client};
use crate::output::{count, print_json, print_table, table, time};

/// Arguments of `sluice audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List audit records, newest first.
    List(ListArgs),
    /// Recompute the hash chain on the server; exit 1 and name the first broken link if
    /// any record was edited, deleted or reordered.
    Verify,
}

/// Filters of `sluice audit list`; each matches exactly.
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only this resource, such as `flag:new-checkout`.
    #[arg(long)]
    resource: Option<String>,
    /// Only this action, such as `flag.kill` or `import`.
    #[arg(long)]
    action: Option<String>,
    /// Only changes made with this token id, such as `tok_0123456789abcdef`.
    #[arg(long)]
    actor: Option<String>,
    /// Only records before this sequence number, to page back from the smallest shown.
    #[arg(long, value_name = "SEQ")]
    before: Option<i64>,
    /// At most this many records (the server's default is 100, its maximum 1000).
    #[arg(long, short = 'n')]
    limit: Option<u32>,
}

/// Runs an `audit` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        Command::List(filter) => {
            let query = AuditQuery {
                resource: filter.resource.as_deref(),
                action: filter.action.as_deref(),
                actor: filter.actor.as_deref(),
                before: filter.before,
                limit: filter.limit,
            };
            let reply = client.audit(&query)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let records = &reply.data.records;
            if records.is_empty() {
                writeln!(stdout, "No audit records match.")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&[
                "SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "CONFIG", "REASON",
            ]);
            for record in records {
                rows.add_row(vec![
                    record.seq.to_string(),
                    time(record.time_ms),
                    record
                        .actor
                        .clone()
                        .unwrap_or_else(|| "(server)".to_owned()),
                    record.action.clone(),
                    record.resource.clone(),
                    record.config_version.to_string(),
                    record.reason.clone().unwrap_or_default(),
                ]);
            }
            print_table(&mut stdout, &rows)?;
            writeln!(stdout, "{}, newest first.", count(records.len(), "record"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let reply = client.verify_audit()?;
            let verification = &reply.data;
            if json {
                print_json(&mut stdout, &reply.json)?;
            } else {
                let report = &verification.report;
                match &report.first_break {
                    None if verification.ok => writeln!(
                        stdout,
                        "OK: the audit chain verifies ({}); head #{} {}",
                        count(
                            usize::try_from(report.records).unwrap_or_default(),
                            "record"
                        ),
                        report.head_seq,
                        report.head_hash
                    )?,
                    None => writeln!(
                        stdout,
                        "BROKEN: the server says the chain does not verify, naming no link"
                    )?,
                    Some(link) => {
                        let kind = serde_json::to_value(link.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_else(|| format!("{:?}", link.kind));
                        writeln!(
                            stdout,
                            "BROKEN at record {} ({kind}): {}\n{} checked; recorded head #{} {}",
                            link.seq,
                            link.message,
                            count(
                                usize::try_from(report.records).unwrap_or_default(),
                                "record"
                            ),
                            report.head_seq,
                            report.head_hash
                        )?;
                    }
                }
            }
            let ok = verification.ok && verification.report.first_break.is_none();
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
