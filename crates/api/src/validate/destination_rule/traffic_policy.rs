//! Traffic policy checks: load balancing (with locality and zone-aware settings), connection
//! pools, outlier detection, client TLS, tunnels. Shared with Sidecar (connection pools) and
//! MeshConfig (its networking fields; the `*_common` functions are the subset of rules Istio's
//! mesh validation applies). Each function reports webhook rules and the CRD schema's
//! constraints for its message.

use std::collections::{BTreeMap, BTreeSet};

use super::super::fields;
use super::super::{at, idx, Report};
use crate::types::common::Duration;
use crate::types::destination_rule::*;

const MS: i128 = 1_000_000;

const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// The CRD's CEL rule on most durations: at least 1ms. Only for fields the webhook leaves alone.
pub fn crd_min_duration(r: &mut Report, path: &str, d: Option<&Duration>) {
    if let Some(d) = d {
        if d.as_nanos() < MS {
            r.error(path, "must be a valid duration greater than 1ms");
        }
    }
}

/// Istio's duration rule (which implies the CRD's >= 1ms), when the field is set.
fn duration(r: &mut Report, path: &str, d: Option<&Duration>) {
    if let Some(d) = d {
        r.check(path, fields::duration(d));
    }
}

/// The CRD's `minimum`/`maximum` on a double.
fn double_range(r: &mut Report, path: &str, v: Option<f64>, min: f64, max: Option<f64>) {
    let Some(v) = v else { return };
    if v < min {
        r.error(path, format!("{v} must be greater than or equal to {min}"));
    }
    if let Some(max) = max {
        if v > max {
            r.error(path, format!("{v} must be less than or equal to {max}"));
        }
    }
}

/// A whole traffic policy (top level or a subset's).
pub fn traffic_policy(r: &mut Report, path: &str, namespace: &str, p: &TrafficPolicy) {
    if p.outlier_detection.is_none()
        && p.connection_pool.is_none()
        && p.load_balancer.is_none()
        && p.tls.is_none()
        && p.port_level_settings.is_empty()
        && p.tunnel.is_none()
        && p.proxy_protocol.is_none()
        && p.retry_budget.is_none()
    {
        r.error(path, "traffic policy must have at least one field");
        return;
    }
    if p.tunnel.is_some() && p.proxy_protocol.is_some() {
        r.error(path, "tunnel and proxyProtocol must not be set together");
        return;
    }
    let od = p.outlier_detection.as_ref();
    if let Some(o) = od {
        outlier_detection(r, &at(path, "outlierDetection"), o);
    }
    if let Some(c) = &p.connection_pool {
        connection_pool(r, &at(path, "connectionPool"), c);
    }
    if let Some(lb) = &p.load_balancer {
        load_balancer(r, &at(path, "loadBalancer"), lb, od);
    }
    if let Some(t) = &p.tls {
        client_tls(r, &at(path, "tls"), namespace, t);
    }
    port_traffic_policies(
        r,
        &at(path, "portLevelSettings"),
        namespace,
        &p.port_level_settings,
    );
    if let Some(t) = &p.tunnel {
        tunnel(r, &at(path, "tunnel"), t);
    }
    if let Some(b) = &p.retry_budget {
        let bp = at(path, "retryBudget");
        double_range(r, &at(&bp, "percent"), b.percent, 0.0, Some(100.0));
    }
}

fn port_traffic_policies(r: &mut Report, path: &str, namespace: &str, pls: &[PortTrafficPolicy]) {
    if pls.len() > 4096 {
        r.error(
            path,
            format!("must have at most 4096 items, has {}", pls.len()),
        );
    }
    for (i, t) in pls.iter().enumerate() {
        let tp = idx(path, i);
        if t.port.is_none() {
            r.error(&tp, "portTrafficPolicy must have valid port");
        }
        if t.outlier_detection.is_none()
            && t.connection_pool.is_none()
            && t.load_balancer.is_none()
            && t.tls.is_none()
        {
            r.error(&tp, "port traffic policy must have at least one field");
            continue;
        }
        let od = t.outlier_detection.as_ref();
        if let Some(o) = od {
            outlier_detection(r, &at(&tp, "outlierDetection"), o);
        }
        if let Some(c) = &t.connection_pool {
            connection_pool(r, &at(&tp, "connectionPool"), c);
        }
        if let Some(lb) = &t.load_balancer {
            load_balancer(r, &at(&tp, "loadBalancer"), lb, od);
        }
        if let Some(tls) = &t.tls {
            client_tls(r, &at(&tp, "tls"), namespace, tls);
        }
    }
}

fn tunnel(r: &mut Report, path: &str, t: &TunnelSettings) {
    if !t.protocol.is_empty() && t.protocol != "CONNECT" && t.protocol != "POST" {
        r.error(
            at(path, "protocol"),
            "tunnel protocol must be \"CONNECT\" or \"POST\"",
        );
    }
    if let (Err(fqdn), Err(ip)) = (
        fields::fqdn(&t.target_host),
        fields::ip_address(&t.target_host),
    ) {
        r.error(
            at(path, "targetHost"),
            format!("tunnel target host must be valid FQDN or IP address: {fqdn}; {ip}"),
        );
    }
    if let Err(e) = fields::port(i64::from(t.target_port)) {
        r.error(
            at(path, "targetPort"),
            format!("tunnel target port is invalid: {e}"),
        );
    }
}

pub fn outlier_detection(r: &mut Report, path: &str, o: &OutlierDetection) {
    outlier_detection_common(r, path, o);
    if o.consecutive_errors != 0 {
        r.warning(
            at(path, "consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    let codes = at(path, "outlierDetectionHttpErrorCodes");
    for (i, c) in o.outlier_detection_http_error_codes.iter().enumerate() {
        if !(100..=599).contains(c) {
            r.error(
                idx(&codes, i),
                format!("HTTP status code {c} must be in the range 100..599"),
            );
        }
    }
}

/// The outlier detection rules Istio applies both to DestinationRules and to the mesh config's
/// `defaultTrafficPolicy` (which gets only these).
pub fn outlier_detection_common(r: &mut Report, path: &str, o: &OutlierDetection) {
    duration(
        r,
        &at(path, "baseEjectionTime"),
        o.base_ejection_time.as_ref(),
    );
    duration(r, &at(path, "interval"), o.interval.as_ref());
    if !o.split_external_local_origin_errors && o.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        r.error(
            at(path, "consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    for (field, v) in [
        ("maxEjectionPercent", o.max_ejection_percent),
        ("minHealthPercent", o.min_health_percent),
    ] {
        if !(0..=100).contains(&v) {
            r.error(
                at(path, field),
                format!("percentage {v} is not in range 0..100"),
            );
        }
    }
}

pub fn connection_pool(r: &mut Report, path: &str, c: &ConnectionPoolSettings) {
    connection_pool_common(r, path, c);
    if let Some(ka) = c.http.as_ref().and_then(|h| h.http2_keep_alive.as_ref()) {
        let kp = at(&at(path, "http"), "http2KeepAlive");
        match &ka.interval {
            None => r.error(&kp, "http2 keepalive interval is required"),
            Some(d) => duration(r, &at(&kp, "interval"), Some(d)),
        }
        match &ka.timeout {
            None => r.error(&kp, "http2 keepalive timeout is required"),
            Some(d) => duration(r, &at(&kp, "timeout"), Some(d)),
        }
    }
}

/// The connection pool rules Istio applies both to DestinationRules and Sidecars and to the mesh
/// config's `defaultTrafficPolicy` (which gets only these).
pub fn connection_pool_common(r: &mut Report, path: &str, c: &ConnectionPoolSettings) {
    if c.http.is_none() && c.tcp.is_none() {
        r.error(path, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &c.http {
        let hp = at(path, "http");
        for (field, v, what) in [
            (
                "http1MaxPendingRequests",
                h.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            (
                "http2MaxRequests",
                h.http2_max_requests,
                "http2 max requests",
            ),
            (
                "maxRequestsPerConnection",
                h.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", h.max_retries, "max retries"),
            (
                "maxConcurrentStreams",
                h.max_concurrent_streams,
                "max concurrent streams",
            ),
        ] {
            if v < 0 {
                r.error(at(&hp, field), format!("{what} must be non-negative"));
            }
        }
        duration(r, &at(&hp, "idleTimeout"), h.idle_timeout.as_ref());
        if h.h2_upgrade_policy == H2UpgradePolicy::Upgrade && h.use_client_protocol {
            r.error(
                at(&hp, "useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
    if let Some(t) = &c.tcp {
        let tp = at(path, "tcp");
        if t.max_connections < 0 {
            r.error(
                at(&tp, "maxConnections"),
                "max connections must be non-negative",
            );
        }
        duration(r, &at(&tp, "connectTimeout"), t.connect_timeout.as_ref());
        duration(
            r,
            &at(&tp, "maxConnectionDuration"),
            t.max_connection_duration.as_ref(),
        );
        if let Some(d) = &t.idle_timeout {
            // Zero (to the millisecond) turns the timeout off.
            if d.as_nanos() / MS != 0 {
                duration(r, &at(&tp, "idleTimeout"), Some(d));
            }
        }
        if let Some(ka) = &t.tcp_keepalive {
            tcp_keepalive(r, &at(&tp, "tcpKeepalive"), ka);
        }
    }
}

/// TCP keepalive durations (Istio's duration rule on `time` and `interval`).
pub fn tcp_keepalive(r: &mut Report, path: &str, ka: &TcpKeepalive) {
    duration(r, &at(path, "time"), ka.time.as_ref());
    duration(r, &at(path, "interval"), ka.interval.as_ref());
}

pub fn load_balancer(
    r: &mut Report,
    path: &str,
    lb: &LoadBalancerSettings,
    outlier: Option<&OutlierDetection>,
) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        r.error(path, "only one of simple or consistentHash can be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        consistent_hash(r, &at(path, "consistentHash"), ch);
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        r.error(
            path,
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        locality_lb_setting(r, &at(path, "localityLbSetting"), l, outlier);
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        let zp = at(path, "zoneAwareLbSetting");
        zone_aware_lb_setting(r, &zp, z, outlier);
        // The CRD's `minimum: 1`; the webhook (and so the mesh config) leaves it alone.
        if z.min_cluster_size == Some(0) {
            r.error(
                at(&zp, "minClusterSize"),
                "0 must be greater than or equal to 1",
            );
        }
    }
    crd_min_duration(
        r,
        &at(path, "warmupDurationSecs"),
        lb.warmup_duration_secs.as_ref(),
    );
    if let Some(w) = &lb.warmup {
        let wp = at(path, "warmup");
        match &w.duration {
            None => r.error(at(&wp, "duration"), "duration is required"),
            Some(d) => duration(r, &at(&wp, "duration"), Some(d)),
        }
        if w.minimum_percent.unwrap_or(0.0) > 100.0 {
            r.error(
                at(&wp, "minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            );
        }
        double_range(r, &at(&wp, "minimumPercent"), w.minimum_percent, 0.0, None);
        if let Some(a) = w.aggression {
            if a <= 0.0 {
                r.error(at(&wp, "aggression"), "aggression should be greater than 0");
            }
        }
    }
}

fn consistent_hash(r: &mut Report, path: &str, ch: &ConsistentHashLb) {
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() > 1 {
        r.error(
            path,
            "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName can be set",
        );
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        r.error(path, "only one of ringHash or maglev can be set");
    }
    if let Some(c) = &ch.http_cookie {
        let cp = at(path, "httpCookie");
        if c.name.is_empty() {
            r.error(at(&cp, "name"), "name required for HttpCookie");
        }
        let mut seen = BTreeSet::new();
        for (i, a) in c.attributes.iter().enumerate() {
            let ap = idx(&at(&cp, "attributes"), i);
            if a.name.is_empty() {
                r.error(at(&ap, "name"), "cookie attribute name cannot be empty");
            } else if !seen.insert(a.name.as_str()) {
                r.error(
                    at(&ap, "name"),
                    format!("duplicate cookie attribute name: {}", a.name),
                );
            }
        }
    }
    if ch.minimum_ring_size != 0 {
        r.warning(
            at(path, "minimumRingSize"),
            "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
        );
        if ch.ring_hash.is_some() || ch.maglev.is_some() {
            r.error(
                at(path, "minimumRingSize"),
                "only one of MinimumRingSize or Maglev/Ringhash can be specified",
            );
        }
    }
    if let Some(m) = &ch.maglev {
        let tp = at(&at(path, "maglev"), "tableSize");
        if m.table_size == 0 {
            r.error(&tp, "tableSize must be set for maglev");
        }
        if m.table_size >= 5_000_011 {
            r.error(&tp, "tableSize must be less than 5000011 for maglev");
        }
        if !is_prime(m.table_size) {
            r.error(&tp, "tableSize must be a prime number for maglev");
        }
    }
}

/// Envoy's primality test, including its quirk that 1 counts as prime.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x.is_multiple_of(2) {
        return false;
    }
    let mut f = 3u64;
    while f.saturating_mul(f) <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// Locality load balancing. Istio stops at the first structural problem, so this does too.
pub fn locality_lb_setting(
    r: &mut Report,
    path: &str,
    lb: &LocalityLoadBalancerSetting,
    outlier: Option<&OutlierDetection>,
) {
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        r.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !lb.failover.is_empty() {
        if let Some((i, l)) = lb
            .failover_priority
            .iter()
            .enumerate()
            .find(|(_, l)| TOPOLOGY_LABELS.contains(&l.as_str()))
        {
            r.error(
                idx(&at(path, "failoverPriority"), i),
                format!("can not simultaneously set 'failover' and topology label '{l}' in 'failover_priority'"),
            );
            return;
        }
    }
    let mut sources = Vec::with_capacity(lb.distribute.len());
    for (i, d) in lb.distribute.iter().enumerate() {
        let dp = idx(&at(path, "distribute"), i);
        sources.push(d.from.as_str());
        let mut total: u64 = 0;
        for w in d.to.values() {
            if *w == 0 || *w > 100 {
                r.error(at(&dp, "to"), "locality weight must be in range [1, 100]");
                return;
            }
            total += u64::from(*w);
        }
        if total != 100 {
            r.error(
                at(&dp, "to"),
                format!("total locality weight {total} != 100"),
            );
            return;
        }
        let dests: Vec<&str> = d.to.keys().map(String::as_str).collect();
        r.check(at(&dp, "to"), localities(&dests));
    }
    r.check(at(path, "distribute"), localities(&sources));
    failover(
        r,
        path,
        (&lb.failover, &lb.failover_priority),
        outlier,
        "locality lb",
        "locality lb failover only specify region",
    );
}

/// Zone-aware load balancing: Istio's webhook rules (the CRD's bound on `minClusterSize` is
/// checked by the caller).
pub fn zone_aware_lb_setting(
    r: &mut Report,
    path: &str,
    lb: &ZoneAwareLoadBalancerSetting,
    outlier: Option<&OutlierDetection>,
) {
    for (i, l) in lb.failover_priority.iter().enumerate() {
        if TOPOLOGY_LABELS.contains(&l.as_str()) {
            r.error(
                idx(&at(path, "failoverPriority"), i),
                format!("'failover_priority' for zone aware lb must not use topology label '{l}'; region- and zone-level routing are handled automatically"),
            );
        }
    }
    failover(
        r,
        path,
        (&lb.failover, &lb.failover_priority),
        outlier,
        "zone aware lb",
        "zone aware lb failover only specifies region; zone and subzone failover are handled automatically",
    );
}

/// The failover rules locality and zone-aware load balancing share: failover wants an outlier
/// detection (a warning), and each entry names two different regions, without zones or
/// wildcards. `lb` and `region_only` word Istio's messages for the setting.
fn failover(
    r: &mut Report,
    path: &str,
    (list, priority): (&[LocalityFailover], &[String]),
    outlier: Option<&OutlierDetection>,
    lb: &str,
    region_only: &str,
) {
    if (!list.is_empty() || !priority.is_empty()) && outlier.is_none() {
        r.warning(
            path,
            "outlier detection policy must be provided for failover",
        );
    }
    for (i, f) in list.iter().enumerate() {
        let fp = idx(&at(path, "failover"), i);
        if f.from == f.to {
            r.error(
                &fp,
                format!("{lb} failover settings must specify different regions"),
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            r.error(&fp, region_only);
        }
        if f.from.contains('*') || f.to.contains('*') {
            r.error(
                &fp,
                format!("{lb} failover region should not contain '*' wildcard"),
            );
        }
    }
}

/// Localities (`region[/zone[/subzone]]`, `*` only at the end) must not overlap each other.
pub fn localities(list: &[&str]) -> Result<(), String> {
    // region -> zone -> subzones; "*" stands for "all of them".
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    let overlap = |l: &str| Err(format!("locality {l} overlap with previous specified ones"));
    for &l in list {
        let stars = l.matches('*').count();
        if stars > 1 || (stars == 1 && !l.ends_with('*')) {
            return Err(format!(
                "locality {l} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.contains_key("*") {
            return overlap(l);
        }
        let parts: Vec<&str> = l.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "locality {l} must not contain empty region/zone/subzone info"
            ));
        }
        match parts.as_slice() {
            [region] => {
                if seen.contains_key(region) {
                    return overlap(l);
                }
                seen.insert(region, BTreeMap::from([("*", BTreeSet::from(["*"]))]));
            }
            [region, zone] => {
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") || zones.contains_key(zone) {
                    return overlap(l);
                }
                zones.insert(zone, BTreeSet::from(["*"]));
            }
            [region, zone, subzone] => {
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") {
                    return overlap(l);
                }
                let subs = zones.entry(zone).or_default();
                if subs.contains("*") || !subs.insert(subzone) {
                    return overlap(l);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `ClientTLSSettings`, as Istio's `ValidateTLS` checks it.
pub fn client_tls(r: &mut Report, path: &str, namespace: &str, t: &ClientTlsSettings) {
    if let Some(rest) = t.credential_name.strip_prefix("configmap://") {
        let name_path = at(path, "credentialName");
        let mut split = rest.split('/');
        let ns = split.next().unwrap_or("");
        match split.next() {
            None => r.error(
                &name_path,
                format!("invalid configmap:// credentialName: invalid resource name {:?}. Expected namespace and name", t.credential_name),
            ),
            Some(_) if ns.is_empty() => r.error(
                &name_path,
                format!("invalid configmap:// credentialName: invalid resource name {:?}. Expected namespace", t.credential_name),
            ),
            Some("") => r.error(
                &name_path,
                format!("invalid configmap:// credentialName: invalid resource name {:?}. Expected name", t.credential_name),
            ),
            Some(_) if ns != namespace || namespace.is_empty() => r.error(
                &name_path,
                format!("invalid configmap:// credentialName: namespace must match the configuration namespace {namespace:?}"),
            ),
            Some(_) => {}
        }
    }
    if t.insecure_skip_verify == Some(true) {
        if t.mode == ClientTlsMode::Simple
            && (!t.ca_certificates.is_empty()
                || !t.credential_name.is_empty()
                || !t.subject_alt_names.is_empty())
        {
            r.error(
                at(path, "insecureSkipVerify"),
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if t.mode == ClientTlsMode::Mutual
            && (!t.ca_certificates.is_empty() || !t.subject_alt_names.is_empty())
        {
            r.error(
                at(path, "insecureSkipVerify"),
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    let simple_or_mutual = matches!(t.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual);
    if simple_or_mutual && !t.credential_name.is_empty() {
        if !t.client_certificate.is_empty()
            || !t.ca_certificates.is_empty()
            || !t.private_key.is_empty()
            || !t.ca_crl.is_empty()
        {
            r.error(
                at(path, "credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        // The credentials come from the secret; nothing else is required.
        return;
    }
    if t.mode == ClientTlsMode::Mutual {
        if t.client_certificate.is_empty() {
            r.error(
                at(path, "clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if t.private_key.is_empty() {
            r.error(
                at(path, "privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_as_envoy_counts_them() {
        assert!(is_prime(1));
        assert!(is_prime(2));
        assert!(is_prime(65537));
        assert!(!is_prime(0));
        assert!(!is_prime(65535));
        assert!(!is_prime(9));
    }

    #[test]
    fn locality_overlaps() {
        assert!(localities(&["a/b/c", "a/b/d", "x"]).is_ok());
        assert!(localities(&["a", "a/b"]).is_err());
        assert!(localities(&["a/b", "a"]).is_err());
        assert!(localities(&["a/*", "a/b"]).is_err());
        assert!(localities(&["*", "b"]).is_err());
        assert!(localities(&["a/*/c"]).is_err());
        assert!(localities(&["a//c"]).is_err());
        assert!(localities(&[""]).is_err());
    }
}
