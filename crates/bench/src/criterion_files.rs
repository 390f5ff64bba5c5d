//! Reading back what criterion wrote during this run: medians and fastest samples.
//!
//! Only files written since the run started are read, since numbers are only comparable
//! within one run.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

/// Where criterion writes its estimates: `CRITERION_HOME`, else `<target>/criterion`.
///
/// The target directory is `CARGO_TARGET_DIR` when it is an absolute path, else the one the
/// benchmark was built in (`<target>/release/deps/<bench>-…`). Hand the directory to
/// criterion too, so that the table reads exactly what criterion wrote.
pub fn directory() -> PathBuf {
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

fn file(
    directory: &Path,
    group: &str,
    function: &str,
    name: &str,
    since: SystemTime,
) -> Option<Value> {
    let path = directory.join(group).join(function).join("new").join(name);
    let written = std::fs::metadata(&path).ok()?.modified().ok()?;
    if written < since {
        return None;
    }
    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
}

/// The median time per iteration in nanoseconds.
pub fn median_ns(directory: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let estimates = file(directory, group, function, "estimates.json", since)?;
    estimates.pointer("/median/point_estimate")?.as_f64()
}

/// The time per iteration of the fastest sample, in nanoseconds: the one least disturbed by
/// other work on a shared machine.
pub fn fastest_ns(directory: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let sample = file(directory, group, function, "sample.json", since)?;
    let iterations = sample.get("iters")?.as_array()?;
    let times = sample.get("times")?.as_array()?;
    iterations
        .iter()
        .zip(times)
        .filter_map(|(n, t)| Some(t.as_f64()? / n.as_f64()?))
        .filter(|per_iteration| per_iteration.is_finite())
        .min_by(f64::total_cmp)
}

/// Whether this is a measuring run (`cargo bench`), not `cargo test --benches` or `--list`.
pub fn measuring() -> bool {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.iter().any(|a| a == "--bench")
        && !arguments.iter().any(|a| a == "--test" || a == "--list")
}
