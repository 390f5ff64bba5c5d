//! The background shadow mode's cost on the control path: `control()` alone against
//! `client.experiment_async(key).control(..).candidate(..).run(&ctx)`, one thread.
//!
//! Three subjects over the same control (summing a 64-element cart): the control alone; the
//! experiment with its flag off (the flag is evaluated, nothing is queued); and the flag on for
//! everyone (every call queues a candidate run, or counts a drop when the 1,024-slot queue is
//! full). After the criterion group it prints the medians and each experiment's overhead
//! over the control measured in the same run, since the machine is noisy.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use criterion::Criterion;
use sluice::experiment::Outcome;
use sluice::{Client, Context};
use sluice_bench::criterion_files::{self, median_ns};

const GROUP: &str = "experiment_async";

const FLAGS: &str = "\
version: 1
flags:
  pricing-on:
    type: boolean
    variants: { \"on\": true, \"off\": false }
    default_variant: \"on\"
  pricing-off:
    type: boolean
    variants: { \"on\": true, \"off\": false }
    default_variant: \"off\"
";

fn price(cart: &[u64]) -> u64 {
    cart.iter().map(|x| x * 3 + 1).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("flags.yaml");
    std::fs::write(&path, FLAGS)?;
    let client = Client::from_file(&path)?;
    let context = Context::with_key("user-42");
    let cart: Arc<Vec<u64>> = Arc::new((0..64).collect());
    let dropped = Arc::new(AtomicU64::new(0));
    let since = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group(GROUP);
        group.bench_function("control", |b| {
            let cart = Arc::clone(&cart);
            b.iter(|| price(black_box(&cart)));
        });
        for (name, flag) in [("shadow_off", "pricing-off"), ("shadow_on", "pricing-on")] {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let control_cart = Arc::clone(&cart);
                    let candidate_cart = Arc::clone(&cart);
                    let counter = Arc::clone(&dropped);
                    client
                        .experiment_async(black_box(flag))
                        .control(move || price(&control_cart))
                        .candidate(move || price(&candidate_cart))
                        .compare_eq()
                        .publish(move |result| {
                            if result.outcome == Outcome::Dropped {
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                        .run(black_box(&context))
                });
            });
        }
        group.finish();
    }
    criterion.final_summary();
    let directory = criterion_files::directory();
    let median = |name: &str| median_ns(&directory, GROUP, name, since);
    let control = median("control");
    println!("\nmedians (this run):");
    for name in ["control", "shadow_off", "shadow_on"] {
        let m = median(name);
        let overhead = match (m, control) {
            (Some(m), Some(c)) if name != "control" => {
                format!(", +{:.1} ns over the control", m - c)
            }
            _ => String::new(),
        };
        println!(
            "  {name:<11} {}{overhead}",
            m.map_or_else(|| "not run".to_owned(), |m| format!("{m:.1} ns"))
        );
    }
    println!(
        "  runs dropped by a full queue while shadowing: {}",
        dropped.load(Ordering::Relaxed)
    );
    Ok(())
}
