//! What the demo stages: the simulated users, how the old and new checkout behave for them in
//! each scenario, and the time-compressed rollout plan. Pure data and arithmetic; the traffic
//! generator and the seeding do the I/O.

use serde_json::{Value, json};

/// The flag the demo rolls out.
pub const FLAG: &str = "new-checkout";
/// The release the change ships in.
pub const RELEASE: &str = "checkout-v2";
/// The environment everything happens in.
pub const ENV: &str = "production";
/// How many simulated users there are.
pub const USERS: u32 = 20_000;

/// Which story the demo tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The new checkout fails for customers on legacy billing, whom the internal and beta
    /// stages do not include: the 10% stage exposes it and the controller rolls back.
    Regression,
    /// The new checkout behaves like the old one and rolls out to 100%.
    Healthy,
    /// The new checkout is slow for customers on legacy billing: the latency guardrail
    /// catches it at the 10% stage and the controller rolls back.
    Latency,
}

impl Scenario {
    /// The name used on the command line and in events.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Regression => "regression",
            Scenario::Healthy => "healthy",
            Scenario::Latency => "latency",
        }
    }

    /// What the scenario is expected to end in: `rolled_back` or `completed`.
    pub fn expected(self) -> &'static str {
        match self {
            Scenario::Healthy => "completed",
            Scenario::Regression | Scenario::Latency => "rolled_back",
        }
    }
}

/// One simulated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The targeting key, `user-N`.
    pub key: String,
    /// Staff: in the `internal` segment.
    pub staff: bool,
    /// Opted into beta: in the `beta-testers` segment.
    pub beta: bool,
    /// An ordinary customer still on legacy billing, the path the new code gets wrong.
    pub legacy_billing: bool,
}

/// The user population: 0.05% staff, 0.1% beta testers, the rest customers, a third of whom
/// are on legacy billing. Deterministic, so every run has the same people.
///
/// Staff and beta testers are kept to the small share of traffic they are in practice: they
/// stay on the new path through the later stages, and the controller's sample-ratio check
/// expects exactly the stage's percentage in the treatment arm (see docs/demo.md).
pub fn population(count: u32) -> Vec<User> {
    (0..count)
        .map(|i| {
            let staff = i % 2000 == 0;
            let beta = !staff && i % 2000 <= 2;
            let customer = !staff && !beta;
            User {
                key: format!("user-{i}"),
                staff,
                beta,
                legacy_billing: customer && i % 3 == 0,
            }
        })
        .collect()
}

/// What one checkout request did: whether it failed, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The request failed.
    pub error: bool,
    /// Its latency in milliseconds.
    pub latency_ms: f64,
}

/// The baseline error rate of both checkouts.
pub const BASE_ERROR_RATE: f64 = 0.005;
/// The new checkout's error rate for customers on legacy billing, in `regression`.
pub const REGRESSED_ERROR_RATE: f64 = 0.5;
/// How much slower the new checkout is for customers on legacy billing, in `latency`.
pub const LATENCY_FACTOR: f64 = 3.0;

/// One request by `user` on the old (`treatment == false`) or new checkout, from two uniform
/// draws in `[0, 1)`.
pub fn outcome(scenario: Scenario, user: &User, treatment: bool, draw: f64, size: f64) -> Outcome {
    // Latency: 30 ms plus a right-skewed tail up to 70 ms more.
    let base = 30.0 + 70.0 * size * size * size;
    let affected = treatment && user.legacy_billing;
    let error_rate = match scenario {
        Scenario::Regression if affected => REGRESSED_ERROR_RATE,
        _ => BASE_ERROR_RATE,
    };
    let latency_ms = match scenario {
        Scenario::Latency if affected => base * LATENCY_FACTOR,
        _ => base,
    };
    Outcome {
        error: draw < error_rate,
        latency_ms,
    }
}

/// The rollout plan: the standard template's shape (internal, beta, 10%, 50%, 100%) with
/// bakes of seconds instead of hours and samples sized to the demo's traffic.
pub fn plan() -> Value {
    json!({
        "name": "demo (time-compressed standard)",
        "description": "internal → beta → 10% → 50% → 100%, with bakes of seconds",
        "stages": [
            {"audience": {"segment": "internal"}, "percent": 100,
             "bake": "3s", "min_samples": 10, "gate": "no_failure"},
            {"audience": {"segment": "beta-testers"}, "percent": 100,
             "bake": "3s", "min_samples": 20, "gate": "no_failure"},
            {"percent": 10, "bake": "5s", "min_samples": 2000},
            {"percent": 50, "bake": "5s", "min_samples": 2000},
            {"percent": 100, "bake": "0s"}
        ],
        "guardrails": [
            {"metric": "error_rate", "tolerance": "25% or 1pp"},
            {"metric": "latency_p95", "tolerance": "20% or 10ms"}
        ],
        "on_failure": "rollback",
        "max_hold": "1m"
    })
}

/// A small deterministic generator (SplitMix64) for the traffic's draws, so the demo needs
/// no random-number crate and a seed replays a run's choices.
#[derive(Debug, Clone)]
pub struct Draws(u64);

impl Draws {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Draws {
        Draws(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_population_has_staff_beta_and_legacy_customers_in_the_stated_shares() {
        let users = population(20_000);
        let staff = users.iter().filter(|u| u.staff).count();
        let beta = users.iter().filter(|u| u.beta).count();
        let legacy = users.iter().filter(|u| u.legacy_billing).count();
        assert_eq!(staff, 10);
        assert_eq!(beta, 20);
        assert!((6500..6800).contains(&legacy), "{legacy}");
        assert!(
            users
                .iter()
                .all(|u| !(u.legacy_billing && (u.staff || u.beta)))
        );
    }

    #[test]
    fn only_the_new_path_for_legacy_customers_regresses() {
        let users = population(100);
        let legacy = users.iter().find(|u| u.legacy_billing).unwrap();
        let staff = users.iter().find(|u| u.staff).unwrap();
        let draw = 0.1;
        assert!(outcome(Scenario::Regression, legacy, true, draw, 0.5).error);
        assert!(!outcome(Scenario::Regression, legacy, false, draw, 0.5).error);
        assert!(!outcome(Scenario::Regression, staff, true, draw, 0.5).error);
        assert!(!outcome(Scenario::Healthy, legacy, true, draw, 0.5).error);
        let slow = outcome(Scenario::Latency, legacy, true, 0.9, 0.5).latency_ms;
        let old = outcome(Scenario::Latency, legacy, false, 0.9, 0.5).latency_ms;
        assert!((slow - old * LATENCY_FACTOR).abs() < 1e-9);
        assert!(!outcome(Scenario::Latency, legacy, true, 0.9, 0.5).error);
    }

    #[test]
    fn draws_are_uniform_enough_and_repeatable() {
        let mut a = Draws::new(7);
        let mut b = Draws::new(7);
        let values: Vec<f64> = (0..10_000).map(|_| a.unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert_eq!(values[0], b.unit());
        assert!((0..1000).all(|_| a.below(5) < 5));
    }
}
