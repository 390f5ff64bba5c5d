//! `sluice env protect|show`: protect an environment so changes to it need approvals.

use std::io::Write;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::output::print_json;

/// Arguments of `sluice env`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Require approvals for changes to an environment: flag writes that change how it
    /// serves, segment edits and rollout starts, resumes and promotions become change
    /// requests. Turning a flag off and rolling back are never gated. `--approvals 0`
    /// unprotects; weakening a protection is itself a change request.
    Protect {
        /// The environment, such as `production`.
        env: String,
        /// How many approvals from admins (other than the author, by default) a change needs.
        #[arg(long)]
        approvals: u32,
        /// Let the author of a change approve it too.
        #[arg(long)]
        allow_self_approval: bool,
        /// Why, for the audit log.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Show an environment's protection.
    Show {
        /// The environment.
        env: String,
    },
}

/// Runs an `env` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let reply = match &args.command {
        Command::Protect {
            env,
            approvals,
            allow_self_approval,
            reason,
        } => client.call(
            Method::PUT,
            &["api", "v1", "environments", env, "protection"],
            &[],
            Some(&json!({
                "requiredApprovals": approvals,
                "allowSelfApproval": allow_self_approval,
                "reason": reason,
            })),
        )?,
        Command::Show { env } => client.call(
            Method::GET,
            &["api", "v1", "environments", env, "protection"],
            &[],
            None,
        )?,
    };
    if json {
        print_json(&mut stdout, &reply.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(request) = reply.json.get("changeRequest") {
        writeln!(
            stdout,
            "Weakening this protection needs approvals: change request {} is {}.",
            request["id"].as_str().unwrap_or("?"),
            request["status"].as_str().unwrap_or("?")
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let body = &reply.json;
    let approvals = body["requiredApprovals"].as_u64().unwrap_or(0);
    let environment = body["environment"].as_str().unwrap_or("?");
    if approvals == 0 {
        writeln!(stdout, "{environment}: not protected.")?;
    } else {
        writeln!(
            stdout,
            "{environment}: changes need {approvals} approval(s){}.",
            if body["allowSelfApproval"].as_bool().unwrap_or(false) {
                ", and the author may approve"
            } else {
                " from admins other than the author"
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
