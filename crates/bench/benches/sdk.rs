//! SDK evaluation: `sluice::Client::bool` against yggdrasil's `is_enabled`, one thread.
//!
//! Four subjects evaluate the same two workloads (see `sluice_bench::workload`): yggdrasil,
//! a file-mode client, a server-mode client with telemetry on (each evaluation also counts an
//! exposure and notes the thread's active variant) and one with `.telemetry(false)`. The
//! clients add the snapshot load and the override check to the engine's own evaluation.
//!
//! After the criterion groups it prints the medians criterion just wrote, yggdrasil's time
//! over each client's (higher is better for Sluice), and what telemetry costs per
//! evaluation. For throughput on 2 threads, see `src/bin/sdk-throughput.rs`;
//! `bench/sdk-throughput.sh` runs both.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::Criterion;
use sluice_bench::criterion_files::{self, fastest_ns, median_ns};
use sluice_bench::sdk::{SUBJECTS, Subjects};
use sluice_bench::workload::{WORKLOADS, contexts};

fn group_name(workload: &str) -> String {
    format!("sdk_{workload}")
}

fn bench(c: &mut Criterion, subjects: &Subjects) {
    let (sluice_context, unleash_context) = contexts();
    for (workload, _, flag) in WORKLOADS {
        let mut group = c.benchmark_group(group_name(workload));
        group.bench_function("yggdrasil", |b| {
            b.iter(|| {
                subjects
                    .yggdrasil
                    .is_enabled(black_box(flag), black_box(&unleash_context), &None)
            });
        });
        for name in &SUBJECTS[1..] {
            let Some(client) = subjects.client(name) else {
                continue;
            };
            group.bench_function(*name, |b| {
                b.iter(|| client.bool(black_box(flag), black_box(&sluice_context), false));
            });
        }
        group.finish();
    }
}

fn show(ns: Option<f64>) -> String {
    ns.map_or_else(|| "not run".to_owned(), |ns| format!("{ns:.1} ns"))
}

fn ratio(theirs: Option<f64>, ours: Option<f64>) -> String {
    match (theirs, ours) {
        (Some(theirs), Some(ours)) if ours > 0.0 => format!("{:.2}×", theirs / ours),
        _ => "–".to_owned(),
    }
}

fn print_table(since: SystemTime) {
    let directory = criterion_files::directory();
    println!();
    println!(
        "Medians from this run (criterion estimates in {}); ratios are yggdrasil's time over Sluice's, by median and by fastest sample:",
        directory.display()
    );
    println!();
    println!(
        "| workload | yggdrasil | file | server | server, no telemetry | ygg / file | ygg / server | ygg / server (fastest) | telemetry cost |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (workload, label, _) in WORKLOADS {
        let group = group_name(workload);
        let median = |name: &str| median_ns(&directory, &group, name, since);
        let fastest = |name: &str| fastest_ns(&directory, &group, name, since);
        let (ygg, file, server, quiet) = (
            median("yggdrasil"),
            median("file"),
            median("server"),
            median("server_no_telemetry"),
        );
        let cost = match (server, quiet) {
            (Some(server), Some(quiet)) => format!("{:+.1} ns", server - quiet),
            _ => "–".to_owned(),
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {cost} |",
            show(ygg),
            show(file),
            show(server),
            show(quiet),
            ratio(ygg, file),
            ratio(ygg, server),
            ratio(fastest("yggdrasil"), fastest("server")),
        );
    }
}

fn main() {
    let started = SystemTime::now();
    let subjects = match Subjects::start() {
        Ok(subjects) => subjects,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    let mut criterion = Criterion::default()
        .configure_from_args()
        .output_directory(&criterion_files::directory());
    bench(&mut criterion, &subjects);
    criterion.final_summary();
    if criterion_files::measuring() {
        print_table(started);
    }
}
