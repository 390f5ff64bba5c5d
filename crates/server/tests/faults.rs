//! The database fails under a running server: PostgreSQL behind a TCP proxy that stalls
//! (black hole) and resets connections, and an SQLite file held by another writer. Through
//! each, evaluation keeps answering from memory, `/ready` turns 503 within 5 s and back within
//! 10 s of recovery, and writes fail fast with 503 instead of hanging.
//!
//! The PostgreSQL half runs when `SLUICE_TEST_POSTGRES_URL` names an admin URL, on a fresh
//! database; without it, it prints a notice and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sluice_server::{ServeArgs, Settings};
use sqlx::{AnyConnection, Connection, Executor};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

#[path = "support/pg_database.rs"]
mod pg_database;

use pg_database::PgDatabase;

const POSTGRES_ENV: &str = "SLUICE_TEST_POSTGRES_URL";
const READY_WITHIN: Duration = Duration::from_secs(5);
const RECOVERED_WITHIN: Duration = Duration::from_secs(10);
/// The write deadline is 5 s; allow for a loaded machine.
const WRITE_FAILS_WITHIN: Duration = Duration::from_secs(8);

const PASS: u8 = 0;
const BLACK_HOLE: u8 = 1;
const RESET: u8 = 2;

/// A TCP proxy whose mode can change under live connections: pass bytes through, stall
/// them (reading nothing, sending nothing, accepting new connections that never connect
/// onward), or reset every connection.
struct Proxy {
    address: SocketAddr,
    mode: Arc<AtomicU8>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(PASS));
        let shared = Arc::clone(&mode);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(relay(client, upstream, Arc::clone(&shared)));
            }
        });
        Proxy { address, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Waits while the proxy is a black hole; `false` when the connection is to be reset.
async fn may_pass(mode: &AtomicU8) -> bool {
    loop {
        match mode.load(Ordering::SeqCst) {
            PASS => return true,
            RESET => return false,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mode: Arc<AtomicU8>) {
    if !may_pass(&mode).await {
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_mode = Arc::clone(&mode);
    let up = async move {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !may_pass(&up_mode).await || server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !may_pass(&mode).await || client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either direction ending (or a reset) drops both halves of both sockets.
    tokio::select! {
        () = up => {},
        () = down => {},
    }
}

struct Server {
    address: String,
    admin: String,
    http: Client,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(database: Option<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load(ServeArgs {
        port: Some(0),
        data_dir: Some(dir.path().to_owned()),
        database,
        ..ServeArgs::default()
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let started = sluice_server::start(settings).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sluice_server::serve(listener, started.state, async move {
        let _ = stopped.await;
    }));
    Server {
        address,
        admin: started.admin_token.unwrap(),
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _stop: stop,
        _dir: dir,
    }
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> StatusCode {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    }

    async fn ready(&self) -> StatusCode {
        self.http
            .get(format!("{}/ready", self.address))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// How long until `/ready` answers `wanted`, polling; panics after `limit`.
    async fn ready_becomes(&self, wanted: StatusCode, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.ready().await == wanted {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "/ready did not become {wanted} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A write of the flag `key`: its status and how long it took.
    async fn write(&self, key: &str, default: &str) -> (StatusCode, Duration) {
        let started = Instant::now();
        let status = self
            .call(
                Method::PUT,
                &format!("/api/v1/flags/{key}"),
                &self.admin,
                Some(flag(default)),
            )
            .await;
        (status, started.elapsed())
    }

    /// Evaluates `count` times over OFREP; every answer must be 200 with `expected`.
    async fn evaluations_answer(&self, token: &str, count: usize, expected: bool) {
        for i in 0..count {
            let response = self
                .http
                .post(format!("{}/ofrep/v1/evaluate/flags/checkout", self.address))
                .bearer_auth(token)
                .json(&json!({"context": {"targetingKey": format!("u{i}")}}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["value"], json!(expected), "{body}");
        }
    }
}

fn flag(default: &str) -> Value {
    json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": default})
}

/// Creates the flag and a client token; returns the token.
async fn seed(server: &Server) -> String {
    let status = server
        .call(
            Method::POST,
            "/api/v1/flags/checkout",
            &server.admin,
            Some(flag("on")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let response = server
        .http
        .post(format!("{}/api/v1/tokens", server.address))
        .bearer_auth(&server.admin)
        .json(&json!({"name": "web", "scope": "client", "environment": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_resetting_postgresql_fails_writes_fast_and_evaluation_carries_on() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        let _ = writeln!(
            std::io::stderr(),
            "notice: {POSTGRES_ENV} is not set; the PostgreSQL fault test is skipped"
        );
        return;
    };
    let database = PgDatabase::create(admin_url).await;
    let url = database.url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, rest) = rest.split_once('@').unwrap_or(("", rest));
    let (host, path) = rest.split_once('/').unwrap();
    let upstream: SocketAddr = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = Proxy::start(upstream).await;
    let through_proxy = format!("{scheme}://{credentials}@{}/{path}", proxy.address);
    let server = start(Some(through_proxy)).await;
    let client = seed(&server).await;
    assert_eq!(server.ready().await, StatusCode::OK);
    // An application that evaluates all along: its token is known before the outage.
    server.evaluations_answer(&client, 10, true).await;

    for (name, mode) in [("black hole", BLACK_HOLE), ("reset", RESET)] {
        proxy.set(mode);
        let unready = server
            .ready_becomes(StatusCode::SERVICE_UNAVAILABLE, READY_WITHIN)
            .await;
        server.evaluations_answer(&client, 200, true).await;
        let (status, took) = server.write("checkout", "off").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert!(took < WRITE_FAILS_WITHIN, "{name}: the write took {took:?}");
        proxy.set(PASS);
        let recovered = server.ready_becomes(StatusCode::OK, RECOVERED_WITHIN).await;
        println!(
            "{name}: /ready 503 after {unready:?}, write refused in {took:?}, ready again {recovered:?} after recovery"
        );
        // Writes work again and reach evaluation.
        let started = Instant::now();
        let status = loop {
            let (status, _) = server.write("checkout", "off").await;
            if status == StatusCode::OK || started.elapsed() > RECOVERED_WITHIN {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(status, StatusCode::OK, "{name}: writes did not recover");
        let started = Instant::now();
        while server.evaluations_answer_once(&client).await != json!(false) {
            assert!(
                started.elapsed() < RECOVERED_WITHIN,
                "the write never served"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, _) = server.write("checkout", "on").await;
        assert_eq!(status, StatusCode::OK);
        let started = Instant::now();
        while server.evaluations_answer_once(&client).await != json!(true) {
            assert!(
                started.elapsed() < RECOVERED_WITHIN,
                "the write never served"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Server {
    async fn evaluations_answer_once(&self, token: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/ofrep/v1/evaluate/flags/checkout", self.address))
            .bearer_auth(token)
            .json(&json!({"context": {"targetingKey": "u"}}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["value"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sqlite_database_fails_writes_fast_and_evaluation_carries_on() {
    let server = start(None).await;
    let client = seed(&server).await;
    // Another process holds the write lock.
    let path = server._dir.path().join("sluice.db");
    sqlx::any::install_default_drivers();
    let mut holder = AnyConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();

    server.evaluations_answer(&client, 200, true).await;
    let (status, took) = server.write("checkout", "off").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < WRITE_FAILS_WITHIN, "the write took {took:?}");
    // Readers are not blocked by a writer in WAL mode.
    assert_eq!(server.ready().await, StatusCode::OK);
    println!("busy SQLite: write refused in {took:?}; /ready stayed 200");

    holder.execute("ROLLBACK").await.unwrap();
    holder.close().await.unwrap();
    let (status, _) = server.write("checkout", "off").await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    while server.evaluations_answer_once(&client).await != json!(false) {
        assert!(
            started.elapsed() < RECOVERED_WITHIN,
            "the write never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
