//! `sluice app create|list|status` and `sluice app release create|list|promote|halt|resume|pull`:
//! desktop apps on a server, their releases, and which versions installs run.
//!
//! A release is described in a YAML or JSON file in the API's shape (`channel`, `version`,
//! `artifacts`, `notes`, `pubDate`, `percent`, `allowManual`, `plan`); `--channel`,
//! `--version` and `--percent` override the file. The file is checked locally first, so
//! every problem is printed with its path before anything is sent.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sluice_core::apps::{ReleaseSpec, Share, validate_spec};

use crate::client::Client;
use crate::output::{print_json, print_table, table, time};

/// Arguments of `sluice app`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create an app, with channels stable, beta and nightly unless given.
    Create {
        /// The app's key, as in feed URLs (`/apps/KEY/stable.yml`).
        key: String,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// A channel; repeat for several. Replaces the default three.
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Why, for the audit log.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// List apps.
    List,
    /// Show each channel's releases and the share of installs on each version.
    Status {
        /// The app.
        app: String,
    },
    /// Create, list and steer releases.
    Release(ReleaseArgs),
}

/// Arguments of `sluice app release`.
#[derive(Debug, clap::Args)]
struct ReleaseArgs {
    #[command(subcommand)]
    command: ReleaseCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReleaseCommand {
    /// Create a release from a file (YAML or JSON).
    Create {
        /// The app.
        app: String,
        /// The release file.
        #[arg(long, short)]
        file: PathBuf,
        /// The channel, overriding the file's.
        #[arg(long)]
        channel: Option<String>,
        /// The version, overriding the file's.
        #[arg(long = "version", value_name = "VERSION")]
        release_version: Option<String>,
        /// The share of installs offered it at first, in percent (steps of 0.001).
        #[arg(long)]
        percent: Option<f64>,
        /// Why, for the audit log.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// List an app's releases.
    List {
        /// The app.
        app: String,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Widen a rolling release: to --percent, else to its plan's next stage, else to everyone.
    Promote {
        #[command(flatten)]
        target: Target,
        /// The new share in percent; never below the current one.
        #[arg(long)]
        percent: Option<f64>,
    },
    /// Stop offering a rolling release to anyone new, at once.
    Halt {
        #[command(flatten)]
        target: Target,
    },
    /// Offer a halted release to its cohort again.
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// Never offer a release again.
    Pull {
        #[command(flatten)]
        target: Target,
    },
}

/// The release a command acts on, and why.
#[derive(Debug, clap::Args)]
struct Target {
    /// The app.
    app: String,
    /// The release's version.
    #[arg(value_name = "VERSION")]
    release_version: String,
    /// The channel.
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Why, for the audit log.
    #[arg(long, short)]
    reason: Option<String>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Runs an `app` subcommand against `client`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        Command::Create {
            key,
            name,
            channels,
            reason,
        } => {
            let mut body = json!({ "key": key });
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            if !channels.is_empty() {
                body["channels"] = json!(channels);
            }
            let reply = post(client, &["api", "v1", "apps"], &body, reason.as_deref())?;
            if json {
                return print_json(&mut stdout, &reply).map(|()| ExitCode::SUCCESS);
            }
            let channels: Vec<String> = reply["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            writeln!(
                stdout,
                "Created app `{key}` with channels {}.",
                channels.join(", ")
            )?;
        }
        Command::List => {
            let reply = client.get_json(&["api", "v1", "apps"], &[])?.json;
            if json {
                return print_json(&mut stdout, &reply).map(|()| ExitCode::SUCCESS);
            }
            let mut rows = table(&["APP", "NAME", "CHANNELS", "CREATED"]);
            for app in reply["apps"].as_array().into_iter().flatten() {
                let channels: Vec<String> = app["channels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                rows.add_row(vec![
                    text(&app["key"]),
                    text(&app["name"]),
                    channels.join(", "),
                    time(app["createdMs"].as_i64().unwrap_or(0)),
                ]);
            }
            print_table(&mut stdout, &rows)?;
        }
        Command::Status { app } => {
            let reply = client
                .get_json(&["api", "v1", "apps", app, "status"], &[])?
                .json;
            if json {
                return print_json(&mut stdout, &reply).map(|()| ExitCode::SUCCESS);
            }
            render_status(&mut stdout, &reply)?;
        }
        Command::Release(release) => return run_release(&release.command, client, json),
    }
    Ok(ExitCode::SUCCESS)
}

fn post(
    client: &Client,
    segments: &[&str],
    body: &Value,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    Ok(client.post_value(segments, body, reason)?.json)
}

fn render_status(out: &mut impl Write, status: &Value) -> anyhow::Result<()> {
    for channel in status["channels"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{}: {} installs reporting",
            text(&channel["channel"]),
            channel["installs"]
        )?;
        let mut releases = table(&["RELEASE", "STATE", "OFFERED TO", "STAGE"]);
        for release in channel["releases"].as_array().into_iter().flatten() {
            releases.add_row(vec![
                text(&release["version"]),
                text(&release["state"]),
                format!("{}%", text(&release["percent"])),
                text(&release["stage"]),
            ]);
        }
        print_table(out, &releases)?;
        let mut versions = table(&["VERSION", "INSTALLS", "SHARE"]);
        for version in channel["versions"].as_array().into_iter().flatten() {
            versions.add_row(vec![
                text(&version["version"]),
                text(&version["installs"]),
                format!("{:.1}%", version["share"].as_f64().unwrap_or(0.0) * 100.0),
            ]);
        }
        print_table(out, &versions)?;
    }
    Ok(())
}

/// The release file as a spec, with the command line's overrides, checked locally.
fn release_spec(
    file: &PathBuf,
    channel: Option<&String>,
    version: Option<&String>,
    percent: Option<f64>,
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the release file {}", file.display()))?;
    let mut value: Value = yaml_serde::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", file.display()))?;
    if !value.is_object() {
        bail!(
            "{} must hold a mapping of the release's fields",
            file.display()
        );
    }
    if let Some(channel) = channel {
        value["channel"] = json!(channel);
    }
    if let Some(version) = version {
        value["version"] = json!(version);
    }
    if let Some(percent) = percent {
        let share = Share::from_percent(percent).map_err(anyhow::Error::msg)?;
        value["percent"] = serde_json::to_value(share)?;
    }
    let spec: ReleaseSpec = serde_json::from_value(value.clone())
        .with_context(|| format!("{} is not a release", file.display()))?;
    // The date is checked here too; the server sets the default to its own clock.
    if let Err(errors) = validate_spec(&spec, 0) {
        bail!("the release is invalid:\n{errors}");
    }
    Ok(value)
}

fn run_release(command: &ReleaseCommand, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let (target, name, body) = match command {
        ReleaseCommand::Create {
            app,
            file,
            channel,
            release_version,
            percent,
            reason,
        } => {
            let body = release_spec(file, channel.as_ref(), release_version.as_ref(), *percent)?;
            let reply = post(
                client,
                &["api", "v1", "apps", app, "releases"],
                &body,
                reason.as_deref(),
            )?;
            if json {
                return print_json(&mut stdout, &reply).map(|()| ExitCode::SUCCESS);
            }
            writeln!(
                stdout,
                "Created release {} of `{app}` in {}: {}, offered to {}% of installs.",
                text(&reply["version"]),
                text(&reply["channel"]),
                text(&reply["state"]),
                text(&reply["share"]),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        ReleaseCommand::List { app, channel } => {
            let query: Vec<(&str, &str)> =
                channel.iter().map(|c| ("channel", c.as_str())).collect();
            let reply = client
                .get_json(&["api", "v1", "apps", app, "releases"], &query)?
                .json;
            if json {
                return print_json(&mut stdout, &reply).map(|()| ExitCode::SUCCESS);
            }
            let mut rows = table(&[
                "CHANNEL",
                "VERSION",
                "STATE",
                "OFFERED TO",
                "PLAN",
                "UPDATED",
            ]);
            for release in reply["releases"].as_array().into_iter().flatten() {
                let plan = match release["gate"]["stage"].as_u64() {
                    Some(stage) => format!("stage {}", stage + 1),
                    None if release["plan"].is_object() => "done".to_owned(),
                    None => "-".to_owned(),
                };
                rows.add_row(vec![
                    text(&release["channel"]),
                    text(&release["version"]),
                    text(&release["state"]),
                    format!("{}%", text(&release["share"])),
                    plan,
                    time(release["updatedMs"].as_i64().unwrap_or(0)),
                ]);
            }
            print_table(&mut stdout, &rows)?;
            return Ok(ExitCode::SUCCESS);
        }
        ReleaseCommand::Promote { target, percent } => {
            let mut body = json!({});
            if let Some(percent) = percent {
                let share = Share::from_percent(*percent).map_err(anyhow::Error::msg)?;
                body["percent"] = serde_json::to_value(share)?;
            }
            (target, "promote", body)
        }
        ReleaseCommand::Halt { target } => (target, "halt", json!({})),
        ReleaseCommand::Resume { target } => (target, "resume", json!({})),
        ReleaseCommand::Pull { target } => (target, "pull", json!({})),
    };
    let reply = post(
        client,
        &[
            "api",
            "v1",
            "apps",
            &target.app,
            "channels",
            &target.channel,
            "releases",
            &target.release_version,
            name,
        ],
        &body,
        target.reason.as_deref(),
    )?;
    if json {
        return print_json(&mut stdout, &reply).map(|()| ExitCode::SUCCESS);
    }
    writeln!(
        stdout,
        "Release {} of `{}` in {} is {}, offered to {}% of installs.",
        text(&reply["version"]),
        target.app,
        target.channel,
        text(&reply["state"]),
        text(&reply["share"]),
    )?;
    Ok(ExitCode::SUCCESS)
}
