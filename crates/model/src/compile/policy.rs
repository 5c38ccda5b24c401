//! DestinationRules to cluster policy: which rule applies to a host for this proxy, how its
//! levels inherit, and the compiled [`ClusterPolicy`] with locality priorities and weights.
//!
//! Istio's rules, in order:
//! - Lookup: the proxy's namespace first, then the service's namespace, then the root namespace;
//!   within one namespace the exact host beats the most specific wildcard; rules for the same
//!   host there are merged (first top-level policy wins, subsets concatenated by unique name).
//!   A rule with a `workloadSelector` applies only to matching proxies of its own namespace and
//!   beats the catch-all rule. `exportTo` (default: the mesh's) limits who sees a rule.
//! - Inheritance: the top level (or its `portLevelSettings` for the port, which replace it
//!   wholesale), then the subset's policy field by field, then the subset's port level, again
//!   wholesale.
//! - Locality: with outlier detection, endpoints get failover priorities by locality (or
//!   `failoverPriority` labels); `distribute` reweights localities instead and works without it.

use std::collections::{BTreeMap, HashMap};

use api::analyze::hosts::{host_matches, to_fqdn};
use api::types::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule,
    LoadBalancerSettings, LocalityLoadBalancerSetting, SimpleLb, TrafficPolicy,
};
use api::{Resource, Spec};

use super::{exported_to, labels_match, Cx};
use crate::cluster::{Endpoint, LbPolicy};
use crate::policy::{
    ClusterPolicy, ConnectionPool, ConsistentHash, HashAlgorithm, HashKey, OutlierDetection,
    TcpKeepalive, TlsFiles, UpstreamTls, Warmup,
};

/// A DestinationRule as it applies to one host for one proxy: possibly several merged.
pub(super) struct Rule<'a> {
    /// The first rule merged, for warnings.
    pub resource: &'a Resource,
    pub rule: DestinationRule,
}

/// Compiled policy for one cluster, plus what the cluster's own fields take.
pub(super) struct Compiled {
    pub lb_policy: LbPolicy,
    pub connect_timeout_ms: Option<u64>,
    pub policy: ClusterPolicy,
    /// Istio: HTTP/2 upstream for an HTTP/1 port (`h2UpgradePolicy: UPGRADE`).
    pub h2_upgrade: bool,
    pub locality: Option<LocalityLoadBalancerSetting>,
}

/// The DestinationRules this proxy may see, by namespace, with exact hosts indexed: built once
/// per compile so finding a cluster's rule does not scan every resource (a sidecar has a
/// cluster per service, so a scan would make the compile quadratic in the service count).
#[derive(Default)]
pub(super) struct RuleIndex<'a> {
    namespaces: HashMap<&'a str, NsRules<'a>>,
}

#[derive(Default)]
struct NsRules<'a> {
    /// In resource order; the positions below point here.
    rules: Vec<(&'a Resource, &'a DestinationRule, String)>,
    exact: HashMap<String, Vec<usize>>,
    wildcard: Vec<usize>,
}

impl<'a> RuleIndex<'a> {
    fn build(cx: &Cx<'a>) -> Self {
        let proxy_ns = cx.proxy.namespace.as_str();
        let default_export = cx.mesh.default_destination_rule_export_to();
        let mut namespaces: HashMap<&'a str, NsRules<'a>> = HashMap::new();
        for &r in &cx.resources {
            let Spec::DestinationRule(dr) = &r.spec else {
                continue;
            };
            let export = if dr.export_to.is_empty() {
                &default_export
            } else {
                &dr.export_to
            };
            if !exported_to(export, r.namespace(), proxy_ns) {
                continue;
            }
            let ns = namespaces.entry(r.namespace()).or_default();
            let host = to_fqdn(r.namespace(), &dr.host);
            let at = ns.rules.len();
            if host.starts_with('*') {
                ns.wildcard.push(at);
            } else {
                ns.exact.entry(host.clone()).or_default().push(at);
            }
            ns.rules.push((r, dr.as_ref(), host));
        }
        RuleIndex { namespaces }
    }

    /// The rules of `ns` whose host matches `host`, in resource order.
    fn matching(&self, ns: &str, host: &str) -> Vec<(&'a Resource, &'a DestinationRule, String)> {
        let Some(rules) = self.namespaces.get(ns) else {
            return Vec::new();
        };
        let mut at: Vec<usize> = if host.starts_with('*') {
            // A wildcard host can match exact rule hosts too: rare, so scan.
            (0..rules.rules.len()).collect()
        } else {
            let mut at = rules.exact.get(host).cloned().unwrap_or_default();
            at.extend(rules.wildcard.iter().copied());
            at.sort_unstable();
            at
        };
        at.retain(|i| host_matches(&rules.rules[*i].2, host));
        at.into_iter().map(|i| rules.rules[i].clone()).collect()
    }
}

impl<'a> Cx<'a> {
    /// The (merged) DestinationRule for `host` as this proxy sees it.
    pub(super) fn destination_rule(
        &self,
        host: &str,
        service_ns: Option<&str>,
    ) -> Option<Rule<'a>> {
        let proxy_ns = self.proxy.namespace.as_str();
        let root = self.mesh.root_namespace();
        let index = self.rule_index.get_or_init(|| RuleIndex::build(self));
        let mut namespaces = vec![proxy_ns];
        namespaces.extend(service_ns.filter(|s| *s != proxy_ns));
        if !namespaces.contains(&root) {
            namespaces.push(root);
        }
        for ns in namespaces {
            let in_ns = index.matching(ns, host);
            let Some(best) = most_specific(in_ns.iter().map(|(_, _, h)| h.as_str()), host) else {
                continue;
            };
            let same_host: Vec<_> = in_ns.iter().filter(|(_, _, h)| *h == best).collect();
            // A selector only counts in the proxy's own namespace (Istio: outbound only, same
            // namespace); a matching one beats the catch-all.
            let selected = same_host.iter().find(|(r, dr, _)| {
                dr.workload_selector.as_ref().is_some_and(|sel| {
                    r.namespace() == proxy_ns && labels_match(&sel.match_labels, &self.proxy.labels)
                })
            });
            let group: Vec<_> = match selected {
                Some((_, dr, _)) => same_host
                    .iter()
                    .filter(|(_, d, _)| {
                        d.workload_selector.as_ref().map(|s| &s.match_labels)
                            == dr.workload_selector.as_ref().map(|s| &s.match_labels)
                    })
                    .collect(),
                None => same_host
                    .iter()
                    .filter(|(_, d, _)| d.workload_selector.is_none())
                    .collect(),
            };
            let Some(((first_r, first, _), rest)) = group.split_first() else {
                continue;
            };
            let mut rule = (*first).clone();
            for (_, d, _) in rest {
                if rule.traffic_policy.is_none() {
                    rule.traffic_policy = d.traffic_policy.clone();
                }
                for s in &d.subsets {
                    if !rule.subsets.iter().any(|e| e.name == s.name) {
                        rule.subsets.push(s.clone());
                    }
                }
            }
            return Some(Rule {
                resource: first_r,
                rule,
            });
        }
        None
    }
}

/// Istio's `MostSpecificHostMatch`: the exact host, else the longest matching wildcard.
fn most_specific<'h>(hosts: impl Iterator<Item = &'h str>, host: &str) -> Option<String> {
    let mut best: Option<&str> = None;
    for h in hosts {
        if h == host {
            return Some(h.to_string());
        }
        if best.is_none_or(|b| h.len() > b.len()) {
            best = Some(h);
        }
    }
    best.map(str::to_string)
}

/// The traffic policy in force for `port` of `subset`, after Istio's inheritance.
pub(super) fn effective(rule: &DestinationRule, port: u16, subset: &str) -> Option<TrafficPolicy> {
    let top = rule.traffic_policy.as_ref().map(|p| port_level(p, port).0);
    let subset_policy = rule
        .subsets
        .iter()
        .find(|s| !subset.is_empty() && s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let Some(sp) = subset_policy else {
        return top;
    };
    let (sp, wholesale) = port_level(sp, port);
    let Some(mut merged) = top else {
        return Some(sp);
    };
    if sp.connection_pool.is_some() || wholesale {
        merged.connection_pool = sp.connection_pool;
    }
    if sp.outlier_detection.is_some() || wholesale {
        merged.outlier_detection = sp.outlier_detection;
    }
    if sp.load_balancer.is_some() || wholesale {
        merged.load_balancer = sp.load_balancer;
    }
    if sp.tls.is_some() || wholesale {
        merged.tls = sp.tls;
    }
    if sp.tunnel.is_some() {
        merged.tunnel = sp.tunnel;
    }
    if sp.proxy_protocol.is_some() {
        merged.proxy_protocol = sp.proxy_protocol;
    }
    if sp.retry_budget.is_some() {
        merged.retry_budget = sp.retry_budget;
    }
    Some(merged)
}

/// The policy without port-level settings, replaced wholesale by the port's entry if any
/// (fields it omits fall back to defaults, not to the level above). The flag says whether it was.
fn port_level(p: &TrafficPolicy, port: u16) -> (TrafficPolicy, bool) {
    let mut base = TrafficPolicy {
        port_level_settings: Vec::new(),
        ..p.clone()
    };
    let hit = p.port_level_settings.iter().find(|s| {
        s.port
            .as_ref()
            .is_some_and(|sel| sel.number == u32::from(port))
    });
    match hit {
        Some(pl) => {
            base.connection_pool = pl.connection_pool.clone();
            base.outlier_detection = pl.outlier_detection.clone();
            base.load_balancer = pl.load_balancer.clone();
            base.tls = pl.tls.clone();
            (base, true)
        }
        None => (base, false),
    }
}

fn ms(d: &Option<api::types::common::Duration>) -> Option<u64> {
    d.as_ref()
        .and_then(|d| d.to_std())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn positive(n: i32) -> Option<u32> {
    u32::try_from(n).ok().filter(|n| *n > 0)
}

/// Compiles an effective traffic policy. `warn` receives what is accepted but not honoured.
pub(super) fn compile(
    tp: Option<&TrafficPolicy>,
    host: &str,
    warn: &mut dyn FnMut(String),
) -> Compiled {
    let lb = tp.and_then(|p| p.load_balancer.as_ref());
    let pool = tp.and_then(|p| p.connection_pool.as_ref());
    let mut policy = ClusterPolicy {
        consistent_hash: lb.and_then(|lb| consistent_hash(lb, warn)),
        warmup: lb.and_then(warmup),
        connection_pool: pool.map(connection_pool).unwrap_or_default(),
        outlier_detection: tp.and_then(|p| p.outlier_detection.as_ref()).map(outlier),
        tls: UpstreamTls::Disable,
    };
    if let Some(tls) = tp.and_then(|p| p.tls.as_ref()) {
        policy.tls = upstream_tls(tls, host, warn);
    }
    let lb_policy = match lb.and_then(|lb| lb.simple) {
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::LeastRequest | SimpleLb::LeastConn) => LbPolicy::LeastRequest,
        Some(SimpleLb::Passthrough) => LbPolicy::Passthrough,
        _ => LbPolicy::RoundRobin,
    };
    let h2_upgrade = pool
        .and_then(|p| p.http.as_ref())
        .is_some_and(|h| h.h2_upgrade_policy == api::types::H2UpgradePolicy::Upgrade);
    Compiled {
        lb_policy,
        connect_timeout_ms: pool
            .and_then(|p| p.tcp.as_ref())
            .and_then(|t| ms(&t.connect_timeout)),
        policy,
        h2_upgrade,
        locality: lb.and_then(|lb| lb.locality_lb_setting.clone()),
    }
}

fn consistent_hash(
    lb: &LoadBalancerSettings,
    warn: &mut dyn FnMut(String),
) -> Option<ConsistentHash> {
    let ch = lb.consistent_hash.as_ref()?;
    let key = if let Some(name) = &ch.http_header_name {
        HashKey::Header {
            name: name.to_ascii_lowercase(),
        }
    } else if let Some(c) = &ch.http_cookie {
        HashKey::Cookie {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl_ms: ms(&c.ttl),
        }
    } else if ch.use_source_ip == Some(true) {
        HashKey::SourceIp
    } else if let Some(name) = &ch.http_query_parameter_name {
        HashKey::QueryParameter { name: name.clone() }
    } else {
        warn("consistentHash names no hash key; round robin used".into());
        return None;
    };
    // The deprecated top-level `minimumRingSize` still selects a ring.
    let algorithm = match (&ch.maglev, &ch.ring_hash) {
        (Some(m), _) => HashAlgorithm::Maglev {
            table_size: if m.table_size == 0 {
                65537
            } else {
                m.table_size
            },
        },
        (None, ring) => {
            let size = ring
                .as_ref()
                .map_or(ch.minimum_ring_size, |r| r.minimum_ring_size);
            HashAlgorithm::RingHash {
                minimum_ring_size: if size == 0 { 1024 } else { size },
            }
        }
    };
    Some(ConsistentHash { key, algorithm })
}

fn warmup(lb: &LoadBalancerSettings) -> Option<Warmup> {
    if let Some(w) = &lb.warmup {
        return Some(Warmup {
            duration_ms: ms(&w.duration)?,
            minimum_percent: w.minimum_percent.unwrap_or(10.0),
            aggression: w.aggression.unwrap_or(1.0),
        });
    }
    Some(Warmup {
        duration_ms: ms(&lb.warmup_duration_secs)?,
        minimum_percent: 10.0,
        aggression: 1.0,
    })
}

fn connection_pool(p: &ConnectionPoolSettings) -> ConnectionPool {
    let tcp = p.tcp.as_ref();
    let http = p.http.as_ref();
    ConnectionPool {
        max_connections: tcp.and_then(|t| positive(t.max_connections)),
        max_pending_requests: http.and_then(|h| positive(h.http1_max_pending_requests)),
        max_requests: http.and_then(|h| positive(h.http2_max_requests)),
        max_retries: http.and_then(|h| positive(h.max_retries)),
        max_requests_per_connection: http.and_then(|h| positive(h.max_requests_per_connection)),
        max_concurrent_streams: http.and_then(|h| positive(h.max_concurrent_streams)),
        tcp_keepalive: tcp
            .and_then(|t| t.tcp_keepalive.as_ref())
            .map(|k| TcpKeepalive {
                probes: Some(k.probes).filter(|p| *p > 0),
                time_ms: ms(&k.time),
                interval_ms: ms(&k.interval),
            }),
        max_connection_duration_ms: tcp.and_then(|t| ms(&t.max_connection_duration)),
        idle_timeout_ms: http
            .and_then(|h| ms(&h.idle_timeout))
            .or_else(|| tcp.and_then(|t| ms(&t.idle_timeout))),
        use_client_protocol: http.is_some_and(|h| h.use_client_protocol),
    }
}

/// Istio's translation: a threshold set to 0 disables that check; unset 5xx falls back to
/// Envoy's default of 5; interval 10 s, base ejection 30 s, max ejection 10 %, panic 0 %.
fn outlier(o: &api::types::OutlierDetection) -> OutlierDetection {
    let legacy = u32::try_from(o.consecutive_errors).ok().filter(|n| *n > 0);
    OutlierDetection {
        consecutive_5xx: o.consecutive_5xx_errors.or(legacy).unwrap_or(5),
        consecutive_gateway: o.consecutive_gateway_errors.unwrap_or(0),
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        consecutive_local_origin: if o.split_external_local_origin_errors {
            o.consecutive_local_origin_failures.unwrap_or(5)
        } else {
            0
        },
        interval_ms: ms(&o.interval).unwrap_or(10_000),
        base_ejection_time_ms: ms(&o.base_ejection_time).unwrap_or(30_000),
        max_ejection_percent: u32::try_from(o.max_ejection_percent)
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(10)
            .min(100),
        min_health_percent: u32::try_from(o.min_health_percent).unwrap_or(0).min(100),
        error_codes: o
            .outlier_detection_http_error_codes
            .iter()
            .filter_map(|c| u16::try_from(*c).ok())
            .collect(),
    }
}

fn upstream_tls(t: &ClientTlsSettings, host: &str, warn: &mut dyn FnMut(String)) -> UpstreamTls {
    if !t.credential_name.is_empty() {
        warn(format!(
            "tls.credentialName `{}` is not supported yet (no secret store); use file paths",
            t.credential_name
        ));
    }
    let files = || TlsFiles {
        client_certificate: t.client_certificate.clone(),
        private_key: t.private_key.clone(),
        ca_certificates: t.ca_certificates.clone(),
        // Istio sends the service host when `sni` is empty (auto SNI), never an IP.
        sni: if t.sni.is_empty() && !host.starts_with('*') {
            host.to_string()
        } else {
            t.sni.clone()
        },
        subject_alt_names: t.subject_alt_names.clone(),
        insecure_skip_verify: t.insecure_skip_verify == Some(true),
    };
    match t.mode {
        ClientTlsMode::Disable => UpstreamTls::Disable,
        ClientTlsMode::Simple => UpstreamTls::Simple(files()),
        ClientTlsMode::Mutual => UpstreamTls::Mutual(files()),
        ClientTlsMode::IstioMutual => UpstreamTls::IstioMutual {
            sni: t.sni.clone(),
            subject_alt_names: t.subject_alt_names.clone(),
        },
    }
}

/// Locality as `region`, `zone`, `subzone` parts; missing parts are empty.
fn parts(l: &str) -> [&str; 3] {
    let mut it = l.splitn(3, '/');
    [
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    ]
}

/// Istio's `LocalityMatch`: `pattern` is `region[/zone[/subzone]]`, `*` matching any part.
fn locality_match(locality: &str, pattern: &str) -> bool {
    let have = parts(locality);
    for (i, want) in pattern.split('/').enumerate() {
        if want == "*" {
            return true;
        }
        if i > 2 || have[i] != want {
            return false;
        }
    }
    true
}

/// What the proxy itself is, for locality decisions.
pub(super) struct ProxyPlace<'p> {
    pub locality: &'p str,
    pub labels: &'p BTreeMap<String, String>,
}

/// Applies locality load balancing to a cluster's endpoints: `distribute` weights, or failover
/// priorities (only with outlier detection, as Envoy never fails over without it).
pub(super) fn apply_locality(
    endpoints: &mut Vec<Endpoint>,
    setting: &LocalityLoadBalancerSetting,
    outlier: bool,
    proxy: &ProxyPlace<'_>,
) {
    if setting.enabled == Some(false)
        || proxy.locality.is_empty() && setting.failover_priority.is_empty()
    {
        return;
    }
    if !setting.distribute.is_empty() {
        distribute(endpoints, setting, proxy.locality);
    } else if outlier {
        let mut prio: Vec<u32> = vec![0; endpoints.len()];
        if !setting.failover_priority.is_empty() {
            let n = setting.failover_priority.len() as u32;
            for (e, p) in endpoints.iter().zip(prio.iter_mut()) {
                for (j, spec) in setting.failover_priority.iter().enumerate() {
                    let (label, forced) = match spec.split_once('=') {
                        Some((l, v)) => (l, Some(v)),
                        None => (spec.as_str(), None),
                    };
                    let want = forced.or(proxy.labels.get(label).map(String::as_str));
                    if want.is_none() || e.labels.get(label).map(String::as_str) != want {
                        *p = n - j as u32;
                        break;
                    }
                }
            }
        }
        if (setting.failover_priority.is_empty() || !setting.failover.is_empty())
            && !proxy.locality.is_empty()
        {
            let me = parts(proxy.locality);
            for (e, p) in endpoints.iter().zip(prio.iter_mut()) {
                let them = parts(&e.locality);
                let mut level = if me[0] != them[0] {
                    3
                } else if me[1] != them[1] {
                    2
                } else if me[2] != them[2] {
                    1
                } else {
                    0
                };
                if level == 3 {
                    if let Some(f) = setting.failover.iter().find(|f| f.from == me[0]) {
                        if them[0] != f.to {
                            level = 4;
                        }
                    }
                }
                *p = *p * 5 + level;
            }
        }
        // Priorities run from 0 without gaps.
        let mut levels: Vec<u32> = prio.clone();
        levels.sort_unstable();
        levels.dedup();
        for (e, p) in endpoints.iter_mut().zip(prio) {
            e.priority = levels.iter().position(|l| *l == p).unwrap_or(0) as u32;
        }
    }
}

/// `distribute`: the first rule whose `from` matches the proxy sets each `to` locality's share
/// of traffic, split among its endpoints by weight; unlisted localities get nothing.
fn distribute(endpoints: &mut Vec<Endpoint>, setting: &LocalityLoadBalancerSetting, me: &str) {
    let Some(rule) = setting
        .distribute
        .iter()
        .find(|d| locality_match(me, &d.from))
    else {
        return;
    };
    let mut new_weight: Vec<Option<u32>> = vec![None; endpoints.len()];
    for (pattern, share) in &rule.to {
        let members: Vec<usize> = (0..endpoints.len())
            .filter(|i| {
                new_weight[*i].is_none() && locality_match(&endpoints[*i].locality, pattern)
            })
            .collect();
        let total: u64 = members
            .iter()
            .map(|i| u64::from(endpoints[*i].weight))
            .sum();
        for i in members {
            // Scaled by 1000 so small shares of large localities keep their proportions.
            let w =
                (u64::from(endpoints[i].weight) * u64::from(*share) * 1000).div_ceil(total.max(1));
            new_weight[i] = Some(u32::try_from(w).unwrap_or(u32::MAX));
        }
    }
    let mut i = 0;
    endpoints.retain(|_| {
        let keep = new_weight[i].is_some_and(|w| w > 0);
        i += 1;
        keep
    });
    let kept: Vec<u32> = new_weight
        .into_iter()
        .flatten()
        .filter(|w| *w > 0)
        .collect();
    for (e, w) in endpoints.iter_mut().zip(kept) {
        e.weight = w;
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod policy_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_patterns() {
        assert!(locality_match("us/a/1", "us/*"));
        assert!(locality_match("us/a/1", "us/a"));
        assert!(!locality_match("us/b/1", "us/a"));
        assert!(locality_match("us/a/1", "*"));
        assert!(!locality_match("eu/a/1", "us"));
    }
}
