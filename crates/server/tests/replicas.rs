//! Two replicas on one PostgreSQL: a change written through replica A reaches a live-stream
//! client of replica B in under a second, exactly one replica leads, and when the leader
//! shuts down the other takes over.
//!
//! Runs when `SLUICE_TEST_POSTGRES_URL` names a PostgreSQL admin URL (such as
//! `postgres://postgres@127.0.0.1:5432/postgres`), on a fresh `sluice_test_<random>`
//! database that is dropped afterwards, even when the test fails; without it the test
//! prints a notice and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sluice_server::{AppState, ServeArgs, Settings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "support/pg_database.rs"]
mod pg_database;

use pg_database::PgDatabase;

const POSTGRES_ENV: &str = "SLUICE_TEST_POSTGRES_URL";
/// How quickly a change must reach another replica's stream.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(1);
/// Followers retry the leader lock every 5 s; allow for one retry and a slow machine.
const FAILOVER_LIMIT: Duration = Duration::from_secs(12);

/// One replica, served in this process on 127.0.0.1:0.
struct Replica {
    address: String,
    state: AppState,
    admin_token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
}

impl Replica {
    async fn start(database: &str) -> Replica {
        let settings = Settings::load(ServeArgs {
            port: Some(0),
            database: Some(database.to_owned()),
            heartbeat: Some(1),
            ..ServeArgs::default()
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let started = sluice_server::start(settings).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(sluice_server::serve(
            listener,
            started.state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Replica {
            address,
            state: started.state,
            admin_token: started.admin_token,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Shuts down gracefully (releasing the leader lock), then closes the store.
    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
        self.state.store().close().await;
    }

    async fn status(&self, client: &Client, token: &str) -> Value {
        let response = client
            .get(format!("{}/api/v1/status", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls `/api/v1/status` until this replica leads, and says how long that took.
    async fn await_leadership(&self, client: &Client, token: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.status(client, token).await;
            if status["leader"] == true {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{} did not lead within {limit:?}: {status}",
                self.address
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The next `put` event's JSON data from an SSE byte stream.
async fn next_put(
    stream: &mut (impl Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if frame.lines().any(|line| line == "event: put") {
                let data: String = frame
                    .lines()
                    .filter_map(|line| {
                        line.strip_prefix("data: ")
                            .or_else(|| line.strip_prefix("data:"))
                    })
                    .collect();
                return serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = stream.next().await.expect("the stream ended").unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn flag(description: &str) -> Value {
    json!({
        "description": description,
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "off_variant": "off",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_changes_and_leadership() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        // Past the harness's capture, so the notice shows in every run.
        let notice = format!("skipping replica tests: {POSTGRES_ENV} is not set\n");
        let _ = std::io::stderr().write_all(notice.as_bytes());
        return;
    };
    let database = PgDatabase::create(admin_url).await;
    let url = database.url();
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // A starts first (creating the admin token) and takes the lock; then B starts.
    let mut a = Replica::start(&url).await;
    let admin = a
        .admin_token
        .clone()
        .expect("the first replica creates the admin token");
    a.await_leadership(&client, &admin, Duration::from_secs(10))
        .await;
    let mut b = Replica::start(&url).await;
    assert!(
        b.admin_token.is_none(),
        "the second replica found the admin token"
    );

    let (status_a, status_b) = (
        a.status(&client, &admin).await,
        b.status(&client, &admin).await,
    );
    assert_eq!(status_a["backend"], "postgres");
    assert_ne!(status_a["replica"], status_b["replica"]);
    let leaders = [&status_a, &status_b]
        .iter()
        .filter(|s| s["leader"] == true)
        .count();
    assert_eq!(
        leaders, 1,
        "exactly one replica leads: {status_a} {status_b}"
    );
    assert_eq!(status_a["leader"], true, "{status_a}");

    // A server SDK listens to B.
    let response = client
        .request(Method::POST, format!("{}/api/v1/tokens", a.address))
        .bearer_auth(&admin)
        .json(&json!({"name": "sdk", "scope": "server", "environment": "production"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let server_token = response.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = client
        .get(format!("{}/api/v1/stream", b.address))
        .bearer_auth(&server_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut stream = stream.bytes_stream();
    let mut buffer = String::new();
    let snapshot = next_put(&mut stream, &mut buffer).await;
    assert_eq!(snapshot["environment"], "production");

    // Each change through A reaches B's client within a second.
    let mut delays = Vec::new();
    for write in 0..5 {
        let description = format!("write {write} through replica A");
        let method = if write == 0 {
            Method::POST
        } else {
            Method::PUT
        };
        let started = Instant::now();
        let response = client
            .request(method, format!("{}/api/v1/flags/replicated", a.address))
            .bearer_auth(&admin)
            .json(&flag(&description))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let arrived = tokio::time::timeout(PROPAGATION_LIMIT, async {
            loop {
                let put = next_put(&mut stream, &mut buffer).await;
                if put["flags"]["flags"]["replicated"]["description"] == description.as_str() {
                    return put;
                }
            }
        })
        .await;
        let delay = started.elapsed();
        let put = arrived.unwrap_or_else(|_| {
            panic!("write {write} did not reach replica B within {PROPAGATION_LIMIT:?}")
        });
        assert!(put["version"].as_i64().unwrap() > snapshot["version"].as_i64().unwrap());
        delays.push(delay);
    }

    // When A shuts down, B takes the lock.
    let stopping = Instant::now();
    a.shut_down().await;
    b.await_leadership(&client, &admin, FAILOVER_LIMIT).await;
    let failover = stopping.elapsed();
    assert!(failover < FAILOVER_LIMIT, "failover took {failover:?}");
    let b_status = b.status(&client, &admin).await;
    assert_eq!(b_status["leader"], true, "{b_status}");

    delays.sort();
    let summary = format!(
        "replicas: A→B stream propagation {:?} (fastest) to {:?} (slowest) over {} writes; failover to B in {:.2} s\n",
        delays[0],
        delays[delays.len() - 1],
        delays.len(),
        failover.as_secs_f64()
    );
    let _ = std::io::stderr().write_all(summary.as_bytes());

    drop(stream);
    b.shut_down().await;
}
