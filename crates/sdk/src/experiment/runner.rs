//! The shadow workers: a bounded queue of candidate runs, served off the request path.
//!
//! [`WORKERS`] threads per client take runs from a queue of at most [`QUEUE_CAPACITY`]; a
//! submit never blocks: when the queue is full the run is dropped and counted. A worker hands
//! each candidate to its executor thread and waits at most the experiment's timeout. A
//! candidate that has not finished by then is recorded as a timeout and its executor is
//! abandoned: the worker starts a new one, and the old thread exits as soon as the candidate
//! returns (Rust cannot stop a thread). At most [`MAX_HUNG`] abandoned executors may be
//! running at once; beyond that, runs are dropped until some finish, so a candidate that
//! always hangs costs at most that many threads.
//!
//! Exactly one result is recorded per run: the executor and the worker race for it through
//! one atomic state, so a candidate that finishes just after its timeout is not counted twice.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{
    ExperimentResult, Outcome, Sampled, SendClean, SendCompare, SendPublish, classify, guarded,
    record,
};

/// The most candidate runs waiting per client; more are dropped and counted.
pub const QUEUE_CAPACITY: usize = 1_024;

/// Shadow worker threads per client.
pub const WORKERS: usize = 2;

/// The most abandoned (timed out, still running) candidates per client.
pub const MAX_HUNG: usize = 16;

const PENDING: u8 = 0;
const FINISHED: u8 = 1;
const TIMED_OUT: u8 = 2;

/// One queued candidate run, typed.
pub(crate) struct ShadowRun<T> {
    pub(crate) key: String,
    pub(crate) sampled: Sampled,
    pub(crate) control_value: T,
    pub(crate) control_time: Duration,
    pub(crate) candidate: Box<dyn FnOnce() -> T + Send>,
    pub(crate) noise: Option<Arc<dyn Fn() -> T + Send + Sync>>,
    pub(crate) compare: SendCompare<T>,
    pub(crate) ignore: Option<SendCompare<T>>,
    pub(crate) clean: Option<SendClean<T>>,
    pub(crate) publish: Option<SendPublish>,
}

/// What both the executor and the worker need to record a result.
struct Common {
    key: String,
    sampled: Sampled,
    control_time: Duration,
    publish: Option<SendPublish>,
    state: AtomicU8,
}

impl Common {
    /// Records a run that produced no comparable result.
    fn record_plain(&self, outcome: Outcome, candidate: Option<Duration>) {
        let result = ExperimentResult {
            experiment: self.key.clone(),
            outcome,
            control: self.control_time,
            candidate,
            noise_matched: None,
        };
        record::<()>(
            &self.key,
            &self.sampled,
            result,
            None,
            None,
            self.publish
                .as_deref()
                .map(|publish| publish as &dyn Fn(&ExperimentResult)),
        );
    }
}

/// A run with its type erased.
pub(crate) struct Job {
    timeout: Duration,
    run: Box<dyn FnOnce() + Send>,
    common: Arc<Common>,
}

impl<T: Send + 'static> ShadowRun<T> {
    fn into_job(self, timeout: Duration) -> Job {
        let common = Arc::new(Common {
            key: self.key,
            sampled: self.sampled,
            control_time: self.control_time,
            publish: self.publish,
            state: AtomicU8::new(PENDING),
        });
        let shared = Arc::clone(&common);
        let (control, candidate, noise) = (self.control_value, self.candidate, self.noise);
        let (compare, ignore, clean) = (self.compare, self.ignore, self.clean);
        let run = Box::new(move || {
            let started = Instant::now();
            let result = guarded(candidate);
            let candidate_time = started.elapsed();
            let noise_matched = noise.map(|again| {
                guarded(&*again)
                    .map(|second| guarded(|| compare(&control, &second)).unwrap_or(false))
                    .unwrap_or(false)
            });
            if shared
                .state
                .compare_exchange(PENDING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return;
            }
            let (outcome, kept) = match result {
                Err(message) => (Outcome::CandidateError(message), None),
                Ok(value) => {
                    let outcome = classify(
                        &control,
                        &value,
                        noise_matched,
                        &*compare,
                        ignore
                            .as_deref()
                            .map(|ignore| ignore as &dyn Fn(&T, &T) -> bool),
                    )
                    .unwrap_or_else(Outcome::CandidateError);
                    (outcome, Some(value))
                }
            };
            let result = ExperimentResult {
                experiment: shared.key.clone(),
                outcome,
                control: shared.control_time,
                candidate: Some(candidate_time),
                noise_matched,
            };
            record(
                &shared.key,
                &shared.sampled,
                result,
                kept.as_ref().map(|value| (&control, value)),
                clean.as_deref().map(|clean| clean as &dyn Fn(&T) -> String),
                shared
                    .publish
                    .as_deref()
                    .map(|publish| publish as &dyn Fn(&ExperimentResult)),
            );
        });
        Job {
            timeout,
            run,
            common,
        }
    }
}

type Task = Box<dyn FnOnce() + Send>;

/// A thread that runs candidates, one at a time, until it is abandoned or dropped.
struct Executor {
    tasks: mpsc::Sender<Task>,
    abandoned: Arc<AtomicBool>,
}

impl Executor {
    fn spawn(hung: &Arc<AtomicUsize>) -> Option<Executor> {
        let (tasks, receiver) = mpsc::channel::<Task>();
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&abandoned);
        let hung = Arc::clone(hung);
        let spawned = std::thread::Builder::new()
            .name("sluice-shadow-exec".into())
            .spawn(move || {
                while let Ok(task) = receiver.recv() {
                    task();
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                }
                if flag.load(Ordering::Acquire) {
                    hung.fetch_sub(1, Ordering::AcqRel);
                }
            });
        match spawned {
            Ok(_) => Some(Executor { tasks, abandoned }),
            Err(error) => {
                tracing::warn!(%error, "cannot start a shadow executor thread");
                None
            }
        }
    }
}

/// A client's shadow workers and their queue.
#[derive(Debug)]
pub(crate) struct Runner {
    queue: SyncSender<Job>,
}

impl Runner {
    pub(crate) fn start() -> Runner {
        let (queue, receiver) = mpsc::sync_channel::<Job>(QUEUE_CAPACITY);
        let receiver = Arc::new(Mutex::new(receiver));
        let hung = Arc::new(AtomicUsize::new(0));
        for index in 0..WORKERS {
            let receiver = Arc::clone(&receiver);
            let hung = Arc::clone(&hung);
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-shadow-{index}"))
                .spawn(move || work(&receiver, &hung));
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start a shadow worker thread");
            }
        }
        Runner { queue }
    }

    /// Queues a run without waiting; a full queue drops it (counted).
    pub(crate) fn submit<T: Send + 'static>(&self, run: ShadowRun<T>, timeout: Duration) {
        match self.queue.try_send(run.into_job(timeout)) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                job.common.record_plain(Outcome::Dropped, None);
            }
        }
    }
}

/// A worker: takes runs until the queue closes (the client was dropped).
fn work(receiver: &Mutex<Receiver<Job>>, hung: &Arc<AtomicUsize>) {
    let mut executor: Option<Executor> = None;
    loop {
        let next = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(job) = next else {
            return;
        };
        if hung.load(Ordering::Acquire) >= MAX_HUNG {
            job.common.record_plain(Outcome::Dropped, None);
            continue;
        }
        if executor.is_none() {
            executor = Executor::spawn(hung);
        }
        let Some(current) = &executor else {
            job.common.record_plain(Outcome::Dropped, None);
            continue;
        };
        let (done, finished) = mpsc::sync_channel::<()>(1);
        let Job {
            timeout,
            run,
            common,
        } = job;
        let task: Task = Box::new(move || {
            run();
            let _ = done.send(());
        });
        if current.tasks.send(task).is_err() {
            executor = None;
            common.record_plain(Outcome::Dropped, None);
            continue;
        }
        match finished.recv_timeout(timeout) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                if common
                    .state
                    .compare_exchange(PENDING, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    common.record_plain(Outcome::CandidateTimeout, None);
                }
                hung.fetch_add(1, Ordering::AcqRel);
                current.abandoned.store(true, Ordering::Release);
                executor = None;
            }
            Err(RecvTimeoutError::Disconnected) => executor = None,
        }
    }
}
