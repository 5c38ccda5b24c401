//! Checks of the MeshConfig fields typed by networking messages (HTTPRetry,
//! LocalityLoadBalancerSetting, ZoneAwareLoadBalancerSetting, ConnectionPoolSettings,
//! OutlierDetection, ClientTLSSettings, TcpKeepalive), which the mesh types hold as JSON until the
//! VirtualService and DestinationRule types land.
//!
//! Each value is decoded strictly into a private view of its message (unknown fields and wrong
//! types are errors at their path), then checked as Istio's mesh validation checks it.
// TODO(merge): decode into types::{HTTPRetry, LocalityLoadBalancerSetting, ...} at load time and
// share the DestinationRule/VirtualService checks; these views then go away.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::super::{at, fields, idx, Report};
use crate::types::common::Duration;

/// Decode `v` into `T`, reporting a decode failure at the most precise path.
pub(super) fn view<T: DeserializeOwned>(r: &mut Report, path: &str, v: &Value) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let p = if inner == "." || inner.is_empty() {
                path.to_string()
            } else if inner.starts_with('[') {
                format!("{path}{inner}")
            } else {
                at(path, &inner)
            };
            r.error(
                p,
                crate::types::mesh::load::serde_message(&e.inner().to_string()),
            );
            None
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HttpRetry {
    #[serde(default)]
    pub attempts: i32,
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    #[serde(default)]
    pub retry_on: String,
    #[serde(default)]
    pub retry_remote_localities: Option<bool>,
    #[serde(default)]
    pub retry_ignore_previous_hosts: Option<bool>,
    #[serde(default)]
    pub backoff: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LocalityLbSetting {
    #[serde(default)]
    distribute: Vec<Distribute>,
    #[serde(default)]
    failover: Vec<Failover>,
    #[serde(default)]
    failover_priority: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Distribute {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: BTreeMap<String, u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Failover {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ZoneAwareLbSetting {
    #[serde(default)]
    #[allow(dead_code)]
    enabled: Option<bool>,
    #[serde(default)]
    failover: Vec<Failover>,
    #[serde(default)]
    failover_priority: Vec<String>,
    #[serde(default, deserialize_with = "uint64_value")]
    #[allow(dead_code)]
    min_cluster_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConnectionPool {
    #[serde(default)]
    tcp: Option<TcpSettings>,
    #[serde(default)]
    http: Option<HttpSettings>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TcpSettings {
    #[serde(default)]
    max_connections: i32,
    #[serde(default)]
    connect_timeout: Option<Duration>,
    #[serde(default)]
    tcp_keepalive: Option<TcpKeepalive>,
    #[serde(default)]
    max_connection_duration: Option<Duration>,
    #[serde(default)]
    idle_timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TcpKeepalive {
    #[serde(default)]
    #[allow(dead_code)]
    probes: u32,
    #[serde(default)]
    time: Option<Duration>,
    #[serde(default)]
    interval: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpSettings {
    #[serde(default)]
    http1_max_pending_requests: i32,
    #[serde(default)]
    http2_max_requests: i32,
    #[serde(default)]
    max_requests_per_connection: i32,
    #[serde(default)]
    max_retries: i32,
    #[serde(default)]
    idle_timeout: Option<Duration>,
    #[serde(default)]
    h2_upgrade_policy: PoolH2UpgradePolicy,
    #[serde(default)]
    use_client_protocol: bool,
    #[serde(default)]
    max_concurrent_streams: i32,
    #[serde(default)]
    #[allow(dead_code)]
    http2_keep_alive: Option<ConnectionKeepalive>,
}

#[derive(Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum PoolH2UpgradePolicy {
    #[default]
    Default,
    DoNotUpgrade,
    Upgrade,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConnectionKeepalive {
    #[serde(default)]
    #[allow(dead_code)]
    interval: Option<Duration>,
    #[serde(default)]
    #[allow(dead_code)]
    timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OutlierDetection {
    #[serde(default)]
    #[allow(dead_code)]
    consecutive_errors: i32,
    #[serde(default)]
    split_external_local_origin_errors: bool,
    #[serde(default)]
    consecutive_local_origin_failures: Option<u32>,
    #[serde(default)]
    #[allow(dead_code)]
    consecutive_gateway_errors: Option<u32>,
    #[serde(default, rename = "consecutive5xxErrors")]
    #[allow(dead_code)]
    consecutive_5xx_errors: Option<u32>,
    #[serde(default)]
    interval: Option<Duration>,
    #[serde(default)]
    base_ejection_time: Option<Duration>,
    #[serde(default)]
    max_ejection_percent: i32,
    #[serde(default)]
    min_health_percent: i32,
    #[serde(default)]
    #[allow(dead_code)]
    outlier_detection_http_error_codes: Vec<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ClientTls {
    #[serde(default)]
    mode: TlsMode,
    #[serde(default)]
    client_certificate: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    ca_certificates: String,
    #[serde(default)]
    credential_name: String,
    /// `None` when absent: Istio tells an absent list from an empty one here.
    #[serde(default)]
    subject_alt_names: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    sni: String,
    #[serde(default)]
    insecure_skip_verify: Option<bool>,
    #[serde(default)]
    ca_crl: String,
}

#[derive(Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum TlsMode {
    #[default]
    Disable,
    Simple,
    Mutual,
    IstioMutual,
}

fn uint64_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum U64 {
        Num(u64),
        Text(String),
    }
    match Option::<U64>::deserialize(d)? {
        None => Ok(None),
        Some(U64::Num(n)) => Ok(Some(n)),
        Some(U64::Text(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid value {s:?}: expected a non-negative integer (uint64)"
            ))
        }),
    }
}

/// Only decode (the mesh does not validate these beyond their shape).
pub(super) fn decode_only<T: DeserializeOwned>(r: &mut Report, path: &str, v: Option<&Value>) {
    if let Some(v) = v {
        let _ = view::<T>(r, path, v);
    }
}

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` policies.
const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Status codes Go's `net/http.StatusText` knows.
fn is_known_http_status(code: i32) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428
        | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// Istio's `ValidateHTTPRetry`, findings placed on the retry's fields.
pub(super) fn http_retry(r: &mut Report, path: &str, retry: &HttpRetry, prefix: &str) {
    if retry.attempts < 0 {
        r.error(
            at(path, "attempts"),
            format!("{prefix}attempts cannot be negative"),
        );
    }
    if retry.attempts == 0
        && (retry.per_try_timeout.is_some()
            || !retry.retry_on.is_empty()
            || retry.retry_remote_localities.is_some())
    {
        r.error(
            at(path, "attempts"),
            format!("{prefix}http retry policy configured when attempts are set to 0 (disabled)"),
        );
    }
    if let Some(t) = &retry.per_try_timeout {
        r.check(
            at(path, "perTryTimeout"),
            fields::duration(t).map_err(|e| format!("{prefix}{e}")),
        );
    }
    if !retry.retry_on.is_empty() {
        for policy in retry.retry_on.split(',') {
            let code = policy.parse::<i32>().unwrap_or(0);
            if !is_known_http_status(code) && !RETRY_ON_POLICIES.contains(&policy) {
                r.error(
                    at(path, "retryOn"),
                    format!("{prefix}{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    if let Some(b) = &retry.backoff {
        r.check(
            at(path, "backoff"),
            fields::duration(b).map_err(|e| format!("{prefix}{e}")),
        );
    }
}

/// `defaultInboundHttpRetryPolicy`: a retry policy where only attempts, retryOn and backoff apply.
pub(super) fn inbound_retry(r: &mut Report, path: &str, v: &Value) {
    let Some(retry) = view::<HttpRetry>(r, path, v) else {
        return;
    };
    let prefix = "invalid default inbound http retry policy: ";
    http_retry(r, path, &retry, prefix);
    if retry.attempts == 0 && retry.backoff.is_some() {
        r.error(
            at(path, "backoff"),
            format!("{prefix}backoff configured when attempts are set to 0 (disabled)"),
        );
    }
    let ignored = [
        ("perTryTimeout", retry.per_try_timeout.is_some()),
        (
            "retryRemoteLocalities",
            retry.retry_remote_localities.is_some(),
        ),
        (
            "retryIgnorePreviousHosts",
            retry.retry_ignore_previous_hosts.is_some(),
        ),
    ];
    for (field, set) in ignored {
        if set {
            r.warning(
                at(path, field),
                format!("{field} is ignored by the default inbound http retry policy"),
            );
        }
    }
}

const TOPOLOGY_REGION: &str = "topology.kubernetes.io/region";
const TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
const TOPOLOGY_SUBZONE: &str = "topology.istio.io/subzone";

/// Istio's `ValidateLocalityLbSetting` for the mesh (an outlier detection is always assumed, so
/// the failover-without-outlier-detection warning never applies). Stops at the first error of a
/// kind, as Istio does.
pub(super) fn locality_lb(r: &mut Report, path: &str, v: &Value) {
    let Some(lb) = view::<LocalityLbSetting>(r, path, v) else {
        return;
    };
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        r.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !lb.failover.is_empty() {
        for (i, l) in lb.failover_priority.iter().enumerate() {
            if matches!(
                l.as_str(),
                TOPOLOGY_REGION | TOPOLOGY_ZONE | TOPOLOGY_SUBZONE
            ) {
                r.error(
                    idx(&at(path, "failoverPriority"), i),
                    format!("can not simultaneously set 'failover' and topology label '{l}' in 'failover_priority'"),
                );
                return;
            }
        }
    }
    let mut sources = Vec::new();
    for (i, d) in lb.distribute.iter().enumerate() {
        let dpath = idx(&at(path, "distribute"), i);
        sources.push(d.from.clone());
        let mut total: u64 = 0;
        for w in d.to.values() {
            if *w == 0 || *w > 100 {
                r.error(
                    at(&dpath, "to"),
                    "locality weight must be in range [1, 100]",
                );
                return;
            }
            total += u64::from(*w);
        }
        if total != 100 {
            r.error(
                at(&dpath, "to"),
                format!("total locality weight {total} != 100"),
            );
            return;
        }
        let dests: Vec<String> = d.to.keys().cloned().collect();
        r.check(at(&dpath, "to"), localities(&dests));
    }
    r.check(at(path, "distribute"), localities(&sources));
    for (i, f) in lb.failover.iter().enumerate() {
        let fpath = idx(&at(path, "failover"), i);
        if f.from == f.to {
            r.error(
                &fpath,
                "locality lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            r.error(&fpath, "locality lb failover only specify region");
        }
        if f.from.contains('*') || f.to.contains('*') {
            r.error(
                &fpath,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Istio's `ValidateZoneAwareLbSetting` for the mesh.
pub(super) fn zone_aware_lb(r: &mut Report, path: &str, v: &Value) {
    let Some(lb) = view::<ZoneAwareLbSetting>(r, path, v) else {
        return;
    };
    for (i, l) in lb.failover_priority.iter().enumerate() {
        if matches!(
            l.as_str(),
            TOPOLOGY_REGION | TOPOLOGY_ZONE | TOPOLOGY_SUBZONE
        ) {
            r.error(
                idx(&at(path, "failoverPriority"), i),
                format!("'failover_priority' for zone aware lb must not use topology label '{l}'; region- and zone-level routing are handled automatically"),
            );
        }
    }
    for (i, f) in lb.failover.iter().enumerate() {
        let fpath = idx(&at(path, "failover"), i);
        if f.from == f.to {
            r.error(
                &fpath,
                "zone aware lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            r.error(&fpath, "zone aware lb failover only specifies region; zone and subzone failover are handled automatically");
        }
        if f.from.contains('*') || f.to.contains('*') {
            r.error(
                &fpath,
                "zone aware lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Localities (`region/zone/subzone`, a trailing `*` allowed) must not be empty in any segment
/// nor overlap one another.
fn localities(locs: &[String]) -> Result<(), String> {
    // region -> zone -> subzones; "*" marks "everything below".
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    let overlap = |l: &str| Err(format!("locality {l} overlap with previous specified ones"));
    for l in locs {
        let stars = l.matches('*').count();
        if stars > 1 || (stars == 1 && !l.ends_with('*')) {
            return Err(format!(
                "locality {l} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.contains_key("*") {
            return overlap(l);
        }
        let items: Vec<&str> = l.splitn(3, '/').collect();
        if items.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "locality {l} must not contain empty region/zone/subzone info"
            ));
        }
        match items.as_slice() {
            [region] => {
                if seen.contains_key(region) {
                    return overlap(l);
                }
                seen.insert(region, BTreeMap::from([("*", BTreeSet::from(["*"]))]));
            }
            [region, zone] => match seen.get_mut(region) {
                Some(zones) => {
                    if zones.contains_key("*") || zones.contains_key(zone) {
                        return overlap(l);
                    }
                    zones.insert(zone, BTreeSet::from(["*"]));
                }
                None => {
                    seen.insert(region, BTreeMap::from([(*zone, BTreeSet::from(["*"]))]));
                }
            },
            [region, zone, sub] => match seen.get_mut(region) {
                Some(zones) => {
                    if zones.contains_key("*") {
                        return overlap(l);
                    }
                    match zones.get_mut(zone) {
                        Some(subs) => {
                            if subs.contains("*") || subs.contains(sub) {
                                return overlap(l);
                            }
                            subs.insert(sub);
                        }
                        None => {
                            zones.insert(zone, BTreeSet::from([*sub]));
                        }
                    }
                }
                None => {
                    seen.insert(region, BTreeMap::from([(*zone, BTreeSet::from([*sub]))]));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// Istio's `validateMeshConfigDefaultTrafficPolicy`: the value checks a DestinationRule's
/// connection pool and outlier detection get.
pub(super) fn default_traffic_policy(
    r: &mut Report,
    path: &str,
    pool: Option<&Value>,
    outlier: Option<&Value>,
) {
    if let Some(v) = pool {
        let ppath = at(path, "connectionPool");
        if let Some(cp) = view::<ConnectionPool>(r, &ppath, v) {
            connection_pool(r, &ppath, &cp);
        }
    }
    if let Some(v) = outlier {
        let opath = at(path, "outlierDetection");
        if let Some(od) = view::<OutlierDetection>(r, &opath, v) {
            outlier_detection(r, &opath, &od);
        }
    }
}

fn connection_pool(r: &mut Report, path: &str, cp: &ConnectionPool) {
    if cp.http.is_none() && cp.tcp.is_none() {
        r.error(path, "connection pool must have at least one field");
    }
    if let Some(h) = &cp.http {
        let hp = at(path, "http");
        let non_negative = [
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
        ];
        for (field, value, what) in non_negative {
            if value < 0 {
                r.error(at(&hp, field), format!("{what} must be non-negative"));
            }
        }
        if let Some(t) = &h.idle_timeout {
            r.check(at(&hp, "idleTimeout"), fields::duration(t));
        }
        if h.h2_upgrade_policy == PoolH2UpgradePolicy::Upgrade && h.use_client_protocol {
            r.error(
                at(&hp, "useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
    if let Some(t) = &cp.tcp {
        let tp = at(path, "tcp");
        if t.max_connections < 0 {
            r.error(
                at(&tp, "maxConnections"),
                "max connections must be non-negative",
            );
        }
        if let Some(d) = &t.connect_timeout {
            r.check(at(&tp, "connectTimeout"), fields::duration(d));
        }
        if let Some(d) = &t.max_connection_duration {
            r.check(at(&tp, "maxConnectionDuration"), fields::duration(d));
        }
        if let Some(d) = &t.idle_timeout {
            // Under a millisecond counts as "0s", which disables the timeout.
            if d.as_nanos() / 1_000_000 != 0 {
                r.check(at(&tp, "idleTimeout"), fields::duration(d));
            }
        }
        if let Some(ka) = &t.tcp_keepalive {
            tcp_keepalive(r, &at(&tp, "tcpKeepalive"), ka);
        }
    }
}

fn tcp_keepalive(r: &mut Report, path: &str, ka: &TcpKeepalive) {
    if let Some(d) = &ka.time {
        r.check(at(path, "time"), fields::duration(d));
    }
    if let Some(d) = &ka.interval {
        r.check(at(path, "interval"), fields::duration(d));
    }
}

fn outlier_detection(r: &mut Report, path: &str, od: &OutlierDetection) {
    if let Some(d) = &od.base_ejection_time {
        r.check(at(path, "baseEjectionTime"), fields::duration(d));
    }
    if let Some(d) = &od.interval {
        r.check(at(path, "interval"), fields::duration(d));
    }
    if !od.split_external_local_origin_errors
        && od.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        r.error(
            at(path, "consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    for (field, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if !(0..=100).contains(&v) {
            r.error(
                at(path, field),
                format!("percentage {v} is not in range 0..100"),
            );
        }
    }
}

/// Istio's `ValidateTLS` with no config namespace (the mesh has none), so any `configmap://`
/// credential is refused.
pub(super) fn client_tls(r: &mut Report, path: &str, v: &Value, prefix: &str) {
    let Some(tls) = view::<ClientTls>(r, path, v) else {
        return;
    };
    let mut err = |field: &str, m: &str| r.error(at(path, field), format!("{prefix}{m}"));
    if let Some(rest) = tls.credential_name.strip_prefix("configmap://") {
        let m = match rest.split_once('/') {
            None => format!(
                "invalid configmap:// credentialName: invalid resource name {:?}. Expected namespace and name",
                tls.credential_name
            ),
            Some(("", _)) => format!(
                "invalid configmap:// credentialName: invalid resource name {:?}. Expected namespace",
                tls.credential_name
            ),
            Some((_, name)) if name.split('/').next().unwrap_or("").is_empty() => format!(
                "invalid configmap:// credentialName: invalid resource name {:?}. Expected name",
                tls.credential_name
            ),
            Some(_) => "invalid configmap:// credentialName: namespace must match the configuration namespace \"\"".to_string(),
        };
        err("credentialName", &m);
    }
    if tls.insecure_skip_verify == Some(true) {
        if tls.mode == TlsMode::Simple
            && (!tls.ca_certificates.is_empty()
                || !tls.credential_name.is_empty()
                || tls.subject_alt_names.is_some())
        {
            err("insecureSkipVerify", "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true");
        }
        if tls.mode == TlsMode::Mutual
            && (!tls.ca_certificates.is_empty() || tls.subject_alt_names.is_some())
        {
            err(
                "insecureSkipVerify",
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    let simple_or_mutual = matches!(tls.mode, TlsMode::Simple | TlsMode::Mutual);
    if simple_or_mutual && !tls.credential_name.is_empty() {
        if !tls.client_certificate.is_empty()
            || !tls.ca_certificates.is_empty()
            || !tls.private_key.is_empty()
            || !tls.ca_crl.is_empty()
        {
            err(
                "credentialName",
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if tls.mode == TlsMode::Mutual {
        if tls.client_certificate.is_empty() {
            err(
                "clientCertificate",
                "client certificate required for mutual tls",
            );
        }
        if tls.private_key.is_empty() {
            err("privateKey", "private key required for mutual tls");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn locality_overlaps() {
        assert!(localities(&l(&["a/b/c", "a/b/d", "a/e"])).is_ok());
        assert!(localities(&l(&["a/*", "a/b"])).is_err());
        assert!(localities(&l(&["a", "a/b"])).is_err());
        assert!(localities(&l(&["*", "b"])).is_err());
        assert!(localities(&l(&["a/b/c", "a/b/c"])).is_err());
        assert!(localities(&l(&["a//c"])).is_err());
        assert!(localities(&l(&["a/*/c"])).is_err());
    }

    #[test]
    fn retry_on_values() {
        let mut r = Report::default();
        let retry = HttpRetry {
            attempts: 2,
            retry_on: "5xx,503,gateway-error,600,nope".into(),
            ..Default::default()
        };
        http_retry(&mut r, "p", &retry, "");
        let msgs: Vec<_> = r.errors().map(|f| f.message.clone()).collect();
        assert_eq!(
            msgs,
            [
                "\"600\" is not a valid retryOn policy",
                "\"nope\" is not a valid retryOn policy"
            ]
        );
    }
}
