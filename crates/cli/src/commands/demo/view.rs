//! How the demo shows itself: a live terminal view redrawn every half second (the rollout
//! drawn as `sluice rollout status --watch` draws it, with indicatif bars, plus the demo's
//! own lines and a log), plain lines when stdout is not a terminal or with `--headless`,
//! or one JSON object per line with `--json`.

use std::io::Write;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::commands::rollout::render;

/// Where and how the demo reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redraws the screen.
    Live,
    /// Prints a line per event.
    Text,
    /// Prints a JSON object per event.
    Json,
}

/// The demo's output.
pub struct View {
    mode: Mode,
    started: Instant,
    header: Vec<String>,
    log: Vec<String>,
    /// The last guardrail line printed, so unchanged numbers are not repeated.
    last_guardrails: Option<(Instant, String)>,
}

/// How many log lines the live view keeps on screen.
const LOG_LINES: usize = 14;

impl View {
    /// A view in `mode`.
    pub fn new(mode: Mode) -> View {
        View {
            mode,
            started: Instant::now(),
            header: Vec::new(),
            log: Vec::new(),
            last_guardrails: None,
        }
    }

    /// Milliseconds since the demo started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Adds a line to the live view's fixed header (the URL and token).
    pub fn header(&mut self, line: String) {
        self.header.push(line);
    }

    /// Reports one event: `kind` with its fields for `--json`, `text` for people.
    pub fn event(&mut self, kind: &str, fields: Value, text: &str) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.mode {
            Mode::Json => {
                let mut object = Map::new();
                object.insert("event".to_owned(), json!(kind));
                object.insert("elapsedMs".to_owned(), json!(self.elapsed_ms()));
                if let Value::Object(fields) = fields {
                    object.extend(fields);
                }
                writeln!(out, "{}", Value::Object(object))?;
            }
            Mode::Text => {
                let seconds = self.elapsed_ms() as f64 / 1000.0;
                for (index, line) in text.lines().enumerate() {
                    if index == 0 {
                        writeln!(out, "[{seconds:>5.1}s] {line}")?;
                    } else {
                        writeln!(out, "         {line}")?;
                    }
                }
            }
            Mode::Live => {
                let seconds = self.elapsed_ms() as f64 / 1000.0;
                for (index, line) in text.lines().enumerate() {
                    if index == 0 {
                        self.log.push(format!("[{seconds:>5.1}s] {line}"));
                    } else {
                        self.log.push(format!("         {line}"));
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    /// Ends the live view: the screen keeps its last drawing and later events are printed
    /// as lines below it.
    pub fn end_live(&mut self) {
        if self.mode == Mode::Live {
            self.mode = Mode::Text;
        }
    }

    /// Shows the rollout as it stands: redrawn live, or its guardrails as an event when
    /// their numbers changed (at most once a second).
    pub fn rollout(&mut self, rollout: &Value, status: &str) -> anyhow::Result<()> {
        if self.mode == Mode::Live {
            let mut out = std::io::stdout().lock();
            // Clear the screen and go home, then draw afresh.
            write!(out, "\x1b[2J\x1b[H")?;
            for line in &self.header {
                writeln!(out, "{line}")?;
            }
            writeln!(out)?;
            render(&mut out, rollout)?;
            writeln!(out)?;
            writeln!(out, "{status}")?;
            writeln!(out)?;
            let skip = self.log.len().saturating_sub(LOG_LINES);
            for line in &self.log[skip..] {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            return Ok(());
        }
        let verdicts = verdicts(rollout);
        if verdicts.is_empty() {
            return Ok(());
        }
        let line = guardrail_line(rollout, &verdicts);
        let due = match &self.last_guardrails {
            Some((at, last)) => *last != line && at.elapsed().as_millis() >= 1000,
            None => true,
        };
        if !due {
            return Ok(());
        }
        self.last_guardrails = Some((Instant::now(), line.clone()));
        let fields = json!({
            "stage": rollout["stage"],
            "stageLabel": rollout["stageLabel"],
            "elapsedSecs": rollout["window"]["elapsedSecs"],
            "exposures": rollout["window"]["exposures"],
            "verdicts": verdicts,
            "traffic": status,
        });
        self.event("guardrails", fields, &line)
    }
}

/// Each guardrail's verdict in the rollout's current decision, with its numbers.
pub fn verdicts(rollout: &Value) -> Vec<Value> {
    verdicts_of(&rollout["decision"])
}

/// The verdicts of a decision, reduced to what the demo shows and tests read.
pub fn verdicts_of(decision: &Value) -> Vec<Value> {
    decision["verdicts"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|verdict| {
                    let evidence = &verdict["evidence"];
                    json!({
                        "metric": evidence["metric"],
                        "outcome": outcome_name(&verdict["outcome"]),
                        "control": evidence["control"],
                        "treatment": evidence["treatment"],
                        "difference": evidence["difference"],
                        "threshold": evidence["threshold"],
                        "interval": evidence["interval"],
                        "n": evidence["n"],
                        "test": evidence["test"],
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `pass`, `fail`, or `inconclusive (why)`.
fn outcome_name(outcome: &Value) -> String {
    match outcome {
        Value::String(name) => name.clone(),
        Value::Object(map) => match map.values().next().and_then(Value::as_str) {
            Some(why) => format!("inconclusive ({})", why.replace('_', " ")),
            None => "inconclusive".to_owned(),
        },
        _ => "unknown".to_owned(),
    }
}

/// A metric's value for people: latency in ms, rates in percent.
pub fn metric_value(metric: &str, value: &Value) -> String {
    match value.as_f64() {
        None => "-".to_owned(),
        Some(number) if metric.starts_with("latency") => format!("{number:.1} ms"),
        Some(number) => format!("{:.2}%", number * 100.0),
    }
}

/// One line per guardrail: control against treatment, with n and the verdict.
pub fn verdict_lines(verdicts: &[Value]) -> String {
    verdicts
        .iter()
        .map(|v| {
            let metric = v["metric"].as_str().unwrap_or("?");
            format!(
                "{metric}: control {} (n={}) vs new {} (n={}) → {}",
                metric_value(metric, &v["control"]),
                v["n"]["control"],
                metric_value(metric, &v["treatment"]),
                v["n"]["treatment"],
                v["outcome"].as_str().unwrap_or("?").to_uppercase(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn guardrail_line(rollout: &Value, verdicts: &[Value]) -> String {
    format!(
        "stage {} ({}s baked): {}",
        rollout["stageLabel"].as_str().unwrap_or("?"),
        rollout["window"]["elapsedSecs"],
        verdicts
            .iter()
            .map(|v| {
                let metric = v["metric"].as_str().unwrap_or("?");
                format!(
                    "{metric} {} vs {} {}",
                    metric_value(metric, &v["control"]),
                    metric_value(metric, &v["treatment"]),
                    v["outcome"].as_str().unwrap_or("?"),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    )
}
