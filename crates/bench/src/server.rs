//! A Sluice server in-process, on 127.0.0.1 with a fresh SQLite data directory, on its own
//! tokio runtime, with blocking helpers for the admin API.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_server::{ServeArgs, Settings};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// A running server. Dropping it stops the server.
#[derive(Debug)]
pub struct BenchServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin token created at first start.
    pub admin: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    runtime: Runtime,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    /// Starts a server whose runtime has `workers` worker threads.
    pub fn start(workers: usize) -> Result<BenchServer, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("bench-server")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
        let dir =
            tempfile::tempdir().map_err(|e| format!("cannot create a data directory: {e}"))?;
        let args = ServeArgs {
            port: Some(0),
            data_dir: Some(dir.path().to_owned()),
            ..ServeArgs::default()
        };
        let settings = Settings::load(args).map_err(|e| format!("server settings: {e:#}"))?;
        let (url, admin, stop) = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot bind: {e}"))?;
            let address = listener
                .local_addr()
                .map_err(|e| format!("no local address: {e}"))?;
            let started = sluice_server::start(settings)
                .await
                .map_err(|e| format!("the server does not start: {e:#}"))?;
            let admin = started
                .admin_token
                .ok_or("a fresh data directory should yield an admin token")?;
            let (stop, stopped) = oneshot::channel::<()>();
            tokio::spawn(sluice_server::serve(listener, started.state, async move {
                let _ = stopped.await;
            }));
            Ok::<_, String>((format!("http://{address}"), admin, stop))
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(BenchServer {
            url,
            admin,
            http,
            stop: Some(stop),
            runtime,
            _dir: dir,
        })
    }

    /// One admin API call; the status and the JSON body.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.runtime.block_on(async {
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.url))
                .bearer_auth(&self.admin);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
            Ok((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        })
    }

    fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: u16,
    ) -> Result<Value, String> {
        let (status, answer) = self.call(method, path, body)?;
        if status != ok {
            return Err(format!("{path} answered {status}: {answer}"));
        }
        Ok(answer)
    }

    /// A new server token for `environment`; returns its secret.
    pub fn server_token(&self, environment: &str) -> Result<String, String> {
        let body = json!({"name": "bench", "scope": "server", "environment": environment});
        let token = self.expect(Method::POST, "/api/v1/tokens", Some(&body), 201)?;
        token["secret"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no secret in {token}"))
    }

    /// Replaces every flag and segment with `document`'s; returns the configuration version.
    pub fn import(&self, document: &Value) -> Result<i64, String> {
        let answer = self.expect(Method::POST, "/api/v1/import", Some(document), 200)?;
        answer["configVersion"]
            .as_i64()
            .ok_or_else(|| format!("no configVersion in {answer}"))
    }

    /// Creates a flag.
    pub fn create_flag(&self, key: &str, definition: &Value) -> Result<(), String> {
        self.expect(
            Method::POST,
            &format!("/api/v1/flags/{key}"),
            Some(definition),
            201,
        )
        .map(drop)
    }

    /// Replaces a flag's definition.
    pub fn update_flag(&self, key: &str, definition: &Value) -> Result<(), String> {
        self.expect(
            Method::PUT,
            &format!("/api/v1/flags/{key}"),
            Some(definition),
            200,
        )
        .map(drop)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
