//! The compiled configuration of every environment, swapped whole on each change.
//!
//! Requests read the current [`Loaded`] through an `ArcSwap`, without locking. A reload
//! (from the store after a write, or from files in GitOps mode) compiles every environment,
//! and only when all of them compile does it replace what is served: an invalid edit keeps
//! the last good configuration and records the error for `/ready` and the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use sluice_core::{Context, Document, Engine, Evaluation, FlagFile, Format, Source};

use crate::answers::Answers;
use crate::dry_runs;
use crate::store::{ConfigSnapshot, StoredDryRun};
use sluice_core::dry_run::{StagedFlag, Tallies};

/// One environment's compiled configuration.
#[derive(Debug)]
pub struct EnvConfig {
    /// The environment name.
    pub environment: String,
    /// The compiled flags.
    pub engine: Engine,
    /// The configuration version it was compiled from.
    pub version: i64,
    /// What server SDKs receive: `{version, environment, format, flags}`, serialized once.
    pub payload: Arc<str>,
    /// OFREP answers prepared for `engine`, and its evaluation counters.
    pub answers: Answers,
    /// Running dry runs of this environment, by flag.
    pub dry_runs: HashMap<String, Arc<StagedFlag>>,
}

impl EnvConfig {
    /// Counts `served` against the staged rules when `flag` has a running dry run.
    #[inline]
    pub fn observe_dry_run(&self, flag: &str, served: &Evaluation<'_>, context: &Context) {
        if !self.dry_runs.is_empty()
            && let Some(staged) = self.dry_runs.get(flag)
        {
            staged.observe(served, context, crate::state::now_ms);
        }
    }
}

/// Every environment's configuration at one version.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The configuration version.
    pub version: i64,
    /// Compiled configurations by environment.
    pub environments: HashMap<String, Arc<EnvConfig>>,
    /// The serialized source document and running dry runs, to tell whether a reload changed
    /// anything.
    pub source: String,
}

/// The served configuration, plus the last reload error.
#[derive(Debug, Default)]
pub struct Configs {
    current: ArcSwap<Option<Arc<Loaded>>>,
    last_error: ArcSwap<Option<String>>,
}

/// Why a configuration could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading files failed.
    #[error("{0}")]
    Io(String),
    /// The definitions are invalid.
    #[error("{0}")]
    Invalid(sluice_core::Errors),
}

impl Configs {
    /// The configuration being served, once one has loaded.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full().as_ref().clone()
    }

    /// One environment's configuration.
    pub fn environment(&self, name: &str) -> Option<Arc<EnvConfig>> {
        // Borrow what is served rather than take a reference to all of it: this runs on
        // every evaluation request.
        let current = self.current.load();
        Option::as_ref(&current)?.environments.get(name).cloned()
    }

    /// The error of the last failed reload, cleared by the next successful one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.load_full().as_ref().clone()
    }

    /// Starts serving `loaded`.
    pub fn install(&self, loaded: Arc<Loaded>) {
        self.current.store(Arc::new(Some(loaded)));
        self.last_error.store(Arc::new(None));
    }

    /// Forgets the last reload error.
    pub fn clear_error(&self) {
        self.last_error.store(Arc::new(None));
    }

    /// Records a failed reload; what is served does not change.
    pub fn record_error(&self, error: String) {
        self.last_error.store(Arc::new(Some(error)));
    }
}

fn env_config(
    environment: &str,
    engine: Engine,
    version: i64,
    format: &str,
    flags: &Value,
    dry_runs: (HashMap<String, Arc<StagedFlag>>, Value),
) -> Arc<EnvConfig> {
    let (dry_runs, listed) = dry_runs;
    let mut payload = json!({
        "version": version,
        "environment": environment,
        "format": format,
        "flags": flags,
    });
    if !dry_runs.is_empty() {
        payload["dry_runs"] = listed;
    }
    Arc::new(EnvConfig {
        environment: environment.to_owned(),
        answers: Answers::new(&engine),
        engine,
        version,
        payload: payload.to_string().into(),
        dry_runs,
    })
}

/// Compiles a stored snapshot for every environment, with its running dry runs counting
/// into `tallies`.
pub fn compile_snapshot(snapshot: &ConfigSnapshot, tallies: &Tallies) -> Result<Loaded, LoadError> {
    compile_with(
        &Document::Sluice(snapshot.file.clone()),
        snapshot.config_version,
        &snapshot.dry_runs,
        tallies,
    )
}

/// Compiles a document for every environment it describes (flagd documents serve the
/// same flags in every default environment). Files have no dry runs.
pub fn compile_document(document: &Document, version: i64) -> Result<Loaded, LoadError> {
    compile_with(document, version, &[], &Tallies::default())
}

fn compile_with(
    document: &Document,
    version: i64,
    running: &[StoredDryRun],
    tallies: &Tallies,
) -> Result<Loaded, LoadError> {
    let mut environments = HashMap::new();
    let mut source;
    match document {
        Document::Sluice(file) => {
            let flags = serde_json::to_value(file).map_err(|e| LoadError::Io(e.to_string()))?;
            source = flags.to_string();
            for name in file.environment_names() {
                let engine = sluice_core::compile(file, Some(name)).map_err(LoadError::Invalid)?;
                environments.insert(
                    name.to_owned(),
                    env_config(
                        name,
                        engine,
                        version,
                        "sluice",
                        &flags,
                        dry_runs::compile_for(file, name, running, tallies),
                    ),
                );
            }
        }
        Document::Flagd(file) => {
            let flags = file.to_value();
            source = flags.to_string();
            for name in sluice_core::model::DEFAULT_ENVIRONMENTS {
                let engine = file.compile().map_err(LoadError::Invalid)?;
                environments.insert(
                    name.to_owned(),
                    env_config(
                        name,
                        engine,
                        version,
                        "flagd",
                        &flags,
                        (HashMap::new(), Value::Null),
                    ),
                );
            }
        }
    }
    // Running dry runs are part of what SDKs receive, so starting or stopping one is a new
    // configuration even though no flag changed.
    if !running.is_empty() {
        source.push_str(&json!(running).to_string());
    }
    Ok(Loaded {
        version,
        environments,
        source,
    })
}

/// Reads the GitOps source: one file in either format, or a directory of Sluice-format
/// files whose flags and segments are merged (a key defined twice is an error).
pub fn read_flags_path(path: &Path) -> Result<Document, LoadError> {
    if !path.is_dir() {
        return read_one(path);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| LoadError::Io(format!("cannot read {}: {e}", path.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    let mut merged = FlagFile::default();
    let mut errors = Vec::new();
    for file in &files {
        match read_one(file)? {
            Document::Sluice(part) => merge(&mut merged, part, file, &mut errors),
            Document::Flagd(_) if files.len() == 1 => return read_one(file),
            Document::Flagd(_) => {
                return Err(LoadError::Io(format!(
                    "{}: a flagd file must be the only file in a flags directory",
                    file.display()
                )));
            }
        }
    }
    if !errors.is_empty() {
        return Err(LoadError::Invalid(sluice_core::Errors(errors)));
    }
    Ok(Document::Sluice(merged))
}

fn merge(into: &mut FlagFile, part: FlagFile, file: &Path, errors: &mut Vec<sluice_core::Error>) {
    let duplicate = |kind: &str, key: &str| {
        let mut error = sluice_core::Error::new(
            sluice_core::ErrorKind::Duplicate,
            sluice_core::Path::root().key(kind).key(key),
            format!("`{key}` is also defined in another file of this directory"),
        );
        error.file = Some(file.display().to_string());
        error
    };
    if let Some(names) = part.environments {
        let existing = into.environments.get_or_insert_with(Vec::new);
        for name in names {
            if !existing.contains(&name) {
                existing.push(name);
            }
        }
    }
    for (key, segment) in part.segments {
        if into.segments.contains_key(&key) {
            errors.push(duplicate("segments", &key));
        } else {
            into.segments.insert(key, segment);
        }
    }
    for (key, flag) in part.flags {
        if into.flags.contains_key(&key) {
            errors.push(duplicate("flags", &key));
        } else {
            into.flags.insert(key, flag);
        }
    }
}

fn read_one(path: &Path) -> Result<Document, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Io(format!("cannot read {}: {e}", path.display())))?;
    let name = path.display().to_string();
    let source = Source::parse(Some(&name), &text, Format::from_file_name(&name))
        .map_err(LoadError::Invalid)?;
    // Compile once here so errors carry this file's line numbers.
    source.compile(None).map_err(LoadError::Invalid)?;
    Ok(source.into_document())
}
