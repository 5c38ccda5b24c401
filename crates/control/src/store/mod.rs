//! The config store: the front half of the control plane. A [`ConfigSource`] is scanned in full
//! on start and again after every (debounced) change; each scan is decoded and validated
//! off-lock ([`build`]), compared with what is published, and when it differs published as a new
//! [`ConfigSnapshot`] with one `ArcSwap` store, after which a `tokio::sync::watch` wakes whatever
//! must react. Readers load the snapshot once per use and never block the store.
//!
//! The [`writer`] is the other direction: `bowline apply/delete` through the running control
//! plane, writing validated documents into the watched directory.

mod build;
pub mod snapshot;
pub mod source;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use snapshot::{ConfigSnapshot, Entry, MeshSource, Rejection, ResourceKey};
pub use source::{
    ConfigSource, DirSource, SourceError, SourceSet, SourceText, DEFAULT_DEBOUNCE, MESH_FILE,
};
pub use writer::{to_yaml, ConfigWriter, Outcome, WriteResult};

use build::DecodeCache;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the config store's worker stopped: {0}")]
    Worker(String),
}

type ReloadObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// A reader's view of the store: cheap to clone, never blocks the store.
#[derive(Clone)]
pub struct StoreHandle {
    current: Arc<ArcSwap<ConfigSnapshot>>,
    versions: watch::Receiver<u64>,
}

impl StoreHandle {
    /// The snapshot in force now. Hold it for the duration of one use (a request, a push) so
    /// that the use sees one consistent version.
    pub fn load(&self) -> Arc<ConfigSnapshot> {
        self.current.load_full()
    }

    /// A receiver that is marked changed on every new version (and only then).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let mut rx = self.versions.clone();
        rx.mark_unchanged();
        rx
    }
}

/// The running store: its reader handle and the task that keeps it current.
pub struct Store {
    handle: StoreHandle,
    task: JoinHandle<()>,
}

impl Store {
    /// Scan `source` once (the snapshot exists, at version 1, when this returns), then keep the
    /// store current in a background task until the source ends or the store is dropped.
    pub async fn start<S: ConfigSource>(source: S) -> Result<Store, StoreError> {
        Store::start_observed(source, |_| {}).await
    }

    /// [`Store::start`], calling `on_reload` with the duration of every scan and rebuild (the
    /// first one included, found changes or not), for the control plane's metrics. The store
    /// stays free of any metrics library.
    pub async fn start_observed<S: ConfigSource>(
        mut source: S,
        on_reload: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Result<Store, StoreError> {
        let on_reload: ReloadObserver = Arc::new(on_reload);
        let mut cache = DecodeCache::default();
        let started = Instant::now();
        let (source_back, cache, first) = tokio::task::spawn_blocking(move || {
            let first = source
                .scan()
                .map(|set| build::build(&ConfigSnapshot::empty(), &set, &mut cache));
            (source, cache, first)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
        let mut first = first?;
        on_reload(started.elapsed());
        first.version = 1;
        log_snapshot(&first, None);
        let (tx, rx) = watch::channel(first.version);
        let current = Arc::new(ArcSwap::from_pointee(first));
        let handle = StoreHandle {
            current: current.clone(),
            versions: rx,
        };
        let task = tokio::spawn(run(source_back, cache, current, tx, on_reload));
        Ok(Store { handle, task })
    }

    pub fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run<S: ConfigSource>(
    mut source: S,
    mut cache: DecodeCache,
    current: Arc<ArcSwap<ConfigSnapshot>>,
    tx: watch::Sender<u64>,
    on_reload: ReloadObserver,
) {
    loop {
        if !source.changed().await {
            info!("config source ended; the store keeps its last snapshot");
            return;
        }
        let started = Instant::now();
        let prev = current.load_full();
        // Scanning reads files and decoding is CPU work: both go to the blocking pool, and the
        // source and cache travel there and back with the job.
        let job = tokio::task::spawn_blocking(move || {
            let next = source
                .scan()
                .map(|set| build::build(&prev, &set, &mut cache));
            (source, cache, next)
        })
        .await;
        let next = match job {
            Ok((s, c, next)) => {
                source = s;
                cache = c;
                next
            }
            Err(e) => {
                warn!(error = %e, "config rebuild panicked; the store keeps its last snapshot");
                return;
            }
        };
        on_reload(started.elapsed());
        let mut next = match next {
            Ok(next) => next,
            Err(e) => {
                // The directory itself is unreadable (removed, permissions): keep serving what
                // was last good rather than an empty config.
                warn!(error = %e, "config scan failed; keeping the current snapshot");
                continue;
            }
        };
        let prev = current.load();
        if next.same_content(&prev) {
            debug!(version = prev.version, "config rescan found no change");
            continue;
        }
        next.version = prev.version + 1;
        log_snapshot(&next, Some(&prev));
        let version = next.version;
        // The only writer of `current` is this task, so load-compare-store cannot race.
        current.store(Arc::new(next));
        tx.send_replace(version);
    }
}

fn log_snapshot(next: &ConfigSnapshot, prev: Option<&ConfigSnapshot>) {
    for r in &next.rejected {
        let known = prev.is_some_and(|p| p.rejected.contains(r));
        if !known {
            warn!(file = %r.file, line = r.line, resource = ?r.key.as_ref().map(ToString::to_string),
                kept_last_good = r.kept_last_good, "{r}");
        }
    }
    info!(
        version = next.version,
        resources = next.len(),
        rejected = next.rejected.len(),
        warnings = next.warnings.len(),
        "config snapshot published"
    );
}
