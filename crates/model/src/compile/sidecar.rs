//! The sidecar role, outbound side: for each port of the services visible from the proxy's
//! namespace, an HTTP listener whose route table has a virtual host per service (routes from the
//! mesh VirtualServices for it, else straight to its cluster; sniffing HTTP from TCP when a
//! service's port protocol is unknown), or a TCP or TLS-by-SNI listener.
//!
//! Inbound listeners (15006), the capture listener (15001) and Sidecar resources come later.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use api::analyze::hosts::{host_matches, to_fqdn, MESH_GATEWAY};
use api::Resource;

use super::l4::{self, L4Listener};
use super::routes::{http_routes, Binding};
use super::{listener_name, CompileError, Cx};
use crate::cluster::{ClusterName, Direction};
use crate::registry::Service;
use crate::route::{ForwardAction, Route, RouteAction, RouteTable, VirtualHost, WeightedCluster};
use crate::snapshot::{Listener, ListenerKind, SniRoute};

pub(super) fn build(cx: &mut Cx<'_>) -> Result<(Vec<Listener>, Vec<RouteTable>), CompileError> {
    let ns = cx.proxy.namespace.clone();
    let services: Vec<Service> = cx.registry.visible(&ns).into_iter().cloned().collect();
    let mut http_ports: BTreeMap<u16, Vec<&Service>> = BTreeMap::new();
    let mut tcp: Vec<(&Service, u16)> = Vec::new();
    // Ports with a service whose protocol Istio cannot tell: sniffed, and non-HTTP traffic goes
    // to the first such service (a wildcard-address listener can carry one TCP destination).
    let mut sniffed: BTreeMap<u16, &Service> = BTreeMap::new();
    for s in &services {
        if s.hostname.starts_with('*') {
            // Wildcard ServiceEntries are matched by SNI or Host only; no listener of their own.
            continue;
        }
        for p in &s.ports {
            if p.protocol.is_tcp() {
                tcp.push((s, p.number));
            } else {
                if p.protocol == api::protocol::Protocol::Unknown {
                    sniffed.entry(p.number).or_insert(s);
                }
                http_ports.entry(p.number).or_default().push(s);
            }
        }
    }
    let mut listeners = Vec::new();
    let mut tables = Vec::new();
    for (port, svcs) in &http_ports {
        let table = http_table(cx, *port, svcs);
        let kind = match sniffed.get(port) {
            Some(s) => ListenerKind::AutoSniff {
                route_table: table.name.clone(),
                tcp_clusters: own_cluster(cx, s, *port),
            },
            None => ListenerKind::Http {
                route_table: table.name.clone(),
            },
        };
        let mut l = Listener {
            name: String::new(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: cx.listener_port(*port)?,
            kind,
            tls: None,
        };
        l.name = listener_name(&l);
        listeners.push(l);
        tables.push(table);
    }
    let mut bound: BTreeSet<(IpAddr, u16)> =
        listeners.iter().map(|l| (l.address, l.port)).collect();
    for (s, port) in tcp {
        // Without per-service addresses every service would share 0.0.0.0:port; a TCP port can
        // only carry one destination, so use the service IP when there is one.
        let address = s
            .addresses
            .iter()
            .find_map(|a| a.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let listen = cx.listener_port(port)?;
        if !bound.insert((address, listen)) {
            cx.warnings.push(super::Warning {
                resource: String::new(),
                message: format!(
                    "TCP port {port} of `{}` collides with another listener on {address}; skipped (service addresses are needed to tell them apart)",
                    s.hostname
                ),
            });
            continue;
        }
        let kind = tcp_kind(cx, s, port, address);
        let mut l = Listener {
            name: String::new(),
            address,
            port: listen,
            kind,
            tls: None,
        };
        l.name = listener_name(&l);
        listeners.push(l);
    }
    Ok((listeners, tables))
}

/// Domains a client may use for `s` on `port`: the FQDN, `name.ns` and `name.ns.svc` for
/// Kubernetes services, the short name from the same namespace, the service addresses; each
/// bare and with `:port`.
fn domains(s: &Service, port: u16, proxy_ns: &str) -> Vec<String> {
    let mut names = vec![s.hostname.clone()];
    if let Some(name) = &s.kube_name {
        if s.namespace == proxy_ns {
            names.push(name.clone());
        }
        names.push(format!("{name}.{}", s.namespace));
        names.push(format!("{name}.{}.svc", s.namespace));
    }
    names.extend(
        s.addresses
            .iter()
            .filter(|a| a.parse::<IpAddr>().is_ok())
            .cloned(),
    );
    let mut out = Vec::new();
    for n in names {
        out.push(format!("{n}:{port}"));
        out.push(n);
    }
    out
}

/// The mesh VirtualService for `host`: one naming it exactly beats a wildcard, then name order.
fn mesh_virtual_service<'a>(
    cx: &Cx<'a>,
    host: &str,
) -> Option<(&'a Resource, &'a api::types::VirtualService)> {
    let mut found: Vec<(bool, &'a Resource, &'a api::types::VirtualService)> = Vec::new();
    for (r, vs) in cx.virtual_services() {
        let is_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY);
        if !is_mesh {
            continue;
        }
        let mut exact = None;
        for h in &vs.hosts {
            let h = to_fqdn(r.namespace(), h);
            if h == host {
                exact = Some(true);
            } else if h.starts_with('*') && host_matches(&h, host) && exact.is_none() {
                exact = Some(false);
            }
        }
        if let Some(e) = exact {
            found.push((!e, r, vs));
        }
    }
    found.sort_by_key(|(wild, _, _)| *wild);
    found.into_iter().next().map(|(_, r, vs)| (r, vs))
}

fn http_table(cx: &mut Cx<'_>, port: u16, services: &[&Service]) -> RouteTable {
    let proxy_ns = cx.proxy.namespace.clone();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut vhosts = Vec::new();
    for s in services {
        let domains: Vec<String> = domains(s, port, &proxy_ns)
            .into_iter()
            .filter(|d| used.insert(d.clone()))
            .collect();
        if domains.is_empty() {
            continue;
        }
        let routes = match mesh_virtual_service(cx, &s.hostname) {
            Some((r, vs)) => http_routes(cx, r, vs, Binding::Mesh, port),
            None => {
                let cluster = ClusterName {
                    direction: Direction::Outbound,
                    port,
                    subset: String::new(),
                    host: s.hostname.clone(),
                }
                .to_string();
                cx.clusters
                    .insert((s.hostname.clone(), port, String::new()));
                vec![Route {
                    name: "default".into(),
                    matches: vec![],
                    action: RouteAction::Forward(ForwardAction {
                        clusters: vec![WeightedCluster {
                            cluster,
                            weight: 100,
                            headers: None,
                        }],
                        rewrite: None,
                        timeout_ms: None,
                        retry: None,
                    }),
                    request_headers: Default::default(),
                    response_headers: Default::default(),
                    cors: None,
                }]
            }
        };
        vhosts.push(VirtualHost {
            name: format!("{}:{port}", s.hostname),
            domains,
            routes,
        });
    }
    RouteTable {
        name: port.to_string(),
        virtual_hosts: vhosts,
    }
}

/// A mesh VirtualService's `tls` rules (SNI passthrough; SNI no rule claims goes to the service
/// itself) or its first `tcp` rule that applies, else the service's own cluster.
fn tcp_kind(cx: &mut Cx<'_>, s: &Service, port: u16, address: IpAddr) -> ListenerKind {
    if let Some((r, vs)) = mesh_virtual_service(cx, &s.hostname) {
        let l = L4Listener {
            binding: Binding::Mesh,
            port,
            address: (!address.is_unspecified()).then_some(address),
        };
        let mut routes = l4::tls_routes(cx, r, vs, l);
        if !routes.is_empty() {
            routes.push(SniRoute {
                sni_hosts: Vec::new(),
                clusters: own_cluster(cx, s, port),
            });
            return ListenerKind::TlsPassthrough { routes };
        }
        if let Some(clusters) = l4::tcp_clusters(cx, r, vs, l) {
            return ListenerKind::Tcp { clusters };
        }
    }
    ListenerKind::Tcp {
        clusters: own_cluster(cx, s, port),
    }
}

fn own_cluster(cx: &mut Cx<'_>, s: &Service, port: u16) -> Vec<WeightedCluster> {
    cx.clusters
        .insert((s.hostname.clone(), port, String::new()));
    vec![WeightedCluster::new(
        ClusterName {
            direction: Direction::Outbound,
            port,
            subset: String::new(),
            host: s.hostname.clone(),
        }
        .to_string(),
        100,
    )]
}
