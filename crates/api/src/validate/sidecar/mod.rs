//! Validation of Sidecar: Istio's `ValidateSidecar` and the CRD schema. Port name and protocol
//! checks shared with ServiceEntry are in [`ports`]; server TLS options (Gateway's checks) in
//! [`tls`]; the label selector check is the shared [`fields::alpha_workload_selector`].

pub mod ports;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet};

use super::destination_rule::subset_name;
use super::destination_rule::traffic_policy::connection_pool;
use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::protocol::Protocol;
use crate::types::sidecar::*;

pub fn validate(meta: &ObjectMeta, spec: &Sidecar, r: &mut Report) {
    let namespace = meta.namespace_or_default();
    if let Some(sel) = &spec.workload_selector {
        let before = r.findings.len();
        fields::alpha_workload_selector(r, "spec.workloadSelector", sel);
        if has_new_errors(r, before) {
            // Istio stops at a bad selector.
            return;
        }
        if sel.labels.is_empty() {
            r.warning(
                "spec.workloadSelector",
                "sidecar: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    if spec.egress.is_empty()
        && spec.ingress.is_empty()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
    {
        r.error("spec", "sidecar: empty configuration provided");
        return;
    }

    let mut ports = BTreeSet::new();
    for (i, l) in spec.ingress.iter().enumerate() {
        ingress_listener(r, &idx("spec.ingress", i), l, &mut ports);
    }
    if let Some(c) = &spec.inbound_connection_pool {
        connection_pool(r, "spec.inboundConnectionPool", c);
    }

    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut catch_all = false;
    for (i, l) in spec.egress.iter().enumerate() {
        let lp = idx("spec.egress", i);
        match &l.port {
            None => {
                if catch_all {
                    r.error(
                        &lp,
                        "sidecar: egress can have only one listener with empty port",
                    );
                    continue;
                }
                if i == spec.egress.len() - 1 {
                    catch_all = true;
                } else {
                    r.error(
                        &lp,
                        "sidecar: the egress listener with empty port should be the last listener in the list",
                    );
                }
            }
            Some(p) => {
                let pp = at(&lp, "port");
                if p.target_port > 0 {
                    r.error(
                        at(&pp, "targetPort"),
                        "targetPort has no impact on Sidecars",
                    );
                }
                egress_port_bind_capture(r, &lp, p, &l.bind, l.capture_mode);
                if p.number == 0 {
                    if !sockets.insert(l.bind.as_str()) {
                        r.error(
                            at(&lp, "bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                } else if !ports.insert(p.number) {
                    r.error(
                        at(&pp, "number"),
                        "sidecar: ports on IP bound listeners must be unique",
                    );
                }
            }
        }
        egress_hosts(r, &at(&lp, "hosts"), namespace, &l.hosts);
    }

    if let Some(p) = &spec.outbound_traffic_policy {
        outbound_traffic_policy(r, "spec.outboundTrafficPolicy", p);
    }
}

fn has_new_errors(r: &Report, before: usize) -> bool {
    r.findings[before..]
        .iter()
        .any(|f| f.severity == super::Severity::Error)
}

pub use super::fields::alpha_workload_selector;

fn ingress_listener(
    r: &mut Report,
    path: &str,
    l: &IstioIngressListener,
    ports: &mut BTreeSet<u32>,
) {
    let Some(p) = &l.port else {
        r.error(path, "sidecar: port is required for ingress listeners");
        return;
    };
    let pp = at(path, "port");
    if p.target_port > 0 {
        r.error(
            at(&pp, "targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    if !p.name.is_empty() {
        r.check(at(&pp, "name"), ports::port_name(&p.name));
    }
    r.check(at(&pp, "protocol"), ports::protocol(&p.protocol));
    r.check(at(&pp, "number"), fields::port(i64::from(p.number)));
    if !l.bind.is_empty() {
        r.check(at(path, "bind"), fields::ip_address(&l.bind));
    }
    if !ports.insert(p.number) {
        r.error(
            at(&pp, "number"),
            "sidecar: ports on IP bound listeners must be unique",
        );
    }
    if !l.default_endpoint.is_empty() {
        default_endpoint(r, &at(path, "defaultEndpoint"), &l.default_endpoint);
    }
    if let Some(t) = &l.tls {
        let tp = at(path, "tls");
        tls::server_tls_schema(r, &tp, t);
        if !t.subject_alt_names.is_empty() {
            r.error(
                at(&tp, "subjectAltNames"),
                "sidecar: subjectAltNames is not supported in ingress tls",
            );
        }
        if t.https_redirect == Some(true) {
            r.error(
                at(&tp, "httpsRedirect"),
                "sidecar: httpsRedirect is not supported",
            );
        }
        if t.credential_name.as_deref().is_some_and(|n| !n.is_empty()) {
            r.error(
                at(&tp, "credentialName"),
                "sidecar: credentialName is not currently supported",
            );
        }
        if t.credential_names.as_ref().is_some_and(|n| !n.is_empty()) {
            r.error(
                at(&tp, "credentialNames"),
                "sidecar: credentialNames is not currently supported",
            );
        }
        if t.tls_certificates.as_ref().is_some_and(|c| !c.is_empty()) {
            r.error(
                at(&tp, "tlsCertificates"),
                "sidecar: tls_certificates is not currently supported",
            );
        }
        if matches!(
            t.mode,
            IngressTlsMode::IstioMutual | IngressTlsMode::AutoPassthrough
        ) {
            r.error(
                at(&tp, "mode"),
                format!(
                    "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                    t.mode.name()
                ),
            );
        }
        if !Protocol::parse(&p.protocol).is_tls() {
            r.error(
                &tp,
                "server cannot have TLS settings for non HTTPS/TLS ports",
            );
        }
        tls::server_tls_options(r, &tp, t);
    }
    if let Some(c) = &l.connection_pool {
        let cp = at(path, "connectionPool");
        connection_pool(r, &cp, c);
        if c.http.is_some() && !Protocol::parse(&p.protocol).is_http() {
            r.warning(
                at(&cp, "http"),
                format!(
                    "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                    p.number, p.name, p.protocol
                ),
            );
        }
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`, `:PORT` or `unix://PATH`.
fn default_endpoint(r: &mut Report, path: &str, ep: &str) {
    if let Some(uds) = ep.strip_prefix("unix://") {
        r.check(path, fields::unix_address(uds));
        return;
    }
    let (host, port) = match fields::split_host_port(ep) {
        Ok(hp) => hp,
        Err(e) => {
            r.error(path, e);
            ("", "")
        }
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        r.error(
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        );
    }
    match port.parse::<i64>() {
        Ok(n) => r.check(path, fields::port(n)),
        Err(_) => r.error(
            path,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        ),
    }
}

fn egress_port_bind_capture(
    r: &mut Report,
    path: &str,
    p: &SidecarPort,
    bind: &str,
    capture: CaptureMode,
) {
    let pp = at(path, "port");
    if !p.name.is_empty() {
        r.check(at(&pp, "name"), ports::port_name(&p.name));
    }
    r.check(at(&pp, "protocol"), ports::protocol(&p.protocol));
    if p.number == 0 {
        // Port 0 means a Unix domain socket listener.
        match bind.strip_prefix("unix://") {
            None => r.error(
                at(path, "bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
            Some(uds) => r.check(at(path, "bind"), fields::unix_address(uds)),
        }
        if !matches!(capture, CaptureMode::Default | CaptureMode::None) {
            r.error(
                at(path, "captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
    } else {
        r.check(at(&pp, "number"), fields::port(i64::from(p.number)));
        if !bind.is_empty() {
            r.check(at(path, "bind"), fields::ip_address(bind));
        }
    }
}

/// `namespace/host` entries; overlapping entries only warn, as in Istio.
fn egress_hosts(r: &mut Report, path: &str, namespace: &str, hosts: &[String]) {
    if hosts.is_empty() {
        r.error(
            path,
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_ns: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (i, h) in hosts.iter().enumerate() {
        let hp = idx(path, i);
        if let Some((ns, svc)) = h.split_once('/') {
            if !ns.starts_with('~') {
                let ns = if ns == "." { namespace } else { ns };
                let svcs = by_ns.entry(ns).or_default();
                let dup = if svc == "*" {
                    !svcs.is_empty()
                } else {
                    svcs.contains(svc) || svcs.contains("*")
                };
                if dup {
                    r.warning(&hp, format!("duplicated egress host: {h}"));
                }
                svcs.insert(svc);
            }
        }
        r.check(&hp, fields::namespace_slash_host(h, false));
    }
    if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
        r.warning(
            path,
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}

fn outbound_traffic_policy(r: &mut Report, path: &str, p: &OutboundTrafficPolicy) {
    let Some(d) = &p.egress_proxy else { return };
    let dp = at(path, "egressProxy");
    if p.mode != OutboundMode::AllowAny {
        r.error(
            &dp,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        );
        return;
    }
    r.check(at(&dp, "host"), fields::fqdn(&d.host));
    let Some(port) = &d.port else {
        r.error(&dp, "sidecar: egress_proxy port must be non-nil");
        return;
    };
    if d.host == "*" {
        r.error(
            at(&dp, "host"),
            format!("invalid destination host {}", d.host),
        );
    } else {
        r.check(at(&dp, "host"), fields::wildcard_domain(&d.host));
    }
    if !d.subset.is_empty() {
        r.check(at(&dp, "subset"), subset_name(&d.subset));
    }
    r.check(
        at(&at(&dp, "port"), "number"),
        fields::port(i64::from(port.number)),
    );
}
