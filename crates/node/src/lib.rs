//! The local node network: every pod of the mesh on this one Linux machine, without containers.
//!
//! - A bridge (`bowline0`) holding the first address of the pod CIDR (default 10.88.0.0/16). The
//!   pod network stays on this machine: no NAT, no route out, and a host FORWARD chain that drops
//!   anything forwarded into or out of the bridge ([`host`]).
//! - A pod is a named network namespace (`bowline-<namespace>.<pod>`) joined to the bridge by a
//!   veth pair, with an address from the CIDR and a default route via the bridge ([`Pod`]).
//! - Istio's sidecar capture inside a pod with iptables ([`Capture`]), and the captured
//!   connection's original destination for the proxy ([`original_dst()`]).
//! - Programs run in a pod through `ip netns exec` ([`run_in_pod`]); closures on a thread that
//!   joined the pod ([`in_pod`]).
//! - [`Node::cleanup_all`] removes every namespace, link and rule the node made, found by the
//!   tag prefix alone, for leftovers of a crash and for shutdown.
//!
//! Linux only; changing the network needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN
//! ([`Node::up`] checks first and says so). Needs iproute2, iptables and util-linux's setpriv.

pub mod capture;
pub mod host;
pub mod ipam;
pub mod names;
pub mod netns;
pub mod original_dst;
pub mod pod;
pub mod sys;

use std::process::{Child, Command};

use ipnet::Ipv4Net;

pub use capture::{Capture, ALWAYS_EXCLUDED_INBOUND};
pub use original_dst::{original_dst, OriginalDstError};
pub use pod::Pod;

use crate::ipam::Pool;
use crate::names::Tag;
use crate::sys::{SysError, Tool};

/// Errors from the node network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error(transparent)]
    Ipam(#[from] ipam::IpamError),
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error("{0} exists and is not a bridge: remove it (`ip link del {0}`) or use another tag")]
    NotABridge(String),
    #[error("pod CIDR {cidr} overlaps {addr} on {link}: choose another pod CIDR")]
    Overlap {
        cidr: Ipv4Net,
        addr: Ipv4Net,
        link: String,
    },
    #[error("could not lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("could not turn IPv6 off in network namespace {netns}: {source}")]
    Ipv6 {
        netns: String,
        source: std::io::Error,
    },
    #[error("cleanup left {} object(s) behind: {}", .0.len(), .0.join("; "))]
    CleanupIncomplete(Vec<String>),
}

/// Which node network: the tag that prefixes every object, and the pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// 1 to 8 characters of a-z and 0-9; see [`names`].
    pub tag: String,
    /// Private addresses used only inside this machine's namespaces.
    pub cidr: Ipv4Net,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            tag: "bowline".to_string(),
            cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 88, 0, 0), 16)
                .unwrap_or_else(|_| unreachable!("16 is a valid prefix length")),
        }
    }
}

/// What [`Node::cleanup_all`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    pub chains: Vec<String>,
    pub killed: Vec<i32>,
}

impl Cleanup {
    pub fn is_empty(&self) -> bool {
        self == &Cleanup::default()
    }
}

/// One node network. Cheap to make: nothing is touched until a method is called.
#[derive(Debug, Clone)]
pub struct Node {
    tag: Tag,
    pool: Pool,
}

impl Node {
    /// Checks the configuration; touches nothing.
    pub fn new(config: &NodeConfig) -> Result<Node, Error> {
        Ok(Node {
            tag: Tag::new(&config.tag)?,
            pool: Pool::new(config.cidr)?,
        })
    }

    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.pool.net()
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        self.tag.bridge()
    }

    /// Checks privileges and tools, then creates (or repairs) the bridge and the host forwarding
    /// chain. Idempotent.
    pub fn up(&self) -> Result<(), Error> {
        preflight()?;
        Tool::Iptables.path()?;
        host::ensure(&self.tag, &self.pool)
    }

    /// Creates pod `namespace/name` (bringing the bridge up first when needed) and applies
    /// `capture` in it; see [`pod`] for what a pod is. Returns the existing pod when it is there.
    pub fn create_pod(
        &self,
        name: &str,
        namespace: &str,
        capture: Option<&Capture>,
    ) -> Result<Pod, Error> {
        self.up()?;
        pod::create(&self.tag, &self.pool, namespace, name, capture)
    }

    /// Pod `namespace/name` if it exists whole.
    pub fn pod(&self, name: &str, namespace: &str) -> Result<Option<Pod>, Error> {
        preflight()?;
        let netns = self.tag.netns(namespace, name)?;
        if !pod::list_netns(&self.tag)?.contains(&netns) {
            return Ok(None);
        }
        Ok(pod::read(&self.tag, &self.pool, &netns)?)
    }

    /// Every whole pod of this node, as found in the kernel.
    pub fn pods(&self) -> Result<Vec<Pod>, Error> {
        preflight()?;
        let mut pods = Vec::new();
        for netns in pod::list_netns(&self.tag)? {
            pods.extend(pod::read(&self.tag, &self.pool, &netns)?);
        }
        Ok(pods)
    }

    /// Replaces the capture rules of `pod` (`None` removes capture).
    pub fn set_capture(&self, pod: &Pod, capture: Option<&Capture>) -> Result<(), Error> {
        preflight()?;
        Ok(capture::apply(&pod.netns, capture)?)
    }

    /// Stops the pod's processes and removes its namespace and veth. Returns whether there was
    /// anything to remove.
    pub fn delete_pod(&self, name: &str, namespace: &str) -> Result<bool, Error> {
        preflight()?;
        let netns = self.tag.netns(namespace, name)?;
        let _lock = pod::lock(&self.tag)?;
        if !pod::list_netns(&self.tag)?.contains(&netns) {
            return Ok(false);
        }
        pod::remove(&self.tag, &netns, None)?;
        tracing::info!(pod = %format!("{namespace}/{name}"), "deleted pod");
        Ok(true)
    }

    /// Removes everything this node network made, found by its tag alone: processes in pod
    /// namespaces, the namespaces, host links with the tag's prefix, the bridge and the host
    /// forwarding chain. Tries every object even when one fails, then reports the failures.
    pub fn cleanup_all(&self) -> Result<Cleanup, Error> {
        preflight()?;
        let _lock = pod::lock(&self.tag)?;
        let mut done = Cleanup::default();
        let mut failed = Vec::new();
        for netns in pod::list_netns(&self.tag)? {
            match pod::kill_processes(&netns) {
                Ok(pids) => done.killed.extend(pids),
                Err(e) => failed.push(format!("processes in {netns}: {e}")),
            }
            match pod::remove(&self.tag, &netns, None) {
                Ok(()) => done.namespaces.push(netns),
                Err(e) => failed.push(format!("namespace {netns}: {e}")),
            }
        }
        let mut links = pod::list_host_links(&self.tag)?;
        if host::link_kind(&self.tag.bridge())?.is_some() {
            links.push(self.tag.bridge());
        }
        for link in links {
            match sys::run(Tool::Ip, &["link", "del", &link], None) {
                Ok(_) => done.links.push(link),
                Err(e) if e.is_not_found() => {}
                Err(e) => failed.push(format!("link {link}: {e}")),
            }
        }
        match Tool::Iptables.path() {
            // Without iptables installed, no chain of ours can exist.
            Err(_) => {}
            Ok(_) => match host::remove_forward_chain(&self.tag) {
                Ok(true) => done.chains.push(self.tag.forward_chain()),
                Ok(false) => {}
                Err(e) => failed.push(format!("chain {}: {e}", self.tag.forward_chain())),
            },
        }
        if !done.is_empty() {
            tracing::info!(?done, "cleaned up the node network");
        }
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(Error::CleanupIncomplete(failed))
        }
    }
}

/// [`Node::cleanup_all`] for the default node network, as `bowline up` runs it on start and on
/// Ctrl-C/SIGTERM.
pub fn cleanup_all() -> Result<Cleanup, Error> {
    Node::new(&NodeConfig::default())?.cleanup_all()
}

/// Privileges first (the error that tells the user what to do), then iproute2.
fn preflight() -> Result<(), Error> {
    sys::require_privileges()?;
    Tool::Ip.path()?;
    Ok(())
}

/// A command running `program` in `pod`, as `uid` (gid the same, no supplementary groups) when
/// given; see [`netns::command`] for why through `ip netns exec`.
pub fn pod_command(pod: &Pod, program: &str, uid: Option<u32>) -> Result<Command, Error> {
    Ok(netns::command(&pod.netns, program, uid)?)
}

/// Starts `argv` in `pod`, as `uid` when given.
pub fn run_in_pod(pod: &Pod, argv: &[&str], uid: Option<u32>) -> Result<Child, Error> {
    Ok(netns::spawn(&pod.netns, argv, uid)?)
}

/// Runs `f` on a thread inside `pod`'s network namespace (see [`netns::in_netns`]).
pub fn in_pod<T, F>(pod: &Pod, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    Ok(netns::in_netns(&pod.netns, f)?)
}
