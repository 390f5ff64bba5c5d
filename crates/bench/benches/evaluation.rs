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
//! `bool` from `is_enabled`. Before measuring, both engines evaluate 1,000 contexts and must
//! agree on (a) and on who passes the segment and version gates of (b), and serve roughly 10%
//! of those (`sluice_bench::workload::check_agreement`); bucketing differs between them, so not the same 10%.
//!
//! After the criterion groups, the benchmark reads the medians criterion just wrote to
//! `<target>/criterion/<group>/<engine>/new/estimates.json` and prints a table of
//! yggdrasil time / Sluice time. A second ratio compares the fastest sample of each (from
//! `sample.json`), which other work on a shared machine disturbs least. Only files written
//! during this run are read, since numbers are only comparable within one run.
//! `bench/eval.sh` at the workspace root runs it.

use std::hint::black_box;
use std::path::Path;
use std::time::SystemTime;

use criterion::Criterion;
use sluice_bench::criterion_files::{self, fastest_ns, median_ns};
use sluice_bench::workload::{
    FLAGS, STATIC_FLAG, TARGETED_FLAG, check_agreement, contexts, sluice_document, unleash_engine,
};
use sluice_core::{Engine, Format, Source};
use unleash_yggdrasil::EngineState;

/// The benchmark groups, in the order they run and are tabulated.
const GROUPS: [(&str, &str); 3] = [
    ("a_no_rules", "(a) boolean flag, no rules"),
    ("b_three_rules", "(b) segment + semver + 10% split"),
    ("c_bulk_200", "(c) all 200 flags, one context"),
];

/// Both engines loaded with the same flags, checked to agree.
struct Engines {
    sluice: Engine,
    unleash: EngineState,
}

fn engines() -> Result<Engines, String> {
    let document = sluice_document().to_string();
    let sluice = Source::parse(Some("bench.json"), &document, Format::Json)
        .and_then(|source| source.compile(Some("production")))
        .map_err(|errors| format!("the Sluice flags do not compile: {errors}"))?;
    let unleash = unleash_engine()?;
    check_agreement(
        |flag, context| sluice.boolean(flag, context, false).value,
        &unleash,
    )?;
    if sluice.len() != FLAGS {
        return Err(format!(
            "expected {FLAGS} Sluice flags, found {}",
            sluice.len()
        ));
    }
    Ok(Engines { sluice, unleash })
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
    let engines = match engines() {
        Ok(engines) => engines,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    let directory = criterion_files::directory();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .output_directory(&directory);
    bench_no_rules(&mut criterion, &engines);
    bench_three_rules(&mut criterion, &engines);
    bench_bulk(&mut criterion, &engines);
    criterion.final_summary();
    if criterion_files::measuring() {
        print_table(&directory, started);
    }
}
