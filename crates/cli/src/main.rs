//! The `sluice` command line: a thin clap front end over the library crates.

mod client;
mod commands;
mod load;
mod output;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: feature flags and staged rollouts for code you did not fully write yourself.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Print JSON for scripts instead of text for people (remote commands print the
    /// server's JSON).
    #[arg(long, global = true)]
    json: bool,
    /// The Sluice server that `flags`, `apply`, `audit` and `token` talk to.
    #[arg(
        long,
        global = true,
        env = "SLUICE_URL",
        value_name = "URL",
        default_value = client::DEFAULT_URL,
        help_heading = "Server"
    )]
    url: String,
    /// The API token those commands present; an admin token for all of them. Prefer the
    /// environment variable, which other users cannot see in the process list.
    #[arg(
        long,
        global = true,
        env = "SLUICE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Server"
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole loop in two minutes on an embedded server: a change ships dark, passes its
    /// checklist, rolls out while guardrails watch real SDK traffic, and (by default) is
    /// caught regressing and rolled back by itself.
    Demo(commands::demo::Args),
    /// Check flag files and print every problem with its file, line, column and path.
    Validate(commands::validate::Args),
    /// Evaluate flags from a file for a context, and say why each value was served.
    Eval(commands::eval::Args),
    /// Run the server: admin API, OFREP evaluation and live updates, on SQLite by default.
    Serve(sluice_server::ServeArgs),
    /// List, show, kill and restore flags on a server.
    Flags(commands::flags::Args),
    /// Show how a flags file would change a server, then apply it.
    ///
    /// The file is validated locally first; errors are printed with their line and column
    /// and nothing is sent. The diff is taken against the server's export, and the import is
    /// refused if the server changed in between.
    ///
    /// The import is whole-file: every flag and segment on the server is replaced by the
    /// file's, and flags the file lacks are deleted. Per-environment state (kill switches,
    /// rules and default variants per environment) lives inside the file, under each flag's
    /// `environments`, so `--env` only checks that the file defines that environment; a kill
    /// made with `sluice flags kill` is undone by applying a file that does not record it.
    ///
    /// Without --yes, asks for confirmation on a terminal, and refuses when there is none.
    Apply(commands::apply::Args),
    /// List a server's audit log and verify its hash chain.
    Audit(commands::audit::Args),
    /// Create, list and revoke a server's API tokens.
    Token(commands::token::Args),
    /// Start, watch and steer staged rollouts on a server, and see why each one moved.
    Rollout(commands::rollout::Args),
    /// Protect an environment: changes to it need approvals from other admins.
    Env(commands::env::Args),
    /// List, show, approve, reject and apply change requests to protected environments.
    Changes(commands::changes::Args),
    /// Find flag keys in a source tree (respecting .gitignore) and report keys used but not
    /// defined and flags defined but not used, each with file:line. Exits 0 when clean, 1
    /// with findings, 2 on error.
    Refs(commands::refs::Args),
    /// Releases: create one from a file, see its checklist, record evidence, override,
    /// start its rollouts, and run a rollback drill.
    Release(commands::release::Args),
    /// The learning report: change failure rate, time to full rollout, time to restore and
    /// rollbacks by cause, split by provenance and risk.
    Report(commands::report::Args),
    /// Create desktop apps and steer their releases: create, promote, halt, resume, pull,
    /// and see which versions installs run.
    App(commands::app::Args),
    /// Drive the rollout controller and judge with synthetic traffic in virtual time, and
    /// print wrong-rollback and detection rates beside the fixed-horizon floor.
    Simulate(commands::simulate::Args),
    /// Experiments: an A/B report on a goal event (`report`), or a shadow experiment's
    /// results (`shadow`).
    Experiment(commands::experiment::Args),
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The demo logs only warnings (to stderr) unless `RUST_LOG` says otherwise: its own view
/// is the output.
fn init_demo_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let remote = || client::Client::new(&cli.url, cli.token.as_deref());
    let result = match &cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Eval(args) => commands::eval::run(args, cli.json),
        Command::Simulate(args) => commands::simulate::run(args, cli.json),
        Command::Demo(args) => {
            init_demo_tracing();
            commands::demo::run(args, cli.json)
        }
        Command::Serve(args) => {
            init_tracing();
            commands::serve::run(args.clone())
        }
        Command::Flags(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::flags::run(args, &client, cli.json)),
        Command::Apply(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::apply::run(args, &client, cli.json)),
        Command::Audit(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::audit::run(args, &client, cli.json)),
        Command::Token(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::token::run(args, &client, cli.json)),
        Command::Rollout(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::rollout::run(args, &client, cli.json)),
        Command::Env(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::env::run(args, &client, cli.json)),
        Command::Changes(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::changes::run(args, &client, cli.json)),
        Command::Refs(args) => commands::refs::run(args, &remote, cli.json),
        Command::Release(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::release::run(args, &client, cli.json)),
        Command::Report(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::report::run(args, &client, cli.json)),
        Command::App(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::app::run(args, &client, cli.json)),
        Command::Experiment(args) => remote()
            .map_err(anyhow::Error::from)
            .and_then(|client| commands::experiment::run(args, &client, cli.json)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // A closed pipe (`sluice eval ... | head`) is not a failure.
            if error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
