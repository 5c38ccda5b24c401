//! Field checks shared by several kinds, with Istio's rules and error wording: DNS names and
//! wildcards, ports, Kubernetes labels, durations, IP and Unix socket addresses, subnets,
//! `host:port`, `exportTo`; header names and values ([`headers`]). The value checks return
//! `Err(message)` for the caller to place.
//!
//! [`selectors`] is the one home of the selector and target reference checks (Istio's webhook
//! rules together with the CRD schema's bounds) that every kind with a
//! `selector`/`workloadSelector` or `targetRef(s)` uses: [`workload_selector`],
//! [`alpha_workload_selector`], [`target_refs`] and [`policy_scope`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{idx, Report};
use crate::types::common::Duration;

pub mod headers;
pub mod selectors;

pub use headers::{header_name, header_value};
pub use selectors::*;

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
