//! Validation of DestinationRule: Istio's `ValidateDestinationRule` and the CRD schema. The
//! traffic-policy checks live in [`traffic_policy`], where Sidecar and mesh config reuse them.

pub mod traffic_policy;

use std::collections::BTreeSet;

use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::destination_rule::*;

pub fn validate(meta: &ObjectMeta, spec: &DestinationRule, r: &mut Report) {
    let namespace = meta.namespace_or_default();
    r.check("spec.host", fields::wildcard_domain(&spec.host));
    if let Some(p) = &spec.traffic_policy {
        traffic_policy::traffic_policy(r, "spec.trafficPolicy", namespace, p);
    }
    let mut names = BTreeSet::new();
    for (i, s) in spec.subsets.iter().enumerate() {
        let sp = idx("spec.subsets", i);
        if !names.insert(s.name.as_str()) {
            r.error(
                at(&sp, "name"),
                format!("duplicate subset names: {}", s.name),
            );
        }
        r.check(at(&sp, "name"), subset_name(&s.name));
        fields::labels(r, &at(&sp, "labels"), &s.labels);
        if let Some(p) = &s.traffic_policy {
            traffic_policy::traffic_policy(r, &at(&sp, "trafficPolicy"), namespace, p);
        }
    }
    fields::export_to(
        r,
        "spec.exportTo",
        namespace,
        &spec.export_to,
        false,
        spec.workload_selector.is_some(),
    );
    fields::workload_selector(r, "spec.workloadSelector", spec.workload_selector.as_ref());
}

/// A subset name, as destinations refer to it: a DNS-1123 label.
pub fn subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".into());
    }
    if !fields::is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::validate::testutil::report;
    use crate::validate::Report;

    fn run(spec: &str) -> Report {
        let doc = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\n  namespace: ns\nspec:\n{spec}"
        );
        report(&doc)
    }

    fn errors(spec: &str) -> Vec<String> {
        run(spec)
            .errors()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect()
    }

    fn ok(spec: &str) {
        let r = run(spec);
        assert!(!r.has_errors(), "unexpected errors: {:?}", r.findings);
    }

    fn bad(spec: &str, needle: &str) {
        let e = errors(spec);
        assert!(
            e.iter().any(|m| m.contains(needle)),
            "expected {needle:?} in {e:?}"
        );
    }

    #[test]
    fn full_traffic_policy_is_accepted() {
        ok(r#"
  host: reviews.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s, attributes: [{name: SameSite, value: Strict}]}
        ringHash: {minimumRingSize: 1024}
      localityLbSetting:
        enabled: true
        distribute:
        - from: us-west/zone1/*
          to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
      warmup: {duration: 60s, minimumPercent: 10, aggression: 1.5}
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
        idleTimeout: 0s
        tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
      http:
        h2UpgradePolicy: DO_NOT_UPGRADE
        maxConcurrentStreams: 10
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 5m
      baseEjectionTime: 15m
      outlierDetectionHttpErrorCodes: [500, 503]
    tls:
      mode: SIMPLE
      credentialName: configmap://ns/ca
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {simple: LEAST_REQUEST}
    retryBudget: {percent: 20, minRetryConcurrency: 3}
  exportTo: [".", "other"]
"#);
    }

    #[test]
    fn crd_rules() {
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      warmupDurationSecs: 0s\n",
            "greater than 1ms",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      simple: RANDOM\n      consistentHash: {useSourceIp: true}\n",
            "only one of simple or consistentHash",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: false, httpHeaderName: x}\n",
            "only one of httpHeaderName",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    outlierDetection:\n      outlierDetectionHttpErrorCodes: [99]\n",
            "100..599",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    retryBudget: {percent: 101}\n",
            "less than or equal to 100",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      zoneAwareLbSetting: {minClusterSize: 0}\n",
            "minClusterSize",
        );
        bad(
            "  host: a.b\n  workloadSelector:\n    matchLabels:\n      app: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            "may not be longer than 63",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    tunnel: {targetHost: a.b, targetPort: 8080}\n    proxyProtocol: {version: V2}\n",
            "must not be set together",
        );
    }

    #[test]
    fn webhook_rules() {
        bad(
            "  host: a.b\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: configmap://other/ca}\n",
            "namespace must match",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: cred, caCrl: crl}\n",
            "CA CRL",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    tls: {mode: MUTUAL}\n",
            "client certificate required",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    tunnel: {protocol: GET, targetHost: a.b, targetPort: 1}\n",
            "CONNECT",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    tunnel: {targetHost: -x, targetPort: 0}\n",
            "tunnel target port is invalid",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute: [{from: a, to: {b: 50}}]\n",
            "total locality weight 50 != 100",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: a, to: a}]\n",
            "different regions",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: a, to: b}]\n        failoverPriority: [topology.kubernetes.io/zone]\n",
            "topology label",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {maglev: {tableSize: 65536}}\n",
            "prime",
        );
        bad(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {minimumRingSize: 3, ringHash: {}}\n",
            "only one of MinimumRingSize",
        );
        bad(
            "  host: a.b\n  workloadSelector: {matchLabels: {app: x}}\n  exportTo: ['*']\n",
            "beyond current namespace",
        );
        bad(
            "  host: a.b\n  subsets: [{name: V_1}]\n",
            "subset name is invalid",
        );
    }

    #[test]
    fn warnings() {
        let r = run(
            "  host: a.b\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {minimumRingSize: 3}\n      localityLbSetting: {failover: [{from: a, to: b}]}\n",
        );
        assert!(!r.has_errors(), "{:?}", r.findings);
        let w: Vec<_> = r.warnings().map(|f| f.message.clone()).collect();
        assert!(w
            .iter()
            .any(|m| m.contains("MinimumRingSize is deprecated")));
        assert!(w
            .iter()
            .any(|m| m.contains("outlier detection policy must be provided")));
    }
}
