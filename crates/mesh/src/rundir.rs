//! What a running mesh leaves in `/run/bowline/mesh` so other commands find it: `mesh.json`
//! (written by `up`, removed when it stops), one `pods/<namespace>.<name>.json` per pod (written
//! by whoever started the pod), `secrets/<namespace>.<name>/` (a sidecar's token and root
//! certificate, owned by the proxy uid), `control/` (the control plane's state), and `up.lock`, held by the `up` process for as long as it runs.
//! A lock the kernel releases when its holder dies is what tells a crashed mesh from a live one:
//! the files alone could be leftovers.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The default run directory.
pub const RUN_DIR: &str = "/run/bowline/mesh";

/// What `up` records about the mesh.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MeshState {
    pub pid: i32,
    pub config_dir: PathBuf,
    /// The control plane's monitoring/API address.
    pub control: SocketAddr,
    pub pod_cidr: String,
    /// Where pods reach the host's resolvers (the bridge address, port 53).
    pub dns_relay: Option<SocketAddr>,
    /// The `bowline` binary the mesh runs.
    pub bowline: PathBuf,
    /// The control plane's state directory (its CA and the bootstrap tokens), root's only.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The control plane's discovery address (xDS over TLS), where pods and the gateway connect.
    #[serde(default)]
    pub xds: Option<SocketAddr>,
    /// Host processes `up` started (control plane, gateway), for the next `up` after a crash.
    #[serde(default)]
    pub children: Vec<i32>,
}

/// What the starter of a pod records about it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub sidecar: bool,
    /// The process that owns (and removes) the pod.
    pub owner: i32,
}

/// The run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

/// Held by `up`; dropping it releases the lock.
pub struct UpLock(#[allow(dead_code)] Flock<File>);

impl Default for RunDir {
    fn default() -> Self {
        RunDir::new(RUN_DIR)
    }
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// The control plane's `--state-dir` (its CA and the bootstrap tokens).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("control")
    }

    /// A sidecar's own copies of its bootstrap token and the root certificate, owned by the
    /// proxy uid (the control plane's originals stay root's).
    pub fn pod_secrets(&self, namespace: &str, name: &str) -> PathBuf {
        self.root
            .join("secrets")
            .join(format!("{namespace}.{name}"))
    }

    fn mesh_file(&self) -> PathBuf {
        self.root.join("mesh.json")
    }

    fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    fn pod_file(&self, namespace: &str, name: &str) -> PathBuf {
        self.pods_dir().join(format!("{namespace}.{name}.json"))
    }

    /// Takes the mesh lock, or says which process holds it.
    pub fn lock_up(&self) -> Result<UpLock, Error> {
        std::fs::create_dir_all(&self.root)
            .map_err(Error::io(format!("creating {}", self.root.display())))?;
        let path = self.root.join("up.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io(format!("opening {}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(UpLock(lock)),
            Err(_) => Err(Error::AlreadyRunning(
                self.read_mesh().ok().flatten().map(|m| m.pid).unwrap_or(0),
            )),
        }
    }

    /// Whether an `up` process holds the lock now.
    fn up_alive(&self) -> bool {
        let Ok(file) = File::open(self.root.join("up.lock")) else {
            return false;
        };
        // Taking it shows nobody holds it; the probe's own lock goes with the temporary.
        Flock::lock(file, FlockArg::LockSharedNonblock).is_err()
    }

    /// Removes the state of an earlier run (called by `up` once it holds the lock).
    pub fn clear(&self) -> Result<(), Error> {
        let _ = std::fs::remove_file(self.mesh_file());
        let _ = std::fs::remove_dir_all(self.root.join("secrets"));
        // Where earlier versions kept a CA the proxy uid could read; the control plane's state
        // directory has it now.
        let _ = std::fs::remove_dir_all(self.root.join("ca"));
        match std::fs::remove_dir_all(self.pods_dir()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("clearing the pod records")(e))
            }
            _ => Ok(()),
        }
    }

    pub fn write_mesh(&self, state: &MeshState) -> Result<(), Error> {
        write_json(&self.mesh_file(), state)
    }

    fn read_mesh(&self) -> Result<Option<MeshState>, Error> {
        read_json(&self.mesh_file())
    }

    /// The running mesh, or [`Error::NotRunning`] when none is (or only leftovers are there).
    pub fn mesh(&self) -> Result<MeshState, Error> {
        match self.read_mesh()? {
            Some(m) if self.up_alive() => Ok(m),
            _ => Err(Error::NotRunning),
        }
    }

    /// The record of a mesh whose `up` is gone (called by the next `up`, holding the lock).
    pub fn leftover_mesh(&self) -> Option<MeshState> {
        self.read_mesh().ok().flatten()
    }

    pub fn remove_mesh(&self) {
        let _ = std::fs::remove_file(self.mesh_file());
    }

    pub fn write_pod(&self, pod: &PodState) -> Result<(), Error> {
        std::fs::create_dir_all(self.pods_dir()).map_err(Error::io("creating the pod records"))?;
        write_json(&self.pod_file(&pod.namespace, &pod.name), pod)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Result<Option<PodState>, Error> {
        read_json(&self.pod_file(namespace, name))
    }

    pub fn remove_pod(&self, namespace: &str, name: &str) {
        let _ = std::fs::remove_file(self.pod_file(namespace, name));
    }

    /// Every recorded pod, sorted by namespace and name.
    pub fn pods(&self) -> Result<Vec<PodState>, Error> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(self.pods_dir()) else {
            return Ok(out);
        };
        for entry in dir.flatten() {
            if let Some(p) = read_json::<PodState>(&entry.path())? {
                out.push(p);
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }
}

/// Written to a temporary name and renamed, so a reader never sees half a file.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(Error::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(Error::io(format!("writing {}", path.display())))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_tells_a_live_mesh_from_leftovers() {
        let dir = tempdir();
        let run = RunDir::new(&dir);
        let state = MeshState {
            pid: 42,
            config_dir: "/tmp/x".into(),
            control: "127.0.0.1:15014".parse().unwrap(),
            pod_cidr: "10.88.0.0/16".into(),
            dns_relay: None,
            bowline: "/bin/true".into(),
            children: vec![],
            state_dir: None,
            xds: None,
        };
        run.write_mesh(&state).unwrap();
        // Leftovers of a crash: the file is there, nobody holds the lock.
        assert!(matches!(run.mesh(), Err(Error::NotRunning)));
        let lock = run.lock_up().unwrap();
        assert_eq!(run.mesh().unwrap(), state);
        assert!(matches!(run.lock_up(), Err(Error::AlreadyRunning(42))));
        drop(lock);
        assert!(matches!(run.mesh(), Err(Error::NotRunning)));
        let pod = PodState {
            namespace: "default".into(),
            name: "sleep".into(),
            ip: "10.88.0.2".parse().unwrap(),
            netns: "bowline-default.sleep".into(),
            sidecar: true,
            owner: 7,
        };
        run.write_pod(&pod).unwrap();
        assert_eq!(run.pods().unwrap(), std::slice::from_ref(&pod));
        assert_eq!(run.pod("default", "sleep").unwrap(), Some(pod));
        run.clear().unwrap();
        assert!(run.pods().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bowline-rundir-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
