//! The gateway role: a listener per port of the Gateways whose `selector` matches the proxy, and
//! the route tables of the VirtualServices bound to them.
//!
//! Virtual hosts are the intersection of a VirtualService's hosts with its server's hosts
//! (`ns/host` server hosts restrict which namespaces' VirtualServices may bind). There is no
//! default route: a request no VirtualService claims gets Envoy's 404 (NR), as from Istio's
//! ingress.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use api::analyze::hosts::{host_matches, to_fqdn};
use api::types::{Gateway, Server, ServerTlsMode, ServerTlsProtocol, ServerTlsSettings};
use api::{Resource, Spec};

use super::l4::{self, L4Listener};
use super::routes::{http_routes, qualify_gateway, Binding};
use super::{labels_match, listener_name, CompileError, Cx};
use crate::route::{Redirect, Route, RouteAction, RouteTable, VirtualHost, WeightedCluster};
use crate::snapshot::{Listener, ListenerKind, ServerTls, SniRoute, TlsCertificate, TlsMode};

/// A server and the gateway (`ns/name`) declaring it.
struct Bound<'a> {
    gateway: String,
    gateway_ns: &'a str,
    resource: &'a Resource,
    server: &'a Server,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Http,
    Tcp,
    /// TLS routed by SNI without terminating (PASSTHROUGH / AUTO_PASSTHROUGH).
    TlsPassthrough,
}

pub(super) fn build(cx: &mut Cx<'_>) -> Result<(Vec<Listener>, Vec<RouteTable>), CompileError> {
    let gateways: Vec<(&Resource, &Gateway)> = cx
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Gateway(g) => Some((*r, g.as_ref())),
            _ => None,
        })
        // An empty selector selects every gateway proxy, as in Istio.
        .filter(|(_, g)| labels_match(&g.selector, &cx.proxy.labels))
        .collect();
    let mut by_port: BTreeMap<u16, Vec<Bound<'_>>> = BTreeMap::new();
    for (r, g) in &gateways {
        for s in &g.servers {
            let Some(port) = s
                .port
                .as_ref()
                .and_then(|p| p.number)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
            else {
                cx.warn(r, "server without a TCP port number; skipped");
                continue;
            };
            if s.bind.is_some() {
                cx.warn(
                    r,
                    format!(
                        "server on port {port}: bind is not supported yet; listening on 0.0.0.0"
                    ),
                );
            }
            by_port.entry(port).or_default().push(Bound {
                gateway: format!("{}/{}", r.namespace(), r.name()),
                gateway_ns: r.namespace(),
                resource: r,
                server: s,
            });
        }
    }
    let mut listeners = Vec::new();
    let mut tables = Vec::new();
    for (port, servers) in by_port {
        let mut kept: Vec<&Bound<'_>> = Vec::new();
        let mut kind = None;
        for b in &servers {
            let protocol = b
                .server
                .port
                .as_ref()
                .and_then(|p| p.protocol.as_deref())
                .unwrap_or("")
                .to_ascii_uppercase();
            let tls_mode = b.server.tls.as_ref().map(|t| t.mode);
            let passthrough = matches!(
                tls_mode,
                Some(ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough)
            );
            let this = match protocol.as_str() {
                "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => Kind::Http,
                "TCP" | "MONGO" => Kind::Tcp,
                "HTTPS" | "TLS" if passthrough => Kind::TlsPassthrough,
                "HTTPS" => Kind::Http,
                "TLS" => Kind::Tcp,
                other => {
                    cx.warn(
                        b.resource,
                        format!(
                            "server on port {port}: protocol {other} is not supported; skipped"
                        ),
                    );
                    continue;
                }
            };
            match kind {
                None => kind = Some(this),
                Some(k) if k != this => {
                    cx.warn(b.resource, format!("server on port {port} conflicts with another server's protocol on that port; skipped"));
                    continue;
                }
                Some(_) => {}
            }
            kept.push(b);
        }
        let Some(kind) = kind else { continue };
        let listen = cx.listener_port(port)?;
        let mut listener = Listener {
            name: String::new(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: listen,
            kind: ListenerKind::Tcp { clusters: vec![] },
            tls: server_tls(cx, port, &kept),
        };
        if listener.tls.as_ref().is_some_and(|t| t.mode.terminates()) {
            cx.warnings.push(super::Warning {
                resource: String::new(),
                message: format!("port {port}: TLS termination is not implemented yet; the listener refuses connections"),
            });
        }
        match kind {
            Kind::Http => {
                let table = http_table(cx, port, &kept);
                listener.kind = ListenerKind::Http {
                    route_table: table.name.clone(),
                };
                tables.push(table);
            }
            Kind::Tcp => {
                let Some(clusters) = tcp_clusters(cx, port, &kept) else {
                    continue;
                };
                listener.kind = ListenerKind::Tcp { clusters };
            }
            Kind::TlsPassthrough => {
                let routes = sni_routes(cx, port, &kept);
                if routes.is_empty() {
                    if let Some(b) = kept.first() {
                        cx.warn(
                            b.resource,
                            format!("no VirtualService routes TLS on port {port}; no listener"),
                        );
                    }
                    continue;
                }
                listener.kind = ListenerKind::TlsPassthrough { routes };
            }
        }
        listener.name = listener_name(&listener);
        listeners.push(listener);
    }
    Ok((listeners, tables))
}

/// The hosts a VirtualService in `vs_ns` serves through `server`: for each pair that match, the
/// narrower of the two.
fn server_hosts(vs_ns: &str, vs_hosts: &[String], b: &Bound<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for sh in &b.server.hosts {
        let (ns, host) = sh.split_once('/').unwrap_or(("*", sh));
        let ns = if ns == "." { b.gateway_ns } else { ns };
        if ns != "*" && ns != vs_ns {
            continue;
        }
        for vh in vs_hosts {
            let vh = to_fqdn(vs_ns, vh);
            if !host_matches(&vh, host) {
                continue;
            }
            let narrower = match (vh.strip_prefix('*'), host.strip_prefix('*')) {
                (Some(_), None) => host.to_string(),
                (Some(v), Some(h)) if h.len() > v.len() => host.to_string(),
                _ => vh,
            };
            if !out.contains(&narrower) {
                out.push(narrower);
            }
        }
    }
    out
}

fn http_table(cx: &mut Cx<'_>, port: u16, servers: &[&Bound<'_>]) -> RouteTable {
    let names: Vec<String> = servers.iter().map(|b| b.gateway.clone()).collect();
    let mut vhosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for (r, vs) in cx.virtual_services() {
        let bound: Vec<&&Bound<'_>> = servers
            .iter()
            .filter(|b| {
                vs.gateways
                    .iter()
                    .any(|g| qualify_gateway(r.namespace(), g) == b.gateway)
            })
            .collect();
        if bound.is_empty() {
            continue;
        }
        let mut hosts: Vec<String> = Vec::new();
        let mut to_https: Vec<String> = Vec::new();
        for b in &bound {
            let redirect = b
                .server
                .tls
                .as_ref()
                .is_some_and(|t| t.https_redirect == Some(true));
            for h in server_hosts(r.namespace(), &vs.hosts, b) {
                if redirect && !to_https.contains(&h) {
                    to_https.push(h.clone());
                }
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
        if hosts.is_empty() {
            cx.warn(
                r,
                format!("no host is served by its gateways on port {port}; not bound"),
            );
            continue;
        }
        let routes = http_routes(cx, r, vs, Binding::Gateways(&names), port);
        for h in hosts {
            let vh = vhosts.entry(h.clone()).or_insert_with(|| VirtualHost {
                name: format!("{h}:{port}"),
                domains: vec![h.clone()],
                routes: Vec::new(),
            });
            if to_https.contains(&h) {
                // Istio's httpsRedirect (Envoy's require_tls ALL): every request is sent to
                // https on the default port, before any route.
                vh.routes = vec![https_redirect()];
            } else if vh.routes.first().is_none_or(|r| r.name != HTTPS_REDIRECT) {
                vh.routes.extend(routes.iter().cloned());
            }
        }
    }
    RouteTable {
        name: format!("http.{port}"),
        virtual_hosts: vhosts.into_values().collect(),
    }
}

const HTTPS_REDIRECT: &str = "https-redirect";

fn https_redirect() -> Route {
    Route {
        name: HTTPS_REDIRECT.into(),
        matches: Vec::new(),
        action: RouteAction::Redirect(Redirect {
            scheme: Some("https".into()),
            authority: None,
            port: None,
            strip_port: true,
            path: None,
            status: 301,
        }),
        request_headers: Default::default(),
        response_headers: Default::default(),
        cors: None,
    }
}

/// The first TCP rule of the first bound VirtualService that applies on `port`.
fn tcp_clusters(
    cx: &mut Cx<'_>,
    port: u16,
    servers: &[&Bound<'_>],
) -> Option<Vec<WeightedCluster>> {
    let names: Vec<String> = servers.iter().map(|b| b.gateway.clone()).collect();
    let l = L4Listener {
        binding: Binding::Gateways(&names),
        port,
        address: None,
    };
    for (r, vs) in cx.virtual_services() {
        if !bound(r, vs, &names) {
            continue;
        }
        if let Some(clusters) = l4::tcp_clusters(cx, r, vs, l) {
            return Some(clusters);
        }
    }
    if let Some(b) = servers.first() {
        cx.warn(
            b.resource,
            format!("no VirtualService routes TCP on port {port}; no listener"),
        );
    }
    None
}

/// SNI routes of every bound VirtualService's `tls` rules, in VirtualService name order, each
/// host kept only if the server's hosts admit it.
fn sni_routes(cx: &mut Cx<'_>, port: u16, servers: &[&Bound<'_>]) -> Vec<SniRoute> {
    let names: Vec<String> = servers.iter().map(|b| b.gateway.clone()).collect();
    let l = L4Listener {
        binding: Binding::Gateways(&names),
        port,
        address: None,
    };
    let mut out = Vec::new();
    for (r, vs) in cx.virtual_services() {
        if !bound(r, vs, &names) {
            continue;
        }
        for mut route in l4::tls_routes(cx, r, vs, l) {
            let wanted = if route.sni_hosts.is_empty() {
                vec!["*".to_string()]
            } else {
                std::mem::take(&mut route.sni_hosts)
            };
            let mut allowed = Vec::new();
            for b in servers {
                for h in server_hosts(r.namespace(), &wanted, b) {
                    if !allowed.contains(&h) {
                        allowed.push(h);
                    }
                }
            }
            if allowed.is_empty() {
                cx.warn(r, format!("tls sniHosts {wanted:?} are not hosts of its gateways on port {port}; rule skipped"));
                continue;
            }
            if allowed.iter().any(|h| h == "*") {
                allowed.clear();
            }
            route.sni_hosts = allowed;
            out.push(route);
        }
    }
    out
}

fn bound(r: &Resource, vs: &api::types::VirtualService, names: &[String]) -> bool {
    vs.gateways
        .iter()
        .any(|g| names.contains(&qualify_gateway(r.namespace(), g)))
}

/// The TLS settings of the servers on one port; the first server's mode and client-side
/// settings, every server's certificate by its hosts.
fn server_tls(cx: &mut Cx<'_>, port: u16, servers: &[&Bound<'_>]) -> Option<ServerTls> {
    let with_tls: Vec<(&Bound<'_>, &ServerTlsSettings)> = servers
        .iter()
        .filter_map(|b| b.server.tls.as_ref().map(|t| (*b, t)))
        // An HTTP server's `tls` only carries httpsRedirect.
        .filter(|(b, _)| {
            b.server
                .port
                .as_ref()
                .and_then(|p| p.protocol.as_deref())
                .is_some_and(|p| p.eq_ignore_ascii_case("HTTPS") || p.eq_ignore_ascii_case("TLS"))
        })
        .collect();
    let (first_b, first) = *with_tls.first()?;
    let mode = match first.mode {
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough => TlsMode::Passthrough,
        ServerTlsMode::Simple => TlsMode::Simple,
        ServerTlsMode::Mutual => TlsMode::Mutual,
        ServerTlsMode::OptionalMutual => TlsMode::OptionalMutual,
        ServerTlsMode::IstioMutual => TlsMode::IstioMutual,
    };
    let protocol = |p: ServerTlsProtocol| {
        match p {
            ServerTlsProtocol::TlsAuto => None,
            ServerTlsProtocol::TlsV1_0 => Some("TLSV1_0"),
            ServerTlsProtocol::TlsV1_1 => Some("TLSV1_1"),
            ServerTlsProtocol::TlsV1_2 => Some("TLSV1_2"),
            ServerTlsProtocol::TlsV1_3 => Some("TLSV1_3"),
        }
        .map(String::from)
    };
    let mut certificates = Vec::new();
    for (b, t) in &with_tls {
        if t.mode != first.mode {
            cx.warn(
                b.resource,
                format!("server on port {port}: TLS mode differs from another server's on that port; the first one's applies"),
            );
        }
        if !mode.terminates() {
            continue;
        }
        let names = t.credential_names();
        certificates.push(TlsCertificate {
            sni_hosts: b
                .server
                .hosts
                .iter()
                .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_string())
                .filter(|h| h != "*")
                .collect(),
            credential_name: t.credential_name.clone().or_else(|| names.first().cloned()),
            server_certificate: t.server_certificate.clone(),
            private_key: t.private_key.clone(),
        });
    }
    let is_https = first_b
        .server
        .port
        .as_ref()
        .and_then(|p| p.protocol.as_deref())
        .is_some_and(|p| p.eq_ignore_ascii_case("HTTPS"));
    Some(ServerTls {
        mode,
        certificates,
        ca_certificates: first.ca_certificates.clone(),
        subject_alt_names: first.subject_alt_names.clone(),
        min_protocol_version: protocol(first.min_protocol_version),
        max_protocol_version: protocol(first.max_protocol_version),
        cipher_suites: first.cipher_suites.clone(),
        alpn: if is_https && mode.terminates() {
            vec!["h2".into(), "http/1.1".into()]
        } else {
            Vec::new()
        },
    })
}
