//! The crash hook: a panic hook that records the panic against the variants active on the
//! panicking thread, flushes best-effort, and then calls the hook it replaced.
//!
//! Installed with [`install_crash_hook`] or `ServerBuilder::crash_hook(true)`. It counts a
//! crash for each variant active on the thread and queues one [`CrashReport`] with the
//! message (cut to [`MAX_MESSAGE_BYTES`]), the location and those variants. Then it asks
//! the client's background thread to flush and waits at most [`CRASH_FLUSH_BOUND`], which
//! matters when the panic is about to end the process (`panic = "abort"`, or a panic on the
//! main thread). The previous hook runs last, so the usual message still prints.
//!
//! The hook holds the client's telemetry weakly: once the client is dropped it only calls
//! the previous hook. Locks are taken with a bounded wait, so a panic can never hang on them.
//!
//! [`CrashReport`]: sluice_core::telemetry::CrashReport

use std::panic::PanicHookInfo;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crate::Client;
use crate::telemetry::aggregate::truncate;

/// The longest the crash hook waits for its flush.
pub const CRASH_FLUSH_BOUND: Duration = Duration::from_millis(500);

/// The longest panic message kept, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1_000;

/// How long the hook waits for a lock another thread holds.
const LOCK_BOUND: Duration = Duration::from_millis(100);

/// Installs a panic hook that reports panics through `client`'s telemetry, chained before the
/// hook already installed. Returns whether it installed one: not for a client without
/// telemetry (file mode, or `.telemetry(false)`), nor a second time for the same client.
///
/// ```no_run
/// let client = sluice::Client::builder()
///     .server("http://flags.internal:8470")
///     .token("sluice_...")
///     .build()?;
/// sluice::install_crash_hook(&client);
/// # Ok::<(), sluice::Error>(())
/// ```
pub fn install_crash_hook(client: &Client) -> bool {
    let Some(telemetry) = client.inner().telemetry() else {
        return false;
    };
    if telemetry.crash_hook.swap(true, Ordering::Relaxed) {
        return false;
    }
    let weak = Arc::downgrade(telemetry);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // A candidate's panic is caught and is the experiment's evidence, not a crash.
        if !crate::experiment::in_candidate()
            && let Some(telemetry) = weak.upgrade()
        {
            telemetry.crash(message(info), location(info));
            telemetry.flush_blocking(CRASH_FLUSH_BOUND);
        }
        previous(info);
    }));
    true
}

/// The panic's message, when it has a textual one.
fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    truncate(text, MAX_MESSAGE_BYTES).to_owned()
}

fn location(info: &PanicHookInfo<'_>) -> Option<String> {
    info.location()
        .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()))
}

/// Locks `mutex`, waiting at most a short while; `None` if another thread held it throughout
/// (or this one does, having panicked inside it).
pub(crate) fn lock_briefly<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    let deadline = Instant::now() + LOCK_BOUND;
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}
