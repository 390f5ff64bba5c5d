//! Validation and compilation of a [`FlagFile`] into an [`Engine`], in one pass.
//!
//! Every check pushes to one error list and carries on, so a file with ten problems reports
//! ten problems. Compilation succeeds only when the list stays empty. All environments'
//! overrides are checked whichever environment is compiled, so a file is either valid
//! everywhere or rejected.

use std::collections::{HashMap, HashSet};

use regex::RegexBuilder;
use serde_json::{Map, Value};

use crate::condition::{Accept, Condition, KeySet, OwnedVersion, Segment, Test, time_nanos};
use crate::engine::{BucketBy, Engine, Flag, FlagInfo, Prerequisite, Rule, Serve, Targeting};
use crate::error::{Error, ErrorKind, Errors, Path};
use crate::model::{
    ConditionDef, FlagDef, FlagFile, Operator, RuleDef, SegmentDef, WEIGHT_TOTAL, WeightDef,
};

/// The longest regex pattern a condition may use, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// The most memory one compiled regex may take.
pub const MAX_REGEX_SIZE: usize = 256 * 1024;
/// The longest key a flag or segment may have.
pub const MAX_KEY_LEN: usize = 256;

/// The longest goal event name: the longest event name telemetry accepts.
pub const MAX_GOAL_EVENT_LEN: usize = 256;

/// Checks a file without compiling it for any particular environment.
pub fn validate(file: &FlagFile) -> Result<(), Errors> {
    compile(file, None).map(|_| ())
}

/// Checks a file and compiles it for `environment`, or for the base definitions when `None`.
pub fn compile(file: &FlagFile, environment: Option<&str>) -> Result<Engine, Errors> {
    let mut compiler = Compiler::default();
    let engine = compiler.file(file, environment);
    if compiler.errors.is_empty() {
        Ok(engine)
    } else {
        Err(Errors(compiler.errors))
    }
}

/// Checks that a flag or segment key is usable in URLs, files and environment variables.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("keys must not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("keys must be at most {MAX_KEY_LEN} bytes"));
    }
    let valid = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid || key.starts_with(['.', '-']) {
        return Err(format!(
            "`{key}` is not a valid key: use letters, digits, `-`, `_` and `.`, starting with a letter, digit or `_`"
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Compiler {
    errors: Vec<Error>,
    segment_index: HashMap<String, usize>,
    flag_index: HashMap<String, usize>,
    /// Variant names of every flag, by flag index, for checking prerequisites.
    flag_variants: Vec<Vec<String>>,
}

/// Renders a JSON value for a message, briefly.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

impl Compiler {
    fn error(&mut self, kind: ErrorKind, path: Path, message: impl Into<String>) {
        self.errors.push(Error::new(kind, path, message));
    }

    fn file(&mut self, file: &FlagFile, environment: Option<&str>) -> Engine {
        let root = Path::root();
        if file.version != 1 {
            self.error(
                ErrorKind::Invalid,
                root.key("version"),
                format!(
                    "version {} is not supported; only version 1 exists",
                    file.version
                ),
            );
        }
        let environments = file.environment_names();
        if let Some(names) = &file.environments {
            let mut seen = HashSet::new();
            for (i, name) in names.iter().enumerate() {
                if let Err(message) = check_key(name) {
                    self.error(
                        ErrorKind::Invalid,
                        root.key("environments").index(i),
                        message,
                    );
                }
                if !seen.insert(name) {
                    self.error(
                        ErrorKind::Duplicate,
                        root.key("environments").index(i),
                        format!("environment `{name}` is listed twice"),
                    );
                }
            }
        }
        if let Some(environment) = environment
            && !environments.contains(&environment)
        {
            self.error(
                ErrorKind::UnknownReference,
                root.key("environments"),
                format!(
                    "environment `{environment}` is not defined; this file defines {}",
                    environments.join(", ")
                ),
            );
        }

        self.segment_index = file
            .segments
            .keys()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        self.flag_index = file
            .flags
            .keys()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        self.flag_variants = file
            .flags
            .values()
            .map(|def| def.variants.keys().cloned().collect())
            .collect();

        let segments: Vec<Segment> = file
            .segments
            .iter()
            .map(|(name, def)| self.segment(name, def, &root.key("segments").key(name.clone())))
            .collect();
        self.segment_cycles(file);

        let flags: Vec<Flag> = file
            .flags
            .iter()
            .map(|(key, def)| {
                let path = root.key("flags").key(key.clone());
                self.flag(key, def, &path, &environments, environment)
            })
            .collect();
        self.prerequisite_cycles(file);

        Engine::from_parts(flags, segments, environment.map(str::to_owned))
    }

    fn segment(&mut self, name: &str, def: &SegmentDef, path: &Path) -> Segment {
        if let Err(message) = check_key(name) {
            self.error(ErrorKind::Invalid, path.clone(), message);
        }
        let conditions = self.conditions(&def.when, &path.key("when"));
        let include: KeySet = def.include.iter().map(|k| Box::from(k.as_str())).collect();
        let exclude: KeySet = def.exclude.iter().map(|k| Box::from(k.as_str())).collect();
        Segment {
            name: name.into(),
            include,
            exclude,
            conditions: conditions.into(),
        }
    }

    fn segment_references(def: &SegmentDef) -> impl Iterator<Item = (usize, &str)> {
        def.when
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.segment.as_deref().map(|s| (i, s)))
    }

    fn segment_cycles(&mut self, file: &FlagFile) {
        let names: Vec<&String> = file.segments.keys().collect();
        let edges: Vec<Vec<(usize, usize)>> = file
            .segments
            .values()
            .map(|def| {
                Self::segment_references(def)
                    .filter_map(|(i, target)| self.segment_index.get(target).map(|&t| (i, t)))
                    .collect()
            })
            .collect();
        for cycle in find_cycles(&edges) {
            let (start, via) = cycle[0];
            let chain: Vec<&str> = cycle
                .iter()
                .map(|(node, _)| names[*node].as_str())
                .chain(std::iter::once(names[start].as_str()))
                .collect();
            self.error(
                ErrorKind::Cycle,
                Path::root()
                    .key("segments")
                    .key(names[start].clone())
                    .key("when")
                    .index(via),
                format!(
                    "segments refer to each other in a cycle: {}",
                    chain.join(" → ")
                ),
            );
        }
    }

    fn prerequisite_cycles(&mut self, file: &FlagFile) {
        let keys: Vec<&String> = file.flags.keys().collect();
        let edges: Vec<Vec<(usize, usize)>> = file
            .flags
            .values()
            .enumerate()
            .map(|(own, def)| {
                def.prerequisites
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| self.flag_index.get(&p.flag).map(|&t| (i, t)))
                    // A flag naming itself is reported where it is found.
                    .filter(|&(_, target)| target != own)
                    .collect()
            })
            .collect();
        for cycle in find_cycles(&edges) {
            let (start, via) = cycle[0];
            let chain: Vec<&str> = cycle
                .iter()
                .map(|(node, _)| keys[*node].as_str())
                .chain(std::iter::once(keys[start].as_str()))
                .collect();
            self.error(
                ErrorKind::Cycle,
                Path::root()
                    .key("flags")
                    .key(keys[start].clone())
                    .key("prerequisites")
                    .index(via),
                format!("prerequisites form a cycle: {}", chain.join(" → ")),
            );
        }
    }

    fn flag(
        &mut self,
        key: &str,
        def: &FlagDef,
        path: &Path,
        environments: &[&str],
        environment: Option<&str>,
    ) -> Flag {
        if let Err(message) = check_key(key) {
            self.error(ErrorKind::Invalid, path.clone(), message);
        }
        if def.variants.is_empty() {
            self.error(
                ErrorKind::Invalid,
                path.key("variants"),
                "a flag needs at least one variant",
            );
        }
        let mut variants = Vec::with_capacity(def.variants.len());
        for (name, value) in &def.variants {
            let variant_path = path.key("variants").key(name.clone());
            if name.is_empty() {
                self.error(
                    ErrorKind::Invalid,
                    variant_path.clone(),
                    "variant names must not be empty",
                );
            }
            if !def.flag_type.admits(value) {
                self.error(
                    ErrorKind::TypeMismatch,
                    variant_path,
                    format!(
                        "{} does not match this flag's type, {}",
                        show(value),
                        def.flag_type.as_str()
                    ),
                );
            }
            variants.push((Box::<str>::from(name.as_str()), value.clone()));
        }
        let variant_names: Vec<&str> = def.variants.keys().map(String::as_str).collect();

        let mut default_variant = self.variant(
            &variant_names,
            &def.default_variant,
            path.key("default_variant"),
        );
        let off_variant = def
            .off_variant
            .as_ref()
            .and_then(|name| self.variant(&variant_names, name, path.key("off_variant")));

        let mut prerequisites = Vec::new();
        for (i, prerequisite) in def.prerequisites.iter().enumerate() {
            let p_path = path.key("prerequisites").index(i);
            if prerequisite.flag == key {
                self.error(
                    ErrorKind::Cycle,
                    p_path.key("flag"),
                    "a flag cannot be its own prerequisite",
                );
                continue;
            }
            let Some(&target) = self.flag_index.get(&prerequisite.flag) else {
                self.error(
                    ErrorKind::UnknownReference,
                    p_path.key("flag"),
                    format!("no flag has the key `{}`", prerequisite.flag),
                );
                continue;
            };
            let target_variants = &self.flag_variants[target];
            match target_variants
                .iter()
                .position(|v| *v == prerequisite.variant)
            {
                Some(variant) => prerequisites.push(Prerequisite {
                    flag: target,
                    variant,
                }),
                None => {
                    let message = format!(
                        "`{}` is not a variant of flag `{}`; its variants are {}",
                        prerequisite.variant,
                        prerequisite.flag,
                        target_variants.join(", ")
                    );
                    self.error(ErrorKind::UnknownReference, p_path.key("variant"), message);
                }
            }
        }

        let flag_bucket_by = def
            .bucket_by
            .as_deref()
            .map(|b| self.bucket_by(b, path.key("bucket_by")));

        let mut rules = self.rules(
            &def.rules,
            &path.key("rules"),
            &variant_names,
            flag_bucket_by.as_ref(),
        );
        let mut enabled = def.enabled;
        for (env_name, env_override) in &def.environments {
            let env_path = path.key("environments").key(env_name.clone());
            if !environments.contains(&env_name.as_str()) {
                self.error(
                    ErrorKind::UnknownReference,
                    env_path.clone(),
                    format!(
                        "environment `{env_name}` is not defined; this file defines {}",
                        environments.join(", ")
                    ),
                );
            }
            let env_default = env_override.default_variant.as_ref().and_then(|name| {
                self.variant(&variant_names, name, env_path.key("default_variant"))
            });
            let env_rules = env_override.rules.as_ref().map(|rules| {
                self.rules(
                    rules,
                    &env_path.key("rules"),
                    &variant_names,
                    flag_bucket_by.as_ref(),
                )
            });
            if Some(env_name.as_str()) == environment {
                if let Some(env_enabled) = env_override.enabled {
                    enabled = env_enabled;
                }
                if env_default.is_some() {
                    default_variant = env_default;
                }
                if let Some(env_rules) = env_rules {
                    rules = env_rules;
                }
            }
        }

        if let Some(salt) = &def.salt
            && salt.is_empty()
        {
            self.error(
                ErrorKind::Invalid,
                path.key("salt"),
                "the salt must not be empty",
            );
        }
        if let Some(expires) = &def.expires
            && expires.parse::<jiff::civil::Date>().is_err()
        {
            self.error(
                ErrorKind::Invalid,
                path.key("expires"),
                format!("\"{expires}\" is not a date; write it as YYYY-MM-DD"),
            );
        }
        for (index, goal) in def.goals.iter().enumerate() {
            let at = path.key("goals").index(index);
            if goal.event.is_empty() || goal.event.len() > MAX_GOAL_EVENT_LEN {
                self.error(
                    ErrorKind::Invalid,
                    at.key("event"),
                    format!("a goal's event name is 1 to {MAX_GOAL_EVENT_LEN} characters"),
                );
            } else if def.goals[..index].iter().any(|g| g.event == goal.event) {
                self.error(
                    ErrorKind::Duplicate,
                    at.key("event"),
                    format!("`{}` is already a goal of this flag", goal.event),
                );
            }
        }
        let mut metadata = Map::new();
        for (name, value) in &def.metadata {
            if !(value.is_string() || value.is_number() || value.is_boolean()) {
                self.error(
                    ErrorKind::Invalid,
                    path.key("metadata").key(name.clone()),
                    format!(
                        "metadata values must be strings, numbers or booleans, not {}",
                        show(value)
                    ),
                );
            }
            metadata.insert(name.clone(), value.clone());
        }

        Flag {
            info: FlagInfo {
                key: key.to_owned(),
                flag_type: Some(def.flag_type),
                description: def.description.clone(),
                owner: def.owner.clone(),
                tags: def.tags.clone(),
                provenance: def.provenance,
                risk: def.risk,
                expires: def.expires.clone(),
                metadata,
            },
            variants: variants.into(),
            default_variant,
            off_variant,
            enabled,
            prerequisites: prerequisites.into(),
            targeting: Targeting::Rules(rules.into()),
            salt: def.salt.as_deref().unwrap_or(key).into(),
        }
    }

    fn variant(&mut self, names: &[&str], name: &str, path: Path) -> Option<usize> {
        let found = names.iter().position(|n| *n == name);
        if found.is_none() {
            let known = if names.is_empty() {
                "it has no variants".to_owned()
            } else {
                format!("its variants are {}", names.join(", "))
            };
            self.error(
                ErrorKind::UnknownReference,
                path,
                format!("`{name}` is not a variant of this flag; {known}"),
            );
        }
        found
    }

    fn bucket_by(&mut self, attribute: &str, path: Path) -> BucketBy {
        if attribute == crate::context::TARGETING_KEY {
            return BucketBy::TargetingKey;
        }
        BucketBy::Attribute(self.attribute_path(attribute, path))
    }

    fn attribute_path(&mut self, attribute: &str, path: Path) -> Box<[Box<str>]> {
        let parts: Vec<Box<str>> = attribute.split('.').map(Box::from).collect();
        if attribute.is_empty() || parts.iter().any(|p| p.is_empty()) {
            self.error(
                ErrorKind::Invalid,
                path,
                format!("\"{attribute}\" is not an attribute path; write names separated by dots, like `app.version`"),
            );
        }
        parts.into()
    }

    fn rules(
        &mut self,
        defs: &[RuleDef],
        path: &Path,
        variants: &[&str],
        flag_bucket_by: Option<&BucketBy>,
    ) -> Vec<Rule> {
        defs.iter()
            .enumerate()
            .filter_map(|(i, def)| self.rule(def, &path.index(i), variants, flag_bucket_by))
            .collect()
    }

    fn rule(
        &mut self,
        def: &RuleDef,
        path: &Path,
        variants: &[&str],
        flag_bucket_by: Option<&BucketBy>,
    ) -> Option<Rule> {
        let conditions = self.conditions(&def.when, &path.key("when"));
        let serve = match (&def.serve, &def.split) {
            (Some(_), Some(_)) => {
                self.error(
                    ErrorKind::Invalid,
                    path.clone(),
                    "a rule sets either `serve` or `split`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    ErrorKind::Invalid,
                    path.clone(),
                    "a rule needs `serve` (a variant) or `split` (weighted variants)",
                );
                None
            }
            (Some(variant), None) => {
                if def.bucket_by.is_some() {
                    self.error(
                        ErrorKind::Invalid,
                        path.key("bucket_by"),
                        "`bucket_by` only applies to a rule with a `split`",
                    );
                }
                self.variant(variants, variant, path.key("serve"))
                    .map(Serve::Variant)
            }
            (None, Some(arms)) => {
                let bucket_by = match &def.bucket_by {
                    Some(attribute) => self.bucket_by(attribute, path.key("bucket_by")),
                    None => flag_bucket_by.cloned().unwrap_or(BucketBy::TargetingKey),
                };
                self.split(arms, &path.key("split"), variants)
                    .map(|arms| Serve::Split { arms, bucket_by })
            }
        };
        Some(Rule {
            name: def.name.as_deref().map(Box::from),
            conditions: conditions.into(),
            serve: serve?,
        })
    }

    fn split(
        &mut self,
        arms: &[WeightDef],
        path: &Path,
        variants: &[&str],
    ) -> Option<Box<[(u32, usize)]>> {
        if arms.is_empty() {
            self.error(
                ErrorKind::InvalidWeights,
                path.clone(),
                "a split needs at least one arm",
            );
            return None;
        }
        let mut total: u64 = 0;
        let mut compiled = Vec::new();
        let mut seen = HashSet::new();
        let mut valid = true;
        for (i, arm) in arms.iter().enumerate() {
            let arm_path = path.index(i);
            if !seen.insert(arm.variant.as_str()) {
                self.error(
                    ErrorKind::Duplicate,
                    arm_path.key("variant"),
                    format!("variant `{}` appears twice in this split", arm.variant),
                );
                valid = false;
            }
            let variant = self.variant(variants, &arm.variant, arm_path.key("variant"));
            if arm.weight > WEIGHT_TOTAL {
                self.error(
                    ErrorKind::InvalidWeights,
                    arm_path.key("weight"),
                    format!("weight {} exceeds {WEIGHT_TOTAL}", arm.weight),
                );
                valid = false;
            }
            total += u64::from(arm.weight);
            match variant {
                Some(variant) if arm.weight > 0 => {
                    compiled.push((total.min(u64::from(WEIGHT_TOTAL)) as u32, variant));
                }
                Some(_) => {}
                None => valid = false,
            }
        }
        if total != u64::from(WEIGHT_TOTAL) {
            self.error(
                ErrorKind::InvalidWeights,
                path.clone(),
                format!(
                    "weights add up to {total}; they must add up to {WEIGHT_TOTAL} (100,000 is 100%, so 10% is 10000)"
                ),
            );
            valid = false;
        }
        valid.then(|| compiled.into())
    }

    fn conditions(&mut self, defs: &[ConditionDef], path: &Path) -> Vec<Condition> {
        defs.iter()
            .enumerate()
            .filter_map(|(i, def)| self.condition(def, &path.index(i)))
            .collect()
    }

    fn condition(&mut self, def: &ConditionDef, path: &Path) -> Option<Condition> {
        if let Some(segment) = &def.segment {
            for (field, present) in [
                ("attribute", def.attribute.is_some()),
                ("op", def.op.is_some()),
                ("value", def.value.is_some()),
                ("values", def.values.is_some()),
            ] {
                if present {
                    self.error(
                        ErrorKind::Invalid,
                        path.key(field),
                        format!(
                            "a segment condition takes only `segment` and `negate`, not `{field}`"
                        ),
                    );
                }
            }
            return match self.segment_index.get(segment) {
                Some(&index) => Some(Condition::Segment {
                    segment: index,
                    negate: def.negate,
                }),
                None => {
                    self.error(
                        ErrorKind::UnknownReference,
                        path.key("segment"),
                        format!("no segment is named `{segment}`"),
                    );
                    None
                }
            };
        }
        let (Some(attribute), Some(op)) = (&def.attribute, def.op) else {
            let missing = if def.attribute.is_none() {
                "attribute"
            } else {
                "op"
            };
            self.error(
                ErrorKind::Structure,
                path.clone(),
                format!("missing field `{missing}`: a condition needs `attribute` and `op`, or `segment`"),
            );
            return None;
        };
        let attribute_path = self.attribute_path(attribute, path.key("attribute"));
        let operands = self.operands(def, op, path)?;
        let (test, invert) = self.test(op, &operands)?;
        Some(Condition::Attribute {
            path: attribute_path,
            test,
            invert,
            negate: def.negate,
        })
    }

    /// The operands with their paths; `None` after reporting a problem.
    fn operands<'d>(
        &mut self,
        def: &'d ConditionDef,
        op: Operator,
        path: &Path,
    ) -> Option<Vec<(&'d Value, Path)>> {
        if op == Operator::Exists {
            if def.value.is_some() || def.values.is_some() {
                self.error(
                    ErrorKind::Invalid,
                    path.clone(),
                    "`exists` takes no `value` or `values`",
                );
                return None;
            }
            return Some(Vec::new());
        }
        let list_op = matches!(op, Operator::In | Operator::NotIn);
        match (&def.value, &def.values) {
            (Some(_), Some(_)) => {
                self.error(
                    ErrorKind::Invalid,
                    path.clone(),
                    "set either `value` or `values`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    ErrorKind::Structure,
                    path.clone(),
                    format!(
                        "missing field `value`: operator `{}` needs an operand",
                        op.as_str()
                    ),
                );
                None
            }
            (Some(Value::Array(items)), None) if list_op => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v, path.key("value").index(i)))
                    .collect(),
            ),
            (Some(value), None) => Some(vec![(value, path.key("value"))]),
            (None, Some(values)) => {
                if values.is_empty() {
                    self.error(
                        ErrorKind::Invalid,
                        path.key("values"),
                        "`values` must not be empty",
                    );
                    return None;
                }
                Some(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v, path.key("values").index(i)))
                        .collect(),
                )
            }
        }
    }

    /// Parses every operand for `op`, reporting each bad one.
    fn parse_all<T>(
        &mut self,
        operands: &[(&Value, Path)],
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Option<Box<[T]>> {
        let mut parsed = Vec::with_capacity(operands.len());
        let mut failed = false;
        for (value, path) in operands {
            match parse(value) {
                Ok(item) => parsed.push(item),
                Err(message) => {
                    self.error(ErrorKind::InvalidOperand, path.clone(), message);
                    failed = true;
                }
            }
        }
        (!failed).then(|| parsed.into())
    }

    fn test(&mut self, op: Operator, operands: &[(&Value, Path)]) -> Option<(Test, bool)> {
        let string = |value: &Value| -> Result<Box<str>, String> {
            value.as_str().map(Box::from).ok_or_else(|| {
                format!(
                    "{} is not a string; `{}` compares strings",
                    show(value),
                    op.as_str()
                )
            })
        };
        let number = |value: &Value| -> Result<f64, String> {
            value.as_f64().ok_or_else(|| {
                format!(
                    "{} is not a number; `{}` compares numbers",
                    show(value),
                    op.as_str()
                )
            })
        };
        let scalar = |value: &Value| -> Result<Value, String> {
            if value.is_string() || value.is_number() || value.is_boolean() {
                Ok(value.clone())
            } else {
                Err(format!(
                    "{} is not a string, number or boolean",
                    show(value)
                ))
            }
        };
        let version = |value: &Value| -> Result<OwnedVersion, String> {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{} is not a semver version string", show(value)))?;
            let parsed = semver::Version::parse(text)
                .map_err(|_| format!("\"{text}\" is not a semver version"))?;
            Ok(OwnedVersion {
                major: parsed.major,
                minor: parsed.minor,
                patch: parsed.patch,
                pre: parsed.pre.as_str().into(),
            })
        };
        let time = |value: &Value| -> Result<i128, String> {
            time_nanos(value).ok_or_else(|| {
                format!(
                    "{} is not an RFC 3339 time (like 2026-01-31T00:00:00Z) or Unix seconds",
                    show(value)
                )
            })
        };
        let regex = |value: &Value| -> Result<regex::Regex, String> {
            let pattern = value
                .as_str()
                .ok_or_else(|| format!("{} is not a regex string", show(value)))?;
            if pattern.len() > MAX_REGEX_LEN {
                return Err(format!(
                    "the pattern is {} bytes long; patterns may be at most {MAX_REGEX_LEN}",
                    pattern.len()
                ));
            }
            RegexBuilder::new(pattern)
                .size_limit(MAX_REGEX_SIZE)
                .dfa_size_limit(MAX_REGEX_SIZE)
                .build()
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(_) => {
                        format!(
                            "the pattern compiles larger than {MAX_REGEX_SIZE} bytes; simplify it"
                        )
                    }
                    other => format!(
                        "\"{pattern}\" is not a valid regex: {}",
                        regex_reason(&other.to_string())
                    ),
                })
        };
        let test = match op {
            Operator::Eq | Operator::In => (Test::Equals(self.parse_all(operands, scalar)?), false),
            Operator::Neq | Operator::NotIn => {
                (Test::Equals(self.parse_all(operands, scalar)?), true)
            }
            Operator::Contains => (Test::Contains(self.parse_all(operands, string)?), false),
            Operator::StartsWith => (Test::StartsWith(self.parse_all(operands, string)?), false),
            Operator::EndsWith => (Test::EndsWith(self.parse_all(operands, string)?), false),
            Operator::Matches => (Test::Matches(self.parse_all(operands, regex)?), false),
            Operator::Lt => (
                Test::Number(Accept::LT, self.parse_all(operands, number)?),
                false,
            ),
            Operator::Lte => (
                Test::Number(Accept::LTE, self.parse_all(operands, number)?),
                false,
            ),
            Operator::Gt => (
                Test::Number(Accept::GT, self.parse_all(operands, number)?),
                false,
            ),
            Operator::Gte => (
                Test::Number(Accept::GTE, self.parse_all(operands, number)?),
                false,
            ),
            Operator::SemverEq => (
                Test::Semver(Accept::EQ, self.parse_all(operands, version)?),
                false,
            ),
            Operator::SemverLt => (
                Test::Semver(Accept::LT, self.parse_all(operands, version)?),
                false,
            ),
            Operator::SemverLte => (
                Test::Semver(Accept::LTE, self.parse_all(operands, version)?),
                false,
            ),
            Operator::SemverGt => (
                Test::Semver(Accept::GT, self.parse_all(operands, version)?),
                false,
            ),
            Operator::SemverGte => (
                Test::Semver(Accept::GTE, self.parse_all(operands, version)?),
                false,
            ),
            Operator::Before => (
                Test::Time(Accept::LT, self.parse_all(operands, time)?),
                false,
            ),
            Operator::After => (
                Test::Time(Accept::GT, self.parse_all(operands, time)?),
                false,
            ),
            Operator::Exists => (Test::Exists, false),
        };
        Some(test)
    }
}

/// The last `error: ...` line of a regex syntax error, without the pattern diagram.
fn regex_reason(text: &str) -> String {
    match text.rsplit_once("error: ") {
        Some((_, reason)) => reason.trim().to_owned(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Finds the cycles in a graph given as, per node, its (edge label, target) pairs.
/// Each cycle is reported once, as (node, label of the edge leaving it) from its first node.
fn find_cycles(edges: &[Vec<(usize, usize)>]) -> Vec<Vec<(usize, usize)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut cycles = Vec::new();
    for start in 0..edges.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // An explicit stack of (node, next edge position); `trail` holds the active path.
        let mut stack = vec![(start, 0usize)];
        let mut trail: Vec<(usize, usize)> = Vec::new();
        marks[start] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(label, target)) = edges[node].get(*next) {
                *next += 1;
                match marks[target] {
                    Mark::New => {
                        trail.push((node, label));
                        marks[target] = Mark::Active;
                        stack.push((target, 0));
                    }
                    Mark::Active => {
                        let mut cycle: Vec<(usize, usize)> = trail
                            .iter()
                            .skip_while(|(n, _)| *n != target)
                            .copied()
                            .collect();
                        cycle.push((node, label));
                        cycles.push(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
                trail.pop();
            }
        }
    }
    cycles
}
