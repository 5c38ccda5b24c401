//! The sidecar role, outbound side: for each port of the services visible from the proxy's
//! namespace, an HTTP listener whose route table has a virtual host per service (routes from the
//! mesh VirtualServices for it, else straight to its cluster; sniffing HTTP from TCP when a
//! service's port protocol is unknown), or a TCP or TLS-by-SNI listener.
//!
//! With capture ([`super::capture`]) these listeners become chains of the virtual outbound
//! listener and every HTTP table ends with Istio's `allow_any` or `block_all` virtual host.

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
    let services = super::scope::visible_services(cx, &ns);
    let mut http_ports: BTreeMap<u16, Vec<&Service>> = BTreeMap::new();
    let mut tcp: Vec<(&Service, u16)> = Vec::new();
    let mut sniffed: Vec<(&Service, u16)> = Vec::new();
    // Ports with a service whose protocol Istio cannot tell: sniffed, and non-HTTP traffic goes
    // to the first such service (a wildcard-address listener can carry one TCP destination).
    let mut sniffed_first: BTreeMap<u16, &Service> = BTreeMap::new();
    for s in &services {
        let s: &Service = s;
        if s.hostname.starts_with('*') {
            // Wildcard ServiceEntries are matched by SNI or Host only; no listener of their own.
            continue;
        }
        for p in &s.ports {
            if p.protocol.is_tcp() {
                tcp.push((s, p.number));
            } else {
                // HTTP, and unknown protocols: those are served as HTTP on 0.0.0.0:port too; with
                // capture, a service address of their own sniffs (HTTP, else TCP to the service).
                if p.protocol == api::protocol::Protocol::Unknown {
                    sniffed_first.entry(p.number).or_insert(s);
                }
                http_ports.entry(p.number).or_default().push(s);
                if p.protocol == api::protocol::Protocol::Unknown && cx.proxy.capture {
                    sniffed.push((s, p.number));
                }
            }
        }
    }
    let mut listeners = Vec::new();
    let mut tables = Vec::new();
    for (port, svcs) in &http_ports {
        let table = http_table(cx, *port, svcs);
        // With capture, a port some service leaves to sniffing takes non-HTTP connections
        // too, to where unknown destinations go (Istio's 0.0.0.0:port with protocol detection).
        let sniffs = cx.proxy.capture && sniffed.iter().any(|(_, p)| p == port);
        let kind = if sniffs {
            ListenerKind::AutoSniff {
                route_table: table.name.clone(),
                tcp_clusters: vec![super::capture::fallback_cluster(cx)],
            }
        } else if let Some(s) = sniffed_first.get(port) {
            ListenerKind::AutoSniff {
                route_table: table.name.clone(),
                tcp_clusters: own_cluster(cx, s, *port),
            }
        } else {
            ListenerKind::Http {
                route_table: table.name.clone(),
            }
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
        // only carry one destination, so use the service IP when there is one. With capture,
        // every address of the service (its VIPs) leads to it, as the original destination can
        // be any of them; without, one socket is bound, on the first.
        let mut addresses = service_ips(s, cx.proxy.capture);
        if addresses.is_empty() {
            addresses.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        }
        let listen = cx.listener_port(port)?;
        for address in addresses {
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
    }
    for (s, port) in sniffed {
        let listen = cx.listener_port(port)?;
        for address in service_ips(s, true) {
            if !bound.insert((address, listen)) {
                continue;
            }
            let tcp_clusters = own_cluster(cx, s, port);
            let mut l = Listener {
                name: String::new(),
                address,
                port: listen,
                kind: ListenerKind::AutoSniff {
                    route_table: port.to_string(),
                    tcp_clusters,
                },
                tls: None,
            };
            l.name = listener_name(&l);
            listeners.push(l);
        }
    }
    Ok((listeners, tables))
}

/// The service's IP addresses (CIDRs and names skipped): all of them, or only the first.
fn service_ips(s: &Service, all: bool) -> Vec<IpAddr> {
    let ips = s.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok());
    if all {
        // With capture, the auto-allocated VIP a client got from the DNS proxy leads here too.
        ips.chain(s.vip).collect()
    } else {
        ips.take(1).collect()
    }
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
    // A client that resolved the name through the DNS proxy may send the VIP as Host.
    names.extend(s.vip.map(|v| v.to_string()));
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
                        // Routes without a VirtualService get the mesh default too.
                        retry: super::resilience::retry_policy(cx.mesh, None).map(Box::new),
                        ..Default::default()
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
    if cx.proxy.capture {
        vhosts.push(super::capture::unknown_host_vhost(cx));
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
