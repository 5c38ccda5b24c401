//! The local mesh: everything `bowline up`, `run`, `exec` and `demo` start on one Linux machine,
//! and how they find each other.
//!
//! - [`up`]: [`Mesh`], the running mesh of one `bowline up`: cleans leftovers of an earlier run,
//!   brings the node network up, starts the control plane (`bowline control --state-dir`: CA and
//!   xDS on the bridge address) and the ingress gateway (`bowline proxy --role gateway
//!   --xds-address`) as child processes, relays DNS from the pod bridge
//!   to the host's resolvers, and takes it all down again.
//! - [`pod`]: [`RunningPod`], one workload: a pod network namespace with Istio's capture, its Pod
//!   (and, when missing, its Service) registered through the control plane, the sidecar as uid
//!   1337 and the app, all stopped and removed together.
//! - [`sidecar`]: the sidecar's command line, the one place that knows how a sidecar gets its
//!   config (the control plane's xDS push, with a bootstrap token copied for the proxy uid).
//! - [`names`]: the names the bridge's DNS relay answers for pods without a sidecar.
//! - [`rundir`]: the state under `/run/bowline/mesh` that lets `run` and `exec` find the mesh.
//! - [`client`]: the control plane's apply/get API, as `bowline apply` calls it.
//! - [`demo`]: Istio's sample workloads (Bookinfo, httpbin, tcp-echo, sleep) as pod specs.
//!
//! Linux only, as root (or CAP_NET_ADMIN + CAP_SYS_ADMIN); [`Error::NotPrivileged`] says so.

pub mod client;
pub mod demo;
pub mod names;
pub mod pod;
pub mod rundir;
pub mod sidecar;
pub mod up;

pub use pod::{PodSpec, PortSpec, RunningPod};
pub use up::{HostChild, Mesh, MeshOptions};

/// Errors of the local mesh.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the local mesh needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo")]
    NotPrivileged,
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("a mesh is already running (pid {0}); stop it first (Ctrl-C in its terminal)")]
    AlreadyRunning(i32),
    #[error("no mesh is running: start one with `sudo bowline up` (or `bowline demo`)")]
    NotRunning,
    #[error("{0} did not become ready within {1:?}")]
    NotReady(String, std::time::Duration),
    #[error("{0} exited before it was ready: {1}")]
    Exited(String, String),
    #[error("control plane at {addr}: {message}")]
    Control { addr: String, message: String },
    #[error("pod {0} already exists: choose another name or stop the `bowline run` that owns it")]
    PodExists(String),
    #[error("no pod {0} in the running mesh")]
    NoSuchPod(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Dns(#[from] proxy::dns::DnsError),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Checks privileges before anything is touched, with the one line that says what to do.
pub fn require_privileges() -> Result<(), Error> {
    node::sys::require_privileges().map_err(|_| Error::NotPrivileged)
}
