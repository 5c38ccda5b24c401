//! Validation of WorkloadEntry and WorkloadGroup: Istio's `ValidateWorkloadEntry` and
//! `ValidateWorkloadGroup` plus the CRD schema. The entry checks are reused for ServiceEntry
//! endpoints.

use std::collections::{BTreeMap, BTreeSet};

use super::fields::{is_ip, unix_address};
use super::sidecar::ports::port_name;
use super::{at, fields, Report};
use crate::meta::ObjectMeta;
use crate::types::workload::*;

pub fn validate_entry(_meta: &ObjectMeta, spec: &WorkloadEntry, r: &mut Report) {
    // The CRD's "Address is required" is the webhook's first rule too; reported once, below.
    entry_schema(r, "spec", spec, false);
    workload_entry(r, "spec", spec, None, true);
}

pub fn validate_group(_meta: &ObjectMeta, spec: &WorkloadGroup, r: &mut Report) {
    if let Some(m) = &spec.metadata {
        map_size(r, "spec.metadata.labels", m.labels.len(), 256);
        map_size(r, "spec.metadata.annotations", m.annotations.len(), 256);
    }
    if let Some(p) = &spec.probe {
        probe_schema(r, "spec.probe", p);
    }
    let Some(template) = &spec.template else {
        r.error("spec.template", "template is required");
        return;
    };
    // The address is filled in per workload, so the template need not have one.
    entry_schema(r, "spec.template", template, false);
    if let Some(m) = &spec.metadata {
        let mut labels = Report::default();
        fields::labels(&mut labels, "spec.metadata.labels", &m.labels);
        if labels.has_errors() {
            for f in labels.findings {
                r.error(f.path, format!("invalid labels: {}", f.message));
            }
            return;
        }
    }
    if let Some(p) = &spec.probe {
        readiness_probe(r, "spec.probe", p);
    }
}

fn map_size(r: &mut Report, path: &str, n: usize, max: usize) {
    if n > max {
        r.error(path, format!("must have at most {max} entries, has {n}"));
    }
}

fn max_len(r: &mut Report, path: &str, s: &str, max: usize) {
    if s.len() > max {
        r.error(
            path,
            format!("must be no more than {max} characters, has {}", s.len()),
        );
    }
}

/// The CRD's rules on a WorkloadEntry body (the resource, a ServiceEntry endpoint or a group's
/// template). `require_address`: the "Address is required" rule, which templates do not have.
pub fn entry_schema(r: &mut Report, path: &str, we: &WorkloadEntry, require_address: bool) {
    if require_address && we.address.is_none() && we.network.is_none() {
        r.error(at(path, "address"), "Address is required");
    }
    if let Some(a) = &we.address {
        let ap = at(path, "address");
        max_len(r, &ap, a, 256);
        if let Some(rest) = a.strip_prefix("unix://") {
            if !(rest.starts_with('/') || rest.starts_with('@')) {
                r.error(&ap, "UDS must be an absolute path or abstract socket");
            }
            if a.ends_with('/') {
                r.error(&ap, "UDS may not be a dir");
            }
        }
        if a.starts_with("unix://") && we.ports.is_some() {
            r.error(at(path, "ports"), "UDS may not include ports");
        }
    }
    if let Some(ports) = &we.ports {
        let pp = at(path, "ports");
        map_size(r, &pp, ports.len(), 128);
        if ports
            .keys()
            .any(|k| !(k.len() < 63 && fields::is_dns1123_label(k)))
        {
            r.error(&pp, "port name must be valid");
        }
        for (name, p) in ports {
            if *p == 0 || *p > 65535 {
                r.error(at(&pp, name), "port must be between 1-65535");
            }
        }
    }
    map_size(r, &at(path, "labels"), we.labels.len(), 256);
    max_len(r, &at(path, "locality"), &we.locality, 2048);
    max_len(r, &at(path, "network"), we.network(), 2048);
    max_len(r, &at(path, "serviceAccount"), &we.service_account, 253);
}

/// Istio's `validateWorkloadEntry`. `service_ports`: the ServiceEntry's port names, which the
/// entry's ports must use; `allow_fqdn`: whether a DNS name may stand for the address.
pub fn workload_entry(
    r: &mut Report,
    path: &str,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
    allow_fqdn: bool,
) {
    let addr = we.address();
    let ap = at(path, "address");
    if addr.is_empty() {
        if we.network().is_empty() {
            r.error(&ap, "address is required");
            return;
        }
        r.warning(
            &ap,
            format!("address is unset with network {:?}", we.network()),
        );
    }
    let empty = BTreeMap::new();
    let ports = we.ports.as_ref().unwrap_or(&empty);
    let unix = addr.starts_with("unix://");
    if let Some(uds) = addr.strip_prefix("unix://") {
        r.check(&ap, unix_address(uds));
        if !ports.is_empty() {
            r.error(
                at(path, "ports"),
                format!("unix endpoint {addr} must not include ports"),
            );
        }
    } else if !addr.is_empty() && !is_ip(addr) {
        if !allow_fqdn {
            r.error(
                &ap,
                format!("endpoint address {addr:?} is not a valid IP address"),
            );
        } else if fields::fqdn(addr).is_err() {
            r.error(
                &ap,
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            );
        }
    }
    endpoint_ports(r, &at(path, "ports"), ports, service_ports);
    fields::labels(r, &at(path, "labels"), &we.labels);
    if unix && service_ports.is_some_and(|s| s.len() != 1) {
        r.error(&ap, "exactly 1 service port required for unix endpoints");
    }
}

/// An entry's named ports: valid names and numbers, and declared by the service when there is one.
pub fn endpoint_ports(
    r: &mut Report,
    path: &str,
    ports: &BTreeMap<String, u32>,
    service_ports: Option<&BTreeSet<&str>>,
) {
    for (name, port) in ports {
        let pp = at(path, name);
        if service_ports.is_some_and(|s| !s.contains(name.as_str())) {
            r.error(
                &pp,
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        r.check(&pp, port_name(name));
        r.check(&pp, fields::port(i64::from(*port)));
    }
}

/// The CRD's rules on a readiness probe: one method, non-negative numbers, ports in range,
/// header names and scheme.
fn probe_schema(r: &mut Report, path: &str, p: &ReadinessProbe) {
    let methods = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
        p.grpc.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        r.error(
            path,
            "only one of httpGet, tcpSocket, exec or grpc can be set",
        );
    }
    for (field, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if v < 0 {
            r.error(
                at(path, field),
                format!("{v} must be greater than or equal to 0"),
            );
        }
    }
    // The ports and scheme of httpGet and tcpSocket are the webhook's rules too, reported there.
    if let Some(port) = p.grpc.as_ref().and_then(|g| g.port) {
        if port == 0 || port > 65535 {
            r.error(
                at(&at(path, "grpc"), "port"),
                "port must be between 1-65535",
            );
        }
    }
    if let Some(e) = &p.exec {
        let ep = at(path, "exec");
        match &e.command {
            None => r.error(at(&ep, "command"), "command is required"),
            Some(c) => {
                if c.iter().any(String::is_empty) {
                    r.error(
                        at(&ep, "command"),
                        "command arguments must not be empty strings",
                    );
                }
            }
        }
    }
}

/// Istio's `validateReadinessProbe`. Istio does not know gRPC probes and refuses them.
fn readiness_probe(r: &mut Report, path: &str, p: &ReadinessProbe) {
    for (field, v, what) in [
        ("periodSeconds", p.period_seconds, "periodSeconds"),
        (
            "initialDelaySeconds",
            p.initial_delay_seconds,
            "initialDelaySeconds",
        ),
        ("timeoutSeconds", p.timeout_seconds, "timeoutSeconds"),
        ("successThreshold", p.success_threshold, "successThreshold"),
        ("failureThreshold", p.failure_threshold, "failureThreshold"),
    ] {
        if v < 0 {
            r.error(at(path, field), format!("{what} must be non-negative"));
        }
    }
    if let Some(h) = &p.http_get {
        let hp = at(path, "httpGet");
        r.check(
            at(&hp, "port"),
            fields::port(i64::from(h.port.unwrap_or(0))),
        );
        if !matches!(h.scheme.as_str(), "" | "HTTP" | "HTTPS") {
            r.error(
                at(&hp, "scheme"),
                "httpGet.scheme must be one of \"HTTPS\", \"HTTP\"",
            );
        }
        for (i, header) in h.http_headers.iter().enumerate() {
            r.check(
                at(&super::idx(&at(&hp, "httpHeaders"), i), "name"),
                probe_header_name(&header.name),
            );
        }
    } else if let Some(t) = &p.tcp_socket {
        r.check(
            at(&at(path, "tcpSocket"), "port"),
            fields::port(i64::from(t.port.unwrap_or(0))),
        );
    } else if let Some(e) = &p.exec {
        if e.command.as_ref().is_none_or(Vec::is_empty) {
            r.error(at(&at(path, "exec"), "command"), "exec.command is required");
        }
    } else if p.grpc.is_some() {
        r.error(
            at(path, "grpc"),
            "unknown health check method *v1alpha3.ReadinessProbe_Grpc",
        );
    } else {
        r.error(path, "unknown health check method <nil>");
    }
}

/// Header names a probe may send: letters, digits and `-` (Kubernetes' rule).
fn probe_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::validate::testutil::report;
    use crate::validate::Report;

    fn run(kind: &str, spec: &str) -> Report {
        let doc = format!(
            "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: w\n  namespace: ns\nspec:\n{spec}"
        );
        report(&doc)
    }

    fn bad(kind: &str, spec: &str, needle: &str) {
        let r = run(kind, spec);
        let e: Vec<String> = r.errors().map(|f| f.message.clone()).collect();
        assert!(
            e.iter().any(|m| m.contains(needle)),
            "expected {needle:?} in {e:?}"
        );
    }

    fn ok(kind: &str, spec: &str) {
        let r = run(kind, spec);
        assert!(!r.has_errors(), "{:?}", r.findings);
    }

    #[test]
    fn entries() {
        ok(
            "WorkloadEntry",
            "  address: 10.0.0.1\n  ports: {http: 8080}\n  labels: {app: a}\n  weight: 3\n",
        );
        ok("WorkloadEntry", "  address: vm.example.com\n");
        bad("WorkloadEntry", "  address: ''\n", "address is required");
        bad(
            "WorkloadEntry",
            "  address: unix://\n",
            "unix address must not be empty",
        );
        bad(
            "WorkloadEntry",
            "  address: 1.1.1.1\n  ports: {http_x: 80}\n",
            "port name must be valid",
        );
        bad(
            "WorkloadEntry",
            "  address: 1.1.1.1\n  labels: {'-a': b}\n",
            "invalid tag key",
        );
        bad(
            "WorkloadEntry",
            "  address: unix:///sock\n  ports: {}\n",
            "UDS may not include ports",
        );
        bad(
            "WorkloadEntry",
            &format!(
                "  address: 1.1.1.1\n  serviceAccount: {}\n",
                "a".repeat(254)
            ),
            "no more than 253",
        );
    }

    #[test]
    fn groups() {
        ok(
            "WorkloadGroup",
            "  template: {serviceAccount: sa}\n  probe:\n    periodSeconds: 5\n    exec: {command: [cat, /ready]}\n",
        );
        bad("WorkloadGroup", "  metadata: {}\n", "template is required");
        bad(
            "WorkloadGroup",
            "  template: {}\n  probe:\n    grpc: {port: 9000}\n",
            "unknown health check method",
        );
        bad(
            "WorkloadGroup",
            "  template: {}\n  probe:\n    tcpSocket: {port: 80}\n    exec: {command: [x]}\n",
            "only one of",
        );
        bad(
            "WorkloadGroup",
            "  template: {}\n  probe:\n    httpGet: {port: 80, scheme: FTP}\n",
            "scheme",
        );
        bad(
            "WorkloadGroup",
            "  template: {}\n  probe:\n    httpGet: {port: 80, httpHeaders: [{name: x_y}]}\n",
            "not a valid header name",
        );
        bad(
            "WorkloadGroup",
            "  template: {}\n  probe:\n    timeoutSeconds: -1\n    tcpSocket: {port: 80}\n",
            "non-negative",
        );
        bad(
            "WorkloadGroup",
            "  metadata: {labels: {'a b': c}}\n  template: {}\n",
            "invalid labels",
        );
    }
}
