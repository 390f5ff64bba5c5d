//! A client's status, and a channel that tells subscribers when it changes.
//!
//! The status lives in a small cell shared by the client and its subscribers, guarded by a
//! mutex and a condition variable, so blocking code can wait on it without an async runtime.
//! The same changes also go through a `tokio::sync::watch` channel, so async code can await
//! them. Evaluation never touches either: it reads the flags through an `ArcSwap`.

use std::fmt;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Error;

/// Where a client stands with its flag source.
///
/// Every state but `NotReady` serves flags: a client that has loaded flags once never falls
/// back to callers' defaults because its source broke later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No flags have been loaded yet; evaluations return the caller's default with
    /// `PROVIDER_NOT_READY`.
    NotReady,
    /// The flags served are the source's current ones.
    Ready,
    /// The flags served may be out of date because the source cannot be reached for now.
    /// The client keeps retrying on its own. (Server mode; a file client is never stale.)
    Stale,
    /// The source reported a problem that needs a person, such as an invalid edit to the flags
    /// file. The last good flags are still served; [`crate::Client::last_error`] says what is wrong.
    Error,
}

impl Status {
    /// The name used in logs and by OpenFeature: `NOT_READY`, `READY`, `STALE` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotReady => "NOT_READY",
            Status::Ready => "READY",
            Status::Stale => "STALE",
            Status::Error => "ERROR",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status and the last error, as the client's source last reported them.
#[derive(Debug)]
struct State {
    status: Status,
    last_error: Option<Arc<Error>>,
    /// Bumped on every published change, so a subscriber can tell what it has seen.
    generation: u64,
    /// Set when the client is gone: no change will ever come.
    closed: bool,
}

/// The cell shared by a client and its subscribers.
#[derive(Debug)]
pub(crate) struct StatusCell {
    state: Mutex<State>,
    changed: Condvar,
}

impl StatusCell {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The publishing side, owned by the client. Dropping it closes every subscription.
#[derive(Debug)]
pub(crate) struct StatusPublisher {
    cell: Arc<StatusCell>,
    sender: tokio::sync::watch::Sender<(Status, u64)>,
}

impl StatusPublisher {
    pub(crate) fn new(status: Status) -> StatusPublisher {
        let cell = Arc::new(StatusCell {
            state: Mutex::new(State {
                status,
                last_error: None,
                generation: 0,
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let (sender, _) = tokio::sync::watch::channel((status, 0));
        StatusPublisher { cell, sender }
    }

    pub(crate) fn status(&self) -> Status {
        self.cell.lock().status
    }

    pub(crate) fn last_error(&self) -> Option<Arc<Error>> {
        self.cell.lock().last_error.clone()
    }

    /// Records a new status and error. Subscribers hear of it when either changed; an error
    /// is compared by its message, so the same failure reported twice is one event.
    /// Returns whether anything changed.
    pub(crate) fn set(&self, status: Status, error: Option<Error>) -> bool {
        let mut state = self.cell.lock();
        let same_error = match (&state.last_error, &error) {
            (None, None) => true,
            (Some(old), Some(new)) => old.to_string() == new.to_string(),
            _ => false,
        };
        if state.status == status && same_error {
            return false;
        }
        state.status = status;
        state.last_error = error.map(Arc::new);
        state.generation += 1;
        let event = (state.status, state.generation);
        drop(state);
        self.sender.send_replace(event);
        self.cell.changed.notify_all();
        true
    }

    pub(crate) fn subscribe(&self) -> StatusReceiver {
        let seen = self.cell.lock().generation;
        StatusReceiver {
            cell: Arc::clone(&self.cell),
            receiver: self.sender.subscribe(),
            seen,
        }
    }

    /// Blocks until the status is `Ready` or `timeout` passes; returns the status then.
    pub(crate) fn wait_ready(&self, timeout: Duration) -> Status {
        self.wait_for(timeout, |status| status == Status::Ready)
    }

    /// Blocks until `done(status)` holds or `timeout` passes; returns the status then.
    pub(crate) fn wait_for(&self, timeout: Duration, done: impl Fn(Status) -> bool) -> Status {
        let deadline = Instant::now() + timeout;
        let mut state = self.cell.lock();
        while !done(state.status) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .cell
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.status
    }
}

impl Drop for StatusPublisher {
    fn drop(&mut self) {
        self.cell.lock().closed = true;
        self.cell.changed.notify_all();
    }
}

/// Hears about a client's status changes: from [`crate::Client::subscribe`].
///
/// It reports changes made after it was created, and always the latest status: a subscriber
/// that falls behind skips to the newest state rather than queueing every step. It does not
/// keep the client alive; once the client is dropped, waiting reports that it is gone.
#[derive(Debug)]
pub struct StatusReceiver {
    cell: Arc<StatusCell>,
    receiver: tokio::sync::watch::Receiver<(Status, u64)>,
    seen: u64,
}

impl StatusReceiver {
    /// The current status, without waiting.
    pub fn status(&self) -> Status {
        self.cell.lock().status
    }

    /// Blocks until the status changes, or a new error replaces the last one, and returns the
    /// new status. Fails with `Timeout` when nothing changed within `timeout`, and with
    /// `Disconnected` once the client is gone. Needs no async runtime.
    pub fn wait_changed(&mut self, timeout: Duration) -> Result<Status, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.cell.lock();
        loop {
            if state.generation > self.seen {
                self.seen = state.generation;
                self.receiver.mark_unchanged();
                return Ok(state.status);
            }
            if state.closed {
                return Err(RecvTimeoutError::Disconnected);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            state = self
                .cell
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits for the next change, asynchronously, on any executor. Returns `None` once the
    /// client is gone.
    pub async fn changed(&mut self) -> Option<Status> {
        loop {
            let (status, generation) = *self.receiver.borrow_and_update();
            if generation > self.seen {
                self.seen = generation;
                return Some(status);
            }
            self.receiver.changed().await.ok()?;
        }
    }
}
