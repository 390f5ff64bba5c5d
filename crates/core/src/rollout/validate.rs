//! Reading and checking rollout plans: every problem found, each with its path and position.
//!
//! A plan is read like a flags file. Each stage and guardrail is deserialized on its own, so
//! one malformed entry does not hide the problems of the others. Audience conditions are
//! checked by the flag format's own validation, so a plan and a flag accept the same conditions
//! and say the same things about them.

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::compile::{check_key, validate};
use crate::error::{Error, ErrorKind, Errors, Path, PathSegment, Position};
use crate::model::{ConditionDef, FlagFile, SegmentDef};
use crate::rollout::plan::{
    Audience, Direction, Guardrail, MAX_APPROVALS, Metric, MetricKind, RolloutPlan, Stage,
    ToleranceUnit, trim_float,
};
use crate::source::{Format, from_value_at};
use crate::source_map::SourceMap;

impl RolloutPlan {
    /// Parses and validates a plan from YAML or JSON text. `file` names it in messages.
    ///
    /// Every stage and guardrail is read on its own, so one malformed entry does not hide the
    /// problems of the others, and every error carries its line and column.
    pub fn parse(file: Option<&str>, text: &str, format: Format) -> Result<RolloutPlan, Errors> {
        read_document(file, text, format, RolloutPlan::from_value)
    }

    /// Reads and validates a plan from a JSON value, such as an API body.
    pub fn from_value(value: Value) -> Result<RolloutPlan, Errors> {
        let root = Path::root();
        let Value::Object(mut top) = value else {
            return Err(Errors(vec![Error::new(
                ErrorKind::Structure,
                root,
                "expected a mapping with `stages` at the top",
            )]));
        };
        let mut errors = Vec::new();
        let stages = top
            .remove("stages")
            .map(|v| items::<Stage>(v, &root.key("stages"), &mut errors));
        let guardrails = top
            .remove("guardrails")
            .map(|v| items::<Guardrail>(v, &root.key("guardrails"), &mut errors));
        // The remaining settings are deserialized together, with placeholders for the lists.
        top.insert("stages".to_owned(), json!([]));
        top.insert("guardrails".to_owned(), json!([]));
        let settings = from_value_at::<RolloutPlan>(Value::Object(top), &root);
        let mut plan = match settings {
            Ok(plan) => plan,
            Err(error) => {
                errors.push(error);
                return Err(Errors(errors));
            }
        };
        match stages {
            Some(stages) => plan.stages = stages,
            None => errors.push(Error::new(
                ErrorKind::Structure,
                root.clone(),
                "missing field `stages`",
            )),
        }
        plan.guardrails = guardrails.unwrap_or_else(crate::rollout::default_guardrails);
        if !errors.is_empty() {
            return Err(Errors(errors));
        }
        plan.validate()?;
        Ok(plan)
    }

    /// Checks the plan on its own: stage order and percentages, audiences, guardrails, settings.
    ///
    /// Segment names are checked for syntax only; [`RolloutPlan::validate_for`] also checks
    /// that they exist in a flags file.
    pub fn validate(&self) -> Result<(), Errors> {
        let errors = self.problems(None);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Errors(errors))
        }
    }

    /// Checks the plan, and that every segment its audiences name is defined in `flags`.
    pub fn validate_for(&self, flags: &FlagFile) -> Result<(), Errors> {
        let errors = self.problems(Some(&flags.segments));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Errors(errors))
        }
    }

    fn problems(&self, segments: Option<&IndexMap<String, SegmentDef>>) -> Vec<Error> {
        let mut errors = Vec::new();
        let root = Path::root();

        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            push(
                &mut errors,
                ErrorKind::Invalid,
                root.key("alpha"),
                format!("alpha must be between 0 and 0.5, not {}", self.alpha),
            );
        }
        if !(self.tuning.is_finite() && self.tuning >= 1.0) {
            push(
                &mut errors,
                ErrorKind::Invalid,
                root.key("tuning"),
                format!(
                    "tuning is a sample size and must be at least 1, not {}",
                    self.tuning
                ),
            );
        }
        if self.max_hold.is_zero() {
            push(
                &mut errors,
                ErrorKind::Invalid,
                root.key("max_hold"),
                "max_hold must be longer than 0s: a stage with no data must hold before it pauses"
                    .to_owned(),
            );
        }

        let stages_path = root.key("stages");
        if self.stages.is_empty() {
            push(
                &mut errors,
                ErrorKind::Invalid,
                stages_path.clone(),
                "a plan needs at least one stage",
            );
        }
        let mut names: IndexMap<&str, usize> = IndexMap::new();
        for (index, stage) in self.stages.iter().enumerate() {
            let path = stages_path.index(index);
            if let Some(name) = &stage.name {
                if let Err(message) = check_key(name) {
                    push(&mut errors, ErrorKind::Invalid, path.key("name"), message);
                }
                if let Some(first) = names.insert(name, index) {
                    push(
                        &mut errors,
                        ErrorKind::Duplicate,
                        path.key("name"),
                        format!("stage name `{name}` is already used by stage {first}"),
                    );
                }
            }
            if stage.approvals > MAX_APPROVALS {
                push(
                    &mut errors,
                    ErrorKind::Invalid,
                    path.key("approvals"),
                    format!(
                        "at most {MAX_APPROVALS} approvals can be required, not {}",
                        stage.approvals
                    ),
                );
            }
            // Exposure only widens: an audience seen before may not get a smaller share.
            if let Some((earlier, previous)) = self.stages[..index]
                .iter()
                .enumerate()
                .rev()
                .find(|(_, s)| s.audience == stage.audience)
                && stage.percent < previous.percent
            {
                push(
                    &mut errors,
                    ErrorKind::Invalid,
                    path.key("percent"),
                    format!(
                        "{} is less than the {} stage {earlier} already gives {}; a rollout only widens",
                        stage.percent,
                        previous.percent,
                        stage.audience.label()
                    ),
                );
            }
            if index + 1 < self.stages.len()
                && stage.audience.is_everyone()
                && stage.percent.is_all()
            {
                push(
                    &mut errors,
                    ErrorKind::Invalid,
                    path.clone(),
                    "this stage already sends everyone to the new path, so it must be the last"
                        .to_owned(),
                );
            }
            let audience_path = path.key("audience");
            match &stage.audience {
                Audience::Everyone => {}
                Audience::All(conditions) if conditions.is_empty() => push(
                    &mut errors,
                    ErrorKind::Invalid,
                    audience_path,
                    "an audience needs at least one condition; write `everyone` for everyone",
                ),
                Audience::Condition(condition) => {
                    errors.extend(condition_problems(
                        std::slice::from_ref(condition),
                        false,
                        &audience_path,
                        segments,
                    ));
                }
                Audience::All(conditions) => {
                    errors.extend(condition_problems(
                        conditions,
                        true,
                        &audience_path,
                        segments,
                    ));
                }
            }
        }
        if let Some(last) = self.stages.last()
            && !(last.audience.is_everyone() && last.percent.is_all())
        {
            push(
                &mut errors,
                ErrorKind::Invalid,
                stages_path.index(self.stages.len() - 1),
                format!(
                    "the last stage must send everyone to the new path (`percent: 100` with audience `everyone`), \
                     not {}",
                    last.label()
                ),
            );
        }

        let guardrails_path = root.key("guardrails");
        if self.guardrails.is_empty() {
            push(
                &mut errors,
                ErrorKind::Invalid,
                guardrails_path.clone(),
                "a plan needs at least one guardrail; leave `guardrails` out for the defaults"
                    .to_owned(),
            );
        }
        let mut seen: IndexMap<&Metric, usize> = IndexMap::new();
        for (index, guardrail) in self.guardrails.iter().enumerate() {
            let path = guardrails_path.index(index);
            if let Some(first) = seen.insert(&guardrail.metric, index) {
                push(
                    &mut errors,
                    ErrorKind::Duplicate,
                    path.key("metric"),
                    format!(
                        "`{}` is already judged by guardrail {first}",
                        guardrail.metric
                    ),
                );
            }
            match (guardrail.metric.natural_direction(), guardrail.direction) {
                (None, None) => push(
                    &mut errors,
                    ErrorKind::Structure,
                    path.key("direction"),
                    format!(
                        "`{}` needs a direction: `lower_is_better` or `higher_is_better`",
                        guardrail.metric
                    ),
                ),
                (Some(natural), Some(written)) if natural != written => push(
                    &mut errors,
                    ErrorKind::Invalid,
                    path.key("direction"),
                    format!("`{}` is always {}", guardrail.metric, natural.as_str()),
                ),
                _ => {}
            }
            let kind = guardrail.metric.kind();
            if let Some((_, unit)) = guardrail.tolerance.absolute {
                let fits = match unit {
                    ToleranceUnit::Plain => true,
                    ToleranceUnit::Points => kind == MetricKind::Proportion,
                    ToleranceUnit::Millis => matches!(kind, MetricKind::Latency(_)),
                };
                if !fits {
                    let unit_name = if unit == ToleranceUnit::Points {
                        "percentage points"
                    } else {
                        "milliseconds"
                    };
                    push(
                        &mut errors,
                        ErrorKind::Invalid,
                        path.key("tolerance"),
                        format!("`{}` is not measured in {unit_name}", guardrail.metric),
                    );
                }
                if fits
                    && kind == MetricKind::Proportion
                    && let Some((amount, _)) = guardrail.tolerance.absolute
                    && amount >= 1.0
                {
                    push(
                        &mut errors,
                        ErrorKind::Invalid,
                        path.key("tolerance"),
                        format!(
                            "a rate cannot worsen by {} or more; write percentage points, such as `0.5pp`",
                            trim_float(amount)
                        ),
                    );
                }
            }
            if guardrail.metric == Metric::ShadowMismatchRate
                && (guardrail.tolerance.absolute.is_none()
                    || guardrail.tolerance.relative.is_some())
            {
                push(
                    &mut errors,
                    ErrorKind::Invalid,
                    path.key("tolerance"),
                    "`shadow_mismatch_rate` is judged against an absolute bound on the rate; \
                     write it as `0.1pp` or `0.001`"
                        .to_owned(),
                );
            }
            if let Some(relative) = guardrail.tolerance.relative
                && guardrail.direction() == Direction::HigherIsBetter
                && relative >= 1.0
            {
                push(
                    &mut errors,
                    ErrorKind::Invalid,
                    path.key("tolerance"),
                    "a higher-is-better metric cannot drop by 100% or more".to_owned(),
                );
            }
        }
        errors
    }
}

fn push(errors: &mut Vec<Error>, kind: ErrorKind, path: Path, message: impl Into<String>) {
    errors.push(Error::new(kind, path, message));
}

/// Deserializes each item of a sequence on its own, collecting every error.
fn items<T: serde::de::DeserializeOwned>(
    value: Value,
    path: &Path,
    errors: &mut Vec<Error>,
) -> Vec<T> {
    let Value::Array(values) = value else {
        errors.push(Error::new(
            ErrorKind::Structure,
            path.clone(),
            "expected a list",
        ));
        return Vec::new();
    };
    let mut found = Vec::new();
    for (index, item) in values.into_iter().enumerate() {
        match from_value_at::<T>(item, &path.index(index)) {
            Ok(item) => found.push(item),
            Err(error) => errors.push(error),
        }
    }
    found
}

/// Reads a YAML or JSON document with `read`, which checks the value: every error, a key
/// written twice in one mapping included, carries `file` and its line and column, in the
/// order they appear in the text.
pub(crate) fn read_document<T>(
    file: Option<&str>,
    text: &str,
    format: Format,
    read: impl FnOnce(Value) -> Result<T, Errors>,
) -> Result<T, Errors> {
    let map = SourceMap::build(text);
    let place = |mut errors: Vec<Error>| {
        for error in &mut errors {
            if error.position.is_none() {
                error.position = map.locate(&error.path);
            }
            if error.file.is_none() {
                error.file = file.map(str::to_owned);
            }
        }
        errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
        Errors(errors)
    };
    let value = parse_text(text, format).map_err(|e| place(vec![e]))?;
    let mut errors: Vec<Error> = map
        .duplicates()
        .iter()
        .map(|path| {
            Error::new(
                ErrorKind::Duplicate,
                path.clone(),
                "this key appears twice in the same mapping",
            )
        })
        .collect();
    match read(value) {
        Ok(read) if errors.is_empty() => Ok(read),
        Ok(_) => Err(place(errors)),
        Err(more) => {
            errors.extend(more.0);
            Err(place(errors))
        }
    }
}

fn parse_text(text: &str, format: Format) -> Result<Value, Error> {
    let syntax = |message: String, position: Option<Position>| Error {
        position,
        ..Error::new(ErrorKind::Syntax, Path::root(), message)
    };
    let strip = |message: String| match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message,
    };
    match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            let position = (e.line() > 0).then(|| Position {
                line: e.line(),
                column: e.column(),
            });
            syntax(strip(e.to_string()), position)
        }),
        Format::Yaml => yaml_serde::from_str::<Value>(text).map_err(|e| {
            let position = e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            syntax(strip(e.to_string()), position)
        }),
    }
}

/// Checks audience conditions exactly as the flag format does, by validating a one-rule
/// stand-in flag, and moves the errors to `path`. `listed` says the conditions were written
/// as a list rather than a single mapping.
fn condition_problems(
    conditions: &[ConditionDef],
    listed: bool,
    path: &Path,
    segments: Option<&IndexMap<String, SegmentDef>>,
) -> Vec<Error> {
    const FLAG: &str = "rollout-audience";
    let mut problems = Vec::new();
    for (index, condition) in conditions.iter().enumerate() {
        if let Some(name) = &condition.segment
            && let Err(message) = check_key(name)
        {
            let at = if listed {
                path.index(index)
            } else {
                path.clone()
            };
            push(
                &mut problems,
                ErrorKind::Invalid,
                at.key("segment"),
                message,
            );
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let mut file = FlagFile::default();
    match segments {
        Some(segments) => file.segments = segments.clone(),
        None => {
            for name in conditions.iter().filter_map(|c| c.segment.as_ref()) {
                file.segments.entry(name.clone()).or_default();
            }
        }
    }
    let flag = json!({
        "type": "boolean",
        "variants": { "on": true, "off": false },
        "default_variant": "off",
        "rules": [{ "serve": "on", "when": conditions }],
    });
    let flag = match serde_json::from_value(flag) {
        Ok(flag) => flag,
        Err(error) => {
            return vec![Error::new(
                ErrorKind::Structure,
                path.clone(),
                error.to_string(),
            )];
        }
    };
    file.flags.insert(FLAG.to_owned(), flag);
    let Err(errors) = validate(&file) else {
        return Vec::new();
    };
    let prefix = [
        PathSegment::Key("flags".to_owned()),
        PathSegment::Key(FLAG.to_owned()),
        PathSegment::Key("rules".to_owned()),
        PathSegment::Index(0),
        PathSegment::Key("when".to_owned()),
    ];
    errors
        .into_iter()
        .filter_map(|error| {
            let rest = error.path.segments().strip_prefix(&prefix[..])?;
            // A single condition is written as a mapping, not a list of one.
            let rest = match rest {
                [PathSegment::Index(0), tail @ ..] if !listed => tail,
                _ => rest,
            };
            let mut moved = path.clone();
            for segment in rest {
                moved = match segment {
                    PathSegment::Key(key) => moved.key(key.clone()),
                    PathSegment::Index(index) => moved.index(*index),
                };
            }
            Some(Error::new(error.kind, moved, error.message))
        })
        .collect()
}
