//! Evaluation benchmarks: Sluice's engine against Unleash's `unleash-yggdrasil`, in one run.
//!
//! Three workloads, each built equivalently for both engines:
//!
//! - (a) `a_no_rules`: a boolean flag with no targeting.
//! - (b) `b_three_rules`: segment membership (an `ends_with` condition on the email), a
//!   semver condition (`app.version semver_lt 2.0.0`) and a 10% split. In Unleash terms, a
//!   `flexibleRollout` strategy at 10% with a segment and a `SEMVER_LT` constraint.
//! - (c) `c_bulk_200`: every one of 200 flags for one context. Sluice collects
//!   `Engine::evaluate_all` into a `Vec`; yggdrasil runs `resolve_all`. The 200 flags are a
//!   quarter each of: on without rules, switched off, (b), and a 50/50 string experiment
//!   (for Unleash, a feature with two variants).
//!
//! Sluice's (a) and (b) call `Engine::boolean` and keep its whole result (value, variant,
//! reason, rule, segment, flag metadata) alive through `black_box`; yggdrasil's return a
//! `bool` from `is_enabled`. Before measuring, both engines evaluate 4,000 contexts and must
//! agree on (a) and on who passes the segment and version gates of (b), and serve roughly 10%
//! of those; bucketing differs between them, so not the same 10%.
//!
//! After the criterion groups, the benchmark reads the medians criterion just wrote to
//! `<target>/criterion/<group>/<engine>/new/estimates.json` and prints a table of
//! yggdrasil time / Sluice time. A second ratio compares the fastest sample of each (from
//! `sample.json`), which other work on a shared machine disturbs least. Only files written
//! during this run are read, since numbers are only comparable within one run.
//! `bench/eval.sh` at the workspace root runs it.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::Criterion;
use serde_json::{Value, json};
use sluice_core::{Context, Engine, Format, Source};
use unleash_yggdrasil::{ClientFeatures, EngineState};

/// The benchmark groups, in the order they run and are tabulated.
const GROUPS: [(&str, &str); 3] = [
    ("a_no_rules", "(a) boolean flag, no rules"),
    ("b_three_rules", "(b) segment + semver + 10% split"),
    ("c_bulk_200", "(c) all 200 flags, one context"),
];

/// The flag (a) evaluates.
const STATIC_FLAG: &str = "static-0";
/// The flag (b) evaluates.
const TARGETED_FLAG: &str = "targeted-0";
/// How many flags the bulk workload holds.
const BULK_FLAGS: usize = 200;

/// The kinds of flag the workloads are made of, a quarter of the bulk set each.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// On, no targeting.
    Static,
    /// Switched off.
    Disabled,
    /// Segment, semver and a 10% split: workload (b).
    Targeted,
    /// A 50/50 string experiment for everyone.
    Experiment,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Static,
        Kind::Disabled,
        Kind::Targeted,
        Kind::Experiment,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Kind::Static => "static",
            Kind::Disabled => "disabled",
            Kind::Targeted => "targeted",
            Kind::Experiment => "experiment",
        }
    }
}

/// The flag names of a set of `count` flags: kinds in rotation, numbered per kind.
fn flag_names(count: usize) -> Vec<(String, Kind)> {
    (0..count)
        .map(|i| {
            let kind = Kind::ALL[i % Kind::ALL.len()];
            (format!("{}-{}", kind.prefix(), i / Kind::ALL.len()), kind)
        })
        .collect()
}

/// A Sluice flags document (JSON) for these flags.
fn sluice_document(flags: &[(String, Kind)]) -> String {
    let boolean_variants = json!({ "on": true, "off": false });
    let definitions: serde_json::Map<String, Value> = flags
        .iter()
        .map(|(name, kind)| {
            let definition = match kind {
                Kind::Static => json!({
                    "type": "boolean",
                    "variants": boolean_variants,
                    "default_variant": "on",
                }),
                Kind::Disabled => json!({
                    "type": "boolean",
                    "variants": boolean_variants,
                    "default_variant": "on",
                    "off_variant": "off",
                    "enabled": false,
                }),
                Kind::Targeted => json!({
                    "type": "boolean",
                    "variants": boolean_variants,
                    "default_variant": "off",
                    "rules": [{
                        "name": "staff-on-old-apps",
                        "when": [
                            { "segment": "staff" },
                            { "attribute": "app.version", "op": "semver_lt", "value": "2.0.0" },
                        ],
                        "split": [
                            { "variant": "on", "weight": 10_000 },
                            { "variant": "off", "weight": 90_000 },
                        ],
                    }],
                }),
                Kind::Experiment => json!({
                    "type": "string",
                    "variants": { "control": "control", "treatment": "treatment" },
                    "default_variant": "control",
                    "rules": [{
                        "split": [
                            { "variant": "control", "weight": 50_000 },
                            { "variant": "treatment", "weight": 50_000 },
                        ],
                    }],
                }),
            };
            (name.clone(), definition)
        })
        .collect();
    json!({
        "segments": {
            "staff": {
                "when": [{ "attribute": "email", "op": "ends_with", "value": "@example.com" }],
            },
        },
        "flags": definitions,
    })
    .to_string()
}

/// The equivalent Unleash client features (JSON) for these flags.
fn unleash_document(flags: &[(String, Kind)]) -> Value {
    let features: Vec<Value> = flags
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Static => json!({
                "name": name,
                "enabled": true,
                "strategies": [{ "name": "default", "parameters": {} }],
            }),
            Kind::Disabled => json!({
                "name": name,
                "enabled": false,
                "strategies": [{ "name": "default", "parameters": {} }],
            }),
            Kind::Targeted => json!({
                "name": name,
                "enabled": true,
                "strategies": [{
                    "name": "flexibleRollout",
                    "parameters": { "rollout": "10", "stickiness": "default", "groupId": name },
                    "segments": [1],
                    "constraints": [
                        { "contextName": "appVersion", "operator": "SEMVER_LT", "value": "2.0.0" },
                    ],
                }],
            }),
            Kind::Experiment => json!({
                "name": name,
                "enabled": true,
                "strategies": [{ "name": "default", "parameters": {} }],
                "variants": [
                    {
                        "name": "control",
                        "weight": 500,
                        "stickiness": "default",
                        "payload": { "type": "string", "value": "control" },
                    },
                    {
                        "name": "treatment",
                        "weight": 500,
                        "stickiness": "default",
                        "payload": { "type": "string", "value": "treatment" },
                    },
                ],
            }),
        })
        .collect();
    json!({
        "version": 2,
        "features": features,
        "segments": [{
            "id": 1,
            "constraints": [
                { "contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"] },
            ],
        }],
        "query": null,
    })
}

/// Both engines loaded with the same flags.
struct Engines {
    sluice: Engine,
    unleash: EngineState,
}

fn engines(count: usize) -> Result<Engines, String> {
    let flags = flag_names(count);
    let sluice = Source::parse(Some("bench.json"), &sluice_document(&flags), Format::Json)
        .and_then(|source| source.compile(Some("production")))
        .map_err(|errors| format!("the Sluice flags do not compile: {errors}"))?;
    let features: ClientFeatures = serde_json::from_value(unleash_document(&flags))
        .map_err(|error| format!("the Unleash features do not parse: {error}"))?;
    let unleash = EngineState::default();
    if let Some(warnings) = unleash.apply_client_features(features) {
        let messages: Vec<String> = warnings.into_iter().map(|w| w.message).collect();
        return Err(format!(
            "yggdrasil rejected the features: {}",
            messages.join("; ")
        ));
    }
    Ok(Engines { sluice, unleash })
}

/// A context that matches the segment and the semver condition, for both engines.
fn contexts() -> (Context, unleash_yggdrasil::Context) {
    let key = "user-4711";
    let email = "ada@example.com";
    let version = "1.4.2";
    let sluice = Context::with_key(key)
        .set("email", email)
        .set("app", json!({ "version": version }));
    let unleash = unleash_yggdrasil::Context {
        user_id: Some(key.to_owned()),
        properties: Some(HashMap::from([
            ("email".to_owned(), email.to_owned()),
            ("appVersion".to_owned(), version.to_owned()),
        ])),
        ..unleash_yggdrasil::Context::default()
    };
    (sluice, unleash)
}

/// Checks that both engines decide the same, so the workloads really are equivalent.
///
/// The static and disabled flags must agree exactly. Bucketing differs between the engines
/// (hash input and scale), so on the targeted flag each engine may only serve "on" when the
/// segment and version gates pass, and each must do so for roughly 10% of those keys.
fn check_agreement(engines: &Engines) -> Result<(), String> {
    let (mut gated, mut ours_on, mut theirs_on) = (0_u32, 0_u32, 0_u32);
    for i in 0..4_000 {
        let key = format!("user-{i}");
        let email = if i % 3 == 0 {
            "x@elsewhere.org"
        } else {
            "x@example.com"
        };
        let version = if i % 5 == 0 { "2.1.0" } else { "1.9.9" };
        let sluice_context = Context::with_key(key.as_str())
            .set("email", email)
            .set("app", json!({ "version": version }));
        let unleash_context = unleash_yggdrasil::Context {
            user_id: Some(key.clone()),
            properties: Some(HashMap::from([
                ("email".to_owned(), email.to_owned()),
                ("appVersion".to_owned(), version.to_owned()),
            ])),
            ..unleash_yggdrasil::Context::default()
        };
        let passes_gates = email.ends_with("@example.com") && version.starts_with('1');
        gated += u32::from(passes_gates);
        for flag in [STATIC_FLAG, "disabled-0", TARGETED_FLAG] {
            let ours = engines.sluice.boolean(flag, &sluice_context, false).value;
            let theirs = engines.unleash.is_enabled(flag, &unleash_context, &None);
            let consistent = if flag == TARGETED_FLAG {
                ours_on += u32::from(ours);
                theirs_on += u32::from(theirs);
                passes_gates || (!ours && !theirs)
            } else {
                ours == theirs
            };
            if !consistent {
                return Err(format!(
                    "engines disagree on {flag} for {key}: {ours} vs {theirs}"
                ));
            }
        }
    }
    let plausible = gated / 20..gated / 5;
    if !plausible.contains(&ours_on) || !plausible.contains(&theirs_on) {
        return Err(format!(
            "the 10% split is off: of {gated} gated keys, Sluice served {ours_on} and yggdrasil {theirs_on}"
        ));
    }
    Ok(())
}

fn bench_no_rules(c: &mut Criterion, engines: &Engines) {
    let (sluice_context, unleash_context) = contexts();
    let mut group = c.benchmark_group(GROUPS[0].0);
    group.bench_function("sluice", |b| {
        b.iter(|| {
            let result =
                engines
                    .sluice
                    .boolean(black_box(STATIC_FLAG), black_box(&sluice_context), false);
            // Every field of the result is written, without copying it into criterion's slot.
            black_box(&result);
            result.value
        });
    });
    group.bench_function("yggdrasil", |b| {
        b.iter(|| {
            engines
                .unleash
                .is_enabled(black_box(STATIC_FLAG), black_box(&unleash_context), &None)
        });
    });
    group.finish();
}

fn bench_three_rules(c: &mut Criterion, engines: &Engines) {
    let (sluice_context, unleash_context) = contexts();
    let mut group = c.benchmark_group(GROUPS[1].0);
    group.bench_function("sluice", |b| {
        b.iter(|| {
            let result =
                engines
                    .sluice
                    .boolean(black_box(TARGETED_FLAG), black_box(&sluice_context), false);
            // Every field of the result is written, without copying it into criterion's slot.
            black_box(&result);
            result.value
        });
    });
    group.bench_function("yggdrasil", |b| {
        b.iter(|| {
            engines
                .unleash
                .is_enabled(black_box(TARGETED_FLAG), black_box(&unleash_context), &None)
        });
    });
    group.finish();
}

fn bench_bulk(c: &mut Criterion, engines: &Engines) {
    let (sluice_context, unleash_context) = contexts();
    let mut group = c.benchmark_group(GROUPS[2].0);
    group.bench_function("sluice", |b| {
        b.iter(|| {
            engines
                .sluice
                .evaluate_all(black_box(&sluice_context))
                .collect::<Vec<_>>()
        });
    });
    group.bench_function("yggdrasil", |b| {
        b.iter(|| {
            engines
                .unleash
                .resolve_all(black_box(&unleash_context), &None)
        });
    });
    group.finish();
}

/// Where criterion writes its estimates: `CRITERION_HOME`, else `<target>/criterion`.
///
/// The target directory is `CARGO_TARGET_DIR` when it is set to an absolute path, else the
/// one this benchmark was built in (`<target>/release/deps/evaluation-…`). The directory is
/// handed to criterion as well, so the table reads exactly what criterion wrote.
fn criterion_directory() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("criterion")
}

/// A file criterion wrote for one benchmark during this run, parsed.
fn criterion_file(
    directory: &Path,
    group: &str,
    engine: &str,
    name: &str,
    since: SystemTime,
) -> Option<Value> {
    let path = directory.join(group).join(engine).join("new").join(name);
    let written = std::fs::metadata(&path).ok()?.modified().ok()?;
    if written < since {
        return None;
    }
    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
}

/// The median time per iteration in nanoseconds, from criterion's estimates.
fn median_ns(directory: &Path, group: &str, engine: &str, since: SystemTime) -> Option<f64> {
    let estimates = criterion_file(directory, group, engine, "estimates.json", since)?;
    estimates.pointer("/median/point_estimate")?.as_f64()
}

/// The time per iteration of the fastest sample, in nanoseconds: the one least disturbed by
/// the other work on a shared machine.
fn fastest_ns(directory: &Path, group: &str, engine: &str, since: SystemTime) -> Option<f64> {
    let sample = criterion_file(directory, group, engine, "sample.json", since)?;
    let iterations = sample.get("iters")?.as_array()?;
    let times = sample.get("times")?.as_array()?;
    iterations
        .iter()
        .zip(times)
        .filter_map(|(n, t)| Some(t.as_f64()? / n.as_f64()?))
        .filter(|per_iteration| per_iteration.is_finite())
        .min_by(f64::total_cmp)
}

fn ratio(sluice: Option<f64>, unleash: Option<f64>) -> String {
    match (sluice, unleash) {
        (Some(s), Some(u)) if s > 0.0 => format!("{:.1}×", u / s),
        _ => "–".to_owned(),
    }
}

fn show_time(ns: Option<f64>) -> String {
    match ns {
        None => "not run".to_owned(),
        Some(ns) if ns >= 1_000.0 => format!("{:.1} µs", ns / 1_000.0),
        Some(ns) => format!("{ns:.1} ns"),
    }
}

fn print_table(directory: &Path, since: SystemTime) {
    println!();
    println!(
        "Medians from this run (criterion estimates in {}), and the ratio of the fastest samples:",
        directory.display()
    );
    println!();
    println!("| workload | Sluice | yggdrasil | yggdrasil / Sluice | fastest samples |");
    println!("|---|---:|---:|---:|---:|");
    for (group, label) in GROUPS {
        let sluice = median_ns(directory, group, "sluice", since);
        let unleash = median_ns(directory, group, "yggdrasil", since);
        let fastest = ratio(
            fastest_ns(directory, group, "sluice", since),
            fastest_ns(directory, group, "yggdrasil", since),
        );
        println!(
            "| {label} | {} | {} | {} | {fastest} |",
            show_time(sluice),
            show_time(unleash),
            ratio(sluice, unleash),
        );
    }
}

fn main() {
    let started = SystemTime::now();
    let engines = match engines(BULK_FLAGS).and_then(|e| check_agreement(&e).map(|()| e)) {
        Ok(engines) => engines,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    if engines.sluice.len() != BULK_FLAGS {
        eprintln!(
            "error: expected {BULK_FLAGS} Sluice flags, found {}",
            engines.sluice.len()
        );
        std::process::exit(1);
    }

    let directory = criterion_directory();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .output_directory(&directory);
    bench_no_rules(&mut criterion, &engines);
    bench_three_rules(&mut criterion, &engines);
    bench_bulk(&mut criterion, &engines);
    criterion.final_summary();

    // Only a real benchmark run (`cargo bench`) writes estimates; `cargo test --benches`
    // runs each benchmark once, and `--list` runs none.
    let arguments: Vec<String> = std::env::args().collect();
    let measured = arguments.iter().any(|a| a == "--bench")
        && !arguments.iter().any(|a| a == "--test" || a == "--list");
    if measured {
        print_table(&directory, started);
    }
}
