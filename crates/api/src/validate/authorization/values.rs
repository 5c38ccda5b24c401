//! Checks of single AuthorizationPolicy values, with Istio's rules (its `pkg/config/security`):
//! IPs and CIDRs, ports, service accounts, trust domains, path templates and condition keys.
//! Each returns `Err(message)` for one value; the caller places it.

/// Matches one path segment; may appear anywhere.
const MATCH_ONE: &str = "{*}";
/// Matches the rest of the path; must be the last template operator.
const MATCH_ANY: &str = "{**}";

/// An IP address or, with a `/`, a CIDR prefix, the way Go's `net/netip` reads them.
pub fn ip_or_cidr(v: &str) -> Result<(), String> {
    if v.contains('/') {
        cidr(v).map_err(|why| format!("bad CIDR range ({v}): {why}"))
    } else if addr(v, true) {
        Ok(())
    } else {
        Err(format!("bad IP address ({v})"))
    }
}

/// `netip.ParseAddr`: dotted-quad IPv4 without leading zeros, or IPv6 (an IPv6 zone allowed
/// when `allow_zone`).
fn addr(v: &str, allow_zone: bool) -> bool {
    if v.contains(':') {
        let (ip, zone) = match v.split_once('%') {
            Some((ip, zone)) => (ip, Some(zone)),
            None => (v, None),
        };
        return match zone {
            Some(z) if !allow_zone || z.is_empty() => false,
            _ => ip.parse::<std::net::Ipv6Addr>().is_ok(),
        };
    }
    // Rust's parser, like Go's, refuses octets with leading zeros.
    v.parse::<std::net::Ipv4Addr>().is_ok()
}

/// `netip.ParsePrefix`: an address (no zone) and a decimal prefix length within its family.
fn cidr(v: &str) -> Result<(), String> {
    let (ip, bits) = v.rsplit_once('/').unwrap_or((v, ""));
    if !addr(ip, false) {
        return Err(format!("ParseAddr({ip:?}): invalid address"));
    }
    let max = if ip.contains(':') { 128 } else { 32 };
    let digits_ok = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    match bits.parse::<u32>() {
        Ok(n) if digits_ok && n <= max => Ok(()),
        _ => Err(format!("bad bits after slash: {bits:?}")),
    }
}

/// A port as a decimal string, 0..=65535.
pub fn port(v: &str) -> Result<(), String> {
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    match v.parse::<u64>() {
        Ok(p) if digits && p <= 65535 => Ok(()),
        _ => Err(format!("bad port ({v})")),
    }
}

/// No empty strings.
pub fn not_empty(field: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        Err(format!("empty value not allowed, found in {field}"))
    } else {
        Ok(())
    }
}

/// Non-empty, and at most one `*`, at the start or the end.
pub fn wildcard_value(field: &str, v: &str) -> Result<(), String> {
    not_empty(field, v)?;
    match v.matches('*').count() {
        0 => Ok(()),
        1 if v == "*" || v.starts_with('*') || v.ends_with('*') => Ok(()),
        1 => Err(format!(
            "wildcard is only allowed at the start or end, found in {field}: {v:?}"
        )),
        _ => Err(format!(
            "at most one wildcard is allowed, found in {field}: {v:?}"
        )),
    }
}

/// A trust domain: a wildcard value without `/`.
pub fn trust_domain(field: &str, v: &str) -> Result<(), String> {
    wildcard_value(field, v)?;
    if v.contains('/') {
        return Err(format!(
            "trust domain must not contain '/', found in {field}: {v:?}"
        ));
    }
    Ok(())
}

/// Most service accounts one field may list.
pub const MAX_SERVICE_ACCOUNTS: usize = 16;
/// Longest service account value.
pub const MAX_SERVICE_ACCOUNT_LEN: usize = 320;

/// `serviceAccount` or `namespace/serviceAccount`, no wildcards, at most 320 characters.
pub fn service_account(field: &str, v: &str) -> Result<(), String> {
    not_empty(field, v)?;
    if v.contains('*') {
        return Err(format!("wildcard not allowed, found in {field}"));
    }
    let expected = "expected format 'serviceAccount' or 'namespace/serviceAccount'";
    if v.matches('/').count() > 1 {
        return Err(format!("{expected}, found {v:?} in {field}"));
    }
    if v.len() > MAX_SERVICE_ACCOUNT_LEN {
        return Err(format!(
            "value cannot exceed {MAX_SERVICE_ACCOUNT_LEN} characters, found {v:?} in {field}"
        ));
    }
    if let Some((ns, sa)) = v.split_once('/') {
        if ns.is_empty() {
            return Err(format!(
                "{expected}, found empty namespace {v:?} in {field}"
            ));
        }
        if sa.is_empty() {
            return Err(format!(
                "{expected}, found empty serviceAccount {v:?} in {field}"
            ));
        }
    }
    Ok(())
}

/// Envoy's URI template rules for paths that use `{*}` / `{**}`: `{**}` last, no other braces,
/// and (in a templated path) every literal segment made of RFC 3986 `pchar`s.
pub fn path_template(field: &str, path: &str) -> Result<(), String> {
    let templated = path.contains(MATCH_ONE) || path.contains(MATCH_ANY);
    let trimmed = path.trim_matches('/');
    let mut seen_match_any = false;
    for seg in trimmed.split('/') {
        if seg == MATCH_ONE || seg == MATCH_ANY {
            if seen_match_any {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {field}. {{**}} is not the last operator"
                ));
            }
            seen_match_any = seg == MATCH_ANY;
            continue;
        }
        if seg.contains(['{', '}']) {
            return Err(format!(
                "invalid or unsupported path {trimmed}, found in {field}. Contains '{{' or '}}' beyond a supported path template"
            ));
        }
        if templated && !is_pchar_literal(seg) {
            return Err(format!(
                "invalid or unsupported path {trimmed}, found in {field}. Contains segment {seg} with invalid string literal"
            ));
        }
    }
    Ok(())
}

fn is_pchar_literal(seg: &str) -> bool {
    const EXTRA: &[u8] = b"-._~%!$&'()+,;:@=";
    !seg.is_empty()
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b))
}

/// `a[b]`: something before the bracket, something inside it.
fn map_key(key: &str) -> Result<(), String> {
    match key.find('[') {
        Some(open) if key.ends_with(']') && open > 0 && open + 2 < key.len() => Ok(()),
        _ => Err(format!("bad key ({key}): should have format a[b]")),
    }
}

/// A `when` condition: the key must be an attribute Istio knows, and the values must suit it.
/// Returns the problems with the key itself, or `(index, message)` for a bad value.
pub fn condition(key: &str, values: &[String]) -> Result<(), (Option<usize>, String)> {
    for (i, v) in values.iter().enumerate() {
        not_empty(key, v).map_err(|e| (Some(i), e))?;
    }
    let each = |check: &dyn Fn(&str) -> Result<(), String>| {
        for (i, v) in values.iter().enumerate() {
            check(v).map_err(|e| (Some(i), e))?;
        }
        Ok(())
    };
    let whole = |r: Result<(), String>| r.map_err(|e| (None, e));
    match key {
        k if k.starts_with("request.headers") => whole(map_key(k)),
        "source.ip" | "remote.ip" | "destination.ip" => each(&ip_or_cidr),
        "source.serviceAccount" => {
            if values.len() > MAX_SERVICE_ACCOUNTS {
                return whole(Err(format!(
                    "may not have more than {MAX_SERVICE_ACCOUNTS} values"
                )));
            }
            each(&|v| service_account(key, v))
        }
        "source.trustDomain" => each(&|v| wildcard_value(key, v)),
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        k if k.starts_with("request.auth.claims") => whole(map_key(k)),
        "destination.port" => each(&port),
        k if k.starts_with("experimental.envoy.filters.") => whole(map_key(k)),
        "destination.namespace" => whole(Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        ))),
        k if k.starts_with("destination.labels") => whole(Err(format!(
            "attribute {key} is replaced by the workload selector"
        ))),
        "destination.name" | "destination.user" => whole(Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        ))),
        _ => whole(Err(format!("unknown attribute: {key}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_follow_go_netip() {
        for ok in [
            "1.2.3.4",
            "::1",
            "fe80::1%eth0",
            "10.0.0.0/8",
            "2001:db8::/32",
            "0.0.0.0/0",
        ] {
            assert!(ip_or_cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ip1",
            "01.2.3.4",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/08",
            "fe80::1%eth0/64",
            "fe80::1%",
            "::/129",
            "1.2.3.4/-1",
            "1.2.3.4/1/2",
        ] {
            assert!(ip_or_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_are_decimal_and_in_range() {
        for ok in ["0", "80", "65535", "0080"] {
            assert!(port(ok).is_ok(), "{ok}");
        }
        for bad in ["", "+80", "-1", "65536", "port1", "8 0"] {
            assert!(port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_accounts() {
        for ok in ["sa", "ns/sa"] {
            assert!(service_account("f", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b/c", "/sa", "ns/", "ns/*", &"a".repeat(321)] {
            assert!(service_account("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_and_trust_domains() {
        for ok in ["*", "a*", "*a", "cluster.local"] {
            assert!(trust_domain("f", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a*b", "**", "*a*", "a/b"] {
            assert!(trust_domain("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_templates() {
        for ok in ["/a/{*}/b", "/{**}", "/{*}/{**}", "/a/b*", "*", "/a/{**}/b"] {
            assert!(path_template("f", ok).is_ok(), "{ok}");
        }
        for bad in ["/{**}/{*}", "/a{*}", "/{x}", "/a/{*}/b c", "/{*}/a*"] {
            assert!(path_template("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn condition_keys() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(condition("request.headers[x]", &v(&["a"])).is_ok());
        assert!(condition("request.headers[]", &v(&["a"])).is_err());
        assert!(condition("request.auth.claims[a][b]", &v(&["a"])).is_ok());
        assert!(condition("source.ip", &v(&["1.2.3.4", "x"])).is_err());
        assert!(condition("destination.port", &v(&["70000"])).is_err());
        assert!(condition("destination.labels[app]", &v(&["a"])).is_err());
        assert!(condition("destination.namespace", &v(&["a"])).is_err());
        assert!(condition("destination.user", &v(&["a"])).is_err());
        assert!(condition("source.trustDomain", &v(&["a*b"])).is_err());
        assert!(condition("connection.sni", &v(&["*.example.com"])).is_ok());
        assert!(condition("key1", &v(&["a"])).is_err());
        assert!(condition("source.principal", &v(&[""])).is_err());
    }
}
