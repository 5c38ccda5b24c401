//! A VirtualService's `tcp` and `tls` rules for one listener: which rules apply (port, gateways,
//! sourceLabels, sourceNamespace, destinationSubnets, resolved at compile time as pilot does for
//! one proxy and one listener) and the weighted clusters or SNI routes they give.
//!
//! `destinationSubnets` is checked against the address the listener is bound to (a sidecar binds
//! a TCP port per service address); on a wildcard address the destination is not known when
//! compiling, so such a match does not apply.

use std::net::IpAddr;

use api::analyze::hosts::to_fqdn;
use api::types::{RouteDestination, VirtualService};
use api::Resource;

use super::routes::Binding;
use super::{labels_match, Cx};
use crate::route::WeightedCluster;
use crate::snapshot::SniRoute;

/// The listener a rule is compiled for.
#[derive(Clone, Copy, Debug)]
pub(super) struct L4Listener<'b> {
    pub binding: Binding<'b>,
    /// The configured port (before any test offset).
    pub port: u16,
    /// The bound address; unspecified for `0.0.0.0`.
    pub address: Option<IpAddr>,
}

/// The conditions TCP and TLS matches share.
struct Conditions<'m> {
    port: u32,
    gateways: &'m [String],
    source_labels: &'m std::collections::BTreeMap<String, String>,
    source_namespace: &'m str,
    destination_subnets: &'m [String],
}

fn applies(cx: &Cx<'_>, vs_ns: &str, l: L4Listener<'_>, c: Conditions<'_>) -> bool {
    (c.port == 0 || c.port == u32::from(l.port))
        && (c.gateways.is_empty() || l.binding.admits(vs_ns, c.gateways))
        && labels_match(c.source_labels, &cx.proxy.labels)
        && (c.source_namespace.is_empty() || c.source_namespace == cx.proxy.namespace)
        && (c.destination_subnets.is_empty()
            || l.address
                .is_some_and(|a| c.destination_subnets.iter().any(|s| subnet_contains(s, a))))
}

/// Whether `subnet` (`10.0.0.0/8`, or one address) contains `addr`.
pub(super) fn subnet_contains(subnet: &str, addr: IpAddr) -> bool {
    let (net, len) = match subnet.split_once('/') {
        Some((n, l)) => (n, l.parse::<u32>().ok()),
        None => (subnet, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Weighted clusters for a rule's destinations; relative weights, a lone destination gets all.
fn clusters(
    cx: &mut Cx<'_>,
    r: &Resource,
    route: &[RouteDestination],
    port: u16,
) -> Vec<WeightedCluster> {
    let mut out = Vec::new();
    for d in route {
        let Some(dest) = &d.destination else { continue };
        let Some(cluster) = cx.destination_on(r, dest, Some(port)) else {
            continue;
        };
        let weight = if route.len() == 1 {
            100
        } else {
            u32::try_from(d.weight).unwrap_or(0)
        };
        out.push(WeightedCluster::new(cluster, weight));
    }
    out
}

/// The clusters of the first `tcp` rule of `vs` that applies on `l`.
pub(super) fn tcp_clusters(
    cx: &mut Cx<'_>,
    r: &Resource,
    vs: &VirtualService,
    l: L4Listener<'_>,
) -> Option<Vec<WeightedCluster>> {
    for rule in &vs.tcp {
        let ok = rule.matches.is_empty()
            || rule.matches.iter().any(|m| {
                applies(
                    cx,
                    r.namespace(),
                    l,
                    Conditions {
                        port: m.port,
                        gateways: &m.gateways,
                        source_labels: &m.source_labels,
                        source_namespace: &m.source_namespace,
                        destination_subnets: &m.destination_subnets,
                    },
                )
            });
        if !ok {
            continue;
        }
        let out = clusters(cx, r, &rule.route, l.port);
        if out.iter().any(|c| c.weight > 0) {
            return Some(out);
        }
    }
    None
}

/// SNI routes from the `tls` rules of `vs` that apply on `l`, in order. A match without
/// `sniHosts` takes the VirtualService's hosts.
pub(super) fn tls_routes(
    cx: &mut Cx<'_>,
    r: &Resource,
    vs: &VirtualService,
    l: L4Listener<'_>,
) -> Vec<SniRoute> {
    let mut out = Vec::new();
    for rule in &vs.tls {
        let mut sni_hosts: Vec<String> = Vec::new();
        for m in &rule.matches {
            let ok = applies(
                cx,
                r.namespace(),
                l,
                Conditions {
                    port: m.port,
                    gateways: &m.gateways,
                    source_labels: &m.source_labels,
                    source_namespace: &m.source_namespace,
                    destination_subnets: &m.destination_subnets,
                },
            );
            if !ok {
                continue;
            }
            let hosts = if m.sni_hosts.is_empty() {
                &vs.hosts
            } else {
                &m.sni_hosts
            };
            for h in hosts {
                let h = if h == "*" {
                    h.clone()
                } else {
                    to_fqdn(r.namespace(), h)
                };
                if !sni_hosts.contains(&h) {
                    sni_hosts.push(h);
                }
            }
        }
        if sni_hosts.is_empty() {
            continue;
        }
        // `*` matches any SNI; the runtime's form for that is an empty list.
        if sni_hosts.iter().any(|h| h == "*") {
            sni_hosts.clear();
        }
        let clusters = clusters(cx, r, &rule.route, l.port);
        if clusters.iter().any(|c| c.weight > 0) {
            out.push(SniRoute {
                sni_hosts,
                clusters,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let a: IpAddr = "10.96.1.7".parse().unwrap();
        assert!(subnet_contains("10.96.0.0/16", a));
        assert!(subnet_contains("10.96.1.7", a));
        assert!(subnet_contains("0.0.0.0/0", a));
        assert!(!subnet_contains("10.97.0.0/16", a));
        assert!(!subnet_contains("::/0", a));
        assert!(!subnet_contains("nonsense", a));
    }
}
