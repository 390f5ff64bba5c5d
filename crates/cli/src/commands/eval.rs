//! `sluice eval FILE FLAG`: evaluate flags from a file and explain the outcome.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};
use sluice_core::{Context, Engine, ErrorCode, Evaluation};

use crate::load::{LoadError, read_source};

/// Arguments of `sluice eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flag file, YAML or JSON.
    file: PathBuf,
    /// The flag to evaluate; omit it with `--all`.
    #[arg(required_unless_present = "all")]
    flag: Option<String>,
    /// The context as a JSON object, or `@path` to read it from a file.
    #[arg(long, short)]
    context: Option<String>,
    /// The targeting key; shorthand for `"targetingKey"` in the context.
    #[arg(long, short)]
    key: Option<String>,
    /// The environment whose overrides apply; without it, the flags' base definitions.
    #[arg(long, short)]
    env: Option<String>,
    /// Evaluate every flag in the file.
    #[arg(long, conflicts_with = "flag")]
    all: bool,
}

fn read_context(args: &Args) -> anyhow::Result<Context> {
    let value = match args.context.as_deref() {
        None => json!({}),
        Some(text) => {
            let (text, origin) = match text.strip_prefix('@') {
                Some(path) => (
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read the context file {path}"))?,
                    path.to_owned(),
                ),
                None => (text.to_owned(), "--context".to_owned()),
            };
            serde_json::from_str(&text).with_context(|| format!("{origin} is not valid JSON"))?
        }
    };
    let mut context = Context::from_value(value).ok_or_else(|| {
        anyhow!("the context must be a JSON object, like {{\"targetingKey\": \"user-1\"}}")
    })?;
    if let Some(key) = &args.key {
        context = context.set(sluice_core::TARGETING_KEY, key.clone());
    }
    Ok(context)
}

fn to_json(key: &str, evaluation: &Evaluation<'_>) -> Value {
    json!({
        "key": key,
        "value": evaluation.value,
        "variant": evaluation.variant,
        "reason": evaluation.reason.as_str(),
        "errorCode": evaluation.error.map(ErrorCode::as_str),
        "errorMessage": evaluation.error_message,
        "rule": evaluation.rule.map(|rule| json!({"index": rule.index, "name": rule.name})),
        "segment": evaluation.segment,
        "prerequisite": evaluation.prerequisite,
        "metadata": evaluation.flag.map(|flag| &flag.metadata),
    })
}

fn explain(evaluation: &Evaluation<'_>) -> String {
    let mut why = Vec::new();
    if let Some(rule) = evaluation.rule {
        match rule.name {
            Some(name) => why.push(format!("rule {} `{name}`", rule.index)),
            None => why.push(format!("rule {}", rule.index)),
        }
    }
    if let Some(segment) = evaluation.segment {
        why.push(format!("via segment `{segment}`"));
    }
    if let Some(prerequisite) = evaluation.prerequisite {
        why.push(format!("prerequisite `{prerequisite}` not met"));
    }
    if let Some(code) = evaluation.error {
        let message = evaluation.error_message.as_deref().unwrap_or_default();
        why.push(format!("{}: {message}", code.as_str()));
    }
    why.join(", ")
}

fn print_text(out: &mut impl Write, key: &str, evaluation: &Evaluation<'_>) -> std::io::Result<()> {
    let value = evaluation
        .value
        .map_or_else(|| "(caller's default)".to_owned(), Value::to_string);
    let variant = evaluation.variant.unwrap_or("-");
    write!(
        out,
        "{key} = {value}  variant={variant} reason={}",
        evaluation.reason.as_str()
    )?;
    let why = explain(evaluation);
    if !why.is_empty() {
        write!(out, "  ({why})")?;
    }
    writeln!(out)
}

/// Evaluates and prints, as JSON with the global `--json`. Exits 1 when the file is invalid
/// or the flag does not exist.
pub fn run(args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let source = match read_source(&args.file) {
        Ok(source) => source,
        Err(LoadError::Io(error)) => return Err(error),
        Err(LoadError::Invalid(errors)) => {
            bail!("{}: invalid flag file\n{errors}", args.file.display())
        }
    };
    let engine: Engine = source
        .compile(args.env.as_deref())
        .map_err(|errors| anyhow!("{}: invalid flag file\n{errors}", args.file.display()))?;
    let context = read_context(args)?;
    let results: Vec<(String, Evaluation<'_>)> = match &args.flag {
        Some(flag) if !args.all => vec![(flag.clone(), engine.evaluate(flag, &context))],
        _ => engine
            .evaluate_all(&context)
            .map(|(key, evaluation)| (key.to_owned(), evaluation))
            .collect(),
    };
    let mut stdout = std::io::stdout().lock();
    if json {
        let items: Vec<Value> = results.iter().map(|(key, e)| to_json(key, e)).collect();
        let document = if args.all {
            Value::Array(items)
        } else {
            items.into_iter().next().unwrap_or_default()
        };
        writeln!(stdout, "{}", serde_json::to_string_pretty(&document)?)?;
    } else {
        for (key, evaluation) in &results {
            print_text(&mut stdout, key, evaluation)?;
        }
    }
    let not_found = results
        .iter()
        .any(|(_, e)| e.error == Some(ErrorCode::FlagNotFound));
    Ok(if not_found {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
