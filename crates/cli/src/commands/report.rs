//! `sluice report [--since]`: the learning report, split by provenance and risk with counts.

use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;
use crate::output::{print_json, print_table, table};

/// Arguments of `sluice report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only releases created at or after this time: Unix milliseconds, or a duration back
    /// from now such as `30d` or `12h`.
    #[arg(long)]
    since: Option<String>,
}

fn since_ms(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let back = match text.strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .map(|d| std::time::Duration::from_secs(d * 86_400))
            .map_err(|e| e.to_string()),
        None => sluice_core::rollout::parse_duration(text),
    }
    .map_err(|e| {
        anyhow::anyhow!("--since: `{text}` is neither milliseconds nor a duration: {e}")
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(i64::try_from(now.saturating_sub(back).as_millis()).unwrap_or(i64::MAX))
}

fn rate(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn duration(value: &Value) -> String {
    value.as_f64().map_or_else(
        || "-".into(),
        |ms| {
            let secs = (ms / 1000.0).round();
            sluice_core::rollout::format_duration(std::time::Duration::from_secs_f64(secs.max(0.0)))
        },
    )
}

fn causes(value: &Value) -> String {
    match value.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(cause, n)| format!("{cause}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".into(),
    }
}

/// Runs `sluice report`.
pub fn run(args: &Args, client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(since_ms)
        .transpose()?
        .unwrap_or(0);
    let since_text = since.to_string();
    let reply = client.get_json(
        &["api", "v1", "reports", "releases"],
        &[("since", since_text.as_str())],
    )?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(&mut stdout, &reply.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = &reply.json["report"];
    let mut rows = table(&[
        "GROUP",
        "RELEASES",
        "STARTED",
        "FAILED",
        "CHANGE FAILURE RATE",
        "MEDIAN TO 100%",
        "MEAN TIME TO RESTORE",
        "ROLLBACKS BY CAUSE",
    ]);
    let mut add = |name: String, figures: &Value| {
        rows.add_row(vec![
            name,
            figures["releases"].to_string(),
            figures["started"].to_string(),
            figures["failed"].to_string(),
            rate(&figures["changeFailureRate"]),
            format!(
                "{} (n={})",
                duration(&figures["medianTimeToFullRolloutMs"]),
                figures["fullRollouts"]
            ),
            format!(
                "{} (n={})",
                duration(&figures["meanTimeToRestoreMs"]),
                figures["restores"]
            ),
            causes(&figures["rollbacksByCause"]),
        ]);
    };
    add("all".into(), &report["total"]);
    for (key, label) in [
        ("byProvenance", ""),
        ("byRisk", ""),
        ("byProvenanceAndRisk", ""),
    ] {
        for group in report[key].as_array().into_iter().flatten() {
            let name = [group["provenance"].as_str(), group["risk"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" + ");
            add(format!("{label}{name}"), group);
        }
    }
    print_table(&mut stdout, &rows)?;
    Ok(ExitCode::SUCCESS)
}
