//! Istio's `gateway` analyzers: Gateways whose selector reaches no workload or whose ports the
//! workload's Service does not expose, TLS credentials that are missing or unusable, Gateways
//! that claim the same host on the same port of the same workload, and Gateways that share a
//! certificate.

mod secret;

use std::collections::{BTreeMap, BTreeSet};

use x509_parser::prelude::ASN1Time;

use super::context::labels_match;
use super::selectors::{self, first_label_path, selector_string, Workload};
use super::{Analyzer, Code, Context, Message};
use crate::resource::{Kind, Resource, Spec};
use crate::types::gateway::{Gateway, Server, ServerTlsSettings};

/// This family's analyzers.
pub const ALL: &[&dyn Analyzer] = &[
    &IngressGatewayPort,
    &SecretCheck,
    &ConflictingGateways,
    &DuplicateCertificate,
];

/// The message every gateway analyzer gives for a selector that matches no workload; identical
/// across analyzers so that the run reports it once.
fn selector_not_found(r: &Resource, gw: &Gateway) -> Message {
    Message::new(
        Code::ReferencedResourceNotFound,
        &r.into(),
        &first_label_path("spec.selector", &gw.selector),
        format!(
            "Referenced selector not found: {:?} (no workload in any namespace has these labels)",
            selector_string(&gw.selector)
        ),
    )
}

/// Workloads in any namespace that the gateway's selector matches (an empty selector matches
/// all of them, as a Kubernetes label selector does).
fn gateway_workloads<'w, 'a>(
    workloads: &'w [Workload<'a>],
    gw: &'w Gateway,
) -> impl Iterator<Item = &'w Workload<'a>> + 'w {
    workloads
        .iter()
        .filter(move |w| labels_match(&gw.selector, &w.labels))
}

/// `gateway.IngressGatewayPortAnalyzer`: each server port must be a port (or target port) of a
/// TCP Service in front of the gateway's workloads (IST0162); a selector matching no workload is
/// IST0101.
pub struct IngressGatewayPort;

impl Analyzer for IngressGatewayPort {
    fn name(&self) -> &'static str {
        "gateway.IngressGatewayPortAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let workloads = selectors::workloads(cx);
        let services = selectors::workload_services(cx);
        for (r, gw) in cx.gateways() {
            let mut selected = 0;
            // Any Service exposing the port is enough, as several may front the same pods.
            let mut exposed: BTreeSet<i64> = BTreeSet::new();
            for w in gateway_workloads(&workloads, gw) {
                selected += 1;
                for svc in &services {
                    if svc.namespace != w.namespace || !labels_match(&svc.selector, &w.labels) {
                        continue;
                    }
                    for p in &svc.tcp_ports {
                        exposed.insert(p.port);
                        exposed.extend(p.target_port);
                    }
                }
            }
            if selected == 0 {
                out.push(selector_not_found(r, gw));
                continue;
            }
            for (i, server) in gw.servers.iter().enumerate() {
                let Some(port) = &server.port else { continue };
                let number = port.number_or_zero();
                if exposed.contains(&i64::from(number)) {
                    continue;
                }
                out.push(Message::new(
                    Code::GatewayPortNotDefinedOnService,
                    &r.into(),
                    &format!("spec.servers[{i}].port.number"),
                    format!(
                        "The gateway refers to port {number}, which no Service of the gateway workload \
                         (selector {:?}) exposes as a port or target port",
                        selector_string(&gw.selector)
                    ),
                ));
            }
        }
    }
}

/// `gateway.SecretAnalyzer`: a server's `tls.credentialName` must name a Secret in the namespace
/// of the gateway's workload (IST0101) holding a usable certificate and key (IST0161).
pub struct SecretCheck;

impl Analyzer for SecretCheck {
    fn name(&self) -> &'static str {
        "gateway.SecretAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let workloads = selectors::workloads(cx);
        let now = ASN1Time::now();
        for (r, gw) in cx.gateways() {
            // The credential is read by the gateway workload, so from its namespace, whatever
            // the Gateway resource's own namespace.
            let Some(ns) = gateway_workloads(&workloads, gw)
                .next()
                .map(|w| w.namespace.to_string())
            else {
                out.push(selector_not_found(r, gw));
                continue;
            };
            for (i, server) in gw.servers.iter().enumerate() {
                let Some(name) = server
                    .tls
                    .as_ref()
                    .and_then(|t| t.credential_name.as_deref())
                    .filter(|n| !n.is_empty())
                else {
                    continue;
                };
                let (secret_ns, secret_name) = name.split_once('/').unwrap_or((&ns, name));
                let path = format!("spec.servers[{i}].tls.credentialName");
                let found = cx.of_kind(Kind::Secret).find_map(|s| match &s.spec {
                    Spec::Secret(data) if s.namespace() == secret_ns && s.name() == secret_name => {
                        Some(data)
                    }
                    _ => None,
                });
                let Some(data) = found else {
                    out.push(Message::new(
                        Code::ReferencedResourceNotFound,
                        &r.into(),
                        &path,
                        format!(
                            "Referenced credentialName not found: {name:?} (no Secret {secret_ns}/{secret_name}, \
                             the namespace of the gateway workload)"
                        ),
                    ));
                    continue;
                };
                if let Some(why) = secret::problem(data, now) {
                    out.push(Message::new(
                        Code::InvalidGatewayCredential,
                        &r.into(),
                        &path,
                        format!(
                            "The credential Secret {secret_ns}/{secret_name} of gateway {} cannot be used: {why}",
                            r.name()
                        ),
                    ));
                }
            }
        }
    }
}

/// `gateway.ConflictingGatewayAnalyzer`: two Gateways for the same workload and port that both
/// claim a host with the same bind address (IST0145).
pub struct ConflictingGateways;

/// What one Gateway claims on one port: host -> bind address.
type HostBinds<'a> = BTreeMap<&'a str, &'a str>;

/// Per (selector, port): every Gateway's claimed hosts there, keyed by `namespace/name`. When a
/// Gateway has several servers on one port, the last one's hosts stand, as in Istio.
type Claims<'a> = BTreeMap<
    (String, u32),
    (
        &'a BTreeMap<String, String>,
        BTreeMap<String, HostBinds<'a>>,
    ),
>;

fn port_of(server: &Server) -> u32 {
    server.port.as_ref().map_or(0, |p| p.number_or_zero())
}

fn claims<'a>(cx: &Context<'a>) -> Claims<'a> {
    let mut m: Claims<'a> = BTreeMap::new();
    for (r, gw) in cx.gateways() {
        let sel = selector_string(&gw.selector);
        let full = format!("{}/{}", r.namespace(), r.name());
        for server in &gw.servers {
            let bind = server.bind.as_deref().unwrap_or("");
            let hosts: HostBinds<'a> = server.hosts.iter().map(|h| (h.as_str(), bind)).collect();
            m.entry((sel.clone(), port_of(server)))
                .or_insert_with(|| (&gw.selector, BTreeMap::new()))
                .1
                .insert(full.clone(), hosts);
        }
    }
    m
}

impl Analyzer for ConflictingGateways {
    fn name(&self) -> &'static str {
        "gateway.ConflictingGatewayAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let workloads = selectors::workloads(cx);
        let claims = claims(cx);
        for (r, gw) in cx.gateways() {
            let full = format!("{}/{}", r.namespace(), r.name());
            let sel = selector_string(&gw.selector);
            // Selectors that reach the same workload: equal ones, or one contained in the other
            // (as text, as Istio compares them) with some workload matching both.
            let same_workload = |other_sel: &str, other: &BTreeMap<String, String>| {
                other_sel == sel
                    || ((other_sel.contains(sel.as_str()) || sel.contains(other_sel))
                        && workloads.iter().any(|w| {
                            labels_match(&gw.selector, &w.labels) && labels_match(other, &w.labels)
                        }))
            };
            let hits: Vec<(&u32, &BTreeMap<String, HostBinds<'_>>)> = claims
                .iter()
                .filter(|((s, _), (selector, _))| same_workload(s, selector))
                .map(|((_, port), (_, gws))| (port, gws))
                .collect();
            // Istio reports the selector as missing when no other Gateway shares it, which
            // flags every server-less Gateway; only a selector that reaches no workload is.
            if !sel.is_empty() && gateway_workloads(&workloads, gw).next().is_none() {
                out.push(selector_not_found(r, gw));
            }
            for (i, server) in gw.servers.iter().enumerate() {
                let port = port_of(server);
                let bind = server.bind.as_deref().unwrap_or("");
                let mut others: BTreeSet<&str> = BTreeSet::new();
                for (_, gws) in hits.iter().filter(|(p, _)| **p == port) {
                    for (name, hosts) in gws.iter() {
                        let clash = server
                            .hosts
                            .iter()
                            .any(|h| hosts.get(h.as_str()) == Some(&bind));
                        if *name != full && clash {
                            others.insert(name);
                        }
                    }
                }
                if others.is_empty() {
                    continue;
                }
                out.push(Message::new(
                    Code::ConflictingGateways,
                    &r.into(),
                    &format!("spec.servers[{i}]"),
                    format!(
                        "This gateway conflicts with {} on workload selector {sel:?}, port {port}, hosts {:?}: \
                         the same host cannot be served twice on one port of one workload",
                        others.into_iter().collect::<Vec<_>>().join(","),
                        server.hosts.join(",")
                    ),
                ));
            }
        }
    }
}

/// `gateway.CertificateAnalyzer`: two Gateways for the same workload (one's selector contained in
/// the other's) whose servers use the same certificate (IST0138).
pub struct DuplicateCertificate;

/// Istio's `SCOPE_GATEWAY_TO_NAMESPACE` default: Gateways select workloads in every namespace.
const SCOPE_GATEWAY_TO_NAMESPACE: bool = false;

fn same_certificate(a: &ServerTlsSettings, b: &ServerTlsSettings) -> bool {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    match (nonempty(&a.credential_name), nonempty(&b.credential_name)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            let (ca, cb) = (
                nonempty(&a.server_certificate),
                nonempty(&b.server_certificate),
            );
            let (ka, kb) = (nonempty(&a.private_key), nonempty(&b.private_key));
            matches!((ca, cb), (Some(x), Some(y)) if x == y)
                && matches!((ka, kb), (Some(x), Some(y)) if x == y)
        }
        _ => false,
    }
}

impl Analyzer for DuplicateCertificate {
    fn name(&self) -> &'static str {
        "gateway.CertificateAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let gateways: Vec<(&Resource, &Gateway)> = cx.gateways().collect();
        for &(r, gw) in &gateways {
            for &(o, other) in &gateways {
                if std::ptr::eq(r, o) || r.id() == o.id() {
                    continue;
                }
                if SCOPE_GATEWAY_TO_NAMESPACE && r.namespace() != o.namespace() {
                    continue;
                }
                // An empty selector reaches every gateway workload.
                if !labels_match(&gw.selector, &other.selector) {
                    continue;
                }
                for (i, server) in gw.servers.iter().enumerate() {
                    let Some(tls) = &server.tls else { continue };
                    for theirs in other.servers.iter().filter_map(|s| s.tls.as_ref()) {
                        if !same_certificate(tls, theirs) {
                            continue;
                        }
                        out.push(Message::new(
                            Code::GatewayDuplicateCertificate,
                            &r.into(),
                            &format!("spec.servers[{i}].tls"),
                            format!(
                                "Gateways {}/{} and {}/{} use the same certificate on the same workload; \
                                 clients may get the wrong route for a host (HTTP/2 connection reuse)",
                                r.namespace(),
                                r.name(),
                                o.namespace(),
                                o.name()
                            ),
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
