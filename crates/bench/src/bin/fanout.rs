//! `fanout`: how fast a flag write reaches 1,000 live-stream subscribers on loopback.
//!
//! The server runs in a child process (this binary with `--serve`: the server library on an
//! ephemeral port of 127.0.0.1, with SQLite in a temporary directory), so that it does not
//! share a runtime with the subscribers. This process opens N subscribers to
//! `GET /api/v1/stream` with a server token, all on one tokio runtime, then writes one flag W
//! times through the admin API, one write at a time. For each write it takes the instant
//! before sending the `PUT`, learns the configuration version the write produced, and waits
//! until every subscriber has received a `put` event with that version (or a later one).
//! Write-to-delivery is the time from that instant to the arrival of the event's bytes at a
//! subscriber; it prints p50, p99 and max over all N × W deliveries.
//!
//! Usage: `fanout [--subscribers N] [--writes W] [--pause-ms P]` (defaults 1000, 20, 200).
//! Each subscriber is a socket on both sides: raise the open-file limit (`ulimit -n 4096`),
//! as `bench/fanout.sh` does.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_bench::server::BenchServer;
use tokio::sync::mpsc;

const FLAG: &str = "fanout";

/// How long one write may take to reach every subscriber before the run fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

struct Options {
    subscribers: usize,
    writes: usize,
    pause: Duration,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        subscribers: 1_000,
        writes: 20,
        pause: Duration::from_millis(200),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value"));
        match argument.as_str() {
            "--subscribers" => {
                options.subscribers = value()?
                    .parse()
                    .map_err(|e| format!("--subscribers: {e}"))?;
            }
            "--writes" => {
                options.writes = value()?.parse().map_err(|e| format!("--writes: {e}"))?
            }
            "--pause-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--pause-ms: {e}"))?;
                options.pause = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.subscribers == 0 || options.writes == 0 {
        return Err("--subscribers and --writes must be positive".into());
    }
    Ok(options)
}

/// The child: a server until its standard input closes.
fn serve() -> ExitCode {
    let server = match BenchServer::start(2) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "READY {} {}", server.url, server.admin)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .is_ok_and(|read| read > 0)
    {
        sink.clear();
    }
    drop(server);
    ExitCode::SUCCESS
}

/// The server child, killed when dropped.
struct Server {
    child: Child,
    url: String,
    admin: String,
}

impl Server {
    fn spawn() -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("the server said nothing: {e}"))?;
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("READY"), Some(url), Some(admin)) => Ok(Server {
                url: url.to_owned(),
                admin: admin.to_owned(),
                child,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the server did not start: `{}`", line.trim()))
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its standard input stops it; kill it if it lingers.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration version a subscriber received, and when.
struct Received {
    subscriber: usize,
    version: i64,
    at: Instant,
}

/// Follows the stream, reporting the id (configuration version) of every event.
async fn subscribe(
    http: reqwest::Client,
    url: String,
    token: String,
    subscriber: usize,
    events: mpsc::UnboundedSender<Received>,
) -> Result<(), String> {
    let mut response = http
        .get(&url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("subscriber {subscriber}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("subscriber {subscriber}: {}", response.status()));
    }
    let mut pending = String::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("subscriber {subscriber}: {e}"))?
    {
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            if let Some(id) = pending[..end].strip_prefix("id:")
                && let Ok(version) = id.trim().parse()
            {
                let _ = events.send(Received {
                    subscriber,
                    version,
                    at,
                });
            }
            pending.drain(..=end);
        }
    }
    Err(format!("subscriber {subscriber}: the stream ended"))
}

async fn admin(
    http: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> Result<Value, String> {
    let response = http
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(&server.admin)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|e| format!("{path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{path} answered {status}: {answer}"));
    }
    Ok(answer)
}

fn definition(variant: &str) -> Value {
    json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": variant})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1_000.0)
}

/// What one run measured.
struct Measured {
    /// Every delivery, from the write.
    deliveries: Vec<Duration>,
    /// Per write: how long the `PUT` took to answer.
    writes: Vec<Duration>,
    /// Per write: from the first subscriber's delivery to the last one's.
    spreads: Vec<Duration>,
}

async fn measure(options: &Options, server: &Server) -> Result<Measured, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    admin(
        &http,
        server,
        reqwest::Method::POST,
        &format!("/api/v1/flags/{FLAG}"),
        &definition("on"),
    )
    .await?;
    let token = admin(
        &http,
        server,
        reqwest::Method::POST,
        "/api/v1/tokens",
        &json!({"name": "fanout", "scope": "server", "environment": "production"}),
    )
    .await?["secret"]
        .as_str()
        .ok_or("no token secret")?
        .to_owned();

    // Streams have no overall timeout.
    let streams = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    let (sender, mut events) = mpsc::unbounded_channel();
    let stream_url = format!("{}/api/v1/stream", server.url);
    let mut tasks = tokio::task::JoinSet::new();
    for subscriber in 0..options.subscribers {
        tasks.spawn(subscribe(
            streams.clone(),
            stream_url.clone(),
            token.clone(),
            subscriber,
            sender.clone(),
        ));
    }
    drop(sender);

    // Every subscriber first receives the current configuration.
    let connecting = Instant::now();
    let mut connected = vec![false; options.subscribers];
    let mut count = 0;
    while count < options.subscribers {
        tokio::select! {
            received = events.recv() => {
                let received = received.ok_or("every subscriber ended")?;
                if !std::mem::replace(&mut connected[received.subscriber], true) {
                    count += 1;
                }
            }
            Some(ended) = tasks.join_next() => {
                let error = match ended {
                    Ok(Err(error)) => error,
                    Ok(Ok(())) => "a subscriber ended".to_owned(),
                    Err(error) => error.to_string(),
                };
                return Err(format!("{error} (with many subscribers, raise `ulimit -n`)"));
            }
            () = tokio::time::sleep(DELIVERY_TIMEOUT) => {
                return Err(format!("only {count} of {} subscribers connected", options.subscribers));
            }
        }
    }
    eprintln!(
        "{} subscribers connected in {:.1} s",
        options.subscribers,
        connecting.elapsed().as_secs_f64()
    );

    let config_url = format!("{}/api/v1/config", server.url);
    let mut latencies = Vec::with_capacity(options.subscribers * options.writes);
    let mut writes = Vec::with_capacity(options.writes);
    let mut spreads = Vec::with_capacity(options.writes);
    for write in 0..options.writes {
        tokio::time::sleep(options.pause).await;
        let variant = if write % 2 == 0 { "off" } else { "on" };
        let written_at = Instant::now();
        admin(
            &http,
            server,
            reqwest::Method::PUT,
            &format!("/api/v1/flags/{FLAG}"),
            &definition(variant),
        )
        .await?;
        writes.push(written_at.elapsed());
        let config: Value = http
            .get(&config_url)
            .bearer_auth(&token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("/api/v1/config: {e}"))?
            .json()
            .await
            .map_err(|e| format!("/api/v1/config: {e}"))?;
        let version = config["version"]
            .as_i64()
            .ok_or("no version in the configuration")?;
        let mut delivered: Vec<Option<Instant>> = vec![None; options.subscribers];
        let mut count = 0;
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        while count < options.subscribers {
            let received = tokio::time::timeout_at(deadline, events.recv())
                .await
                .map_err(|_| {
                    format!(
                        "write {write}: only {count} of {} subscribers got version {version}",
                        options.subscribers
                    )
                })?
                .ok_or("every subscriber ended")?;
            if received.version >= version && delivered[received.subscriber].is_none() {
                delivered[received.subscriber] = Some(received.at);
                count += 1;
            }
        }
        let arrived: Vec<Instant> = delivered.into_iter().flatten().collect();
        if let (Some(first), Some(last)) = (arrived.iter().min(), arrived.iter().max()) {
            spreads.push(last.saturating_duration_since(*first));
        }
        latencies.extend(
            arrived
                .iter()
                .map(|at| at.saturating_duration_since(written_at)),
        );
    }
    tasks.abort_all();
    Ok(Measured {
        deliveries: latencies,
        writes,
        spreads,
    })
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        return serve();
    }
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::spawn() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Measured {
        deliveries: mut latencies,
        mut writes,
        mut spreads,
    } = match runtime.block_on(measure(&options, &server)) {
        Ok(measured) => measured,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(server);
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>()
        / u32::try_from(latencies.len().max(1)).unwrap_or(u32::MAX);
    println!(
        "{} subscribers × {} writes = {} deliveries, write to delivery:",
        options.subscribers,
        options.writes,
        latencies.len()
    );
    println!();
    println!("| p50 | p99 | max | min | mean |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} |",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        ms(latencies.first().copied().unwrap_or_default()),
        ms(mean),
    );
    writes.sort();
    spreads.sort();
    println!();
    println!(
        "Per write (median over {} writes): the `PUT` answered in {}; the first to the last delivery took {} (max {}).",
        writes.len(),
        ms(percentile(&writes, 50.0)),
        ms(percentile(&spreads, 50.0)),
        ms(spreads.last().copied().unwrap_or_default()),
    );
    ExitCode::SUCCESS
}
