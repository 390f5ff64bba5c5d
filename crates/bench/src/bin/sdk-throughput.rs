//! `sdk-throughput`: evaluations per second on N threads, Sluice's SDK against yggdrasil, in
//! one run.
//!
//! Each subject (yggdrasil `is_enabled`; `sluice::Client::bool` in file mode, in server mode
//! with telemetry, and in server mode without) runs on 1 and then 2 threads, each thread
//! evaluating one workload's flag in a loop for a fixed time; the subjects take turns, for
//! several rounds, and each figure is the median of its rounds. Ratios are Sluice's
//! evaluations per second over yggdrasil's from the same run. Criterion, which measures one
//! thread, is in `benches/sdk.rs`; `bench/sdk-throughput.sh` runs both.
//!
//! Two rates are printed. Wall clock: evaluations over elapsed time, what a quiet machine
//! with a core per thread shows. CPU time: each thread's evaluations over the CPU time the
//! kernel gave it (`/proc/thread-self/schedstat`), summed over threads, which is what the
//! threads would do with a core each; on a shared machine, where other work takes the cores
//! away, it is the steadier figure. Contention between the threads (shared cache lines)
//! costs CPU time too, so it shows in both.
//!
//! Usage: `sdk-throughput [--seconds S] [--rounds R] [--threads 1,2]`.

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_bench::sdk::{SUBJECTS, Subjects};
use sluice_bench::workload::{WORKLOADS, contexts};

/// Evaluations between looks at the stop flag.
const BATCH: u64 = 256;

struct Options {
    seconds: f64,
    rounds: usize,
    threads: Vec<usize>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 2.0,
        rounds: 3,
        threads: vec![1, 2],
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value"));
        match argument.as_str() {
            "--seconds" => {
                options.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            "--rounds" => {
                options.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?;
            }
            "--threads" => {
                options.threads = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|e| format!("--threads: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.rounds == 0 || options.threads.contains(&0) || options.threads.is_empty() {
        return Err("rounds and threads must be positive".into());
    }
    if options.seconds.is_nan() || options.seconds <= 0.0 {
        return Err("seconds must be positive".into());
    }
    Ok(options)
}

/// The CPU time this thread has run, from the scheduler's statistics.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanoseconds))
}

/// Evaluations per second, by the wall clock and by CPU time.
#[derive(Debug, Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: Option<f64>,
}

/// Runs `subject` on `threads` threads for `duration`.
fn run(
    subjects: &Arc<Subjects>,
    subject: &'static str,
    flag: &'static str,
    threads: usize,
    duration: Duration,
) -> Rate {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let subjects = Arc::clone(subjects);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (sluice_context, unleash_context) = contexts();
                let client = subjects.client(subject);
                let mut count = 0_u64;
                let cpu_before = thread_cpu();
                while !stop.load(Ordering::Relaxed) {
                    match client {
                        Some(client) => {
                            for _ in 0..BATCH {
                                black_box(client.bool(
                                    black_box(flag),
                                    black_box(&sluice_context),
                                    false,
                                ));
                            }
                        }
                        None => {
                            for _ in 0..BATCH {
                                black_box(subjects.yggdrasil.is_enabled(
                                    black_box(flag),
                                    black_box(&unleash_context),
                                    &None,
                                ));
                            }
                        }
                    }
                    count += BATCH;
                }
                let cpu = thread_cpu()
                    .zip(cpu_before)
                    .map(|(after, before)| after.saturating_sub(before));
                (count, cpu)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u64, Option<Duration>)> = workers
        .into_iter()
        .map(|worker| worker.join().unwrap_or((0, None)))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = results.iter().map(|(count, _)| count).sum();
    let cpu = results
        .iter()
        .map(|&(count, cpu)| {
            cpu.filter(|cpu| !cpu.is_zero())
                .map(|cpu| count as f64 / cpu.as_secs_f64())
        })
        .sum();
    Rate {
        wall: total as f64 / elapsed,
        cpu,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn millions(rate: f64) -> String {
    format!("{:.1}M", rate / 1e6)
}

/// One measured row: the workload, the threads, and the rate of each subject.
type Row = (&'static str, usize, Vec<f64>);

fn table(title: &str, rows: &[Row]) {
    println!();
    println!("{title}:");
    println!();
    println!(
        "| workload | threads | yggdrasil | file | server | server, no telemetry | file / ygg | server / ygg | server, no telemetry / ygg |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, threads, rates) in rows {
        let ratio = |index: usize| format!("{:.2}×", rates[index] / rates[0]);
        println!(
            "| {label} | {threads} | {} | {} | {} | {} | {} | {} | {} |",
            millions(rates[0]),
            millions(rates[1]),
            millions(rates[2]),
            millions(rates[3]),
            ratio(1),
            ratio(2),
            ratio(3),
        );
    }
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let subjects = match Subjects::start() {
        Ok(subjects) => Arc::new(subjects),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let duration = Duration::from_secs_f64(options.seconds);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "Evaluations per second, median of {} rounds of {:.1} s per subject, on {cores} cores (load average at start: {}).",
        options.rounds,
        options.seconds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut wall: Vec<Row> = Vec::new();
    let mut cpu: Vec<Row> = Vec::new();
    for (_, label, flag) in WORKLOADS {
        for &threads in &options.threads {
            let mut rates: Vec<Vec<Rate>> = vec![Vec::new(); SUBJECTS.len()];
            for _ in 0..options.rounds {
                for (index, subject) in SUBJECTS.iter().enumerate() {
                    rates[index].push(run(&subjects, subject, flag, threads, duration));
                }
            }
            let walls = rates
                .iter()
                .map(|rounds| median(rounds.iter().map(|rate| rate.wall).collect()))
                .collect();
            wall.push((label, threads, walls));
            let cpus: Option<Vec<f64>> = rates
                .iter()
                .map(|rounds| {
                    rounds
                        .iter()
                        .map(|rate| rate.cpu)
                        .collect::<Option<Vec<f64>>>()
                        .map(median)
                })
                .collect();
            if let Some(cpus) = cpus {
                cpu.push((label, threads, cpus));
            }
        }
    }
    table("By the wall clock", &wall);
    if !cpu.is_empty() {
        table(
            "By CPU time (evaluations per CPU-second, summed over threads)",
            &cpu,
        );
        println!();
        println!("CPU time per evaluation on one thread:");
        println!();
        println!(
            "| workload | yggdrasil | file | server | server, no telemetry | telemetry cost |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (label, threads, rates) in &cpu {
            if *threads != 1 {
                continue;
            }
            let ns: Vec<f64> = rates.iter().map(|rate| 1e9 / rate).collect();
            println!(
                "| {label} | {:.1} ns | {:.1} ns | {:.1} ns | {:.1} ns | {:+.1} ns |",
                ns[0],
                ns[1],
                ns[2],
                ns[3],
                ns[2] - ns[3]
            );
        }
    }
    let stats = subjects.server.telemetry_stats();
    println!();
    println!(
        "Telemetry of the server client meanwhile: {} batches sent, {} dropped.",
        stats.batches_sent, stats.dropped
    );
    ExitCode::SUCCESS
}
