//! `sluice simulate`: drive the real rollout controller and judge with synthetic traffic in
//! virtual time, many runs, and print how often it rolls back and how fast it detects.
//!
//! The engine is `sluice_core::rollout::simulate`; this command picks the settings, spreads
//! the runs over the machine's cores, shows progress on a terminal, and prints the summary.
//! It is a benchmark, not a test: it always exits 0 and says whether each target is met.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use sluice_core::rollout::simulate::{
    self, Regressed, RunResult, Scenario, Settings, Summary, run_seed, summarise,
};
use sluice_core::rollout::{Template, format_duration, parse_duration};

use crate::output::{print_json, print_table, table};

/// Arguments of `sluice simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `aa`: no difference between the arms. `regression`: the treatment's error rate times
    /// `--effect` (or its latency, with `--metric latency`). `low-traffic`: a regression at
    /// 20 exposures a minute. `ab-aa`: A/B experiments with no difference, read by the
    /// experiment report at every look. `ab-lift`: the treatment converts `--lift` better.
    #[arg(long, value_parser = ["aa", "regression", "low-traffic", "ab-aa", "ab-lift"])]
    scenario: String,
    /// How many runs.
    #[arg(long, default_value_t = 200)]
    runs: u64,
    /// The seed; the same seed gives the same figures.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The plan: a template's stages from its first stage open to everyone.
    #[arg(long, default_value = "standard", value_parser = ["standard", "cautious"])]
    template: String,
    /// The control's error rate.
    #[arg(long, value_name = "RATE")]
    baseline_error: Option<f64>,
    /// The factor on the treatment's regressed metric (2 for the error rate, 1.3 for
    /// latency by default; 1 makes any scenario an A/A).
    #[arg(long, value_name = "FACTOR")]
    effect: Option<f64>,
    /// Which metric the regression worsens.
    #[arg(long, default_value = "error_rate", value_parser = ["error_rate", "latency"])]
    metric: String,
    /// Exposures per minute, both arms together (default 1000, or 20 for `low-traffic`).
    #[arg(long, value_name = "PER_MIN")]
    traffic: Option<f64>,
    /// Virtual time between controller ticks.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    tick: String,
    /// A/B scenarios: the control's conversion rate.
    #[arg(long, default_value_t = 0.1, value_name = "RATE")]
    baseline_conversion: f64,
    /// A/B scenarios: the relative lift the horizon is sized for (80% power), and the one
    /// `ab-lift` simulates.
    #[arg(long, default_value_t = 0.1, value_name = "FRACTION")]
    lift: f64,
    /// A/B scenarios: how many times each run reads the report.
    #[arg(long, default_value_t = 20)]
    looks: u32,
    /// Worker threads; defaults to the available cores.
    #[arg(long)]
    threads: Option<usize>,
}

fn settings(args: &Args) -> anyhow::Result<Settings> {
    let scenario = Scenario::from_name(&args.scenario)
        .with_context(|| format!("unknown scenario `{}`", args.scenario))?;
    let template = Template::from_name(&args.template)
        .with_context(|| format!("unknown template `{}`", args.template))?;
    let mut settings = Settings::new(scenario, template);
    if args.metric == "latency" {
        settings.regressed = Regressed::Latency;
        if scenario != Scenario::Aa {
            settings.effect = 1.3;
        }
    }
    if let Some(rate) = args.baseline_error {
        if !(rate > 0.0 && rate < 1.0) {
            bail!("--baseline-error must be between 0 and 1, not {rate}");
        }
        settings.error_rate = rate;
    }
    if let Some(effect) = args.effect {
        if !(effect.is_finite() && effect > 0.0) {
            bail!("--effect must be a positive factor, not {effect}");
        }
        settings.effect = effect;
    }
    if settings.regressed == Regressed::ErrorRate && settings.treatment_error_rate() >= 1.0 {
        bail!("the treatment's error rate would reach 100%; lower --effect or --baseline-error");
    }
    if let Some(traffic) = args.traffic {
        if !(traffic.is_finite() && traffic > 0.0) {
            bail!("--traffic must be a positive number of exposures per minute, not {traffic}");
        }
        settings.traffic_per_min = traffic;
    }
    settings.tick = parse_duration(&args.tick).map_err(anyhow::Error::msg)?;
    if settings.tick.is_zero() {
        bail!("--tick must be longer than 0s");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(settings)
}

/// Runs the simulation and prints the summary.
pub fn run(args: &Args, json_output: bool) -> anyhow::Result<ExitCode> {
    if args.scenario.starts_with("ab-") {
        return super::simulate_ab::run_ab(
            &super::simulate_ab::AbArgs {
                scenario: args.scenario.clone(),
                runs: args.runs,
                seed: args.seed,
                baseline: args.baseline_conversion,
                lift: args.lift,
                looks: args.looks,
                threads: args.threads,
            },
            json_output,
        );
    }
    let settings = settings(args)?;
    let results = run_all(&settings, args.runs, args.seed, args.threads)?;
    let summary = summarise(&settings, &results);
    let mut stdout = std::io::stdout().lock();
    if json_output {
        print_json(
            &mut stdout,
            &json!({
                "scenario": settings.scenario.name(),
                "runs": args.runs,
                "seed": args.seed,
                "settings": settings,
                "summary": summary,
            }),
        )?;
    } else {
        print_summary(&mut stdout, &settings, &summary, args)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_all(
    settings: &Settings,
    runs: u64,
    seed: u64,
    threads: Option<usize>,
) -> anyhow::Result<Vec<RunResult>> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .clamp(1, 256);
    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(runs), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} runs, {elapsed} ({eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("simulating {}", settings.scenario.name()));
        bar
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<(u64, RunResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= runs {
                        break;
                    }
                    mine.push((index, simulate::run(settings, run_seed(seed, index))));
                    progress.inc(1);
                }
                if let Ok(mut all) = results.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    progress.finish_and_clear();
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a simulation thread panicked"))?;
    if results.len() as u64 != runs {
        bail!("only {} of {runs} runs finished", results.len());
    }
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

fn duration(seconds: f64) -> String {
    format_duration(Duration::from_secs_f64(seconds.max(0.0)))
}

fn print_summary(
    out: &mut impl Write,
    settings: &Settings,
    summary: &Summary,
    args: &Args,
) -> anyhow::Result<()> {
    let stages: Vec<String> = settings.plan.stages.iter().map(|s| s.label()).collect();
    let change = match settings.regressed {
        _ if settings.is_aa() => "no difference between the arms".to_owned(),
        Regressed::ErrorRate => format!(
            "error rate {} → {}",
            percent(settings.error_rate),
            percent(settings.treatment_error_rate())
        ),
        Regressed::Latency => format!(
            "latency ×{} (median {} ms, σ {})",
            settings.effect, settings.latency_median_ms, settings.latency_sigma
        ),
    };
    writeln!(
        out,
        "{} runs of `{}`, seed {}: the {} template's stages {}, {} exposures/min, {change}, ticks every {}.",
        summary.runs,
        settings.scenario.name(),
        args.seed,
        settings.template.name(),
        stages.join(" → "),
        settings.traffic_per_min,
        format_duration(settings.tick),
    )?;
    let mut rows = table(&["measure", "value"]);
    let share = |n: usize| format!("{n} ({})", percent(n as f64 / summary.runs.max(1) as f64));
    let rollback_name = if settings.is_aa() {
        "wrong rollbacks"
    } else {
        "detected (rolled back)"
    };
    rows.add_row(vec![rollback_name.to_owned(), share(summary.rolled_back)]);
    if summary.rolled_back > 0 && settings.plan.stages.len() > 1 {
        rows.add_row(vec![
            format!(
                "  of which at {}",
                stages.first().cloned().unwrap_or_default()
            ),
            summary.rolled_back_at_first_stage.to_string(),
        ]);
    }
    let counts = |map: &std::collections::BTreeMap<String, usize>| {
        map.iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !summary.rollbacks_by_metric.is_empty() {
        rows.add_row(vec![
            "  failed metrics".to_owned(),
            counts(&summary.rollbacks_by_metric),
        ]);
    }
    rows.add_row(vec!["completed".to_owned(), share(summary.completed)]);
    rows.add_row(vec![
        "paused (held past max_hold)".to_owned(),
        share(summary.paused),
    ]);
    if !summary.pauses_waiting_for.is_empty() {
        rows.add_row(vec![
            "  waiting for".to_owned(),
            counts(&summary.pauses_waiting_for),
        ]);
    }
    if summary.unfinished > 0 {
        rows.add_row(vec!["unfinished".to_owned(), share(summary.unfinished)]);
    }
    let what = if settings.is_aa() {
        "rollback"
    } else {
        "detect"
    };
    if let Some(samples) = summary.median_treatment_samples {
        rows.add_row(vec![
            format!("median treatment samples to {what}"),
            samples.to_string(),
        ]);
    }
    if let Some(samples) = summary.median_total_samples {
        rows.add_row(vec![
            format!("median samples (both arms) to {what}"),
            samples.to_string(),
        ]);
    }
    if let Some(seconds) = summary.median_time_to_rollback_s {
        rows.add_row(vec![format!("median time to {what}"), duration(seconds)]);
    }
    if let Some(floor) = &summary.floor {
        rows.add_row(vec![
            format!(
                "fixed-horizon floor (80% power, one-sided α = {})",
                settings.plan.alpha
            ),
            format!(
                "{} treatment samples, {}; {:.3}% vs {:.3}%",
                floor.treatment,
                format_duration(floor.time),
                floor.p_treatment * 100.0,
                floor.p_control * 100.0
            ),
        ]);
    }
    if let Some(ratio) = summary.samples_to_floor {
        rows.add_row(vec![
            "median samples / floor".to_owned(),
            format!("{ratio:.2}×"),
        ]);
    }
    if let Some(seconds) = summary.median_time_to_complete_s {
        rows.add_row(vec![
            "median time to complete".to_owned(),
            duration(seconds),
        ]);
    }
    print_table(out, &rows)?;
    for target in &summary.targets {
        let value = if target.name.contains("rate") {
            percent(target.value)
        } else {
            format!("{:.2}", target.value)
        };
        let bound = if target.name.contains("rate") {
            percent(target.bound)
        } else {
            format!("{:.2}", target.bound)
        };
        writeln!(
            out,
            "target: {} {} {bound}: {value}, {}",
            target.name,
            if target.at_most { "≤" } else { "≥" },
            if target.met { "met" } else { "NOT met" }
        )?;
    }
    Ok(())
}
