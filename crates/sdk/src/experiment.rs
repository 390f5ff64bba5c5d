//! Shadow experiments: run new code (the candidate) beside old code (the control) on real
//! inputs, compare the results, and always return the control's.
//!
//! ```no_run
//! # let client = sluice::Client::from_file("flags.yaml")?;
//! # let ctx = sluice::Context::with_key("user-1");
//! # fn old_price(_: &[u32]) -> f64 { 1.0 }
//! # fn new_price(_: &[u32]) -> f64 { 1.0 }
//! let cart = vec![3, 4];
//! let price = client
//!     .experiment("pricing-v2")
//!     .control(|| old_price(&cart))
//!     .candidate(|| new_price(&cart))
//!     .compare(|a, b| (a - b).abs() < 0.005)
//!     .run(&ctx);
//! # Ok::<(), sluice::Error>(())
//! ```
//!
//! # The key decision: the flag decides who is shadowed
//!
//! The experiment's key is a flag key. For each context the flag is evaluated (an exposure
//! like any other) and the candidate runs only when it serves a *candidate variant*: a
//! variant named `candidate`, `on` or `treatment`, or whose value is boolean `true`. Bucketing
//! is sticky, so the same contexts are shadowed on every call, and the share is set, widened
//! or stopped from the server (or by a rollout) without a deploy. A flag that is missing,
//! switched off or not ready never runs the candidate.
//!
//! Two modes:
//!
//! - [`Experiment::run`] (inline): control, then candidate, on the calling thread. The
//!   closures may borrow. The candidate is isolated from panics (`catch_unwind`); a result
//!   later than the timeout is discarded and counted as a timeout, but an inline candidate
//!   cannot be interrupted, so it adds its time to the call. Use it where that is acceptable.
//! - [`AsyncExperiment::run`] (`client.experiment_async(key)`): the control runs inline and
//!   is returned at once; the candidate is queued for the client's shadow workers (a bounded
//!   queue of [`QUEUE_CAPACITY`]; a full queue drops the run and counts it). A worker runs the
//!   candidate on an executor thread and waits at most the timeout; a candidate that hangs is
//!   abandoned (its thread is left to finish on its own, at most [`MAX_HUNG`] at a time) and
//!   counted as a timeout. The closures must be `Send + 'static`.
//!
//! Each run ends as one [`Outcome`]: match, mismatch, ignored (the `ignore` hook waived the
//! difference), noisy (the control disagreed with itself, see below), candidate error (a
//! panic), candidate timeout, or dropped. Durations of both sides are kept. With telemetry
//! on they go to the server in the telemetry batches, per experiment, configuration version
//! and 10-second bucket, with up to three mismatching pairs per bucket rendered by the
//! `clean` hook and cut to 1 KiB each. `publish` sees every result as it happens.
//!
//! **Noise floor.** With `noise_floor(share)`, that share of the shadowed runs also runs the
//! control a second time and compares the two controls. A disagreement is a noise mismatch,
//! reported apart, and the candidate's comparison on that run counts as `noisy`, neither
//! match nor mismatch, since the control itself was not deterministic there.

mod runner;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_core::Context;

use crate::Client;
use crate::telemetry::Telemetry;
use crate::telemetry::shadow::{Counted, ShadowObservation};

pub(crate) use runner::Runner;
pub use runner::{MAX_HUNG, QUEUE_CAPACITY, WORKERS};

/// How long a candidate may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The variant names that mean "run the candidate" (besides a value of `true`).
pub const CANDIDATE_VARIANTS: [&str; 3] = ["candidate", "on", "treatment"];

thread_local! {
    static IN_CANDIDATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is running a candidate now: the crash hook records nothing then,
/// since a candidate's panic is the experiment's evidence, not a crash of the application.
pub(crate) fn in_candidate() -> bool {
    IN_CANDIDATE.with(std::cell::Cell::get)
}

/// Runs `work` as a candidate: panics are caught and become `Err` with their message.
fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    IN_CANDIDATE.with(|flag| flag.set(true));
    let result = catch_unwind(AssertUnwindSafe(work));
    IN_CANDIDATE.with(|flag| flag.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

/// How one run of an experiment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The candidate's result equals the control's.
    Match,
    /// The candidate's result differs from the control's.
    Mismatch,
    /// They differ, and the `ignore` hook waived it.
    Ignored,
    /// The control, run twice, disagreed with itself; the candidate was not judged.
    Noisy,
    /// The candidate panicked, with the panic's message.
    CandidateError(String),
    /// The candidate did not finish within the timeout.
    CandidateTimeout,
    /// The background queue was full, or too many candidates hung: not run.
    Dropped,
}

/// One run of an experiment, as `publish` sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExperimentResult {
    /// The experiment's key.
    pub experiment: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long the control took.
    pub control: Duration,
    /// How long the candidate took, when it finished.
    pub candidate: Option<Duration>,
    /// When the control ran twice: whether the two agreed.
    pub noise_matched: Option<bool>,
}

type Compare<'a, T> = Box<dyn Fn(&T, &T) -> bool + 'a>;
type CompareRef<'r, T> = &'r dyn Fn(&T, &T) -> bool;
type Clean<'a, T> = Box<dyn Fn(&T) -> String + 'a>;
type Publish<'a> = Box<dyn Fn(&ExperimentResult) + 'a>;

/// What the flag says about one context: whether to shadow, and under which version.
pub(crate) struct Sampled {
    run: bool,
    version: i64,
    telemetry: Option<Arc<Telemetry>>,
}

/// Whether a served variant means "run the candidate".
pub fn is_candidate_variant(variant: &str, value: Option<&Value>) -> bool {
    CANDIDATE_VARIANTS.contains(&variant) || value == Some(&Value::Bool(true))
}

impl Client {
    /// Starts an inline shadow experiment sampled by the flag `key`; see [`crate::experiment`].
    pub fn experiment<'a, T>(&'a self, key: &'a str) -> Experiment<'a, T> {
        Experiment {
            client: self,
            key,
            control: None,
            candidate: None,
            compare: None,
            ignore: None,
            clean: None,
            publish: None,
            timeout: DEFAULT_TIMEOUT,
            noise_floor: 0.0,
        }
    }

    /// Starts a shadow experiment whose candidate runs in the background, off the request
    /// path; see [`crate::experiment`].
    pub fn experiment_async<T>(&self, key: &str) -> AsyncExperiment<'_, T> {
        AsyncExperiment {
            client: self,
            key: key.to_owned(),
            control: None,
            candidate: None,
            compare: None,
            ignore: None,
            clean: None,
            publish: None,
            timeout: DEFAULT_TIMEOUT,
            noise_floor: 0.0,
        }
    }

    /// Evaluates the experiment's flag for `context`, counting the exposure.
    fn sample(&self, key: &str, context: &Context) -> Sampled {
        let guard = self.inner().snapshot();
        let Some(snapshot) = guard.as_deref() else {
            return Sampled {
                run: false,
                version: 0,
                telemetry: None,
            };
        };
        let (evaluation, _) = snapshot.evaluate(key, context);
        snapshot.expose(&evaluation, context);
        let run = evaluation
            .variant
            .is_some_and(|variant| is_candidate_variant(variant, evaluation.value));
        Sampled {
            run,
            version: snapshot.version().unwrap_or(0),
            telemetry: self.inner().telemetry().cloned(),
        }
    }
}

/// Whether this run should also run the control a second time.
fn noise_draw(share: f64) -> bool {
    share > 0.0 && rand_unit() < share
}

/// A uniform number in [0, 1) from the standard library's random hasher keys.
fn rand_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The classification shared by both modes.
fn classify<T>(
    control: &T,
    candidate: &T,
    noise_matched: Option<bool>,
    compare: CompareRef<'_, T>,
    ignore: Option<CompareRef<'_, T>>,
) -> Result<Outcome, String> {
    if noise_matched == Some(false) {
        return Ok(Outcome::Noisy);
    }
    let equal = guarded(|| compare(control, candidate))?;
    if equal {
        return Ok(Outcome::Match);
    }
    let waived = match ignore {
        Some(ignore) => guarded(|| ignore(control, candidate))?,
        None => false,
    };
    Ok(if waived {
        Outcome::Ignored
    } else {
        Outcome::Mismatch
    })
}

/// Records a finished run: to telemetry (with a sample of a mismatch) and to `publish`.
#[allow(clippy::too_many_arguments)]
fn record<T>(
    key: &str,
    sampled: &Sampled,
    result: ExperimentResult,
    pair: Option<(&T, &T)>,
    clean: Option<&dyn Fn(&T) -> String>,
    publish: Option<&dyn Fn(&ExperimentResult)>,
) {
    if let Some(telemetry) = &sampled.telemetry {
        let sample = match (&result.outcome, pair, clean) {
            (Outcome::Mismatch, Some((control, candidate)), Some(clean))
                if telemetry.wants_shadow_sample(key, sampled.version) =>
            {
                guarded(|| (clean(control), clean(candidate))).ok()
            }
            _ => None,
        };
        telemetry.shadow(
            key,
            sampled.version,
            observation(&result, sample, telemetry),
        );
    }
    if let Some(publish) = publish {
        let _ = guarded(|| publish(&result));
    }
}

fn observation(
    result: &ExperimentResult,
    sample: Option<(String, String)>,
    telemetry: &Telemetry,
) -> ShadowObservation {
    let counted = match result.outcome {
        Outcome::Match => Counted::Match,
        Outcome::Mismatch => Counted::Mismatch,
        Outcome::Ignored => Counted::Ignored,
        Outcome::Noisy => Counted::Noisy,
        Outcome::CandidateError(_) => Counted::CandidateError,
        Outcome::CandidateTimeout => Counted::CandidateTimeout,
        Outcome::Dropped => Counted::Dropped,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    ShadowObservation {
        counted,
        control_ms: Some(ms(result.control)),
        candidate_ms: result.candidate.map(ms),
        noise_matched: result.noise_matched,
        sample,
        at_ms: telemetry.clock_ms(),
    }
}

/// An inline shadow experiment: from [`Client::experiment`].
#[must_use = "an experiment does nothing until `run`"]
pub struct Experiment<'a, T> {
    client: &'a Client,
    key: &'a str,
    control: Option<Box<dyn Fn() -> T + 'a>>,
    candidate: Option<Box<dyn FnOnce() -> T + 'a>>,
    compare: Option<Compare<'a, T>>,
    ignore: Option<Compare<'a, T>>,
    clean: Option<Clean<'a, T>>,
    publish: Option<Publish<'a>>,
    timeout: Duration,
    noise_floor: f64,
}

impl<T> fmt::Debug for Experiment<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("noise_floor", &self.noise_floor)
            .finish_non_exhaustive()
    }
}

impl<'a, T> Experiment<'a, T> {
    /// The old code, whose result is always returned. Runs once per call (twice on a noise
    /// floor sample).
    pub fn control(mut self, control: impl Fn() -> T + 'a) -> Self {
        self.control = Some(Box::new(control));
        self
    }

    /// The new code, run for shadowed contexts only.
    pub fn candidate(mut self, candidate: impl FnOnce() -> T + 'a) -> Self {
        self.candidate = Some(Box::new(candidate));
        self
    }

    /// Whether two results count as equal. Without it (or [`Experiment::compare_eq`]) the
    /// candidate is never run.
    pub fn compare(mut self, compare: impl Fn(&T, &T) -> bool + 'a) -> Self {
        self.compare = Some(Box::new(compare));
        self
    }

    /// Compares with `==`.
    pub fn compare_eq(self) -> Self
    where
        T: PartialEq,
    {
        self.compare(|a: &T, b: &T| a == b)
    }

    /// Waives a difference: when it returns true, a mismatch is counted as `ignored`.
    pub fn ignore(mut self, ignore: impl Fn(&T, &T) -> bool + 'a) -> Self {
        self.ignore = Some(Box::new(ignore));
        self
    }

    /// Renders a result for the sampled mismatching pairs (cut to 1 KiB). Without it no
    /// pairs are sent, only counts.
    pub fn clean(mut self, clean: impl Fn(&T) -> String + 'a) -> Self {
        self.clean = Some(Box::new(clean));
        self
    }

    /// Renders results with their `Debug` form for the sampled pairs.
    pub fn clean_debug(self) -> Self
    where
        T: fmt::Debug,
    {
        self.clean(|value: &T| format!("{value:?}"))
    }

    /// Called with every result, after it is recorded. A panic in it is caught.
    pub fn publish(mut self, publish: impl Fn(&ExperimentResult) + 'a) -> Self {
        self.publish = Some(Box::new(publish));
        self
    }

    /// How long the candidate may take ([`DEFAULT_TIMEOUT`]); a later result is discarded.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The share of shadowed runs (0 to 1) on which the control runs twice, to measure how
    /// often it disagrees with itself. 0, the default, turns it off.
    pub fn noise_floor(mut self, share: f64) -> Self {
        self.noise_floor = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Runs the control (and, for a shadowed context, the candidate), records the result,
    /// and returns the control's result.
    ///
    /// # Panics
    ///
    /// Only if no control was given, or the control itself panics: the control is the
    /// application's own code and its behaviour is kept as it is.
    #[allow(clippy::panic)]
    pub fn run(self, context: &Context) -> T {
        let Some(control) = self.control else {
            panic!("experiment `{}` has no control", self.key);
        };
        let sampled = self.client.sample(self.key, context);
        let started = Instant::now();
        let value = control();
        let control_time = started.elapsed();
        let (Some(candidate), Some(compare), true) = (self.candidate, &self.compare, sampled.run)
        else {
            return value;
        };
        let noise_matched = noise_draw(self.noise_floor).then(|| {
            guarded(&*control)
                .map(|again| guarded(|| compare(&value, &again)).unwrap_or(false))
                .unwrap_or(false)
        });
        let started = Instant::now();
        let outcome = guarded(candidate);
        let candidate_time = started.elapsed();
        let (outcome, kept) = match outcome {
            Err(message) => (Outcome::CandidateError(message), None),
            Ok(_) if candidate_time > self.timeout => (Outcome::CandidateTimeout, None),
            Ok(result) => {
                let outcome = classify(
                    &value,
                    &result,
                    noise_matched,
                    &**compare,
                    self.ignore.as_deref(),
                )
                .unwrap_or_else(Outcome::CandidateError);
                (outcome, Some(result))
            }
        };
        let finished = !matches!(outcome, Outcome::CandidateTimeout);
        let result = ExperimentResult {
            experiment: self.key.to_owned(),
            outcome,
            control: control_time,
            candidate: finished.then_some(candidate_time),
            noise_matched,
        };
        record(
            self.key,
            &sampled,
            result,
            kept.as_ref().map(|candidate| (&value, candidate)),
            self.clean.as_deref(),
            self.publish.as_deref(),
        );
        value
    }
}

type SendCompare<T> = Arc<dyn Fn(&T, &T) -> bool + Send + Sync>;
type SendClean<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;
type SendPublish = Arc<dyn Fn(&ExperimentResult) + Send + Sync>;

/// A shadow experiment whose candidate runs in the background: from
/// [`Client::experiment_async`].
#[must_use = "an experiment does nothing until `run`"]
pub struct AsyncExperiment<'c, T> {
    client: &'c Client,
    key: String,
    control: Option<Arc<dyn Fn() -> T + Send + Sync>>,
    candidate: Option<Box<dyn FnOnce() -> T + Send>>,
    compare: Option<SendCompare<T>>,
    ignore: Option<SendCompare<T>>,
    clean: Option<SendClean<T>>,
    publish: Option<SendPublish>,
    timeout: Duration,
    noise_floor: f64,
}

impl<T> fmt::Debug for AsyncExperiment<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncExperiment")
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("noise_floor", &self.noise_floor)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> AsyncExperiment<'_, T> {
    /// The old code, whose result is always returned.
    pub fn control(mut self, control: impl Fn() -> T + Send + Sync + 'static) -> Self {
        self.control = Some(Arc::new(control));
        self
    }

    /// The new code, run in the background for shadowed contexts only.
    pub fn candidate(mut self, candidate: impl FnOnce() -> T + Send + 'static) -> Self {
        self.candidate = Some(Box::new(candidate));
        self
    }

    /// Whether two results count as equal.
    pub fn compare(mut self, compare: impl Fn(&T, &T) -> bool + Send + Sync + 'static) -> Self {
        self.compare = Some(Arc::new(compare));
        self
    }

    /// Compares with `==`.
    pub fn compare_eq(self) -> Self
    where
        T: PartialEq,
    {
        self.compare(|a: &T, b: &T| a == b)
    }

    /// Waives a difference: when it returns true, a mismatch is counted as `ignored`.
    pub fn ignore(mut self, ignore: impl Fn(&T, &T) -> bool + Send + Sync + 'static) -> Self {
        self.ignore = Some(Arc::new(ignore));
        self
    }

    /// Renders a result for the sampled mismatching pairs.
    pub fn clean(mut self, clean: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.clean = Some(Arc::new(clean));
        self
    }

    /// Renders results with their `Debug` form for the sampled pairs.
    pub fn clean_debug(self) -> Self
    where
        T: fmt::Debug,
    {
        self.clean(|value: &T| format!("{value:?}"))
    }

    /// Called with every result, on a shadow worker thread. A panic in it is caught.
    pub fn publish(mut self, publish: impl Fn(&ExperimentResult) + Send + Sync + 'static) -> Self {
        self.publish = Some(Arc::new(publish));
        self
    }

    /// How long the candidate may take before it is abandoned ([`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The share of shadowed runs on which the control runs a second time, in the
    /// background, to measure the noise floor.
    pub fn noise_floor(mut self, share: f64) -> Self {
        self.noise_floor = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Runs the control, queues the candidate for a shadowed context, and returns the
    /// control's result without waiting for the candidate.
    ///
    /// # Panics
    ///
    /// Only if no control was given, or the control itself panics.
    #[allow(clippy::panic)]
    pub fn run(self, context: &Context) -> T {
        let Some(control) = self.control else {
            panic!("experiment `{}` has no control", self.key);
        };
        let sampled = self.client.sample(&self.key, context);
        let started = Instant::now();
        let value = control();
        let control_time = started.elapsed();
        let (Some(candidate), Some(compare), true) = (self.candidate, self.compare, sampled.run)
        else {
            return value;
        };
        let noise = noise_draw(self.noise_floor).then_some(control);
        let job = runner::ShadowRun {
            key: self.key,
            sampled,
            control_value: value.clone(),
            control_time,
            candidate,
            noise,
            compare,
            ignore: self.ignore,
            clean: self.clean,
            publish: self.publish,
        };
        self.client
            .inner()
            .shadow_runner()
            .submit(job, self.timeout);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_variants_follow_the_convention() {
        assert!(is_candidate_variant("on", None));
        assert!(is_candidate_variant("candidate", None));
        assert!(is_candidate_variant("treatment", None));
        assert!(is_candidate_variant("yes", Some(&Value::Bool(true))));
        assert!(!is_candidate_variant("off", Some(&Value::Bool(false))));
        assert!(!is_candidate_variant(
            "control",
            Some(&Value::String("on".into()))
        ));
    }

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(guarded(|| 3), Ok(3));
        let caught = guarded(|| -> i32 { panic!("boom {}", 7) });
        assert_eq!(caught, Err("boom 7".to_owned()));
        assert!(!in_candidate());
    }

    #[test]
    fn noise_disagreement_wins_over_the_comparison() {
        let eq = |a: &i32, b: &i32| a == b;
        assert_eq!(classify(&1, &1, Some(false), &eq, None), Ok(Outcome::Noisy));
        assert_eq!(classify(&1, &1, Some(true), &eq, None), Ok(Outcome::Match));
        assert_eq!(classify(&1, &2, None, &eq, None), Ok(Outcome::Mismatch));
        let waive = |_: &i32, b: &i32| *b == 2;
        assert_eq!(
            classify(&1, &2, None, &eq, Some(&waive)),
            Ok(Outcome::Ignored)
        );
        let broken = |_: &i32, _: &i32| -> bool { panic!("bad compare") };
        assert!(classify(&1, &2, None, &broken, None).is_err());
    }
}
