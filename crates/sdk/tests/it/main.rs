//! Integration tests for the `sluice` SDK: file mode, reloads, overrides, the shared
//! evaluation corpus, typed accessors, OpenFeature, a no-panic property test, server mode
//! against a real in-process server with injected faults, and telemetry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus;
mod dry_run_e2e;
mod experiment;
mod file_mode;
mod harness;
#[cfg(feature = "openfeature")]
mod openfeature;
mod overrides;
mod props;
mod release_drill;
mod reload;
mod rollout_e2e;
mod secrets;
mod server_faults;
mod server_mode;
mod shadow_e2e;
mod telemetry;
mod typed;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository's reference example, `examples/flags.yaml`.
pub fn example_flags() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flags.yaml")
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Replaces a file the way editors save: write a sibling, then rename it over the original.
pub fn write_by_rename(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp~");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A client over `text`, written to `flags.yaml` in a fresh directory, ignoring the process
/// environment's overrides.
pub fn client_for(text: &str) -> (tempfile::TempDir, PathBuf, sluice::Client) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.yaml");
    std::fs::write(&path, text).unwrap();
    let client = sluice::Client::file_builder(&path)
        .env_vars(Vec::<(String, String)>::new())
        .build()
        .unwrap();
    (directory, path, client)
}
