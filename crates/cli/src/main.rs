//! The `sluice` command line: a thin clap front end over the library crates.

mod commands;
mod load;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: feature flags and staged rollouts for code you did not fully write yourself.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check flag files and print every problem with its file, line, column and path.
    Validate(commands::validate::Args),
    /// Evaluate flags from a file for a context, and say why each value was served.
    Eval(commands::eval::Args),
    /// Run the server: admin API, OFREP evaluation and live updates, on SQLite by default.
    Serve(sluice_server::ServeArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Serve(args) => {
            init_tracing();
            commands::serve::run(args)
        }
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
