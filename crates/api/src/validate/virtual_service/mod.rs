//! Validation of VirtualService, equal to Istio's webhook (`ValidateVirtualService` and what it
//! calls) plus the CRD schema's constraints (oneofs, required fields, CEL duration rules).
//!
//! This module holds the whole-resource rules (hosts, gateways, delegates, JWT claim routing,
//! `exportTo`) and the TCP/TLS rules; [`http`] and `policies` hold the HTTP rules, `unreachable` the
//! warnings about rules and matches that can never apply, [`headers`] and [`regex`] the header and
//! RE2 syntax checks. [`validate_destination`], [`validate_gateway_names`] and
//! [`validate_http_retry`] / [`http_retry`] are shared with other kinds.

pub mod headers;
pub mod http;
mod policies;
pub use policies::{http_retry, validate_http_retry};
pub mod regex;
mod unreachable;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::virtual_service::*;

/// The gateway name that stands for all sidecars of the mesh.
pub const MESH_GATEWAY: &str = "mesh";
/// Annotation Istio sets on VirtualServices it generates from Kubernetes Gateway API routes.
const ROUTE_SEMANTICS_ANNOTATION: &str = "internal.istio.io/route-semantics";

pub fn validate(meta: &ObjectMeta, spec: &VirtualService, r: &mut Report) {
    let vs = spec;
    if vs.hosts.is_empty() {
        // No hosts: a delegate, whose HTTP routes are pulled in by a root VirtualService.
        if !vs.gateways.is_empty() {
            r.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls.is_empty() {
            r.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp.is_empty() {
            r.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    let gateway_semantics = meta
        .annotations
        .get(ROUTE_SEMANTICS_ANNOTATION)
        .is_some_and(|v| v == "gateway");

    let (applies_to_mesh, applies_to_gateway) = if vs.gateways.is_empty() {
        (true, false)
    } else {
        validate_gateway_names(r, "spec.gateways", &vs.gateways, gateway_semantics);
        let gw = is_gateway(vs);
        (!gw, gw)
    };

    if !applies_to_gateway {
        jwt_claim_routes(r, vs);
    }

    hosts(r, vs, applies_to_mesh, applies_to_gateway);

    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        r.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    let delegate = vs.hosts.is_empty();
    for (i, route) in vs.http.iter().enumerate() {
        http::validate_http_route(r, &idx("spec.http", i), route, delegate, gateway_semantics);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        tls_route(r, &idx("spec.tls", i), route, vs, gateway_semantics);
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        tcp_route(r, &idx("spec.tcp", i), route, gateway_semantics);
    }
    fields::export_to(
        r,
        "spec.exportTo",
        meta.namespace_or_default(),
        &vs.export_to,
        false,
        false,
    );
    unreachable::http_rules(r, &vs.http);
    unreachable::tcp_rules(r, &vs.tcp);
    unreachable::tls_rules(r, &vs.tls);
}

/// Bound to gateways only: `gateways` is set and does not include `mesh`. (Istio uses the same
/// test with no gateways at all when it checks SNI hosts.)
fn is_gateway(vs: &VirtualService) -> bool {
    !vs.gateways.iter().any(|g| g == MESH_GATEWAY)
}

/// Some TLS match names SNI hosts, which lets gateway hosts use Istio's generated SNI form.
fn is_sni_host(vs: &VirtualService) -> bool {
    vs.tls
        .iter()
        .any(|t| t.matches.iter().any(|m| !m.sni_hosts.is_empty()))
}

/// JWT claims are only known at gateways, where the request authentication runs.
fn jwt_claim_routes(r: &mut Report, vs: &VirtualService) {
    for (i, route) in vs.http.iter().enumerate() {
        for (j, m) in route.matches.iter().enumerate() {
            let mp = idx(&at(&idx("spec.http", i), "match"), j);
            for (field, map) in [
                ("headers", &m.headers),
                ("withoutHeaders", &m.without_headers),
            ] {
                for key in map.keys().filter(|k| headers::is_jwt_claim(k)) {
                    r.error(
                        at(&at(&mp, field), key),
                        format!(
                            "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: [{}]",
                            vs.gateways.join(" ")
                        ),
                    );
                }
            }
        }
    }
}

fn hosts(r: &mut Report, vs: &VirtualService, applies_to_mesh: bool, applies_to_gateway: bool) {
    let mut all_valid = true;
    let sni = is_sni_host(vs);
    for (i, host) in vs.hosts.iter().enumerate() {
        let check = if applies_to_gateway {
            gateway_bound_domain(sni, host)
        } else {
            fields::wildcard_domain(host)
        };
        match check {
            Err(e) => {
                if host.parse::<IpAddr>().is_err() {
                    r.error(idx("spec.hosts", i), e);
                    all_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && host == "*" => {
                r.error(
                    idx("spec.hosts", i),
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            }
            Ok(()) => {}
        }
    }
    if !all_valid {
        return;
    }
    for (i, a) in vs.hosts.iter().enumerate() {
        for (j, b) in vs.hosts.iter().enumerate().skip(i + 1) {
            if host_matches(a, b) {
                r.error(
                    idx("spec.hosts", j),
                    format!("duplicate hosts in virtual service: {a} & {b}"),
                );
            }
        }
    }
}

/// A host of a gateway-bound VirtualService: a wildcard domain, or, when the VirtualService routes
/// on SNI, the `outbound_.<PORT>_._.<HOSTNAME>` names Istio generates for AUTO_PASSTHROUGH.
pub fn gateway_bound_domain(sni: bool, domain: &str) -> Result<(), String> {
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    if sni && domain.starts_with("outbound_") {
        const FORMAT: &str = "outbound_.<PORT>_._.<HOSTNAME>";
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow '{FORMAT}' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        let hostname = parts[3].trim_matches('.');
        if !port.bytes().any(|c| c.is_ascii_digit()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {port:?} invalid). should follow {FORMAT} format"
            ));
        }
        if !hostname.bytes().any(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {hostname:?} invalid). should follow {FORMAT} format"
            ));
        }
        return Ok(());
    }
    fields::wildcard_domain(domain)
}

/// Whether two (possibly wildcarded) host names overlap, in either direction.
pub fn host_matches(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if a.len() < b.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether host `a` is covered by host `b`.
pub fn host_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => a.len() >= b.len() && sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Gateway references: `namespace/name` (the name may be anything for routes converted from the
/// Gateway API), or a legacy bare or dotted name (a warning). Like Istio, a bare name ends the
/// check of the list.
pub fn validate_gateway_names(
    r: &mut Report,
    path: &str,
    names: &[String],
    gateway_semantics: bool,
) {
    for (i, name) in names.iter().enumerate() {
        let p = idx(path, i);
        let Some((ns, gw)) = name.split_once('/') else {
            if name.contains('.') {
                let mut parts = name.split('.');
                let first = parts.next().unwrap_or_default();
                let second = parts.next().unwrap_or_default();
                r.warning(
                    &p,
                    format!(
                        "using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: \"{second}/{first}\""
                    ),
                );
            }
            r.check(&p, fields::fqdn(name));
            return;
        };
        if ns.is_empty() || gw.is_empty() {
            r.error(&p, "config namespace and gateway name cannot be empty");
        }
        if !fields::is_dns1123_label(ns) {
            r.error(&p, format!("invalid value for namespace: {ns:?}"));
        }
        if !fields::is_dns1123_label(gw) && !gateway_semantics {
            r.error(&p, format!("invalid value for gateway name: {gw:?}"));
        }
    }
}

/// A destination: a host that is a (wildcard) domain but not `*`, a DNS-label subset, a port.
pub fn validate_destination(r: &mut Report, path: &str, d: &Destination) {
    let hp = at(path, "host");
    if d.host == "*" {
        r.error(&hp, format!("invalid destination host {}", d.host));
    } else {
        r.check(&hp, fields::wildcard_domain(&d.host));
    }
    if !d.subset.is_empty() && !fields::is_dns1123_label(&d.subset) {
        r.error(
            at(path, "subset"),
            format!("subset name is invalid: {}", d.subset),
        );
    }
    if let Some(port) = &d.port {
        r.check(
            at(&at(path, "port"), "number"),
            fields::port(i64::from(port.number)),
        );
    }
}

/// A fractional percentage: 0, or within [0.0001, 100].
fn percentage(v: f64) -> Result<(), String> {
    if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
        return Err(format!(
            "percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"
        ));
    }
    Ok(())
}

/// The CRD's `oneOf` over a message's fields: at most one may be set.
fn one_of(r: &mut Report, path: &str, set: &[(&str, bool)]) {
    if set.iter().filter(|(_, s)| *s).count() > 1 {
        let names: Vec<&str> = set.iter().map(|(n, _)| *n).collect();
        r.error(path, format!("only one of {} may be set", names.join(", ")));
    }
}

fn tls_route(r: &mut Report, path: &str, tls: &TlsRoute, vs: &VirtualService, gs: bool) {
    let mp = at(path, "match");
    if tls.matches.is_empty() {
        r.error(&mp, "TLS route must have at least one match condition");
    }
    for (i, m) in tls.matches.iter().enumerate() {
        tls_match(r, &idx(&mp, i), m, vs);
    }
    if tls.route.is_empty() {
        r.error(at(path, "route"), "TLS route is required");
    }
    route_destinations(r, &at(path, "route"), &tls.route, gs);
}

fn tls_match(r: &mut Report, path: &str, m: &TlsMatchAttributes, vs: &VirtualService) {
    let sp = at(path, "sniHosts");
    if m.sni_hosts.is_empty() {
        r.error(&sp, "TLS match must have at least one SNI host");
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        sni_host(r, &idx(&sp, i), sni, vs);
    }
    l4_common(
        r,
        path,
        &m.destination_subnets,
        m.port,
        &m.source_labels,
        &m.gateways,
    );
}

fn sni_host(r: &mut Report, path: &str, sni: &str, vs: &VirtualService) {
    let check = if is_gateway(vs) {
        gateway_bound_domain(true, sni)
    } else {
        fields::wildcard_domain(sni)
    };
    if let Err(e) = check {
        if sni.parse::<IpAddr>().is_ok() {
            r.warning(
                path,
                format!("using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"),
            );
        } else {
            r.error(path, e);
        }
        return;
    }
    if !vs.hosts.iter().any(|h| host_subset_of(sni, h)) {
        r.error(
            path,
            format!(
                "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
                vs.hosts.join(", ")
            ),
        );
    }
}

fn tcp_route(r: &mut Report, path: &str, tcp: &TcpRoute, gs: bool) {
    let mp = at(path, "match");
    for (i, m) in tcp.matches.iter().enumerate() {
        l4_common(
            r,
            &idx(&mp, i),
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
    }
    if tcp.route.is_empty() {
        r.error(at(path, "route"), "TCP route is required");
    }
    route_destinations(r, &at(path, "route"), &tcp.route, gs);
}

/// Match fields shared by TCP and TLS matches.
fn l4_common(
    r: &mut Report,
    path: &str,
    subnets: &[String],
    port: u32,
    labels: &std::collections::BTreeMap<String, String>,
    gateways: &[String],
) {
    let sp = at(path, "destinationSubnets");
    for (i, s) in subnets.iter().enumerate() {
        r.check(idx(&sp, i), fields::ip_subnet(s));
    }
    if port != 0 {
        r.check(at(path, "port"), fields::port(i64::from(port)));
    }
    fields::labels(r, &at(path, "sourceLabels"), labels);
    validate_gateway_names(r, &at(path, "gateways"), gateways, false);
}

fn route_destinations(r: &mut Report, path: &str, list: &[RouteDestination], gs: bool) {
    let mut total: i32 = 0;
    for (i, d) in list.iter().enumerate() {
        http::destination_and_weight(r, &idx(path, i), d.destination.as_ref(), d.weight, gs);
        total = total.wrapping_add(d.weight);
    }
    if list.len() > 1 && total == 0 {
        r.error(path, "total destination weight = 0");
    }
}
