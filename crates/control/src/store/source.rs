//! Where configuration comes from. A [`ConfigSource`] hands the store the whole current set of
//! configuration texts on demand and says (debounced) when that set may have changed, the shape
//! of kube-rs's watcher feeding a reflector: the store never trusts an individual event, it
//! rescans and compares. [`DirSource`] is the directory of YAML files watched with `notify`; a
//! Kubernetes source would keep a reflector's cache and render it the same way.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// The name of the mesh config file at the root of a config directory.
pub const MESH_FILE: &str = "mesh.yaml";
/// How long a directory must stay quiet before a change is acted on.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// However busy the directory, a change is acted on after this many debounce periods.
const MAX_DEBOUNCE_PERIODS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("config directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// One configuration text and its name (a path for files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    pub name: String,
    /// The text, or why it could not be read (the file's resources are then treated as if the
    /// file held one undecodable document: last good versions stay).
    pub text: Result<String, String>,
}

/// Everything a source holds at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSet {
    /// Resource texts, in the order that decides which of two duplicates wins.
    pub texts: Vec<SourceText>,
    /// The MeshConfig text, if the source has one.
    pub mesh: Option<SourceText>,
}

/// A source of configuration the store can rescan and wait on.
pub trait ConfigSource: Send + 'static {
    /// The whole current content. Blocking IO is allowed: the store calls this off the async
    /// threads.
    fn scan(&mut self) -> Result<SourceSet, SourceError>;

    /// Resolves when the content may have changed, after the source's debounce; `false` when the
    /// source has ended and no change will ever come.
    fn changed(&mut self) -> impl Future<Output = bool> + Send;
}

/// A directory of YAML/JSON files, scanned recursively, with `mesh.yaml` at its root as the
/// mesh config.
pub struct DirSource {
    root: PathBuf,
    debounce: Duration,
    events: mpsc::UnboundedReceiver<()>,
    // Dropping the watcher stops the events; it lives as long as the source.
    _watcher: RecommendedWatcher,
}

impl DirSource {
    /// Watch `root` (which must exist), acting on changes after `debounce` of quiet.
    pub fn new(root: impl Into<PathBuf>, debounce: Duration) -> Result<DirSource, SourceError> {
        let root = root.into();
        let meta = std::fs::metadata(&root).map_err(|source| SourceError::Dir {
            path: root.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SourceError::Dir {
                path: root.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            match ev {
                // Reads change nothing; everything else (including the kinds notify cannot
                // classify) may have.
                Ok(e) if matches!(e.kind, EventKind::Access(_)) => return,
                Ok(e) => debug!(kind = ?e.kind, paths = ?e.paths, "config directory event"),
                // A lost event (queue overflow) is exactly when a rescan is needed.
                Err(e) => warn!(error = %e, "config directory watch error; rescanning"),
            }
            let _ = tx.send(());
        })
        .map_err(|source| SourceError::Watch {
            path: root.clone(),
            source,
        })?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|source| SourceError::Watch {
                path: root.clone(),
                source,
            })?;
        Ok(DirSource {
            root,
            debounce,
            events,
            _watcher: watcher,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ConfigSource for DirSource {
    fn scan(&mut self) -> Result<SourceSet, SourceError> {
        scan_dir(&self.root)
    }

    async fn changed(&mut self) -> bool {
        if self.events.recv().await.is_none() {
            return false;
        }
        // Trailing-edge debounce: wait for a quiet period, but not forever, so that a file being
        // rewritten in a loop still gets picked up.
        let deadline = tokio::time::Instant::now() + self.debounce * MAX_DEBOUNCE_PERIODS;
        loop {
            let quiet = tokio::time::sleep(self.debounce);
            tokio::select! {
                ev = self.events.recv() => {
                    if ev.is_none() {
                        return true;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
                _ = quiet => break,
            }
        }
        // Events that raced in while the timer fired are covered by the rescan about to happen.
        while self.events.try_recv().is_ok() {}
        true
    }
}

/// Whether the store reads this file: YAML or JSON, and not hidden (editors' swap files and the
/// writer's temporary files are hidden).
pub(crate) fn is_config_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    !hidden
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

/// Read every config file under `root`, sorted by path so that duplicates resolve the same way
/// on every scan.
pub fn scan_dir(root: &Path) -> Result<SourceSet, SourceError> {
    let mut files = Vec::new();
    walk(root, &mut files).map_err(|source| SourceError::Dir {
        path: root.to_path_buf(),
        source,
    })?;
    files.sort();
    let mesh_path = root.join(MESH_FILE);
    let mut set = SourceSet::default();
    for path in files {
        let text = std::fs::read(&path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()));
        let t = SourceText {
            name: path.display().to_string(),
            text,
        };
        if path == mesh_path {
            set.mesh = Some(t);
        } else {
            set.texts.push(t);
        }
    }
    Ok(set)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry
            .file_name()
            .to_str()
            .is_none_or(|n| n.starts_with('.'));
        // A file deleted between listing and stat is simply not there any more.
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            if !hidden {
                walk(&path, out)?;
            }
        } else if is_config_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}
