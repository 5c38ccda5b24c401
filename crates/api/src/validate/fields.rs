//! Field checks shared by several kinds, with Istio's rules and error wording: DNS names and
//! wildcards, ports, Kubernetes labels, durations, IP and Unix socket addresses, subnets,
//! `host:port`, `exportTo`, header names and values. The value checks return `Err(message)` for
//! the caller to place.
//!
//! Also the one home of the selector and target reference checks (Istio's webhook rules together
//! with the CRD schema's bounds) that every kind with a `selector`/`workloadSelector` or
//! `targetRef(s)` uses: [`workload_selector`], [`alpha_workload_selector`], [`target_refs`] and
//! [`policy_scope`]; these report into a [`Report`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{at, idx, Report};
use crate::types::common::{Duration, PolicyTargetReference, WorkloadSelector};
use crate::types::sidecar::SidecarWorkloadSelector;

const DNS1123_LABEL_MAX: usize = 63;

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// RFC 1123 label as Istio checks it (letters of either case, digits, inner `-`), at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS1123_LABEL_MAX
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// A DNS label that may start with `*`, `*-`, or be just `*`.
pub fn is_wildcard_dns1123_label(s: &str) -> bool {
    if s.len() > DNS1123_LABEL_MAX {
        return false;
    }
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    is_dns1123_label(rest)
}

/// Kubernetes "qualified name" body: alnum at both ends, `-_.` inside, at most `max` long.
fn is_qualified_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

fn dns_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts[parts.len() - 1];
    if !tld.is_empty() && tld.parse::<i64>().is_ok() {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        // A trailing dot (`istio.io.`) is allowed.
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully qualified domain name (no wildcards).
pub fn fqdn(name: &str) -> Result<(), String> {
    dns_preconditions(name)?;
    dns1123_labels(name)
}

/// A domain name whose first label may be a wildcard (`*`, `*.example.com`, `*-foo.example.com`).
pub fn wildcard_domain(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(r) => dns1123_labels(r),
        None => Ok(()),
    }
}

/// Only a leading `*.` (or a lone `*`) wildcard is allowed.
pub fn no_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

pub fn port(p: i64) -> Result<(), String> {
    if (1..=65535).contains(&p) {
        Ok(())
    } else {
        Err(format!("port number {p} must be in the range 1..65535"))
    }
}

/// An IP address as Istio's `ValidateIPAddress` (Go's `netip.ParseAddr`) takes it: IPv4, or IPv6
/// possibly with a `%zone`.
pub fn ip_address(addr: &str) -> Result<(), String> {
    if is_ip(addr) {
        Ok(())
    } else {
        Err(format!("{addr} is not a valid IP"))
    }
}

/// Go's `netip.ParseAddr`: an IPv4 or IPv6 address, IPv6 possibly with a `%zone`.
pub fn is_ip(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((a, zone)) if !zone.is_empty() && a.contains(':') => {
            a.parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => false,
    }
}

/// A Unix domain socket path (after `unix://`): absolute and not a directory, or abstract
/// (`@name`).
pub fn unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`, with its error wording.
pub fn split_host_port(hp: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| Err(format!("address {hp}: {why}"));
    let Some(colon) = hp.rfind(':') else {
        return err("missing port in address");
    };
    let (host, j, k) = if hp.starts_with('[') {
        let Some(end) = hp.find(']') else {
            return err("missing ']' in address");
        };
        if end + 1 == hp.len() {
            return err("missing port in address");
        }
        if end + 1 != colon {
            if hp.as_bytes()[end + 1] == b':' {
                return err("too many colons in address");
            }
            return err("missing port in address");
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..colon];
        if host.contains(':') {
            return err("too many colons in address");
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hp[k..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok((host, &hp[colon + 1..]))
}

/// `a.b.c.d/nn`, an IPv6 prefix, or a bare address.
pub fn ip_subnet(subnet: &str) -> Result<(), String> {
    if subnet.matches('/').count() == 1 {
        return subnet
            .parse::<ipnet::IpNet>()
            .map(|_| ())
            .map_err(|_| format!("{subnet} is not a valid CIDR block"));
    }
    ip_address(subnet)
}

/// Istio's rule for timeouts and intervals: at least 1ms, whole milliseconds.
pub fn duration(d: &Duration) -> Result<(), String> {
    if d.as_nanos() < 1_000_000 {
        return Err("duration must be greater than 1ms".into());
    }
    if d.as_nanos() % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

/// A Kubernetes label key (`[prefix/]name`).
pub fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty() && p.split('.').all(is_dns1123_label);
        if !ok {
            return Err(format!("invalid tag key: {k:?}"));
        }
        if p.len() > 253 {
            return Err(format!("invalid tag key: {k:?} (DNS prefix is too long)"));
        }
    }
    if !is_qualified_name(name, usize::MAX) {
        return Err(format!("invalid tag key: {k:?}"));
    }
    if name.len() > DNS1123_LABEL_MAX {
        return Err(format!("invalid tag key: {k:?} (name is too long)"));
    }
    Ok(())
}

/// A Kubernetes label value: empty, or a qualified name. Istio does not cap the length here.
pub fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name(v, usize::MAX) {
        Ok(())
    } else {
        Err(format!("invalid tag value: {v:?}"))
    }
}

/// Every key and value of a label map, reported at `path`.
pub fn labels(r: &mut Report, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        r.check(path, label_key(k));
        r.check(path, label_value(v));
    }
}

/// Istio's rules on a selector's labels: no empty keys, no wildcards. Reported at `path` (the
/// label map).
pub fn selector_labels(r: &mut Report, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if k.is_empty() {
            r.error(
                path,
                format!("empty key is not supported in selector: \"{k}={v}\""),
            );
        }
        if k.contains('*') || v.contains('*') {
            r.error(
                path,
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            );
        }
    }
}

/// The CRD schema's bounds on a selector's label map: at most `max_properties` entries (4096 for
/// `matchLabels`, 256 for networking's `labels`), values at most 63 characters.
pub fn label_map_schema(
    r: &mut Report,
    path: &str,
    labels: &BTreeMap<String, String>,
    max_properties: usize,
) {
    if labels.len() > max_properties {
        r.error(
            path,
            format!(
                "Too many: {}: must have at most {max_properties} items",
                labels.len()
            ),
        );
    }
    for (k, v) in labels {
        if v.chars().count() > 63 {
            r.error(
                at(path, k),
                format!("Too long: value of label {k:?} may not be longer than 63"),
            );
        }
    }
}

/// `selector` (`istio.type.v1beta1.WorkloadSelector`): Istio's rules and the CRD's bounds on
/// `matchLabels`; an empty selector is a warning.
pub fn workload_selector(r: &mut Report, path: &str, sel: Option<&WorkloadSelector>) {
    let Some(sel) = sel else { return };
    let labels = at(path, "matchLabels");
    selector_labels(r, &labels, &sel.match_labels);
    label_map_schema(r, &labels, &sel.match_labels, 4096);
    if sel.match_labels.is_empty() {
        r.warning(path, "workload selector specified without labels");
    }
}

/// Networking's label-map selector (`networking.v1alpha3.WorkloadSelector` of Sidecar,
/// ServiceEntry, EnvoyFilter): Istio's rules and the CRD's bounds on `labels`. Each kind words
/// its own warning for an empty selector.
pub fn alpha_workload_selector(r: &mut Report, path: &str, sel: &SidecarWorkloadSelector) {
    let labels = at(path, "labels");
    selector_labels(r, &labels, &sel.labels);
    label_map_schema(r, &labels, &sel.labels, 256);
}

/// `targetRef`/`targetRefs`: a named Service, ServiceEntry, Gateway or GatewayClass in the same
/// namespace.
pub fn policy_target_ref(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    policy_target_ref_name(r, path, t);
    let group = if t.group.is_empty() {
        "core"
    } else {
        t.group.as_str()
    };
    let allowed = matches!(
        (group, t.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway")
            | ("gateway.networking.k8s.io", "GatewayClass")
    );
    if !allowed {
        r.error(
            path,
            format!(
                "targetRef must be to one of [core/Service networking.istio.io/ServiceEntry \
                 gateway.networking.k8s.io/Gateway gateway.networking.k8s.io/GatewayClass] but was {}/{}",
                t.group, t.kind
            ),
        );
    }
}

/// One policy target reference: the CRD schema's rules (group a DNS subdomain, kind a name, length
/// bounds) and, with `webhook`, Istio's [`policy_target_ref`] (EnvoyFilter's webhook does not
/// check its targets). Where the schema already refuses the group or kind, Istio's allowed-kinds
/// rule is not reported again.
pub fn target_ref(r: &mut Report, path: &str, t: &PolicyTargetReference, webhook: bool) {
    let before = r.findings.len();
    if t.group.len() > 253 {
        r.error(at(path, "group"), "Too long: may not be longer than 253");
    } else if !t.group.is_empty() && !super::is_dns1123_subdomain(&t.group) {
        r.error(
            at(path, "group"),
            format!(
                "Invalid value: {:?}: group must be empty or a DNS subdomain (lower case)",
                t.group
            ),
        );
    }
    if t.kind.is_empty() {
        r.error(at(path, "kind"), "Required value: kind must be set");
    } else if t.kind.len() > 63 {
        r.error(at(path, "kind"), "Too long: may not be longer than 63");
    } else if !is_kind_name(&t.kind) {
        r.error(
            at(path, "kind"),
            format!(
                "Invalid value: {:?}: should match '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$'",
                t.kind
            ),
        );
    }
    let group_kind_ok = r.findings.len() == before;
    if t.name.len() > 253 {
        r.error(at(path, "name"), "Too long: may not be longer than 253");
    }
    if webhook {
        if group_kind_ok {
            policy_target_ref(r, path, t);
        } else {
            policy_target_ref_name(r, path, t);
        }
        return;
    }
    if t.name.is_empty() {
        r.error(at(path, "name"), "Required value: name must be set");
    }
    if !t.namespace.is_empty() {
        r.error(
            at(path, "namespace"),
            "cross namespace referencing is not currently supported",
        );
    }
}

/// `targetRefs`: at most 16 (the CRD), each a [`target_ref`].
pub fn target_refs(r: &mut Report, path: &str, refs: &[PolicyTargetReference], webhook: bool) {
    if refs.len() > 16 {
        r.error(
            path,
            format!("Too many: {}: must have at most 16 items", refs.len()),
        );
    }
    for (i, t) in refs.iter().enumerate() {
        target_ref(r, &idx(path, i), t, webhook);
    }
}

/// Who a policy applies to (AuthorizationPolicy, RequestAuthentication, PeerAuthentication's
/// selector, Telemetry, WasmPlugin): at most one of `spec.selector`, `spec.targetRef`,
/// `spec.targetRefs`, each checked by Istio's webhook and the CRD schema.
pub fn policy_scope(
    r: &mut Report,
    selector: Option<&WorkloadSelector>,
    target: Option<&PolicyTargetReference>,
    targets: &[PolicyTargetReference],
) {
    one_selector_kind(
        r,
        "spec",
        selector.is_some(),
        target.is_some(),
        !targets.is_empty(),
    );
    workload_selector(r, "spec.selector", selector);
    if let Some(t) = target {
        target_ref(r, "spec.targetRef", t, true);
    }
    target_refs(r, "spec.targetRefs", targets, true);
}

/// A Kubernetes kind name: `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`.
fn is_kind_name(kind: &str) -> bool {
    let b = kind.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// Istio's rules on a target reference's name and namespace.
fn policy_target_ref_name(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    if t.name.is_empty() {
        r.error(at(path, "name"), "targetRef name must be set");
    }
    if !t.namespace.is_empty() {
        r.error(
            at(path, "namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
}

/// Only one of `selector`, `targetRef`, `targetRefs` may be set.
pub fn one_selector_kind(
    r: &mut Report,
    path: &str,
    selector: bool,
    target_ref: bool,
    target_refs: bool,
) {
    if [selector, target_ref, target_refs]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        r.error(
            path,
            "only one of targetRefs or workloadSelector can be set",
        );
    }
}

/// `exportTo`: `.`, `*`, a namespace name, or (for ServiceEntry) `~`; no duplicates, `*` and `~`
/// alone. `dr_with_selector` adds the DestinationRule-with-workloadSelector restriction.
pub fn export_to(
    r: &mut Report,
    path: &str,
    namespace: &str,
    export_to: &[String],
    is_service_entry: bool,
    dr_with_selector: bool,
) {
    if export_to.is_empty() {
        return;
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, e) in export_to.iter().enumerate() {
        let key = if e == "." {
            namespace.to_string()
        } else {
            e.clone()
        };
        if seen.contains(&key) {
            if key != *e {
                r.error(
                    idx(path, i),
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                r.error(
                    idx(path, i),
                    format!("duplicate entries in exportTo for entry {e}"),
                );
            }
            continue;
        }
        if is_service_entry && e == "~" {
            seen.push(key);
            continue;
        }
        let valid = key == "." || key == "*" || is_dns1123_label(&key);
        if valid {
            seen.push(key);
        } else {
            r.error(idx(path, i), format!("only . or * or a valid DNS 1123 label is allowed as exportTo entry; got {key:?}"));
        }
    }
    if dr_with_selector && !seen.is_empty() {
        if seen.iter().any(|s| s == namespace) {
            if seen.len() > 1 {
                r.error(path, "destination rule with workload selector cannot have multiple entries in exportTo");
            }
        } else {
            r.error(path, "destination rule with workload selector cannot have exportTo beyond current namespace");
        }
    }
    if seen.iter().any(|s| s == "*") && export_to.len() > 1 {
        r.error(
            path,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if seen.iter().any(|s| s == "~") && export_to.len() > 1 {
        r.error(
            path,
            "cannot export service entry to no one (~) and someone",
        );
    }
}

/// `namespace/host` as Sidecar egress hosts and Gateway server hosts write it; gateways also
/// accept a bare host (old style) and an IP.
pub fn namespace_slash_host(host: &str, is_gateway: bool) -> Result<(), String> {
    let Some((ns, name)) = host.split_once('/') else {
        if is_gateway {
            return sidecar_or_gateway_host_part(host, true);
        }
        return Err("host must be of form namespace/dnsName".into());
    };
    let mut errs = Vec::new();
    if ns.is_empty() || name.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    if !is_gateway {
        let n = ns.strip_prefix('~').unwrap_or(ns);
        if !n.is_empty() && n != "*" && n != "." && !is_dns1123_label(n) {
            errs.push(format!("invalid namespace value {ns:?} in sidecar"));
        }
    } else if ns != "*" && ns != "." && !is_dns1123_label(ns) {
        errs.push(format!("invalid namespace value {ns:?} in gateway"));
    }
    if let Err(e) = sidecar_or_gateway_host_part(name, is_gateway) {
        errs.push(e);
    }
    join_errors(errs)
}

fn sidecar_or_gateway_host_part(host: &str, is_gateway: bool) -> Result<(), String> {
    let mut errs = Vec::new();
    if host != "*" && !host.contains('.') {
        errs.push("short names (non FQDN) are not allowed".to_string());
    }
    if let Err(e) = wildcard_domain(host) {
        if !is_gateway || host.parse::<IpAddr>().is_err() {
            errs.push(e);
        }
    }
    if let Err(e) = no_partial_wildcard(host) {
        errs.push(e);
    }
    join_errors(errs)
}

/// Several messages for one field, joined the way Istio's multierror prints them.
pub fn join_errors(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// An HTTP header name (RFC 7230 token).
pub fn header_name(name: &str) -> Result<(), String> {
    const EXTRA: &[u8] = b"!#$%&'*+-.^_`|~";
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(&c))
    {
        Ok(())
    } else {
        Err(format!(
            "header name {name:?} is not a valid HTTP header name"
        ))
    }
}

/// A header value: no control characters other than tab.
pub fn header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c < ' ' && c != '\t') || c == '\u{7f}')
    {
        return Err(format!(
            "header value {value:?} contains invalid characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(fqdn("reviews.default.svc.cluster.local").is_ok());
        assert!(fqdn("istio.io.").is_ok());
        assert!(fqdn("foo.123").is_err());
        assert!(fqdn("-bad.com").is_err());
        assert!(wildcard_domain("*.example.com").is_ok());
        assert!(wildcard_domain("*-foo.example.com").is_ok());
        assert!(wildcard_domain("*").is_ok());
        assert!(wildcard_domain("foo.*.com").is_err());
        assert!(no_partial_wildcard("*foo.com").is_err());
    }

    #[test]
    fn labels_follow_kubernetes() {
        assert!(label_key("app").is_ok());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("-app").is_err());
        assert!(label_key(&"a".repeat(64)).is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("v1/").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(split_host_port("127.0.0.1:80"), Ok(("127.0.0.1", "80")));
        assert_eq!(split_host_port("[::1]:80"), Ok(("::1", "80")));
        assert_eq!(split_host_port(":80"), Ok(("", "80")));
        assert!(split_host_port("127.0.0.1").is_err());
        assert!(split_host_port("::1:80").is_err());
        assert!(split_host_port("[::1]80").is_err());
        assert!(split_host_port("[::1]").is_err());
        assert!(unix_address("@abstract").is_ok());
        assert!(unix_address("/var/run/sock").is_ok());
        assert!(unix_address("relative").is_err());
        assert!(unix_address("/dir/").is_err());
        assert!(is_ip("fe80::1%eth0"));
        assert!(!is_ip("1.2.3.4%eth0"));
    }

    #[test]
    fn namespace_hosts() {
        assert!(namespace_slash_host("./*", false).is_ok());
        assert!(namespace_slash_host("istio-system/*.example.com", false).is_ok());
        assert!(namespace_slash_host("~/*", false).is_ok());
        assert!(namespace_slash_host("foo.com", false).is_err());
        assert!(namespace_slash_host("foo.com", true).is_ok());
        assert!(namespace_slash_host("*/foo", true).is_err());
    }
}
