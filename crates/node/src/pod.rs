//! Pods: one named network namespace each, joined to the bridge by a veth pair, with an address
//! from the pod CIDR, loopback up and a default route via the bridge.
//!
//! The kernel is the only record: a pod's address is read back from its namespace's `eth0`, and
//! the addresses in use are those of the live namespaces plus the indexes in the names of live
//! host links (a pod half-made by a crash holds its index until cleanup). Creation and deletion
//! take a file lock so two processes never pick the same address.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::capture::{self, Capture};
use crate::host::addr_infos;
use crate::ipam::{mac_for, Pool};
use crate::names::Tag;
use crate::sys::{self, SysError, Tool};
use crate::Error;

/// The interface name inside every pod, as in Kubernetes.
pub const POD_IFNAME: &str = "eth0";

/// A pod's network: what a proxy or a process started in the pod needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Kubernetes namespace.
    pub namespace: String,
    pub name: String,
    /// The named network namespace (`ip netns`).
    pub netns: String,
    /// The pod's address on the bridge.
    pub ip: Ipv4Addr,
    /// The pod CIDR.
    pub net: Ipv4Net,
    /// The bridge's address, the pod's default route.
    pub gateway: Ipv4Addr,
    /// The host end of the pod's veth.
    pub host_link: String,
}

/// Holds the node's lock file; the lock is released on drop.
pub(crate) struct NodeLock(#[allow(dead_code)] Flock<File>);

/// Serialises address allocation and pod changes across processes.
pub(crate) fn lock(tag: &Tag) -> Result<NodeLock, Error> {
    let dir = std::path::Path::new("/run/bowline");
    let path = dir.join(format!("{}.lock", tag.as_str()));
    let err = |source| Error::Lock {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map(NodeLock)
        .map_err(|(_, errno)| err(errno.into()))
}

/// Names of our pod namespaces.
pub(crate) fn list_netns(tag: &Tag) -> Result<Vec<String>, SysError> {
    let v = sys::run_json(Tool::Ip, &["-j", "netns", "list"])?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("name")?.as_str())
        .filter(|n| tag.parse_netns(n).is_some())
        .map(str::to_string)
        .collect())
}

/// Names of host links carrying our prefix (pod veth host ends).
pub(crate) fn list_host_links(tag: &Tag) -> Result<Vec<String>, SysError> {
    let v = sys::run_json(Tool::Ip, &["-j", "link", "show"])?;
    let prefix = tag.prefix();
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("ifname")?.as_str())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect())
}

/// The pod living in `netns`, or `None` when it is incomplete (no `eth0` address of this pool).
pub(crate) fn read(tag: &Tag, pool: &Pool, netns: &str) -> Result<Option<Pod>, SysError> {
    let Some((namespace, name)) = tag.parse_netns(netns) else {
        return Ok(None);
    };
    let v = match sys::run_json(
        Tool::Ip,
        &["-n", netns, "-j", "-4", "addr", "show", "dev", POD_IFNAME],
    ) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let found = addr_infos(&v).find_map(|(_, local, _)| {
        let ip: Ipv4Addr = local.parse().ok()?;
        Some((ip, pool.index(ip)?))
    });
    Ok(found.map(|(ip, index)| Pod {
        namespace,
        name,
        netns: netns.to_string(),
        ip,
        net: pool.net(),
        gateway: pool.gateway(),
        host_link: tag.host_link(index),
    }))
}

/// Creates pod `namespace/name`, or returns it when it already exists whole. A half-made pod
/// (a crash during creation) is removed and made again. `capture` is applied either way.
pub(crate) fn create(
    tag: &Tag,
    pool: &Pool,
    namespace: &str,
    name: &str,
    capture: Option<&Capture>,
) -> Result<Pod, Error> {
    let netns = tag.netns(namespace, name)?;
    let _lock = lock(tag)?;
    let existing = list_netns(tag)?;
    if existing.contains(&netns) {
        if let Some(pod) = read(tag, pool, &netns)? {
            capture::apply(&pod.netns, capture)?;
            return Ok(pod);
        }
        tracing::warn!(%netns, "removing half-made pod");
        remove(tag, &netns, None)?;
    }

    let mut used = BTreeSet::new();
    for other in existing.iter().filter(|n| **n != netns) {
        if let Some(pod) = read(tag, pool, other)? {
            used.extend(pool.index(pod.ip));
        }
    }
    for link in list_host_links(tag)? {
        used.extend(tag.parse_host_link(&link));
    }
    let index = pool.allocate(&used)?;
    let pod = Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        netns: netns.clone(),
        ip: pool.addr(index),
        net: pool.net(),
        gateway: pool.gateway(),
        host_link: tag.host_link(index),
    };
    match build(tag, &pod, capture) {
        Ok(()) => {
            tracing::info!(pod = %format!("{namespace}/{name}"), ip = %pod.ip, %netns, "created pod");
            Ok(pod)
        }
        Err(e) => {
            if let Err(undo) = remove(tag, &netns, Some(&pod.host_link)) {
                tracing::warn!(%netns, error = %undo, "could not undo a failed pod creation");
            }
            Err(e)
        }
    }
}

fn build(tag: &Tag, pod: &Pod, capture: Option<&Capture>) -> Result<(), Error> {
    let (netns, host) = (pod.netns.as_str(), pod.host_link.as_str());
    sys::run(Tool::Ip, &["netns", "add", netns], None)?;
    // The peer is created directly inside the namespace under its final name, so no temporary
    // name can collide in the host namespace.
    sys::run(
        Tool::Ip,
        &[
            "link", "add", host, "type", "veth", "peer", "name", POD_IFNAME, "netns", netns,
        ],
        None,
    )?;
    disable_ipv6(netns)?;
    let alias = tag.link_alias(&pod.namespace, &pod.name);
    let host_side = format!(
        "link set dev {host} alias {alias}\n\
         link set dev {host} master {bridge}\n\
         link set dev {host} up\n",
        bridge = tag.bridge(),
    );
    sys::run(Tool::Ip, &["-batch", "-"], Some(&host_side))?;
    let pod_side = format!(
        "link set dev lo up\n\
         link set dev {POD_IFNAME} address {mac}\n\
         addr add {ip}/{len} dev {POD_IFNAME}\n\
         link set dev {POD_IFNAME} up\n\
         route add default via {gw} dev {POD_IFNAME}\n",
        mac = mac_for(pod.ip),
        ip = pod.ip,
        len = pod.net.prefix_len(),
        gw = pod.gateway,
    );
    sys::run(Tool::Ip, &["-n", netns, "-batch", "-"], Some(&pod_side))?;
    capture::apply(netns, capture)?;
    Ok(())
}

/// Turns IPv6 off on the pod's `eth0` before it comes up. The pod network and its capture are
/// IPv4; left on, the kernel would give `eth0` a link-local address that apps could use to reach
/// other pods uncaptured, and chatter (DAD, router solicitations) would cross the bridge. The
/// pod's loopback keeps ::1.
fn disable_ipv6(netns: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/net/ipv6/conf/{POD_IFNAME}/disable_ipv6");
    // /proc/sys/net shows the network namespace of the thread that opens it.
    match crate::netns::in_netns(netns, move || std::fs::write(&path, "1"))? {
        Ok(()) => Ok(()),
        // No such file: IPv6 is off in this kernel altogether.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Ipv6 {
            netns: netns.to_string(),
            source,
        }),
    }
}

/// Removes a pod's processes, host link and namespace; each step tolerates "already gone".
/// `host_link` is the pod's host link when known; otherwise it is read from the namespace.
pub(crate) fn remove(tag: &Tag, netns: &str, host_link: Option<&str>) -> Result<(), Error> {
    kill_processes(netns)?;
    let link = match host_link {
        Some(l) => Some(l.to_string()),
        None => host_link_of(tag, netns)?,
    };
    if let Some(link) = link {
        // Deleting the host end takes the pod end with it at once, whereas a namespace is freed
        // asynchronously and keeps its links until then.
        ignore_not_found(sys::run(Tool::Ip, &["link", "del", &link], None))?;
    }
    ignore_not_found(sys::run(Tool::Ip, &["netns", "del", netns], None))?;
    Ok(())
}

/// The host end of the veth in `netns`, found through the peer index of its `eth0`.
fn host_link_of(tag: &Tag, netns: &str) -> Result<Option<String>, SysError> {
    let v = match sys::run_json(
        Tool::Ip,
        &["-n", netns, "-j", "link", "show", "dev", POD_IFNAME],
    ) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(peer) = v
        .get(0)
        .and_then(|l| l.get("link_index"))
        .and_then(Value::as_u64)
    else {
        return Ok(None);
    };
    let links = sys::run_json(Tool::Ip, &["-j", "link", "show"])?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l.get("ifindex").and_then(Value::as_u64) == Some(peer))
        .and_then(|l| l.get("ifname")?.as_str())
        .filter(|n| n.starts_with(&tag.prefix()))
        .map(str::to_string))
}

fn ignore_not_found(r: Result<String, SysError>) -> Result<(), SysError> {
    match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Ends every process in `netns`: SIGTERM, a grace period, then SIGKILL. A process keeps its
/// namespace alive after `ip netns del`, so this is what makes a pod really gone.
pub(crate) fn kill_processes(netns: &str) -> Result<Vec<i32>, SysError> {
    const GRACE: Duration = Duration::from_secs(3);
    let pids = |netns: &str| -> Result<Vec<i32>, SysError> {
        match sys::run(Tool::Ip, &["netns", "pids", netns], None) {
            Ok(out) => Ok(out
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                // Never ourselves: a thread of ours may have joined the namespace.
                .filter(|p| *p != std::process::id() as i32)
                .collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    let first = pids(netns)?;
    if first.is_empty() {
        return Ok(first);
    }
    for pid in &first {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    loop {
        let left = pids(netns)?;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(netns, ?left, "processes ignored SIGTERM; killing");
            for pid in &left {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!(netns, pids = ?first, "stopped pod processes");
    Ok(first)
}
