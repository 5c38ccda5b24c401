//! The name table a sidecar's DNS proxy answers from, compiled per proxy as Istio's DNS proxy
//! gets its `NameTable`: every service the proxy's namespace sees, under each name a client in
//! that namespace could use.
//!
//! A Kubernetes-style host `<svc>.<ns>.svc.cluster.local` is answered as itself and as
//! `<svc>.<ns>.svc` and `<svc>.<ns>` (what a pod's resolv.conf search list would expand to), and
//! as the bare `<svc>` when `<ns>` is the proxy's own namespace. Other ServiceEntry hosts are
//! answered as written. Addresses are the service's own IP addresses, else its virtual IP
//! ([`crate::registry::vips`]); a service with neither (a wildcard host) has no entry.

use std::collections::BTreeMap;
use std::net::IpAddr;

use api::analyze::hosts::SERVICE_DOMAIN;
use serde::{Deserialize, Serialize};

use crate::registry::{Registry, Service};

/// One name and the addresses it resolves to. Names are lowercase, without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsName {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

/// The table for a proxy in `namespace` that sees every service exported to it, sorted by name
/// (see [`lookup`]).
pub fn name_table(registry: &Registry, namespace: &str) -> Vec<DnsName> {
    name_table_of(registry.visible(namespace), namespace)
}

/// The table of `services` (as [`Registry::visible`] orders them: the proxy's own namespace
/// first) for a proxy in `namespace`. A Sidecar's egress hosts narrow the services, and so the
/// names, as Istio builds its name table from the proxy's Sidecar scope.
pub fn name_table_of<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
) -> Vec<DnsName> {
    let mut table: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    // Services from the proxy's own namespace come first from `visible`, so they win a name.
    for s in services {
        if s.hostname.starts_with('*') {
            continue;
        }
        let mut addresses: Vec<IpAddr> =
            s.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        if addresses.is_empty() {
            addresses.extend(s.vip);
        }
        if addresses.is_empty() {
            continue;
        }
        for name in aliases(&s.hostname.to_ascii_lowercase(), namespace) {
            table.entry(name).or_insert_with(|| addresses.clone());
        }
    }
    table
        .into_iter()
        .map(|(name, addresses)| DnsName { name, addresses })
        .collect()
}

/// The names a client in `namespace` may use for `host`.
fn aliases(host: &str, namespace: &str) -> Vec<String> {
    let mut out = vec![host.to_string()];
    let Some(rest) = host
        .strip_suffix(SERVICE_DOMAIN)
        .and_then(|r| r.strip_suffix('.'))
    else {
        return out;
    };
    let Some((svc, ns)) = rest.rsplit_once('.') else {
        return out;
    };
    if svc.is_empty() || ns.is_empty() || svc.contains('.') {
        return out;
    }
    out.push(format!("{svc}.{ns}.svc"));
    out.push(format!("{svc}.{ns}"));
    if ns == namespace {
        out.push(svc.to_string());
    }
    out
}

/// The entry for `name` (any case, with or without the trailing dot) in a sorted table.
pub fn lookup<'a>(table: &'a [DnsName], name: &str) -> Option<&'a DnsName> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    table
        .binary_search_by(|e| e.name.as_str().cmp(name.as_str()))
        .ok()
        .map(|i| &table[i])
}

#[cfg(test)]
mod tests;
