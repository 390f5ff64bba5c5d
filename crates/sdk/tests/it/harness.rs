//! A real Sluice server in-process, and a fault-injecting TCP proxy to put in front of it.
//!
//! Both own their tokio runtimes, so tests are plain synchronous functions, exactly like an
//! application that builds a client from `main`. The proxy closes every connection after one
//! request (it rewrites `Connection: close` into each request), so it counts requests by
//! counting connections, and it can answer by itself: nothing (a black hole), a canned
//! response such as 401 or 429, or a scripted event stream; or it can forward one request
//! and then lose the server's answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_server::{AppState, ServeArgs, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    state: AppState,
}

/// A Sluice server on 127.0.0.1 with a fresh SQLite data directory.
pub struct TestServer {
    pub address: SocketAddr,
    pub admin: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    running: Option<Running>,
    runtime: Runtime,
}

impl TestServer {
    pub fn start() -> TestServer {
        let runtime = runtime();
        let dir = tempfile::tempdir().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let (running, admin) = runtime.block_on(launch(dir.path(), listener));
        TestServer {
            address,
            admin: admin.expect("the first start creates an admin token"),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            running: Some(running),
            runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `GET path` with the admin token; the status and the JSON body.
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(&self.url(), Method::GET, path, None)
    }

    /// The running server's state, for what the API does not show.
    pub fn state(&self) -> &AppState {
        &self.running.as_ref().expect("the server is running").state
    }

    /// Runs a future on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Shuts the server down gracefully (live streams close) and waits until its port is free.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            self.runtime.block_on(running.task).unwrap().unwrap();
        }
    }

    /// Starts the server again on the same port, over the same data directory.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "stop the server first");
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match self.runtime.block_on(TcpListener::bind(self.address)) {
                Ok(listener) => break listener,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {error}", self.address);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("cannot rebind {}: {error}", self.address),
            }
        };
        let (running, _) = self.runtime.block_on(launch(self.dir.path(), listener));
        self.running = Some(running);
    }

    /// Runs `change` against a second server over the same data directory, on another port,
    /// while this one may be down: a change made "while the SDK was away".
    pub fn change_offline(&self, change: impl FnOnce(&TestServer, &str)) {
        let listener = self
            .runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (running, _) = self.runtime.block_on(launch(self.dir.path(), listener));
        change(self, &url);
        let _ = running.stop.send(());
        self.runtime.block_on(running.task).unwrap().unwrap();
    }

    fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.runtime.block_on(async {
            let mut request = self
                .http
                .request(method, format!("{base}{path}"))
                .bearer_auth(&self.admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// `POST path` with the admin token and a JSON body; the status and the JSON body.
    pub fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(&self.url(), Method::POST, path, Some(body))
    }

    /// Creates a server token for `environment`; returns its id and secret.
    pub fn server_token(&self, environment: &str) -> (String, String) {
        let body = json!({"name": "sdk test", "scope": "server", "environment": environment});
        let (status, token) = self.call(&self.url(), Method::POST, "/api/v1/tokens", Some(body));
        assert_eq!(status, StatusCode::CREATED, "{token}");
        (
            token["id"].as_str().unwrap().to_owned(),
            token["secret"].as_str().unwrap().to_owned(),
        )
    }

    pub fn revoke(&self, token_id: &str) {
        let (status, body) = self.call(
            &self.url(),
            Method::DELETE,
            &format!("/api/v1/tokens/{token_id}"),
            None,
        );
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Replaces every flag and segment with `document`'s. (Used by `tests/alloc.rs`.)
    #[allow(dead_code)]
    pub fn import(&self, document: &Value) -> (StatusCode, Value) {
        self.call(
            &self.url(),
            Method::POST,
            "/api/v1/import",
            Some(document.clone()),
        )
    }

    pub fn create_flag(&self, key: &str, definition: Value) {
        let (status, body) = self.call(
            &self.url(),
            Method::POST,
            &format!("/api/v1/flags/{key}"),
            Some(definition),
        );
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Replaces a flag's definition, through the server at `base`.
    pub fn update_flag_at(&self, base: &str, key: &str, definition: Value) {
        let (status, body) = self.call(
            base,
            Method::PUT,
            &format!("/api/v1/flags/{key}"),
            Some(definition),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub fn update_flag(&self, key: &str, definition: Value) {
        self.update_flag_at(&self.url(), key, definition);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
        }
    }
}

async fn launch(dir: &std::path::Path, listener: TcpListener) -> (Running, Option<String>) {
    let args = ServeArgs {
        port: Some(0),
        data_dir: Some(dir.to_owned()),
        heartbeat: Some(1),
        ..ServeArgs::default()
    };
    let settings = Settings::load(args).unwrap();
    let started = sluice_server::start(settings).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sluice_server::serve(
        listener,
        started.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let state = started.state.clone();
    (Running { stop, task, state }, started.admin_token)
}

/// A string flag with the given default variant among `red`, `green` and `blue`.
pub fn color_flag(variant: &str) -> Value {
    json!({
        "type": "string",
        "variants": {"red": "red", "green": "green", "blue": "blue"},
        "default_variant": variant
    })
}

/// What the proxy does with each new connection.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Passes the request to the upstream server.
    Forward,
    /// Accepts, reads, and never answers.
    BlackHole,
    /// Answers every request with this status, headers and JSON body.
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Answers the live stream with a `200` event stream carrying this text, then holds it
    /// open; other requests are forwarded.
    Stream(String),
    /// Forwards the next request whose path starts with this prefix, waits for the server's
    /// whole answer, then closes the connection without passing it on, and goes back to
    /// `Forward`: the server did the work, the client never heard. Other requests are
    /// forwarded.
    LoseAnswer(String),
}

/// A request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub mode: &'static str,
}

struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    seen: Mutex<Vec<Seen>>,
    cut: watch::Sender<u64>,
}

pub struct Proxy {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    _runtime: Runtime,
}

impl Proxy {
    pub fn start(upstream: SocketAddr, mode: Mode) -> Proxy {
        let runtime = runtime();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(mode),
            seen: Mutex::new(Vec::new()),
            cut: watch::channel(0).0,
        });
        let accepting = Arc::clone(&shared);
        runtime.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(handle(socket, Arc::clone(&accepting)));
            }
        });
        Proxy {
            address,
            shared,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Changes how new connections are handled; open ones are left alone.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Closes every open connection, as a network failure would.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|generation| *generation += 1);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn handle(mut client: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    tokio::select! {
        () = serve_one(&mut client, &shared) => {}
        _ = cut.changed() => {}
    }
}

async fn serve_one(client: &mut TcpStream, shared: &Shared) {
    // Read the request head.
    let mut head = Vec::new();
    let mut buffer = [0_u8; 4096];
    let end = loop {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
        if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mode = shared.mode.lock().unwrap().clone();
    let name = match &mode {
        Mode::Forward => "forward",
        Mode::BlackHole => "black hole",
        Mode::Reply { .. } => "reply",
        Mode::Stream(_) if path.starts_with("/api/v1/stream") => "stream",
        Mode::Stream(_) => "forward",
        Mode::LoseAnswer(prefix) if path.starts_with(prefix.as_str()) => {
            *shared.mode.lock().unwrap() = Mode::Forward;
            "lose answer"
        }
        Mode::LoseAnswer(_) => "forward",
    };
    shared.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        path: path.clone(),
        mode: name,
    });
    match mode {
        Mode::BlackHole => std::future::pending::<()>().await,
        Mode::Reply {
            status,
            headers,
            body,
        } => {
            let mut response = format!(
                "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&body);
            let _ = client.write_all(response.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Mode::Stream(events) if name == "stream" => {
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n{events}"
            );
            let _ = client.write_all(response.as_bytes()).await;
            std::future::pending::<()>().await;
        }
        Mode::Forward | Mode::Stream(_) | Mode::LoseAnswer(_) => {
            let Ok(mut upstream) = TcpStream::connect(shared.upstream).await else {
                return;
            };
            // One request per connection, so connections count requests.
            let mut rewritten = String::new();
            for line in text.split("\r\n").filter(|line| !line.is_empty()) {
                if !line.to_ascii_lowercase().starts_with("connection:") {
                    rewritten.push_str(line);
                    rewritten.push_str("\r\n");
                }
            }
            rewritten.push_str("connection: close\r\n\r\n");
            if upstream.write_all(rewritten.as_bytes()).await.is_err()
                || upstream.write_all(&head[end..]).await.is_err()
            {
                return;
            }
            if name == "lose answer" {
                // Read the request's body through to the server, and its whole answer back.
                let (mut from_client, _) = client.split();
                let (mut from_server, mut to_server) = upstream.split();
                let mut answer = Vec::new();
                let forward = async {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    () = forward => {}
                    _ = from_server.read_to_end(&mut answer) => {}
                }
                return;
            }
            let _ = tokio::io::copy_bidirectional(client, &mut upstream).await;
        }
    }
}
