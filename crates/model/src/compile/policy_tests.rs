//! DestinationRule lookup, merge, inheritance and locality, compiled for real proxies.

use std::collections::BTreeMap;

use api::types::mesh::MeshConfig;

use super::*;
use crate::cluster::Cluster;
use crate::compile::{compile, ProxyIdentity, Role};
use crate::registry::tests::resources;

const SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 9000, name: http-admin, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1, zone: a}, locality: us-east/a/1}
  - {address: 10.0.0.2, labels: {version: v1, zone: b}, locality: us-east/b/1}
  - {address: 10.0.0.3, labels: {version: v2, zone: a}, locality: us-west/c/1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  http:
  - match: [{port: 8000}]
    route:
    - destination: {host: web.shop.svc.cluster.local, port: {number: 8000}, subset: v1}
      weight: 50
    - destination: {host: web.shop.svc.cluster.local, port: {number: 8000}, subset: v2}
      weight: 50
  - route:
    - destination: {host: web.shop.svc.cluster.local, port: {number: 9000}}
"#;

fn proxy(ns: &str, labels: &[(&str, &str)], locality: &str) -> ProxyIdentity {
    let mut p = ProxyIdentity::new(Role::Sidecar, ns);
    p.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    p.locality = locality.to_string();
    p
}

fn clusters(yaml: &str, p: &ProxyIdentity) -> Vec<Cluster> {
    let rs = resources(&format!("{SERVICE}\n---\n{yaml}"));
    compile(&rs, &MeshConfig::istio_default(), p)
        .unwrap()
        .snapshot
        .clusters
}

fn find<'c>(cs: &'c [Cluster], name: &str) -> &'c Cluster {
    cs.iter().find(|c| c.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:#?}",
            cs.iter().map(|c| &c.name).collect::<Vec<_>>()
        )
    })
}

const V1: &str = "outbound|8000|v1|web.shop.svc.cluster.local";
const V2: &str = "outbound|8000|v2|web.shop.svc.cluster.local";
const ADMIN: &str = "outbound|9000||web.shop.svc.cluster.local";

#[test]
fn inheritance_top_then_port_then_subset_then_subset_port() {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 7}}
    portLevelSettings:
    - port: {number: 9000}
      outlierDetection: {consecutive5xxErrors: 2}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 4}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 8000}
        loadBalancer: {simple: LEAST_REQUEST}
"#;
    let cs = clusters(dr, &proxy("shop", &[], ""));
    // Port level replaces the top level wholesale: no RANDOM, no pool for port 9000.
    let admin = find(&cs, ADMIN);
    assert_eq!(admin.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(admin.policy.connection_pool.max_connections, None);
    assert_eq!(
        admin
            .policy
            .outlier_detection
            .as_ref()
            .unwrap()
            .consecutive_5xx,
        2
    );
    // A subset overrides field by field: v1 keeps RANDOM and the pool, adds its outliers.
    let v1 = find(&cs, V1);
    assert_eq!(v1.lb_policy, LbPolicy::Random);
    assert_eq!(v1.policy.connection_pool.max_connections, Some(7));
    assert_eq!(
        v1.policy
            .outlier_detection
            .as_ref()
            .unwrap()
            .consecutive_5xx,
        4
    );
    assert_eq!(v1.endpoints.len(), 2);
    // A subset's port level replaces everything for that port.
    let v2 = find(&cs, V2);
    assert_eq!(v2.lb_policy, LbPolicy::LeastRequest);
    assert_eq!(v2.policy.connection_pool.max_connections, None);
    assert_eq!(v2.endpoints.len(), 1);
}

const CATCH_ALL: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-all, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-more, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-canary-client, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  workloadSelector: {matchLabels: {app: canary}}
  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

#[test]
fn rules_for_one_host_merge_and_a_matching_selector_wins() {
    let cs = clusters(CATCH_ALL, &proxy("shop", &[("app", "web")], ""));
    // Merged: the first rule's policy, subsets from both.
    assert_eq!(find(&cs, V1).lb_policy, LbPolicy::Random);
    assert_eq!(find(&cs, V2).lb_policy, LbPolicy::Random);
    assert_eq!(find(&cs, V2).endpoints.len(), 1);
    let cs = clusters(CATCH_ALL, &proxy("shop", &[("app", "canary")], ""));
    assert_eq!(find(&cs, V1).lb_policy, LbPolicy::Passthrough);
    // A selector does not reach proxies of other namespaces: they get the catch-all.
    let cs = clusters(CATCH_ALL, &proxy("front", &[("app", "canary")], ""));
    assert_eq!(find(&cs, V1).lb_policy, LbPolicy::Random);
}

#[test]
fn lookup_prefers_the_proxy_namespace_and_honours_export_to() {
    let rules = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  exportTo: ["."]
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: front}
spec:
  host: "*.shop.svc.cluster.local"
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: istio-system}
spec:
  host: "*.svc.cluster.local"
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}
"#;
    assert_eq!(
        find(&clusters(rules, &proxy("shop", &[], "")), V1).lb_policy,
        LbPolicy::Random
    );
    // From `front`: its own wildcard rule beats the service namespace's (not exported anyway).
    assert_eq!(
        find(&clusters(rules, &proxy("front", &[], "")), V1).lb_policy,
        LbPolicy::LeastRequest
    );
    // From elsewhere: the shop rule is private, so the root namespace's rule applies.
    let other = clusters(rules, &proxy("other", &[], ""));
    let c = find(&other, ADMIN);
    assert_eq!(c.policy.connection_pool.max_connections, Some(3));
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
}

fn priorities(c: &Cluster) -> Vec<(String, u32)> {
    c.endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.priority))
        .collect()
}

#[test]
fn locality_failover_needs_outlier_detection_and_distribute_reweights() {
    let base = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy:
"#;
    let me = proxy("shop", &[("zone", "b")], "us-east/a/1");
    let none = clusters(
        &format!("{base}    loadBalancer: {{simple: ROUND_ROBIN}}\n"),
        &me,
    );
    assert!(find(&none, ADMIN).endpoints.iter().all(|e| e.priority == 0));

    let od = "    outlierDetection: {consecutive5xxErrors: 1}\n";
    let failover = clusters(&format!("{base}{od}"), &me);
    assert_eq!(
        priorities(find(&failover, ADMIN)),
        [
            ("10.0.0.1".into(), 0),
            ("10.0.0.2".into(), 1),
            ("10.0.0.3".into(), 2)
        ]
    );
    let by_label = clusters(
        &format!(
            "{base}{od}    loadBalancer:\n      localityLbSetting: {{failoverPriority: [zone]}}\n"
        ),
        &me,
    );
    assert_eq!(
        priorities(find(&by_label, ADMIN)),
        [
            ("10.0.0.1".into(), 1),
            ("10.0.0.2".into(), 0),
            ("10.0.0.3".into(), 1)
        ]
    );

    let distribute = clusters(
        &format!(
            "{base}    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: us-east/*\n          to: {{\"us-east/a/*\": 80, \"us-west/*\": 20}}\n"
        ),
        &me,
    );
    let weights: Vec<(String, u32)> = find(&distribute, ADMIN)
        .endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.weight))
        .collect();
    assert_eq!(
        weights,
        [("10.0.0.1".into(), 80_000), ("10.0.0.3".into(), 20_000)]
    );
}

#[test]
fn hash_pool_outlier_and_tls_compile() {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: u, ttl: 10s}, minimumRingSize: 64}
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 250ms, tcpKeepalive: {probes: 3, time: 10s}}
      http: {http1MaxPendingRequests: 2, http2MaxRequests: 3, maxRetries: 4, maxRequestsPerConnection: 5, idleTimeout: 1s, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 2s}
    tls: {mode: SIMPLE, caCertificates: /ca.pem}
"#;
    let cs = clusters(dr, &proxy("shop", &[], ""));
    let c = find(&cs, ADMIN);
    assert_eq!(c.connect_timeout_ms, 250);
    assert_eq!(
        c.protocol,
        crate::UpstreamProtocol::Http2,
        "h2UpgradePolicy: UPGRADE"
    );
    let ch = c.policy.consistent_hash.as_ref().unwrap();
    assert_eq!(
        ch.algorithm,
        HashAlgorithm::RingHash {
            minimum_ring_size: 64
        }
    );
    assert_eq!(
        ch.key,
        HashKey::Cookie {
            name: "u".into(),
            path: String::new(),
            ttl_ms: Some(10_000)
        }
    );
    let p = &c.policy.connection_pool;
    assert_eq!(
        (
            p.max_connections,
            p.max_pending_requests,
            p.max_requests,
            p.max_retries
        ),
        (Some(1), Some(2), Some(3), Some(4))
    );
    assert_eq!(
        (p.max_requests_per_connection, p.idle_timeout_ms),
        (Some(5), Some(1000))
    );
    let o = c.policy.outlier_detection.as_ref().unwrap();
    assert_eq!(
        (
            o.consecutive_5xx,
            o.consecutive_gateway,
            o.base_ejection_time_ms
        ),
        (5, 2, 2000)
    );
    match &c.policy.tls {
        UpstreamTls::Simple(f) => {
            assert_eq!(f.ca_certificates, "/ca.pem");
            assert_eq!(
                f.sni, "web.shop.svc.cluster.local",
                "auto SNI from the host"
            );
        }
        other => panic!("{other:?}"),
    }
}
