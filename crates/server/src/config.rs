//! Server settings: command-line flags, `SLUICE_*` environment variables, an optional TOML
//! file, and defaults, in that order of precedence. Loaded once and passed explicitly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_core::Format;
use sluice_core::rollout::PolicyFile;

use crate::http::rate_limit::DEFAULT_RATE_LIMIT;
use crate::store::StoreUrl;

/// The port `sluice serve` listens on by default.
pub const DEFAULT_PORT: u16 = 8470;
/// The largest request body accepted by default: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Seconds between rollout controller ticks by default.
pub const DEFAULT_ROLLOUT_INTERVAL: u64 = 5;

/// `sluice serve` arguments. Every one can also come from its `SLUICE_*` variable or the
/// config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// The address to bind; 127.0.0.1 unless told otherwise.
    #[arg(long, env = "SLUICE_BIND")]
    pub bind: Option<IpAddr>,
    /// The port to listen on (0 picks a free one).
    #[arg(long, short, env = "SLUICE_PORT")]
    pub port: Option<u16>,
    /// The store: `sqlite://PATH` (created on first start) or `postgres://…`.
    /// Defaults to `sqlite://DATA_DIR/sluice.db`.
    #[arg(long, env = "SLUICE_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Where the default SQLite database lives.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve flags from this file or directory (GitOps mode): the API cannot change them,
    /// and edits on disk are reloaded.
    #[arg(long, env = "SLUICE_FLAGS")]
    pub flags: Option<PathBuf>,
    /// An optional TOML file with the same settings, using these names with `_` for `-`.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The largest request body, in bytes.
    #[arg(long, env = "SLUICE_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// How long a request may take, in seconds (live streams excepted).
    #[arg(long, env = "SLUICE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// How long a client may take to send a request's head, in seconds, before its
    /// connection is closed (slow clients hold no connection for long). Default 5.
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds between heartbeats on live streams.
    #[arg(long, env = "SLUICE_HEARTBEAT")]
    pub heartbeat: Option<u64>,
    /// OFREP evaluation requests allowed per second per token and client address (0: no
    /// limit). Over it, requests get 429 with `Retry-After`. Default 1000.
    #[arg(long, env = "SLUICE_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Seconds between rollout controller ticks on the leader (0: no automatic ticks).
    /// Default 5.
    #[arg(long, env = "SLUICE_ROLLOUT_INTERVAL")]
    pub rollout_interval: Option<u64>,
    /// Webhook destinations allowed although not public: host names or IP addresses,
    /// comma-separated. Loopback and private addresses are refused otherwise.
    #[arg(long, env = "SLUICE_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Option<Vec<String>>,
    /// A release policy file (YAML or JSON) mapping provenance and risk to a rollout plan;
    /// the built-in policy when left out. See docs/releases.md.
    #[arg(long, env = "SLUICE_POLICY")]
    pub policy: Option<PathBuf>,
}

/// The same settings, read from the optional config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<IpAddr>,
    port: Option<u16>,
    database: Option<String>,
    data_dir: Option<PathBuf>,
    flags: Option<PathBuf>,
    body_limit: Option<usize>,
    request_timeout: Option<u64>,
    header_timeout: Option<u64>,
    heartbeat: Option<u64>,
    rate_limit: Option<u32>,
    rollout_interval: Option<u64>,
    webhook_allow: Option<Vec<String>>,
    policy: Option<PathBuf>,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("the config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The store.
    pub store: StoreUrl,
    /// The data directory.
    pub data_dir: PathBuf,
    /// GitOps mode: the flags file or directory that is the source of truth.
    pub flags: Option<PathBuf>,
    /// The largest request body.
    pub body_limit: usize,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// Heartbeat interval on live streams.
    pub heartbeat: Duration,
    /// OFREP evaluation requests per second per token and client address; 0 is no limit.
    pub rate_limit: u32,
    /// Time between rollout controller ticks on the leader; zero turns the loop off.
    pub rollout_interval: Duration,
    /// Webhook destinations allowed although not public (host names or IP addresses).
    pub webhook_allow: Vec<String>,
    /// The release policy: the file given, or the built-in one.
    pub policy: PolicyFile,
}

impl Settings {
    /// Layers arguments (and their environment variables) over the config file over defaults.
    pub fn load(args: ServeArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("sluice-data"));
        let database = args
            .database
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("sluice.db").display()));
        let store: StoreUrl = database
            .parse()
            .map_err(|e: crate::store::StoreUrlError| ConfigError::Invalid(e.to_string()))?;
        let body_limit = args
            .body_limit
            .or(file.body_limit)
            .unwrap_or(DEFAULT_BODY_LIMIT);
        if body_limit == 0 {
            return Err(ConfigError::Invalid(
                "body-limit must be at least 1 byte".into(),
            ));
        }
        let request_timeout = args.request_timeout.or(file.request_timeout).unwrap_or(30);
        let heartbeat = args.heartbeat.or(file.heartbeat).unwrap_or(15);
        let header_timeout = args.header_timeout.or(file.header_timeout).unwrap_or(5);
        if request_timeout == 0 || heartbeat == 0 || header_timeout == 0 {
            return Err(ConfigError::Invalid(
                "request-timeout, header-timeout and heartbeat must be at least 1 second".into(),
            ));
        }
        let policy = match args.policy.or(file.policy) {
            Some(path) => read_policy(&path)?,
            None => PolicyFile::builtin(),
        };
        Ok(Settings {
            policy,
            listen: SocketAddr::new(
                args.bind
                    .or(file.bind)
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                args.port.or(file.port).unwrap_or(DEFAULT_PORT),
            ),
            store,
            data_dir,
            flags: args.flags.or(file.flags),
            body_limit,
            request_timeout: Duration::from_secs(request_timeout),
            header_timeout: Duration::from_secs(header_timeout),
            heartbeat: Duration::from_secs(heartbeat),
            rate_limit: args
                .rate_limit
                .or(file.rate_limit)
                .unwrap_or(DEFAULT_RATE_LIMIT),
            rollout_interval: Duration::from_secs(
                args.rollout_interval
                    .or(file.rollout_interval)
                    .unwrap_or(DEFAULT_ROLLOUT_INTERVAL),
            ),
            webhook_allow: args
                .webhook_allow
                .or(file.webhook_allow)
                .unwrap_or_default(),
        })
    }
}

fn read_policy(path: &Path) -> Result<PolicyFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        _ => Format::Yaml,
    };
    let name = path.display().to_string();
    PolicyFile::parse(Some(&name), &text, format).map_err(|errors| ConfigError::Parse {
        path: path.to_owned(),
        message: errors.to_string(),
    })
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback_and_use_sqlite_in_the_data_dir() {
        let settings = Settings::load(ServeArgs::default()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8470");
        assert!(
            matches!(settings.store, StoreUrl::Sqlite { ref path } if path.ends_with("sluice-data/sluice.db"))
        );
        assert_eq!(settings.body_limit, DEFAULT_BODY_LIMIT);
    }

    #[test]
    fn arguments_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "port = 9000\nbody_limit = 2048\nheartbeat = 5\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            port: Some(9100),
            ..ServeArgs::default()
        };
        let settings = Settings::load(args).unwrap();
        assert_eq!(settings.listen.port(), 9100);
        assert_eq!(settings.body_limit, 2048);
        assert_eq!(settings.heartbeat, Duration::from_secs(5));
    }

    #[test]
    fn a_policy_file_is_read_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "rules:\n  - name: all\n    template: cautious\n").unwrap();
        let settings = Settings::load(ServeArgs {
            policy: Some(path.clone()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(settings.policy.rules[0].name, "all");
        std::fs::write(
            &path,
            "rules:\n  - name: low\n    risk: [low]\n    template: standard\n",
        )
        .unwrap();
        let error = Settings::load(ServeArgs {
            policy: Some(path),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("no rule covers"), "{error}");
    }

    #[test]
    fn a_bad_file_names_itself_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "prot = 9000\n").unwrap();
        let error = Settings::load(ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("sluice.toml is invalid"), "{error}");
        assert!(error.contains("prot"), "{error}");
    }

    #[test]
    fn an_unknown_database_scheme_is_refused() {
        let error = Settings::load(ServeArgs {
            database: Some("mysql://x".into()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("sqlite://"), "{error}");
    }
}
