//! The last-known-good cache file: the last configuration installed, kept on disk so that a
//! client that starts while the server is unreachable can serve it instead of defaults.
//!
//! Writes are atomic: the text goes to `<path>.tmp`, which is flushed to disk, then renamed
//! over `<path>`, and the directory is flushed so the rename itself survives a power cut. A
//! reader therefore sees the whole old file or the whole new one, even if the writer is
//! killed at any instruction. The file holds exactly the server's JSON, so it is readable
//! with any tool and is read back with the same code as the server's answers.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::server::config::{self, Config};

/// The temporary sibling a write goes through.
fn temporary(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces the cache file with `text`, atomically.
pub(crate) fn write(path: &Path, text: &str) -> Result<(), Error> {
    write_atomically(path, text.as_bytes()).map_err(|source| Error::Cache {
        path: path.to_owned(),
        source,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary(path);
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    sync_directory(path)
}

#[cfg(unix)]
fn sync_directory(path: &Path) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file; its rename is already durable enough.
    Ok(())
}

/// Reads and compiles the cache file; `Ok(None)` when there is none yet.
pub(crate) fn read(path: &Path) -> Result<Option<Config>, Error> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Cache {
                path: path.to_owned(),
                source,
            });
        }
    };
    let origin = format!("the cache file {}", path.display());
    config::parse(&text, &origin).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::json;

    /// A configuration whose size depends on its version, so a torn write cannot pass for
    /// either version.
    fn config_text(version: i64) -> String {
        let flag_count = if version % 2 == 0 { 3 } else { 400 };
        let mut flags = serde_json::Map::new();
        for index in 0..flag_count {
            flags.insert(
                format!("flag-{index}"),
                json!({
                    "type": "string",
                    "variants": {"a": format!("version {version}"), "b": "other"},
                    "default_variant": "a"
                }),
            );
        }
        json!({
            "version": version,
            "environment": "production",
            "format": "sluice",
            "flags": {"flags": flags}
        })
        .to_string()
    }

    #[test]
    fn a_write_reads_back_and_leaves_no_temporary() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("flags.cache.json");
        assert!(read(&path).unwrap().is_none());
        write(&path, &config_text(1)).unwrap();
        write(&path, &config_text(2)).unwrap();
        let config = read(&path).unwrap().unwrap();
        assert_eq!(config.version, 2);
        assert_eq!(config.environment, "production");
        assert!(!temporary(&path).exists());
    }

    #[test]
    fn a_corrupt_cache_is_an_error_not_a_panic() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("cache.json");
        fs::write(&path, "{\"version\": 1, \"environ").unwrap();
        assert!(matches!(read(&path), Err(Error::Malformed { .. })));
        let unwritable = directory.path().join("missing-dir").join("cache.json");
        assert!(matches!(write(&unwritable, "{}"), Err(Error::Cache { .. })));
    }

    const CHILD_VARIABLE: &str = "SLUICE_TEST_CACHE_WRITER";

    /// Not a test on its own: when the variable is set, this is the child process of
    /// `the_cache_survives_kill_9_during_writes`, writing alternating versions until killed.
    #[test]
    fn cache_writer_child() {
        let Some(path) = std::env::var_os(CHILD_VARIABLE) else {
            return;
        };
        let path = PathBuf::from(path);
        let texts = [config_text(2), config_text(3)];
        let mut writes: usize = 0;
        loop {
            write(&path, &texts[writes % 2]).unwrap();
            writes += 1;
            if writes == 2 {
                // Both versions have been written once: the parent may start its clock.
                println!("sluice-cache-writer-running");
            }
        }
    }

    #[test]
    fn the_cache_survives_kill_9_during_writes() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("flags.cache.json");
        let executable = std::env::current_exe().unwrap();
        let mut seed: u64 = 0x5EED;
        for round in 0..30 {
            let mut child = Command::new(&executable)
                .args([
                    "--exact",
                    "server::cache::tests::cache_writer_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_VARIABLE, &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Wait for the child's signal that it is in its write loop.
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let started = Instant::now();
            loop {
                let line = lines.next().expect("the writer started").unwrap();
                if line.ends_with("sluice-cache-writer-running") {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the writer never started"
                );
            }
            // Kill it at a pseudo-random point in its loop: somewhere within a few writes.
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            std::thread::sleep(Duration::from_micros((seed >> 33) % 20_000));
            child.kill().unwrap();
            child.wait().unwrap();

            let config = read(&path)
                .unwrap_or_else(|error| panic!("round {round}: the cache does not parse: {error}"))
                .unwrap_or_else(|| panic!("round {round}: the cache is missing"));
            assert!(
                [2, 3].contains(&config.version),
                "round {round}: version {}",
                config.version
            );
            let expected_flags = if config.version == 2 { 3 } else { 400 };
            assert_eq!(config.engine.len(), expected_flags, "round {round}");
        }
    }
}
