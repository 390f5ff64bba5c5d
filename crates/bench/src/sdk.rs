//! The SDK benchmark's subjects: yggdrasil and three `sluice::Client`s over the same flags.
//!
//! - `file`: file mode, the workload's flags in a JSON file (no watcher).
//! - `server`: server mode against an in-process server, telemetry on (the default): each
//!   evaluation also counts an exposure and records the thread's active variant.
//! - `server_no_telemetry`: the same with `.telemetry(false)`.
//!
//! Every Sluice client is checked against yggdrasil with [`check_agreement`] first.

use std::time::Duration;

use sluice::Client;
use unleash_yggdrasil::EngineState;

use crate::server::BenchServer;
use crate::workload::{check_agreement, sluice_document, unleash_engine};

/// The subjects, named as in the tables.
pub const SUBJECTS: [&str; 4] = ["yggdrasil", "file", "server", "server_no_telemetry"];

/// yggdrasil and the three Sluice clients, plus what keeps them running.
pub struct Subjects {
    pub yggdrasil: EngineState,
    pub file: Client,
    pub server: Client,
    pub server_no_telemetry: Client,
    _server: BenchServer,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Subjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subjects")
            .field("file", &self.file)
            .field("server", &self.server)
            .field("server_no_telemetry", &self.server_no_telemetry)
            .finish_non_exhaustive()
    }
}

impl Subjects {
    /// Starts everything and checks that all engines agree.
    pub fn start() -> Result<Subjects, String> {
        let yggdrasil = unleash_engine()?;
        let document = sluice_document();

        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a directory: {e}"))?;
        let path = dir.path().join("flags.json");
        std::fs::write(&path, document.to_string())
            .map_err(|e| format!("cannot write the flags: {e}"))?;
        let file = Client::file_builder(&path)
            .env_vars(Vec::<(String, String)>::new())
            .watch(false)
            .build()
            .map_err(|e| format!("the file client does not start: {e}"))?;

        let server = BenchServer::start(1)?;
        server.import(&document)?;
        let token = server.server_token("production")?;
        let client = |telemetry: bool| {
            Client::builder()
                .server(&server.url)
                .token(&token)
                .env_vars(Vec::<(String, String)>::new())
                .telemetry(telemetry)
                .build()
                .and_then(|client| client.wait_ready(Duration::from_secs(10)).map(|()| client))
                .map_err(|e| format!("the server client does not start: {e}"))
        };
        let with_telemetry = client(true)?;
        let without_telemetry = client(false)?;

        for (name, subject) in [
            ("file", &file),
            ("server", &with_telemetry),
            ("server_no_telemetry", &without_telemetry),
        ] {
            check_agreement(
                |flag, context| subject.bool(flag, context, false),
                &yggdrasil,
            )
            .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(Subjects {
            yggdrasil,
            file,
            server: with_telemetry,
            server_no_telemetry: without_telemetry,
            _server: server,
            _dir: dir,
        })
    }

    /// The Sluice client named `name`.
    pub fn client(&self, name: &str) -> Option<&Client> {
        match name {
            "file" => Some(&self.file),
            "server" => Some(&self.server),
            "server_no_telemetry" => Some(&self.server_no_telemetry),
            _ => None,
        }
    }
}
