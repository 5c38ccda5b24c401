//! Validation of ServiceEntry: Istio's `ValidateServiceEntry` and the CRD schema with its CEL
//! rules.

use std::collections::BTreeSet;

use super::fields::is_ip;
use super::sidecar::ports;
use super::workload::{endpoint_ports, entry_schema, workload_entry};
use super::{at, fields, idx, Report, Severity};
use crate::meta::ObjectMeta;
use crate::protocol::Protocol;
use crate::types::service_entry::*;

/// Opting a ServiceEntry out of automatic VIP allocation.
const AUTOALLOCATE_LABEL: &str = "networking.istio.io/enable-autoallocate-ip";
const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";

pub fn validate(meta: &ObjectMeta, spec: &ServiceEntry, r: &mut Report) {
    schema(r, spec);

    if let Some(sel) = &spec.workload_selector {
        let before = r.findings.len();
        fields::alpha_workload_selector(r, "spec.workloadSelector", sel);
        if r.findings[before..]
            .iter()
            .any(|f| f.severity == Severity::Error)
        {
            return;
        }
        if sel.labels.is_empty() {
            r.warning(
                "spec.workloadSelector",
                "service entry: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    let endpoints = spec.endpoints.as_slice();
    if spec.workload_selector.is_some() && !endpoints.is_empty() {
        r.error(
            "spec",
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }

    if spec.hosts.is_empty() {
        r.error("spec.hosts", "service entry must have at least one host");
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        let hp = idx("spec.hosts", i);
        if h == "*" {
            r.error(&hp, format!("invalid host {h}"));
            continue;
        }
        r.check(&hp, fields::wildcard_domain(h));
        if spec.resolution != ServiceEntryResolution::DynamicDns {
            if let Err(e) = fields::no_partial_wildcard(h) {
                r.warning(&hp, e);
            }
        }
    }

    let mut cidr = false;
    for (i, a) in spec.addresses.iter().enumerate() {
        cidr |= a.contains('/');
        // A bare address may carry an IPv6 zone, as Go's parser allows.
        if a.matches('/').count() == 1 {
            r.check(idx("spec.addresses", i), fields::ip_subnet(a));
        } else {
            r.check(idx("spec.addresses", i), fields::ip_address(a));
        }
    }
    if cidr
        && !matches!(
            spec.resolution,
            ServiceEntryResolution::None | ServiceEntryResolution::Static
        )
    {
        r.error(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    let auto_allocate = spec.resolution != ServiceEntryResolution::None
        && !meta
            .labels
            .get(AUTOALLOCATE_LABEL)
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        && spec.addresses.is_empty();
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let pp = idx("spec.ports", i);
        if !names.insert(p.name.as_str()) {
            r.error(
                at(&pp, "name"),
                format!("service entry port name {:?} already defined", p.name),
            );
        }
        if !numbers.insert(p.number) {
            r.error(
                at(&pp, "number"),
                format!("service entry port {} already defined", p.number),
            );
        }
        if let Some(t) = p.target_port.filter(|t| *t != 0) {
            r.check(at(&pp, "targetPort"), fields::port(i64::from(t)));
        }
        if spec.addresses.is_empty()
            && !auto_allocate
            && (p.protocol.is_empty() || p.protocol == "TCP")
        {
            r.warning(
                &pp,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        r.check(at(&pp, "name"), ports::port_name(&p.name));
        r.check(at(&pp, "protocol"), ports::protocol(&p.protocol));
        r.check(at(&pp, "number"), fields::port(i64::from(p.number)));
    }

    let resolution = spec.resolution.name();
    match spec.resolution {
        ServiceEntryResolution::None => {
            if !endpoints.is_empty() {
                r.error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                );
            }
            if spec.workload_selector.is_some() {
                r.warning(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        ServiceEntryResolution::Static => {
            for (i, e) in endpoints.iter().enumerate() {
                workload_entry(r, &idx("spec.endpoints", i), e, Some(&names), false);
            }
        }
        ServiceEntryResolution::Dns | ServiceEntryResolution::DnsRoundRobin => {
            if endpoints.is_empty() {
                if let Some((i, e)) = spec
                    .hosts
                    .iter()
                    .enumerate()
                    .find_map(|(i, h)| fields::fqdn(h).err().map(|e| (i, e)))
                {
                    r.error(
                        idx("spec.hosts", i),
                        format!("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {resolution}, {e}"),
                    );
                }
            }
            if spec.resolution == ServiceEntryResolution::DnsRoundRobin && endpoints.len() > 1 {
                r.error(
                    "spec.endpoints",
                    format!("there must only be 0 or 1 endpoint for resolution mode {resolution}"),
                );
            }
            for (i, e) in endpoints.iter().enumerate() {
                let ep = idx("spec.endpoints", i);
                let addr = e.address();
                if !is_ip(addr) && fields::fqdn(addr).is_err() {
                    r.error(
                        at(&ep, "address"),
                        format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
                    );
                }
                fields::labels(r, &at(&ep, "labels"), &e.labels);
                if let Some(p) = &e.ports {
                    endpoint_ports(r, &at(&ep, "ports"), p, Some(&names));
                }
            }
            if !spec.addresses.is_empty()
                && spec.hosts.len() > 1
                && spec
                    .ports
                    .iter()
                    .any(|p| Protocol::parse(&p.protocol).is_tcp())
            {
                r.warning(
                    "spec.hosts",
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
        ServiceEntryResolution::DynamicDns => {
            if spec.hosts.is_empty() {
                r.error(
                    "spec.hosts",
                    format!("at least one wildcard host must be provided for resolution type {resolution}"),
                );
            }
            for (i, h) in spec.hosts.iter().enumerate() {
                if !h.starts_with('*') {
                    r.error(
                        idx("spec.hosts", i),
                        format!("host must be wildcarded for resolution mode {resolution}"),
                    );
                }
            }
            if !spec.addresses.is_empty() {
                r.error(
                    "spec.addresses",
                    format!("addresses cannot be set for resolution type {resolution}. HTTP route domains will only be generated from the hosts field values"),
                );
            }
            if !endpoints.is_empty() {
                r.error(
                    "spec.endpoints",
                    format!("endpoints cannot be set for resolution type {resolution}. Destination IP address determined from hosts field values"),
                );
            }
            for (i, p) in spec.ports.iter().enumerate() {
                if !matches!(
                    Protocol::parse(&p.protocol),
                    Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
                ) {
                    r.error(
                        at(&idx("spec.ports", i), "protocol"),
                        format!("only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {resolution}"),
                    );
                }
            }
            let waypoint = meta
                .labels
                .get(USE_WAYPOINT_LABEL)
                .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
            if spec.location == ServiceEntryLocation::MeshInternal && waypoint {
                r.error(
                    "spec.location",
                    format!("location MESH_INTERNAL with resolution type {resolution} is not supported when using waypoints"),
                );
            }
        }
    }

    // Plain TCP cannot tell hosts apart, so several hosts need HTTP or TLS ports (unless the
    // hosts are ignored, with resolution NONE).
    if spec.resolution != ServiceEntryResolution::None && spec.hosts.len() > 1 {
        if let Some(i) = spec.ports.iter().position(|p| {
            let p = Protocol::parse(&p.protocol);
            !p.is_http() && !p.is_tls()
        }) {
            r.error(
                idx("spec.ports", i),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }

    fields::export_to(
        r,
        "spec.exportTo",
        meta.namespace_or_default(),
        &spec.export_to,
        true,
        false,
    );
}

/// The CRD's schema and CEL rules.
fn schema(r: &mut Report, spec: &ServiceEntry) {
    if spec.workload_selector.is_some() && !spec.endpoints.is_empty() {
        r.error(
            "spec",
            "only one of WorkloadSelector or Endpoints can be set",
        );
    }
    // The CRD's CIDR-with-resolution rule is the webhook's too; it is reported once, below.
    if spec.resolution == ServiceEntryResolution::None && !spec.endpoints.is_empty() {
        r.error("spec.endpoints", "NONE mode cannot set endpoints");
    }
    if spec.resolution == ServiceEntryResolution::DnsRoundRobin && spec.endpoints.len() > 1 {
        r.error(
            "spec.endpoints",
            "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
        );
    }
    // Empty hosts, a `*` host, duplicate port names or numbers and port numbers out of range are
    // also CRD rules; the webhook part reports them, once.
    list_max(r, "spec.hosts", spec.hosts.len(), 256);
    list_max(r, "spec.addresses", spec.addresses.len(), 256);
    for (i, a) in spec.addresses.iter().enumerate() {
        if a.len() > 64 {
            r.error(
                idx("spec.addresses", i),
                "must be no more than 64 characters",
            );
        }
    }
    list_max(r, "spec.ports", spec.ports.len(), 256);
    for (i, p) in spec.ports.iter().enumerate() {
        let pp = idx("spec.ports", i);
        // The webhook skips a zero target port; the CRD checks any value written.
        if p.target_port == Some(0) {
            r.error(at(&pp, "targetPort"), "port must be between 1-65535");
        }
        if p.name.len() > 256 {
            r.error(at(&pp, "name"), "must be no more than 256 characters");
        }
        if p.protocol.len() > 256 {
            r.error(at(&pp, "protocol"), "must be no more than 256 characters");
        }
    }
    list_max(r, "spec.endpoints", spec.endpoints.len(), 4096);
    for (i, e) in spec.endpoints.iter().enumerate() {
        entry_schema(r, &idx("spec.endpoints", i), e, true);
    }
}

fn list_max(r: &mut Report, path: &str, n: usize, max: usize) {
    if n > max {
        r.error(path, format!("must have at most {max} items, has {n}"));
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::Report;
    use crate::{load_str, Decoded};

    fn run(spec: &str) -> Report {
        let doc = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: ns\nspec:\n{spec}"
        );
        match load_str("t.yaml", &doc).pop() {
            Some(Decoded::Resource(r)) => r.validate(),
            _ => panic!("no resource"),
        }
    }

    fn bad(spec: &str, needle: &str) {
        let r = run(spec);
        let e: Vec<String> = r.errors().map(|f| f.message.clone()).collect();
        assert!(
            e.iter().any(|m| m.contains(needle)),
            "expected {needle:?} in {e:?}"
        );
    }

    #[test]
    fn crd_presence_rules() {
        bad(
            "  hosts: [a.example.com]\n  resolution: NONE\n  endpoints: [{address: 1.1.1.1}]\n",
            "NONE mode cannot set endpoints",
        );
        bad(
            "  hosts: [a.example.com]\n  ports: [{name: http, number: 80, protocol: HTTP, targetPort: 0}]\n",
            "port must be between 1-65535",
        );
        bad(
            "  hosts: [a.example.com]\n  resolution: STATIC\n  endpoints: [{labels: {a: b}}]\n",
            "Address is required",
        );
        bad(
            "  hosts: [a.example.com]\n  resolution: DNS\n  endpoints: [{address: 'unix:///dir/'}]\n",
            "UDS may not be a dir",
        );
    }

    #[test]
    fn webhook_rules() {
        bad(
            "  hosts: [a.example.com, b.example.com]\n  ports: [{name: tcp, number: 9000, protocol: TCP}]\n  resolution: DNS\n",
            "multiple hosts provided with non-HTTP, non-TLS ports",
        );
        bad(
            "  hosts: ['*.example.com']\n  ports: [{name: mongo, number: 27017, protocol: MONGO}]\n  resolution: DYNAMIC_DNS\n",
            "only HTTP, TLS, GRPC, and HTTP2",
        );
        bad(
            "  hosts: [a.example.com]\n  ports: [{name: http, number: 80, protocol: QUIC}]\n",
            "unsupported protocol",
        );
        bad(
            "  hosts: [a.example.com]\n  exportTo: ['~', ns]\n",
            "no one (~) and someone",
        );
    }

    #[test]
    fn tcp_without_addresses_warns_only_without_autoallocation() {
        let spec = "  hosts: [a.example.com]\n  ports: [{name: tcp, number: 9000, protocol: TCP}]\n  resolution: DNS\n";
        assert_eq!(run(spec).warnings().count(), 0);
        let doc = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  labels: {{networking.istio.io/enable-autoallocate-ip: 'false'}}\nspec:\n{spec}"
        );
        let Some(Decoded::Resource(res)) = load_str("t.yaml", &doc).pop() else {
            panic!("no resource")
        };
        let r = res.validate();
        assert!(!r.has_errors());
        assert_eq!(r.warnings().count(), 1);
    }
}
