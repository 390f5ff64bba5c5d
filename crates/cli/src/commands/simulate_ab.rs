//! `sluice simulate --scenario ab-aa|ab-lift`: seeded A/B experiments read by the same
//! analysis as `sluice experiment report`, at every look, many runs; prints the false-call
//! rate (A/A) or the power (lift) beside what is expected. The engine is
//! `sluice_core::ab::simulate`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;
use sluice_core::ab::simulate::{AbRun, AbSettings, AbSummary, run, summarise};
use sluice_core::rollout::simulate::run_seed;

use crate::output::{print_json, print_table, table};

/// What `sluice simulate` passes for an A/B scenario.
pub struct AbArgs {
    /// `ab-aa` or `ab-lift`.
    pub scenario: String,
    /// Runs.
    pub runs: u64,
    /// Seed.
    pub seed: u64,
    /// The control's conversion rate.
    pub baseline: f64,
    /// The relative lift to detect (and, in `ab-lift`, the one simulated).
    pub lift: f64,
    /// Looks per run.
    pub looks: u32,
    /// Worker threads.
    pub threads: Option<usize>,
}

fn run_all(settings: &AbSettings, args: &AbArgs) -> Vec<AbRun> {
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .clamp(1, 256) as u64;
    let mut results: Vec<(u64, AbRun)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..args.runs)
                        .step_by(threads as usize)
                        .map(|i| (i, run(settings, run_seed(args.seed, i))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Runs an A/B scenario and prints its summary.
pub fn run_ab(args: &AbArgs, json_output: bool) -> anyhow::Result<ExitCode> {
    if !(args.baseline > 0.0 && args.baseline < 1.0) {
        bail!(
            "--baseline-conversion must be between 0 and 1, not {}",
            args.baseline
        );
    }
    if !(args.lift.is_finite() && args.lift > 0.0) || args.baseline * (1.0 + args.lift) >= 1.0 {
        bail!(
            "--lift must be a positive relative lift keeping the treatment's rate under 1, not {}",
            args.lift
        );
    }
    if args.looks == 0 || args.runs == 0 {
        bail!("--looks and --runs must be at least 1");
    }
    let aa = args.scenario == "ab-aa";
    let simulated_lift = if aa { 0.0 } else { args.lift };
    let mut settings = AbSettings::new(args.baseline, simulated_lift, args.lift)
        .context("no horizon reaches 80% power for that lift")?;
    settings.looks = args.looks;
    let results = run_all(&settings, args);
    let summary = summarise(&settings, &results);
    let mut stdout = std::io::stdout().lock();
    if json_output {
        print_json(
            &mut stdout,
            &json!({
                "scenario": args.scenario,
                "runs": args.runs,
                "seed": args.seed,
                "settings": settings,
                "summary": summary,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    print_summary(&mut stdout, args, &settings, &summary, aa)?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(
    out: &mut impl Write,
    args: &AbArgs,
    settings: &AbSettings,
    summary: &AbSummary,
    aa: bool,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} runs of `{}`, seed {}: conversion {} vs {}, {} looks up to {} exposures per arm (the horizon for 80% power at {:+.0}% lift), two-sided α = {}.",
        summary.runs,
        args.scenario,
        args.seed,
        percent(settings.baseline),
        percent(settings.treatment_rate()),
        settings.looks,
        settings.horizon_per_arm,
        args.lift * 100.0,
        settings.alpha,
    )?;
    let mut rows = table(&["measure", "value"]);
    let share = |n: u64| format!("{n} ({})", percent(n as f64 / summary.runs.max(1) as f64));
    rows.add_row(vec!["winner".into(), share(summary.winners)]);
    rows.add_row(vec!["loser".into(), share(summary.losers)]);
    rows.add_row(vec!["stopped by SRM".into(), share(summary.srm)]);
    rows.add_row(vec![
        "winner rate, 95% interval".into(),
        format!(
            "{} [{}, {}]",
            percent(summary.winner_rate),
            percent(summary.winner_rate_interval.0),
            percent(summary.winner_rate_interval.1)
        ),
    ]);
    if let Some(n) = summary.mean_exposures_to_winner {
        rows.add_row(vec![
            "mean exposures per arm to a winner".into(),
            format!("{n:.0}"),
        ]);
    }
    if let Some(n) = summary.fixed_horizon_per_arm {
        rows.add_row(vec![
            "fixed-horizon floor per arm (80% power)".into(),
            n.to_string(),
        ]);
    }
    print_table(out, &rows)?;
    if aa {
        let met = summary.false_call_rate <= settings.alpha;
        writeln!(
            out,
            "target: false winner or loser rate ≤ {}: {}, {}",
            percent(settings.alpha),
            percent(summary.false_call_rate),
            if met { "met" } else { "NOT met" }
        )?;
    } else {
        let met = summary.winner_rate_interval.1 >= summary.expected_power;
        writeln!(
            out,
            "target: power ≥ expected {} (final look alone): {}, {}",
            percent(summary.expected_power),
            percent(summary.winner_rate),
            if met { "met" } else { "NOT met" }
        )?;
    }
    Ok(())
}
