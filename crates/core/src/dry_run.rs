//! Dry-run rule changes, pure: a flag's rules for one environment staged beside the ones
//! served, to count what the change would do before anyone is exposed to it.
//!
//! A staged change is an [`EnvironmentOverride`] (`rules`, `default_variant`, `enabled`); the
//! fields it sets replace the flag's override in that environment and the others are kept
//! ([`stage`]). Whoever evaluates the flag (an SDK, or the server for OFREP) keeps serving the
//! current rules, evaluates the staged ones too with an [`Engine`] compiled from the staged
//! definition ([`compile_staged`]), and tallies the pair of variants per evaluation in a
//! [`DryRunTally`], with a few sampled contexts whose variant would change. Tallies travel as
//! [`DryRunReport`]s and are summed into [`DryRunTotals`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Errors, Path};
use crate::model::{EnvironmentOverride, FlagDef, FlagFile};
use crate::source::from_value_at;
use crate::telemetry::{MAX_SAMPLE_BYTES, truncate_sample};
use crate::{Context, Engine, Evaluation, Format};

/// The variant name tallied when an evaluation served no variant (an error).
pub const NO_VARIANT: &str = "(none)";

/// The most sampled contexts one report carries.
pub const MAX_SAMPLES_PER_DRY_RUN: usize = 5;

/// The most distinct (from, to) pairs one report may carry; a flag has at most this many
/// variants squared, and real flags have a handful.
pub const MAX_TRANSITIONS_PER_DRY_RUN: usize = 1_024;

/// The most dry-run reports one batch may carry.
pub const MAX_DRY_RUNS_PER_BATCH: usize = 100;

/// Reads staged rules from YAML or JSON text: either a mapping with any of `rules`,
/// `default_variant` and `enabled` (an environment override), or a bare list of rules.
/// `file` names it in messages, which carry lines and columns.
pub fn parse_staged(
    file: Option<&str>,
    text: &str,
    format: Format,
) -> Result<EnvironmentOverride, Errors> {
    crate::rollout::validate::read_document(file, text, format, staged_from_value)
}

/// Reads staged rules from a JSON value, such as an API body's `staged` field.
pub fn staged_from_value(value: Value) -> Result<EnvironmentOverride, Errors> {
    let root = Path::root();
    let staged = match value {
        Value::Array(_) => EnvironmentOverride {
            rules: Some(from_value_at(value, &root).map_err(|e| Errors(vec![e]))?),
            ..EnvironmentOverride::default()
        },
        value => from_value_at::<EnvironmentOverride>(value, &root).map_err(|e| Errors(vec![e]))?,
    };
    if staged == EnvironmentOverride::default() {
        return Err(Errors(vec![Error::new(
            ErrorKind::Structure,
            root,
            "stages nothing: give `rules`, `default_variant` or `enabled`",
        )]));
    }
    Ok(staged)
}

/// `file` with `staged` applied to `flag` in `environment`: the fields `staged` sets
/// replace those of the flag's override there, and the others stay.
pub fn stage(
    file: &FlagFile,
    flag: &str,
    environment: &str,
    staged: &EnvironmentOverride,
) -> Result<FlagFile, Errors> {
    if !file.environment_names().contains(&environment) {
        return Err(Errors(vec![Error::new(
            ErrorKind::UnknownReference,
            Path::root().key("environment"),
            format!("there is no environment `{environment}`"),
        )]));
    }
    let mut staged_file = file.clone();
    let Some(definition) = staged_file.flags.get_mut(flag) else {
        return Err(Errors(vec![Error::new(
            ErrorKind::UnknownReference,
            Path::root().key("flag"),
            format!("there is no flag `{flag}`"),
        )]));
    };
    apply_staged(definition, environment, staged);
    Ok(staged_file)
}

/// Writes `staged` into `definition`'s override for `environment`: what applying a dry run
/// changes. The fields `staged` sets replace the override's; the others stay.
pub fn apply_staged(definition: &mut FlagDef, environment: &str, staged: &EnvironmentOverride) {
    let current = definition
        .environments
        .entry(environment.to_owned())
        .or_default();
    if staged.rules.is_some() {
        current.rules.clone_from(&staged.rules);
    }
    if staged.default_variant.is_some() {
        current.default_variant.clone_from(&staged.default_variant);
    }
    if staged.enabled.is_some() {
        current.enabled = staged.enabled;
    }
}

/// Compiles the staged definition for `environment`. Errors about the staged override are
/// reported at their path inside it (`rules[0].serve`), as the staged text wrote them.
pub fn compile_staged(
    file: &FlagFile,
    flag: &str,
    environment: &str,
    staged: &EnvironmentOverride,
) -> Result<Engine, Errors> {
    let staged_file = stage(file, flag, environment, staged)?;
    crate::compile(&staged_file, Some(environment)).map_err(|errors| {
        let prefix = Path::root()
            .key("flags")
            .key(flag)
            .key("environments")
            .key(environment);
        Errors(
            errors
                .0
                .into_iter()
                .map(|mut error| {
                    if let Some(rest) = error.path.segments().strip_prefix(prefix.segments()) {
                        error.path = Path::root().join(rest);
                    }
                    error
                })
                .collect(),
        )
    })
}

/// The variant an evaluation served, or [`NO_VARIANT`].
pub fn variant_of<'a>(evaluation: &Evaluation<'a>) -> &'a str {
    evaluation.variant.unwrap_or(NO_VARIANT)
}

/// How many evaluations served `from` now and would serve `to` under the staged rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transition {
    /// The variant served now.
    pub from: String,
    /// The variant the staged rules would serve.
    pub to: String,
    /// How many evaluations.
    pub count: u64,
}

impl Transition {
    /// Whether the variant would change.
    pub fn changes(&self) -> bool {
        self.from != self.to
    }
}

/// A context whose variant would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRunSample {
    /// When it was evaluated, Unix milliseconds.
    pub at_ms: i64,
    /// The context as JSON, at most [`MAX_SAMPLE_BYTES`].
    pub context: String,
    /// The variant served.
    pub from: String,
    /// The variant the staged rules would serve.
    pub to: String,
}

/// What one evaluator tallied for one dry run since its last report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRunReport {
    /// The dry run's id, as the configuration named it.
    pub dry_run: i64,
    /// The flag, for readers of the raw report.
    pub flag: String,
    /// Evaluations per (served, staged) pair, unchanged pairs included.
    pub transitions: Vec<Transition>,
    /// A few contexts whose variant would change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<DryRunSample>,
}

impl DryRunReport {
    /// How many evaluations it counts.
    pub fn evaluations(&self) -> u64 {
        self.transitions
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.count))
    }
}

/// Counts evaluations per (served, staged) pair between reports. Recording a pair seen
/// before allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct DryRunTally {
    transitions: Vec<Transition>,
    samples: Vec<DryRunSample>,
}

impl DryRunTally {
    /// Records one evaluation of `context` that serves `from` and would serve `to`; `now`
    /// (Unix milliseconds) is read only when the context is sampled.
    pub fn observe(&mut self, from: &str, to: &str, context: &Context, now: impl FnOnce() -> i64) {
        if !self.count(from, to, 1) {
            return;
        }
        if from != to && self.samples.len() < MAX_SAMPLES_PER_DRY_RUN {
            let json = serde_json::to_string(context).unwrap_or_default();
            self.samples.push(DryRunSample {
                at_ms: now(),
                context: truncate_sample(&json, MAX_SAMPLE_BYTES),
                from: from.to_owned(),
                to: to.to_owned(),
            });
        }
    }

    /// Adds `count` evaluations of the pair; `false` when a new pair no longer fits.
    fn count(&mut self, from: &str, to: &str, count: u64) -> bool {
        let found = self
            .transitions
            .iter()
            .position(|t| t.from == from && t.to == to);
        match found {
            Some(index) => {
                let transition = &mut self.transitions[index];
                transition.count = transition.count.saturating_add(count);
                true
            }
            None if self.transitions.len() < MAX_TRANSITIONS_PER_DRY_RUN => {
                self.transitions.push(Transition {
                    from: from.to_owned(),
                    to: to.to_owned(),
                    count,
                });
                true
            }
            None => false,
        }
    }

    /// Adds a report taken earlier back (one that could not be delivered).
    pub fn absorb(&mut self, report: DryRunReport) {
        for transition in &report.transitions {
            self.count(&transition.from, &transition.to, transition.count);
        }
        let room = MAX_SAMPLES_PER_DRY_RUN.saturating_sub(self.samples.len());
        self.samples.extend(report.samples.into_iter().take(room));
    }

    /// Whether nothing was recorded since the last report.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    /// The report of what was recorded, leaving the tally empty; `None` when it is.
    pub fn take(&mut self, dry_run: i64, flag: &str) -> Option<DryRunReport> {
        if self.is_empty() {
            return None;
        }
        Some(DryRunReport {
            dry_run,
            flag: flag.to_owned(),
            transitions: std::mem::take(&mut self.transitions),
            samples: std::mem::take(&mut self.samples),
        })
    }
}

/// A tally shared between the evaluators that count into it and whoever drains it.
pub type SharedTally = Arc<Mutex<DryRunTally>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counting is a few additions: a panic elsewhere cannot leave a tally torn in a way that
    // matters, so a poisoned lock is used as it is.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running dry run, compiled for its environment, counting into its tally.
#[derive(Debug)]
pub struct StagedFlag {
    /// The dry run's id.
    pub id: i64,
    /// The flag whose rules are staged.
    pub flag: String,
    /// The configuration with the staged rules.
    pub engine: Engine,
    tally: SharedTally,
}

impl StagedFlag {
    /// Evaluates the staged rules for `context` and counts the pair with what was served;
    /// `now` is read only when the context is sampled.
    pub fn observe(&self, served: &Evaluation<'_>, context: &Context, now: impl FnOnce() -> i64) {
        let staged = self.engine.evaluate(&self.flag, context);
        lock(&self.tally).observe(variant_of(served), variant_of(&staged), context, now);
    }
}

/// Tallies by dry-run id, shared by every configuration an evaluator compiles, so counts
/// survive a configuration change.
#[derive(Debug, Default)]
pub struct Tallies {
    entries: Mutex<HashMap<i64, (String, SharedTally)>>,
}

impl Tallies {
    /// A compiled dry run that counts into this registry.
    pub fn staged(&self, id: i64, flag: &str, engine: Engine) -> StagedFlag {
        let tally = Arc::clone(
            &lock(&self.entries)
                .entry(id)
                .or_insert_with(|| (flag.to_owned(), SharedTally::default()))
                .1,
        );
        StagedFlag {
            id,
            flag: flag.to_owned(),
            engine,
            tally,
        }
    }

    /// Drains every tally into reports, and forgets the dry runs no [`StagedFlag`] counts
    /// into any more.
    pub fn take(&self) -> Vec<DryRunReport> {
        let mut entries = lock(&self.entries);
        let reports = entries
            .iter()
            .filter_map(|(id, (flag, tally))| lock(tally).take(*id, flag))
            .collect();
        entries.retain(|_, (_, tally)| Arc::strong_count(tally) > 1);
        reports
    }

    /// Puts back reports that could not be delivered, for the next [`Tallies::take`].
    pub fn restore(&self, reports: Vec<DryRunReport>) {
        let mut entries = lock(&self.entries);
        for report in reports {
            let (_, tally) = entries
                .entry(report.dry_run)
                .or_insert_with(|| (report.flag.clone(), SharedTally::default()));
            lock(tally).absorb(report);
        }
    }
}

/// Reports summed: what a dry run's report shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunTotals {
    /// Evaluations compared.
    pub evaluations: u64,
    /// Evaluations whose variant would change.
    pub would_change: u64,
    /// Per (served, staged) pair, the changing ones first, then by count.
    pub transitions: Vec<Transition>,
}

impl DryRunTotals {
    /// Sums transitions, from any number of reports.
    pub fn from_transitions<'a>(transitions: impl IntoIterator<Item = &'a Transition>) -> Self {
        let mut pairs: IndexMap<(&str, &str), u64> = IndexMap::new();
        for t in transitions {
            let count = pairs.entry((&t.from, &t.to)).or_default();
            *count = count.saturating_add(t.count);
        }
        let mut transitions: Vec<Transition> = pairs
            .into_iter()
            .map(|((from, to), count)| Transition {
                from: from.to_owned(),
                to: to.to_owned(),
                count,
            })
            .collect();
        transitions.sort_by(|a, b| {
            (b.changes(), b.count, &a.from, &a.to).cmp(&(a.changes(), a.count, &b.from, &b.to))
        });
        let evaluations = transitions
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.count));
        let would_change = transitions
            .iter()
            .filter(|t| t.changes())
            .fold(0u64, |sum, t| sum.saturating_add(t.count));
        DryRunTotals {
            evaluations,
            would_change,
            transitions,
        }
    }

    /// The share of evaluations whose variant would change, if any were compared.
    pub fn would_change_share(&self) -> Option<f64> {
        (self.evaluations > 0).then(|| self.would_change as f64 / self.evaluations as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;
    use serde_json::json;

    fn file() -> FlagFile {
        let text = r#"
segments:
  staff:
    when: [{attribute: email, op: ends_with, value: "@example.com"}]
flags:
  checkout:
    type: boolean
    variants: {on: true, off: false}
    default_variant: off
    environments:
      production:
        rules:
          - when: [{segment: staff}]
            serve: on
"#;
        match Source::parse(Some("flags.yaml"), text, Format::Yaml)
            .unwrap()
            .into_document()
        {
            crate::Document::Sluice(file) => file,
            other => panic!("not a Sluice document: {other:?}"),
        }
    }

    #[test]
    fn staged_rules_read_from_a_mapping_or_a_list_with_positions() {
        let mapping = parse_staged(
            Some("staged.yaml"),
            "rules:\n  - serve: on\ndefault_variant: off\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(mapping.rules.as_ref().map(Vec::len), Some(1));
        assert_eq!(mapping.default_variant.as_deref(), Some("off"));
        let list = parse_staged(None, "- serve: on\n- serve: off\n", Format::Yaml).unwrap();
        assert_eq!(list.rules.map(|r| r.len()), Some(2));

        let error = parse_staged(
            Some("staged.yaml"),
            "rules:\n  - serve: on\n    colour: red\n",
            Format::Yaml,
        )
        .unwrap_err();
        let first = &error.0[0];
        assert_eq!(first.file.as_deref(), Some("staged.yaml"));
        assert_eq!(first.position.map(|p| p.line), Some(3), "{error}");
        let nothing = parse_staged(None, "{}", Format::Json).unwrap_err();
        assert!(nothing.to_string().contains("stages nothing"), "{nothing}");
    }

    #[test]
    fn staging_replaces_only_the_fields_given() {
        let staged = EnvironmentOverride {
            default_variant: Some("on".into()),
            ..EnvironmentOverride::default()
        };
        let file = file();
        let staged_file = stage(&file, "checkout", "production", &staged).unwrap();
        let production = &staged_file.flags["checkout"].environments["production"];
        assert_eq!(production.default_variant.as_deref(), Some("on"));
        assert_eq!(
            production.rules,
            file.flags["checkout"].environments["production"].rules
        );
        let engine = compile_staged(&file, "checkout", "production", &staged).unwrap();
        let ctx = Context::with_key("u1").set("email", "a@other.org");
        assert_eq!(variant_of(&engine.evaluate("checkout", &ctx)), "on");
        // Other environments are untouched.
        let staging = compile_staged(&file, "checkout", "staging", &staged).unwrap();
        let current = crate::compile(&file, Some("production")).unwrap();
        assert_eq!(variant_of(&current.evaluate("checkout", &ctx)), "off");
        assert_eq!(variant_of(&staging.evaluate("checkout", &ctx)), "on");
    }

    #[test]
    fn staged_errors_name_the_path_inside_the_staged_rules() {
        let staged = parse_staged(None, "- serve: purple\n", Format::Yaml).unwrap();
        let errors = compile_staged(&file(), "checkout", "production", &staged).unwrap_err();
        assert_eq!(errors.0[0].path.to_string(), "rules[0].serve", "{errors}");
        let unknown = compile_staged(&file(), "nope", "production", &staged).unwrap_err();
        assert!(unknown.to_string().contains("no flag `nope`"), "{unknown}");
        let env = compile_staged(&file(), "checkout", "mars", &staged).unwrap_err();
        assert!(env.to_string().contains("no environment `mars`"), "{env}");
    }

    #[test]
    fn tallies_count_pairs_sample_changes_and_sum() {
        let mut tally = DryRunTally::default();
        let ctx = Context::with_key("u1");
        for _ in 0..3 {
            tally.observe("off", "off", &ctx, || 1);
        }
        for _ in 0..7 {
            tally.observe("off", "on", &ctx, || 2);
        }
        let report = tally.take(9, "checkout").unwrap();
        assert!(tally.take(9, "checkout").is_none());
        tally.absorb(report.clone());
        assert_eq!(tally.take(9, "checkout").as_ref(), Some(&report));
        assert_eq!(report.evaluations(), 10);
        assert_eq!(report.samples.len(), MAX_SAMPLES_PER_DRY_RUN);
        assert!(
            report
                .samples
                .iter()
                .all(|s| s.from == "off" && s.to == "on")
        );
        assert!(report.samples[0].context.contains("u1"));
        let totals =
            DryRunTotals::from_transitions(report.transitions.iter().chain(&report.transitions));
        assert_eq!((totals.evaluations, totals.would_change), (20, 14));
        assert_eq!(totals.transitions[0].to, "on");
        assert_eq!(totals.would_change_share(), Some(0.7));
        assert_eq!(DryRunTotals::default().would_change_share(), None);
    }

    #[test]
    fn tallies_outlive_configurations_and_forget_finished_dry_runs() {
        let file = file();
        let staged = parse_staged(None, "default_variant: on\n", Format::Yaml).unwrap();
        let tallies = Tallies::default();
        let current = crate::compile(&file, Some("production")).unwrap();
        let ctx = Context::with_key("u1").set("email", "a@other.org");
        let served = current.evaluate("checkout", &ctx);
        let first = tallies.staged(
            4,
            "checkout",
            compile_staged(&file, "checkout", "production", &staged).unwrap(),
        );
        first.observe(&served, &ctx, || 10);
        // A new configuration compiles the same dry run again: it counts into the same tally.
        let second = tallies.staged(
            4,
            "checkout",
            compile_staged(&file, "checkout", "production", &staged).unwrap(),
        );
        drop(first);
        second.observe(&served, &ctx, || 11);
        let reports = tallies.take();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].transitions[0].count, 2);
        assert_eq!(
            (
                reports[0].transitions[0].from.as_str(),
                reports[0].transitions[0].to.as_str()
            ),
            ("off", "on")
        );
        tallies.restore(reports);
        assert_eq!(tallies.take()[0].evaluations(), 2);
        drop(second);
        assert!(tallies.take().is_empty());
        assert!(lock(&tallies.entries).is_empty());
    }

    #[test]
    fn wire_format_round_trips() {
        let report = DryRunReport {
            dry_run: 3,
            flag: "checkout".into(),
            transitions: vec![Transition {
                from: "off".into(),
                to: "on".into(),
                count: 4,
            }],
            samples: vec![],
        };
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(
            value,
            json!({"dryRun": 3, "flag": "checkout", "transitions": [{"from": "off", "to": "on", "count": 4}]})
        );
        let back: DryRunReport = serde_json::from_value(value).unwrap();
        assert_eq!(back, report);
    }
}
