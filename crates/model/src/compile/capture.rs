//! The sidecar with traffic capture, as Istio builds it: iptables sends the application's
//! outbound connections to the virtual outbound listener (15001) and everything arriving for the
//! workload to the virtual inbound listener (15006); both pick a chain by the connection's
//! original destination.
//!
//! - [`outbound`]: the per-port outbound listeners of [`super::sidecar`] become chains of 15001
//!   (service address and port first, then `0.0.0.0:port`); anything else follows
//!   `outboundTrafficPolicy`: `ALLOW_ANY` to PassthroughCluster (the original destination),
//!   `REGISTRY_ONLY` to BlackHoleCluster.
//! - [`inbound`]: one chain per port the workload serves for a service (the services whose
//!   endpoints are this workload), to an `inbound|port||` cluster that reaches the application at
//!   the original destination; unknown ports go to InboundPassthroughCluster. Each chain carries
//!   its PeerAuthentication mode ([`super::peerauth`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use api::protocol::Protocol;
use api::types::mesh::OutboundTrafficPolicyMode;

use super::peerauth;
use super::{labels_match, CompileError, Cx};
use crate::cluster::{Cluster, ClusterName, Direction, LbPolicy, UpstreamProtocol};
use crate::route::{
    DirectResponse, ForwardAction, Route, RouteAction, RouteTable, VirtualHost, WeightedCluster,
};
use crate::snapshot::{CaptureChain, Listener, ListenerKind, PeerMtls};

pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub const VIRTUAL_INBOUND: &str = "virtualInbound";

fn registry_only(cx: &Cx<'_>) -> bool {
    super::scope::outbound_policy(cx) == OutboundTrafficPolicyMode::RegistryOnly
}

fn capture_port(port: i32, default: u16) -> u16 {
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .unwrap_or(default)
}

/// A cluster whose connections go to the address the client dialed.
fn original_dst_cluster(cx: &Cx<'_>, name: &str, protocol: UpstreamProtocol) -> Cluster {
    Cluster {
        name: name.to_string(),
        protocol,
        lb_policy: LbPolicy::Passthrough,
        connect_timeout_ms: cx.connect_timeout_ms(None),
        policy: Default::default(),
        endpoints: Vec::new(),
    }
}

/// The virtual host every outbound HTTP route table ends with when traffic is captured: hosts
/// the registry does not know go to the original destination, or get a 502 under
/// `REGISTRY_ONLY` (Istio's `allow_any` and `block_all`).
pub(super) fn unknown_host_vhost(cx: &mut Cx<'_>) -> VirtualHost {
    let (name, action) = if registry_only(cx) {
        (
            "block_all",
            RouteAction::DirectResponse(DirectResponse {
                status: 502,
                body: None,
                body_base64: None,
            }),
        )
    } else {
        cx.need_passthrough = true;
        (
            "allow_any",
            RouteAction::Forward(ForwardAction {
                clusters: vec![WeightedCluster::new(PASSTHROUGH_CLUSTER, 100)],
                ..Default::default()
            }),
        )
    };
    VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes: vec![Route {
            name: name.into(),
            matches: vec![],
            action,
            request_headers: Default::default(),
            response_headers: Default::default(),
            cors: None,
        }],
    }
}

/// Where outbound connections to unknown destinations go: PassthroughCluster, or
/// BlackHoleCluster under `REGISTRY_ONLY` (both added by [`outbound`]).
pub(super) fn fallback_cluster(cx: &mut Cx<'_>) -> WeightedCluster {
    let cluster = if registry_only(cx) {
        BLACKHOLE_CLUSTER
    } else {
        cx.need_passthrough = true;
        PASSTHROUGH_CLUSTER
    };
    WeightedCluster::new(cluster, 100)
}

/// Folds the per-port outbound listeners into the virtual outbound listener.
pub(super) fn outbound(cx: &mut Cx<'_>, listeners: Vec<Listener>) -> (Listener, Vec<Cluster>) {
    let chains = listeners
        .into_iter()
        .map(|l| CaptureChain {
            address: (!l.address.is_unspecified()).then_some(l.address),
            port: l.port,
            mtls: PeerMtls::Disable,
            kind: l.kind,
        })
        .collect();
    let mut clusters = Vec::new();
    let fallback = fallback_cluster(cx);
    if registry_only(cx) {
        clusters.push(Cluster {
            name: BLACKHOLE_CLUSTER.into(),
            protocol: UpstreamProtocol::Http1,
            lb_policy: LbPolicy::RoundRobin,
            connect_timeout_ms: cx.connect_timeout_ms(None),
            policy: Default::default(),
            endpoints: Vec::new(),
        });
    }
    if cx.need_passthrough {
        clusters.push(original_dst_cluster(
            cx,
            PASSTHROUGH_CLUSTER,
            UpstreamProtocol::Http1,
        ));
    }
    let listener = Listener {
        name: VIRTUAL_OUTBOUND.into(),
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: capture_port(cx.mesh.proxy_listen_port(), 15001),
        kind: ListenerKind::OutboundCapture {
            chains,
            fallback: vec![fallback],
        },
        tls: None,
    };
    (listener, clusters)
}

/// The ports this workload serves, with their protocol: the target ports of every service
/// whose endpoints are this workload (its pod IP, or its labels in its namespace).
pub(super) fn workload_ports(cx: &Cx<'_>) -> BTreeMap<u16, Protocol> {
    let proxy = cx.proxy;
    let mut out: BTreeMap<u16, Protocol> = BTreeMap::new();
    for s in &cx.registry.services {
        for e in &s.endpoints {
            let is_self = proxy.pod_ip == Some(e.address)
                || (!proxy.labels.is_empty()
                    && s.namespace == proxy.namespace
                    && labels_match(&proxy.labels, &e.labels));
            if !is_self {
                continue;
            }
            let Some(p) = s.port(e.service_port) else {
                continue;
            };
            // Two services naming one target port: an explicit protocol beats sniffing.
            let entry = out.entry(e.port).or_insert(p.protocol);
            if *entry == Protocol::Unknown {
                *entry = p.protocol;
            }
        }
    }
    out
}

pub(super) fn inbound(
    cx: &mut Cx<'_>,
) -> Result<(Listener, Vec<RouteTable>, Vec<Cluster>), CompileError> {
    let modes = peerauth::modes(cx);
    let mut ports = workload_ports(cx);
    let mut tables = Vec::new();
    let mut clusters = vec![original_dst_cluster(
        cx,
        INBOUND_PASSTHROUGH_CLUSTER,
        UpstreamProtocol::Http1,
    )];
    // A port-level mode for a port no service names still applies: the port is served as
    // opaque TCP to the application.
    for port in modes.ports.keys() {
        ports.entry(*port).or_insert(Protocol::Tcp);
    }
    let mut chains = Vec::new();
    for (port, protocol) in ports {
        let cluster = ClusterName {
            direction: Direction::Inbound,
            port,
            subset: String::new(),
            host: String::new(),
        }
        .to_string();
        let upstream = if protocol.is_http2() {
            UpstreamProtocol::Http2
        } else {
            UpstreamProtocol::Http1
        };
        clusters.push(original_dst_cluster(cx, &cluster, upstream));
        let to_app = vec![WeightedCluster::new(cluster.clone(), 100)];
        let http_table = |tables: &mut Vec<RouteTable>| {
            tables.push(RouteTable {
                name: cluster.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: format!("inbound|http|{port}"),
                    domains: vec!["*".into()],
                    routes: vec![Route {
                        name: "default".into(),
                        matches: vec![],
                        action: RouteAction::Forward(ForwardAction {
                            clusters: to_app.clone(),
                            ..Default::default()
                        }),
                        request_headers: Default::default(),
                        response_headers: Default::default(),
                        cors: None,
                    }],
                }],
            });
            cluster.clone()
        };
        let kind = if protocol.is_http() {
            ListenerKind::Http {
                route_table: http_table(&mut tables),
            }
        } else if protocol.is_tcp() || protocol == Protocol::Udp {
            ListenerKind::Tcp {
                clusters: to_app.clone(),
            }
        } else {
            ListenerKind::AutoSniff {
                route_table: http_table(&mut tables),
                tcp_clusters: to_app.clone(),
            }
        };
        chains.push(CaptureChain {
            address: None,
            port,
            mtls: modes.port(port),
            kind,
        });
    }
    let listener = Listener {
        name: VIRTUAL_INBOUND.into(),
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: capture_port(cx.mesh.proxy_inbound_listen_port(), 15006),
        kind: ListenerKind::InboundCapture {
            chains,
            fallback: vec![WeightedCluster::new(INBOUND_PASSTHROUGH_CLUSTER, 100)],
            fallback_mtls: modes.workload,
        },
        tls: None,
    };
    Ok((listener, tables, clusters))
}
