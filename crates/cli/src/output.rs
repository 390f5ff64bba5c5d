//! Output shared by the commands that talk to a server: tables for people, JSON for scripts.
//!
//! Everything goes through a `Write` so a closed pipe surfaces as an error (and exit 0 in
//! `main`) instead of a panic in `println!`.

use std::io::Write;

use comfy_table::{Table, presets};
use serde_json::Value;
use sluice_core::model::FlagDef;

/// A table with these column headers, in the CLI's one style.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(headers.iter().copied());
    table
}

/// Prints a table followed by a newline.
pub fn print_table(out: &mut impl Write, table: &Table) -> std::io::Result<()> {
    writeln!(out, "{table}")
}

/// Prints the server's JSON, pretty, for scripts.
pub fn print_json(out: &mut impl Write, value: &Value) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// A time in milliseconds since the epoch, as RFC 3339 UTC to the second.
pub fn time(ms: i64) -> String {
    match jiff::Timestamp::from_second(ms.div_euclid(1000)) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => ms.to_string(),
    }
}

/// `on` or `off`.
pub fn on_off(enabled: bool) -> &'static str {
    if enabled { "on" } else { "off" }
}

/// Where a flag's kill switch stands: its own, then every environment that overrides it,
/// such as `on; production: off`.
pub fn state(definition: &FlagDef) -> String {
    let mut text = on_off(definition.enabled).to_owned();
    for (environment, overrides) in &definition.environments {
        if let Some(enabled) = overrides.enabled {
            text.push_str(&format!("; {environment}: {}", on_off(enabled)));
        }
    }
    text
}

/// Whether a flag serves in `environment`: the environment's override, else its own switch.
pub fn enabled_in(definition: &FlagDef, environment: &str) -> bool {
    definition
        .environments
        .get(environment)
        .and_then(|overrides| overrides.enabled)
        .unwrap_or(definition.enabled)
}

/// `1 flag`, `2 flags`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn state_lists_environment_overrides() {
        let definition: FlagDef = serde_json::from_value(serde_json::json!({
            "type": "boolean",
            "variants": {"on": true},
            "default_variant": "on",
            "environments": {"production": {"enabled": false}, "staging": {"rules": []}},
        }))
        .unwrap();
        assert_eq!(state(&definition), "on; production: off");
        assert!(!enabled_in(&definition, "production"));
        assert!(enabled_in(&definition, "staging"));
        assert_eq!(count(1, "flag"), "1 flag");
        assert_eq!(count(0, "flag"), "0 flags");
    }
}
