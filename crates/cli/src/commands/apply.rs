//! `sluice apply FILE`: show how a flags file would change the server, then import it.
//!
//! The file is validated locally first, so mistakes are reported with their line and column
//! before anything is sent. The diff is taken against an export whose configuration version
//! then guards the import (`If-Match`): if anyone writes in between, nothing is written and
//! the user sees the new diff on the next run.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;
use sluice_core::diff::{Changes, Diff, diff};
use sluice_core::{Document, FlagFile};

use crate::client::Client;
use crate::load::{LoadError, read_source};
use crate::output::{count, print_json};

/// Arguments of `sluice apply`; the command's help, which explains whole-file imports, is
/// on `Command::Apply` in `main.rs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flags file, YAML or JSON, in Sluice's format.
    file: PathBuf,
    /// Check that the file defines this environment. The import still covers every
    /// environment: per-environment state lives inside the file.
    #[arg(long, short)]
    env: Option<String>,
    /// Show the diff and stop; nothing is written.
    #[arg(long)]
    dry_run: bool,
    /// Apply without asking.
    #[arg(long, short)]
    yes: bool,
    /// Why, for the audit log.
    #[arg(long, short)]
    reason: Option<String>,
}

/// Validates, diffs, confirms and imports.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let Some(file) = read_valid(args, &name)? else {
        return Ok(ExitCode::FAILURE);
    };
    let (export, version) = client.export()?;
    let current = export.data;
    let changes = diff(&current, &file);
    let new_environments = new_environments(&current, &file);
    let nothing = changes.is_empty() && new_environments.is_empty();

    let mut stdout = std::io::stdout().lock();
    if json {
        if args.dry_run || nothing {
            let document = json!({
                "dryRun": args.dry_run,
                "configVersion": version,
                "changes": changes,
                "environmentsCreated": new_environments,
                "summary": null,
            });
            print_json(&mut stdout, &document)?;
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        print_diff(
            &mut stdout,
            client.base_url(),
            version,
            &changes,
            &new_environments,
        )?;
        if nothing {
            writeln!(stdout, "No changes: the server already matches {name}.")?;
            return Ok(ExitCode::SUCCESS);
        }
        if args.dry_run {
            writeln!(stdout, "Dry run: nothing was written.")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    stdout.flush()?;

    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to apply without confirmation: stdin is not a terminal; pass --yes to apply {name} anyway, or --dry-run to only see the diff"
            );
        }
        if !confirm(client.base_url())? {
            writeln!(std::io::stderr(), "Cancelled: nothing was written.")?;
            return Ok(ExitCode::FAILURE);
        }
    }

    let reply = client.import(&file, version, args.reason.as_deref())?;
    if json {
        let mut document = reply.json;
        document["dryRun"] = json!(false);
        document["changes"] = json!(changes);
        document["environmentsCreated"] = json!(new_environments);
        print_json(&mut stdout, &document)?;
        return Ok(ExitCode::SUCCESS);
    }
    let summary = &reply.data.summary;
    writeln!(
        stdout,
        "Applied {name}: config version {}.",
        reply.data.config_version
    )?;
    for (kind, tally) in [("flags", &summary.flags), ("segments", &summary.segments)] {
        writeln!(
            stdout,
            "  {kind}: {} created, {} updated, {} deleted, {} unchanged",
            tally.created.len(),
            tally.updated.len(),
            tally.deleted.len(),
            tally.unchanged
        )?;
    }
    if !summary.environments_created.is_empty() {
        writeln!(
            stdout,
            "  environments created: {}",
            summary.environments_created.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads, parses and validates the file, printing located errors to stderr (`None` then).
fn read_valid(args: &Args, name: &str) -> anyhow::Result<Option<FlagFile>> {
    let mut stderr = std::io::stderr().lock();
    let source = match read_source(&args.file) {
        Ok(source) => source,
        Err(LoadError::Io(error)) => return Err(error),
        Err(LoadError::Invalid(errors)) => {
            writeln!(stderr, "{errors}")?;
            writeln!(
                stderr,
                "{name}: {}; nothing was sent",
                count(errors.len(), "error")
            )?;
            return Ok(None);
        }
    };
    // All environments' overrides are checked whichever one is compiled; naming one also
    // checks that the file defines it.
    if let Err(errors) = source.compile(args.env.as_deref()) {
        writeln!(stderr, "{errors}")?;
        writeln!(
            stderr,
            "{name}: {}; nothing was sent",
            count(errors.len(), "error")
        )?;
        return Ok(None);
    }
    match source.into_document() {
        Document::Sluice(file) => Ok(Some(file)),
        Document::Flagd(_) => bail!(
            "{name} is a flagd document, which cannot be applied; serve it with `sluice serve --flags {name}`"
        ),
    }
}

/// Environments the file lists that the server does not have; the import creates them.
fn new_environments(current: &FlagFile, file: &FlagFile) -> Vec<String> {
    let existing = current.environment_names();
    file.environment_names()
        .into_iter()
        .filter(|name| !existing.contains(name))
        .map(str::to_owned)
        .collect()
}

fn print_diff(
    out: &mut impl Write,
    url: &str,
    version: i64,
    changes: &Diff,
    new_environments: &[String],
) -> std::io::Result<()> {
    writeln!(out, "Changes to {url} (config version {version}):")?;
    print_changes(out, "flags", &changes.flags)?;
    print_changes(out, "segments", &changes.segments)?;
    if !new_environments.is_empty() {
        writeln!(out, "  environments:")?;
        for name in new_environments {
            writeln!(out, "    + {name}")?;
        }
    }
    if !changes.is_empty() || !new_environments.is_empty() {
        let flags = &changes.flags;
        let segments = &changes.segments;
        writeln!(
            out,
            "{} to create, {} to update, {} to delete; {} to create, {} to update, {} to delete.",
            count(flags.created.len(), "flag"),
            flags.updated.len(),
            flags.deleted.len(),
            count(segments.created.len(), "segment"),
            segments.updated.len(),
            segments.deleted.len(),
        )?;
    }
    Ok(())
}

fn print_changes(out: &mut impl Write, kind: &str, changes: &Changes) -> std::io::Result<()> {
    if changes.created.is_empty() && changes.updated.is_empty() && changes.deleted.is_empty() {
        return Ok(());
    }
    writeln!(out, "  {kind}:")?;
    for key in &changes.created {
        writeln!(out, "    + {key}")?;
    }
    for updated in &changes.updated {
        writeln!(out, "    ~ {} ({})", updated.key, updated.fields.join(", "))?;
    }
    for key in &changes.deleted {
        writeln!(out, "    - {key}")?;
    }
    Ok(())
}

/// Asks on the terminal; only `y` or `yes` applies.
fn confirm(url: &str) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "Apply these changes to {url}? [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
