//! The host side of the node network: the bridge that carries the pod CIDR's first address, and a
//! host iptables chain that keeps pod traffic on the bridge.
//!
//! The pod network is private to this machine: there is no NAT and nothing routes it out. Most
//! hosts do not forward at all, but one running Docker both forwards and drops bridged traffic by
//! default (br_netfilter sends bridged frames through FORWARD, whose policy Docker sets to DROP).
//! So the chain accepts bridge-to-bridge traffic, which pod-to-pod needs, and drops anything
//! forwarded into or out of the bridge, so a pod's packet can never leave through another
//! interface even where forwarding is on. The host itself still reaches pods directly.

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::ipam::Pool;
use crate::names::Tag;
use crate::sys::{self, SysError, Tool};
use crate::Error;

/// Creates the bridge, gives it the gateway address, brings it up and installs the forwarding
/// chain. Safe to call any number of times, also concurrently with another process doing it.
pub(crate) fn ensure(tag: &Tag, pool: &Pool) -> Result<(), Error> {
    let bridge = tag.bridge();
    check_overlap(&bridge, pool.net())?;
    match link_kind(&bridge)? {
        Some(kind) if kind == "bridge" => {}
        Some(_) => return Err(Error::NotABridge(bridge)),
        None => match sys::run(Tool::Ip, &["link", "add", &bridge, "type", "bridge"], None) {
            Ok(_) => tracing::info!(%bridge, "created bridge"),
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(e.into()),
        },
    }
    let want = format!("{}/{}", pool.gateway(), pool.net().prefix_len());
    for stale in ipv4_addrs(&bridge)?.into_iter().filter(|a| a != &want) {
        // Left from a run with another pod CIDR: pods of that CIDR could not reach us anyway.
        sys::run(Tool::Ip, &["addr", "del", &stale, "dev", &bridge], None)?;
    }
    sys::run(Tool::Ip, &["addr", "replace", &want, "dev", &bridge], None)?;
    sys::run(Tool::Ip, &["link", "set", &bridge, "up"], None)?;
    ensure_forward_chain(tag)?;
    Ok(())
}

/// The kind of link `name` (`bridge`, `veth`, ...), `Some("")` for a plain device, `None` when
/// there is no such link.
pub(crate) fn link_kind(name: &str) -> Result<Option<String>, SysError> {
    match sys::run_json(Tool::Ip, &["-j", "-d", "link", "show", "dev", name]) {
        Ok(v) => Ok(Some(
            v.get(0)
                .and_then(|l| l.pointer("/linkinfo/info_kind"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `address/prefix` of every IPv4 address on `dev`.
fn ipv4_addrs(dev: &str) -> Result<Vec<String>, SysError> {
    let v = sys::run_json(Tool::Ip, &["-j", "-4", "addr", "show", "dev", dev])?;
    Ok(addr_infos(&v)
        .map(|(_, local, len)| format!("{local}/{len}"))
        .collect())
}

/// `(interface, address, prefix length)` for every address in `ip -j addr` output.
pub(crate) fn addr_infos(v: &Value) -> impl Iterator<Item = (&str, &str, u64)> {
    v.as_array().into_iter().flatten().flat_map(|link| {
        let ifname = link.get("ifname").and_then(Value::as_str).unwrap_or("");
        link.get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(move |a| {
                Some((
                    ifname,
                    a.get("local")?.as_str()?,
                    a.get("prefixlen")?.as_u64()?,
                ))
            })
    })
}

/// Refuses a pod CIDR that overlaps an address on another host interface (Podman's default
/// network is also 10.88.0.0/16): the host's routes to the pods would be ambiguous.
fn check_overlap(bridge: &str, net: Ipv4Net) -> Result<(), Error> {
    let v = sys::run_json(Tool::Ip, &["-j", "-4", "addr", "show"])?;
    for (ifname, local, len) in addr_infos(&v) {
        if ifname == bridge {
            continue;
        }
        let Ok(other) = format!("{local}/{len}").parse::<Ipv4Net>() else {
            continue;
        };
        if net.contains(&other.network()) || other.contains(&net.network()) {
            return Err(Error::Overlap {
                cidr: net,
                addr: other,
                link: ifname.to_string(),
            });
        }
    }
    Ok(())
}

/// Writes the forwarding chain in one `iptables-restore` (declaring an existing chain empties
/// it, so the chain is replaced atomically) and hooks it first into FORWARD once.
fn ensure_forward_chain(tag: &Tag) -> Result<(), Error> {
    let (chain, bridge) = (tag.forward_chain(), tag.bridge());
    let input = format!(
        "*filter\n:{chain} - [0:0]\n\
         -A {chain} -i {bridge} -o {bridge} -j ACCEPT\n\
         -A {chain} -i {bridge} -j DROP\n\
         -A {chain} -o {bridge} -j DROP\n\
         COMMIT\n"
    );
    sys::run(
        Tool::IptablesRestore,
        &["--wait", "--noflush"],
        Some(&input),
    )?;
    let jump = ["-w", "-C", "FORWARD", "-j", chain.as_str()];
    if sys::run(Tool::Iptables, &jump, None).is_err() {
        sys::run(
            Tool::Iptables,
            &["-w", "-I", "FORWARD", "1", "-j", &chain],
            None,
        )?;
    }
    Ok(())
}

/// Removes the forwarding chain and every jump to it. Returns whether there was a chain.
pub(crate) fn remove_forward_chain(tag: &Tag) -> Result<bool, SysError> {
    let chain = tag.forward_chain();
    // A jump may have been added twice by racing starts; delete until none is left.
    for _ in 0..16 {
        match sys::run(Tool::Iptables, &["-w", "-D", "FORWARD", "-j", &chain], None) {
            Ok(_) => continue,
            Err(e) if e.is_not_found() => break,
            Err(e) => return Err(e),
        }
    }
    match sys::run(Tool::Iptables, &["-w", "-F", &chain], None) {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    }
    sys::run(Tool::Iptables, &["-w", "-X", &chain], None)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_infos_reads_ip_json() {
        let v: Value = serde_json::from_str(
            r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
                {"ifindex":4,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.0.2.15","prefixlen":24},{"family":"inet","prefixlen":24}]},
                {"ifindex":5,"ifname":"bowline0"}]"#,
        )
        .unwrap();
        let got: Vec<_> = addr_infos(&v).collect();
        assert_eq!(got, vec![("lo", "127.0.0.1", 8), ("eth0", "10.0.2.15", 24)]);
    }
}
