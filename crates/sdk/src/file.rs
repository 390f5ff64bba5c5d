//! File mode: serve flags from a file and reload it when it changes.
//!
//! The watcher watches the file's directory, not the file, because editors and deployment
//! tools replace files by renaming a new one over the old: a watch on the old file would go
//! quiet. Events are debounced, so a save that arrives as several writes loads once. Reloads
//! compare the text with the last one read and skip unchanged files, which also makes it safe
//! to react to any event in the directory that might have swapped the file, such as the
//! `..data` symlink a Kubernetes ConfigMap volume replaces.
//!
//! The watcher thread holds only a weak reference to the client, so dropping the last clone
//! drops the watch handle, which tells the thread to stop and waits for it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use sluice_core::{Engine, Format, Source};

use crate::Error;
use crate::client::{Client, Inner, Origin};
use crate::overrides;

/// How long a file must be quiet after a change before it is reloaded, by default.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(75);

/// The longest a stream of changes can put a reload off.
const MAX_SETTLE: Duration = Duration::from_secs(1);

/// Configures a client that serves the flags in a file: from [`Client::file_builder`].
///
/// ```no_run
/// let client = sluice::Client::file_builder("/etc/myapp/flags.yaml")
///     .environment("production")
///     .build()?;
/// # Ok::<(), sluice::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct FileBuilder {
    path: PathBuf,
    environment: Option<String>,
    variables: Option<Vec<(String, String)>>,
    watch: bool,
    debounce: Duration,
}

impl FileBuilder {
    pub(crate) fn new(path: PathBuf) -> FileBuilder {
        FileBuilder {
            path,
            environment: None,
            variables: None,
            watch: true,
            debounce: DEFAULT_DEBOUNCE,
        }
    }

    /// Applies this environment's overrides from the file (Sluice's format). An environment
    /// the file does not define is an error. flagd files have no environments and ignore it.
    pub fn environment(mut self, name: impl Into<String>) -> FileBuilder {
        self.environment = Some(name.into());
        self
    }

    /// Reads `SLUICE_FLAG_*` overrides from these pairs instead of the process environment.
    /// Pass an empty list to ignore the environment.
    pub fn env_vars<I, K, V>(mut self, variables: I) -> FileBuilder
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let pairs = variables
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()));
        self.variables = Some(pairs.collect());
        self
    }

    /// Whether to reload the file when it changes; on by default. Without watching, the
    /// client serves what it read at start for its whole life.
    pub fn watch(mut self, enabled: bool) -> FileBuilder {
        self.watch = enabled;
        self
    }

    /// How long the file must be quiet after a change before it is reloaded; 75 ms by default.
    pub fn debounce(mut self, quiet: Duration) -> FileBuilder {
        self.debounce = quiet;
        self
    }

    /// Loads the file and starts watching it. Fails when the file cannot be read, is
    /// invalid, or its directory cannot be watched.
    pub fn build(self) -> Result<Client, Error> {
        let variables = self
            .variables
            .unwrap_or_else(overrides::process_environment);
        let requested = overrides::read(variables);
        let absolute = std::path::absolute(&self.path).map_err(|source| Error::Read {
            path: self.path.clone(),
            source,
        })?;
        let file = FileSource {
            absolute,
            shown: self.path.clone(),
            environment: self.environment.clone(),
        };
        // Watch before the first read, so no change can slip in between.
        let watching = if self.watch {
            Some(Watching::start(&file)?)
        } else {
            None
        };
        let text = file.read()?;
        let engine = file.compile(&text)?;
        let inner = Arc::new(Inner::new(
            Origin::File(self.path),
            self.environment,
            requested,
            None,
        ));
        inner.install(engine);
        if let Some(watching) = watching {
            let handle = watching.spawn(Arc::downgrade(&inner), file, text, self.debounce)?;
            inner.set_background(Box::new(handle));
        }
        Ok(Client::from_inner(inner))
    }
}

/// The file and how to compile it.
#[derive(Debug)]
struct FileSource {
    absolute: PathBuf,
    /// The path as the caller gave it, for messages.
    shown: PathBuf,
    environment: Option<String>,
}

impl FileSource {
    fn read(&self) -> Result<String, Error> {
        std::fs::read_to_string(&self.absolute).map_err(|source| Error::Read {
            path: self.shown.clone(),
            source,
        })
    }

    fn compile(&self, text: &str) -> Result<Engine, Error> {
        let name = self.shown.to_string_lossy();
        let format = Format::from_file_name(&name);
        Source::parse(Some(&name), text, format)
            .and_then(|source| source.compile(self.environment.as_deref()))
            .map_err(|errors| Error::Invalid {
                path: self.shown.clone(),
                errors,
            })
    }

    fn directory(&self) -> &Path {
        self.absolute.parent().unwrap_or_else(|| Path::new("/"))
    }
}

enum Message {
    Changed(notify::Result<notify::Event>),
    Stop,
}

/// A directory watch whose events are queued until the thread that handles them starts.
struct Watching {
    watcher: RecommendedWatcher,
    sender: Sender<Message>,
    receiver: Receiver<Message>,
}

impl Watching {
    fn start(file: &FileSource) -> Result<Watching, Error> {
        let (sender, receiver) = mpsc::channel();
        let events = sender.clone();
        let directory = file.directory();
        let watch_error = |source: notify::Error| {
            // A missing file says more than a failed watch of a missing directory.
            match file.read() {
                Err(error) => error,
                Ok(_) => Error::Watch {
                    path: directory.to_owned(),
                    source: Box::new(source),
                },
            }
        };
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the client is; nothing is lost then.
            let _ = events.send(Message::Changed(event));
        })
        .map_err(watch_error)?;
        watcher
            .watch(directory, RecursiveMode::NonRecursive)
            .map_err(watch_error)?;
        Ok(Watching {
            watcher,
            sender,
            receiver,
        })
    }

    fn spawn(
        self,
        inner: Weak<Inner>,
        file: FileSource,
        text: String,
        debounce: Duration,
    ) -> Result<WatchHandle, Error> {
        let directory = file.directory().to_owned();
        let Watching {
            watcher,
            sender,
            receiver,
        } = self;
        let thread = thread::Builder::new()
            .name("sluice-file-watch".to_owned())
            .spawn(move || watch_loop(&receiver, &inner, &file, Some(text), debounce))
            .map_err(|source| Error::Watch {
                path: directory,
                source: Box::new(source),
            })?;
        Ok(WatchHandle {
            stop: sender,
            thread: Some(thread),
            _watcher: watcher,
        })
    }
}

/// Keeps a file watch running; dropping it stops the watch and its thread.
pub(crate) struct WatchHandle {
    stop: Sender<Message>,
    thread: Option<JoinHandle<()>>,
    _watcher: RecommendedWatcher,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            // The watcher thread itself may drop the last reference, mid-reload.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn watch_loop(
    receiver: &Receiver<Message>,
    inner: &Weak<Inner>,
    file: &FileSource,
    mut last_read: Option<String>,
    debounce: Duration,
) {
    let name = file.absolute.file_name().map(OsString::from);
    loop {
        match receiver.recv() {
            Ok(Message::Changed(event)) if relevant(&event, name.as_deref()) => {}
            Ok(Message::Changed(_)) => continue,
            Ok(Message::Stop) | Err(_) => return,
        }
        let first = Instant::now();
        loop {
            match receiver.recv_timeout(debounce) {
                Ok(Message::Changed(_)) if first.elapsed() < MAX_SETTLE => {}
                Ok(Message::Changed(_)) | Err(RecvTimeoutError::Timeout) => break,
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        reload(&inner, file, &mut last_read);
    }
}

/// Reads the file and, when its text changed since the last read, loads it.
fn reload(inner: &Inner, file: &FileSource, last_read: &mut Option<String>) {
    let text = match file.read() {
        Ok(text) => text,
        Err(error) => {
            *last_read = None;
            inner.fail(error);
            return;
        }
    };
    if last_read.as_deref() == Some(text.as_str()) {
        return;
    }
    let outcome = file.compile(&text);
    *last_read = Some(text);
    match outcome {
        Ok(engine) => {
            tracing::info!(
                file = %file.shown.display(),
                flags = engine.len(),
                "reloaded flags"
            );
            inner.install(engine);
        }
        Err(error) => inner.fail(error),
    }
}

/// Whether an event in the watched directory may have changed the file. Reads (including
/// the watcher's own) are not; anything that names the file, or a `..`-prefixed entry such as
/// the symlinks of a Kubernetes volume, or that asks for a rescan, is.
fn relevant(event: &notify::Result<notify::Event>, name: Option<&std::ffi::OsStr>) -> bool {
    let Ok(event) = event else {
        return true;
    };
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return false;
    }
    event.need_rescan()
        || event.paths.is_empty()
        || event.paths.iter().any(|path| {
            path.file_name().is_some_and(|entry| {
                Some(entry) == name || entry.to_string_lossy().starts_with("..")
            })
        })
}
