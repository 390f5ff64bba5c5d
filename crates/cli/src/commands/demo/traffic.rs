//! The demo's traffic: several application instances, each a real SDK client in server mode
//! with telemetry on, serving checkout requests for simulated users on threads of their own.
//! The "new code" path records its errors and latency through the SDK, exactly as an
//! application would, so the rollout controller judges real telemetry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sluice::{Client, Context, ContextBuilder};

use super::scenario::{Draws, FLAG, Scenario, User, outcome};

/// How often the SDKs send telemetry: short, so each stage's window fills in seconds.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Requests each instance serves per pacing step.
const BATCH: u32 = 20;
/// The pacing step: 20 requests every 10 ms, 2,000 a second per instance.
const STEP: Duration = Duration::from_millis(10);

/// Request counts, shared with the view.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests served.
    pub requests: AtomicU64,
    /// Requests served by the new checkout.
    pub treatment: AtomicU64,
    /// Requests that failed.
    pub errors: AtomicU64,
}

/// Running traffic: the SDK clients and the threads driving them.
pub struct Traffic {
    /// One SDK client per simulated application instance.
    pub clients: Vec<Client>,
    /// What they served so far.
    pub counts: Arc<Counts>,
    users: Arc<Vec<(User, Context)>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// One SDK client as an application would build it, against the demo server.
fn client(url: &str, token: &str) -> anyhow::Result<Client> {
    Client::builder()
        .server(url)
        .token(token)
        // The demo's behaviour must not depend on SLUICE_FLAG_* in the caller's shell.
        .env_vars(Vec::<(String, String)>::new())
        .init_timeout(Duration::from_secs(10))
        .poll_interval(Duration::from_millis(500))
        .telemetry(true)
        .flush_interval(FLUSH_INTERVAL)
        .build()
        .context("the demo's SDK client could not connect to the server")
}

/// The context an application would pass for `user`.
fn context(user: &User) -> Context {
    ContextBuilder::new(user.key.clone())
        .attr("staff", user.staff)
        .attr("beta_opt_in", user.beta)
        .attr(
            "billing",
            if user.legacy_billing {
                "legacy"
            } else {
                "current"
            },
        )
        .build()
}

impl Traffic {
    /// Builds `instances` SDK clients with the server token and starts serving requests.
    pub fn start(
        url: &str,
        token: &str,
        scenario: Scenario,
        users: Vec<User>,
        instances: usize,
    ) -> anyhow::Result<Traffic> {
        let users: Arc<Vec<(User, Context)>> = Arc::new(
            users
                .into_iter()
                .map(|user| {
                    let context = context(&user);
                    (user, context)
                })
                .collect(),
        );
        let clients = (0..instances)
            .map(|_| client(url, token))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut threads = Vec::new();
        for (index, sdk) in clients.iter().enumerate() {
            let sdk = sdk.clone();
            let users = users.clone();
            let stop = stop.clone();
            let counts = counts.clone();
            let thread = std::thread::Builder::new()
                .name(format!("demo-app-{}", index + 1))
                .spawn(move || serve(&sdk, scenario, &users, &stop, &counts, index as u64))
                .context("cannot start a traffic thread")?;
            threads.push(thread);
        }
        Ok(Traffic {
            clients,
            counts,
            users,
            stop,
            threads,
        })
    }

    /// The SDK instance ids, as `GET /api/v1/instances` lists them.
    pub fn instance_ids(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter_map(|c| c.instance_id().map(str::to_owned))
            .collect()
    }

    /// How many users each SDK client serves the new checkout to now.
    pub fn on_treatment(&self) -> Vec<usize> {
        self.clients
            .iter()
            .map(|sdk| {
                self.users
                    .iter()
                    .filter(|(_, context)| sdk.bool(FLAG, context, false))
                    .count()
            })
            .collect()
    }

    /// Stops the traffic and sends what the SDKs still hold.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        for sdk in &self.clients {
            sdk.flush_telemetry(Duration::from_secs(2));
        }
    }
}

/// One application instance: paced checkout requests until told to stop.
fn serve(
    sdk: &Client,
    scenario: Scenario,
    users: &[(User, Context)],
    stop: &AtomicBool,
    counts: &Counts,
    seed: u64,
) {
    let mut draws = Draws::new(0x5EED_0000 + seed);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            let Some((user, context)) = users.get(draws.below(users.len())) else {
                continue;
            };
            let treatment = sdk.bool(FLAG, context, false);
            let result = outcome(scenario, user, treatment, draws.unit(), draws.unit());
            sdk.record_latency(FLAG, Duration::from_secs_f64(result.latency_ms / 1000.0));
            if result.error {
                sdk.record_error(FLAG);
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
            counts.requests.fetch_add(1, Ordering::Relaxed);
            if treatment {
                counts.treatment.fetch_add(1, Ordering::Relaxed);
            }
        }
        next += STEP;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind (a slow machine): serve at the rate it manages instead of bursting.
            next = now;
        }
    }
}
