//! The `destinationrule.*` analyzers: client TLS that does not verify the server's certificate
//! (IST0128 for the rule, IST0129 per port), and subsets that select no pod (IST0173) or rules for
//! hosts no service provides (IST0174).

use std::collections::{BTreeMap, BTreeSet};

use super::hosts::{pods, ServiceHosts};
use super::{Analyzer, Code, Context, Message};
use crate::analyze::context::labels_match;
use crate::types::destination_rule::{ClientTlsMode, ClientTlsSettings, DestinationRule};

/// The analyzers of this family.
pub const ALL: &[&dyn Analyzer] = &[&CaCertificate, &PodNotSelected];

pub struct CaCertificate;

fn mode_name(m: ClientTlsMode) -> &'static str {
    match m {
        ClientTlsMode::Disable => "DISABLE",
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
    }
}

/// The TLS mode of settings that originate TLS without a CA to verify the server with. A
/// `credentialName` supplies the CA only when the rule is bound to workloads (a gateway).
fn unverified(tls: Option<&ClientTlsSettings>, dr: &DestinationRule) -> Option<&'static str> {
    let tls = tls?;
    if !matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) {
        return None;
    }
    let credential = !tls.credential_name.is_empty() && dr.workload_selector.is_some();
    (tls.ca_certificates.is_empty() && !credential).then(|| mode_name(tls.mode))
}

impl Analyzer for CaCertificate {
    fn name(&self) -> &'static str {
        "destinationrule.CaCertificateAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, dr) in cx.destination_rules() {
            let Some(tp) = &dr.traffic_policy else {
                continue;
            };
            if let Some(mode) = unverified(tp.tls.as_ref(), dr) {
                out.push(Message::new(
                    Code::NoServerCertificateVerificationDestinationLevel,
                    &r.into(),
                    "spec.trafficPolicy.tls.caCertificates",
                    format!(
                        "DestinationRule {}/{} uses TLS mode {mode} for {:?} without caCertificates; \
                         the server's certificate is not verified",
                        r.namespace(),
                        r.name(),
                        dr.host
                    ),
                ));
            }
            for (i, p) in tp.port_level_settings.iter().enumerate() {
                let Some(mode) = unverified(p.tls.as_ref(), dr) else {
                    continue;
                };
                let port = p.port.as_ref().map_or(0, |p| p.number);
                out.push(Message::new(
                    Code::NoServerCertificateVerificationPortLevel,
                    &r.into(),
                    &format!("spec.trafficPolicy.portLevelSettings[{i}].tls.caCertificates"),
                    format!(
                        "DestinationRule {}/{} uses TLS mode {mode} for {:?} port {port} without \
                         caCertificates; the server's certificate is not verified",
                        r.namespace(),
                        r.name(),
                        dr.host
                    ),
                ));
            }
        }
    }
}

pub struct PodNotSelected;

const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A pod's labels plus the topology labels Istio gives its endpoints: region, zone and subzone
/// from its node (a subzone only under a zone), and the node's name.
fn endpoint_labels(
    labels: &BTreeMap<String, String>,
    node: Option<&str>,
    nodes: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    let Some(node) = node.filter(|n| !n.is_empty()) else {
        return out;
    };
    if let Some(nl) = nodes.get(node) {
        let get = |k: &str| nl.get(k).map_or("", String::as_str);
        let (region, zone, subzone) = (get(REGION_LABEL), get(ZONE_LABEL), get(SUBZONE_LABEL));
        let subzone = if zone.is_empty() { "" } else { subzone };
        for (k, v) in [
            (REGION_LABEL, region),
            (ZONE_LABEL, zone),
            (SUBZONE_LABEL, subzone),
        ] {
            if !v.is_empty() {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out.insert(HOSTNAME_LABEL.to_string(), node.to_string());
    out
}

impl Analyzer for PodNotSelected {
    fn name(&self) -> &'static str {
        "destinationrule.SubsetSelectPodAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let services = ServiceHosts::new(cx);
        let nodes: BTreeMap<&str, &BTreeMap<String, String>> = cx
            .others_of_kind("", "Node")
            .map(|o| (o.meta.name.as_str(), &o.meta.labels))
            .collect();
        let pods: Vec<BTreeMap<String, String>> = pods(cx)
            .iter()
            .map(|p| endpoint_labels(&p.labels, p.node_name, &nodes))
            .collect();
        for (r, dr) in cx.destination_rules() {
            let Some(svc) = services.lookup(r.namespace(), &dr.export_to, &dr.host) else {
                out.push(Message::new(
                    Code::UnknownDestinationRuleHost,
                    &r.into(),
                    "spec.host",
                    format!(
                        "no Service or ServiceEntry provides host {:?} to this DestinationRule",
                        dr.host
                    ),
                ));
                continue;
            };
            let mut seen = BTreeSet::new();
            for (i, subset) in dr.subsets.iter().enumerate() {
                // Subsets are known by name: a repeated name is reported once.
                if !seen.insert(subset.name.as_str()) {
                    continue;
                }
                let mut selector = svc.workload_selector.cloned().unwrap_or_default();
                selector.extend(subset.labels.clone());
                if !pods.iter().any(|p| labels_match(&selector, p)) {
                    out.push(Message::new(
                        Code::DestinationRuleSubsetNotSelectPods,
                        &r.into(),
                        &format!("spec.subsets[{i}]"),
                        format!("subset {:?} selects no pod", subset.name),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::virtualservice::tests::run;

    fn dr(name: &str, body: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{body}\n"
        )
    }

    fn msg(code: &str, name: &str) -> (String, String) {
        (code.to_string(), format!("DestinationRule default/{name}"))
    }

    #[test]
    fn tls_without_ca_is_reported_per_level() {
        let yaml = [
            dr("a", "  host: db\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n    portLevelSettings:\n    - port: {number: 5432}\n      tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}"),
            // Verified, not originated by the rule, or given a CA through a gateway's credential.
            dr("b", "  host: db\n  trafficPolicy:\n    tls: {mode: SIMPLE, caCertificates: /ca}"),
            dr("c", "  host: db\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}"),
            dr("d", "  host: db\n  workloadSelector: {matchLabels: {app: gw}}\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: cred}"),
            // A credential without a workload selector does not count.
            dr("e", "  host: db\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 1}\n      tls: {mode: SIMPLE, credentialName: cred}"),
        ]
        .concat();
        assert_eq!(
            run(&CaCertificate, &yaml),
            vec![
                msg("IST0128", "a"),
                msg("IST0129", "a"),
                msg("IST0129", "e"),
            ]
        );
    }

    const WORKLOADS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80, name: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web, version: v1}}
spec:
  nodeName: n1
  containers: [{name: web, image: web}]
---
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels: {topology.kubernetes.io/region: eu, topology.istio.io/subzone: rack1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
  resolution: STATIC
"#;

    #[test]
    fn subsets_must_select_a_pod() {
        let yaml = [
            WORKLOADS,
            &dr("web", "  host: web\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: eu, labels: {topology.kubernetes.io/region: eu}}\n  - {name: node, labels: {kubernetes.io/hostname: n1}}\n  - {name: v2, labels: {version: v2}}\n  - {name: rack, labels: {topology.istio.io/subzone: rack1}}"),
            // The ServiceEntry's selector narrows its subsets: version v1 pods are not `app: vm`.
            &dr("vm", "  host: vm.internal\n  subsets:\n  - {name: v1, labels: {version: v1}}"),
            // The ingress pod istioctl assumes can be selected.
            &dr("ingress", "  host: istio-ingressgateway.istio-system.svc.cluster.local\n  subsets:\n  - {name: gw, labels: {istio: ingressgateway}}"),
            &dr("nohost", "  host: nothing.default.svc.cluster.local"),
        ]
        .concat();
        assert_eq!(
            run(&PodNotSelected, &yaml),
            vec![
                msg("IST0173", "vm"),
                // A subzone without a zone is not part of the locality.
                msg("IST0173", "web"),
                msg("IST0173", "web"),
                msg("IST0174", "nohost"),
            ]
        );
    }
}
