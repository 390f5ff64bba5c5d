//! `sluice token create|list|revoke`: manage API tokens; a new secret is shown once.

use std::io::Write;
use std::process::ExitCode;

use sluice_server::store::Token;

use crate::client::Client;
use crate::output::{print_json, print_table, table, time};

/// Arguments of `sluice token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a token and print its secret, which is shown only this once.
    Create(CreateArgs),
    /// List every token, live or revoked; secrets are never shown again.
    List,
    /// Revoke a token: it authorizes nothing from now on.
    Revoke {
        /// The token id, such as `tok_0123456789abcdef`.
        id: String,
    },
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scope {
    /// Everything, in every environment.
    Admin,
    /// Reads one environment's full configuration (SDKs evaluating in-process).
    Server,
    /// Only evaluates in one environment, over OFREP; never sees rules.
    Client,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Server => "server",
            Scope::Client => "client",
        }
    }
}

/// Arguments of `sluice token create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// What the token may do.
    #[arg(long, value_enum)]
    scope: Scope,
    /// The environment of a server or client token; admin tokens have none.
    #[arg(long, short, required_if_eq_any = [("scope", "server"), ("scope", "client")])]
    env: Option<String>,
    /// A name for people, such as `checkout-service`; defaults to the scope and environment.
    #[arg(long)]
    name: Option<String>,
}

/// Runs a `token` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        Command::Create(create) => {
            let scope = create.scope.as_str();
            let name = create.name.clone().unwrap_or_else(|| match &create.env {
                Some(env) => format!("{scope}-{env}"),
                None => scope.to_owned(),
            });
            let reply = client.create_token(&name, scope, create.env.as_deref())?;
            let warning = "warning: the secret is shown only once; store it now (the server keeps only its SHA-256)";
            if json {
                print_json(&mut stdout, &reply.json)?;
                writeln!(std::io::stderr(), "{warning}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let token = &reply.data.token;
            writeln!(
                stdout,
                "Created {} `{}` ({}).",
                token.id,
                token.name,
                describe(token)
            )?;
            writeln!(stdout, "secret: {}", reply.data.secret)?;
            writeln!(std::io::stderr(), "{warning}")?;
        }
        Command::List => {
            let reply = client.list_tokens()?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = table(&["ID", "NAME", "SCOPE", "ENVIRONMENT", "CREATED", "REVOKED"]);
            for token in &reply.data.tokens {
                rows.add_row(vec![
                    token.id.clone(),
                    token.name.clone(),
                    token.access.scope().as_str().to_owned(),
                    token.access.environment().unwrap_or("(all)").to_owned(),
                    time(token.created_at_ms),
                    token
                        .revoked_at_ms
                        .map(time)
                        .unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            print_table(&mut stdout, &rows)?;
        }
        Command::Revoke { id } => {
            let reply = client.revoke_token(id)?;
            if json {
                print_json(&mut stdout, &reply.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let token = &reply.data;
            writeln!(
                stdout,
                "Revoked {} `{}` ({}): it authorizes nothing from now on.",
                token.id,
                token.name,
                describe(token)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `admin`, or `client token for production`.
fn describe(token: &Token) -> String {
    let scope = token.access.scope().as_str();
    match token.access.environment() {
        Some(environment) => format!("{scope} token for {environment}"),
        None => format!("{scope} token"),
    }
}
