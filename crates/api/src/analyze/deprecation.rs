//! `deprecation.DeprecationAnalyzer`: deprecated fields still in use (IST0002): a
//! VirtualService fault delay's `percent` (replaced by `percentage`), a Sidecar's
//! `outboundTrafficPolicy.egressProxy` (ignored), and custom resource definitions of kinds Istio
//! removed.

use serde_json::Value;

use super::{Analyzer, Code, Context, Message, Object};

/// The analyzers of this family.
pub const ALL: &[&dyn Analyzer] = &[&DeprecatedFields];

pub struct DeprecatedFields;

/// Kinds of `rbac.istio.io` whose definitions Istio no longer ships.
const REMOVED_KINDS: [(&str, &str); 4] = [
    ("rbac.istio.io", "ClusterRbacConfig"),
    ("rbac.istio.io", "RbacConfig"),
    ("rbac.istio.io", "ServiceRole"),
    ("rbac.istio.io", "ServiceRoleBinding"),
];

impl Analyzer for DeprecatedFields {
    fn name(&self) -> &'static str {
        "deprecation.DeprecationAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, vs) in cx.virtual_services() {
            for (i, http) in vs.http.iter().enumerate() {
                let delay = http.fault.as_ref().and_then(|f| f.delay.as_ref());
                if delay.is_some_and(|d| d.percent > 0) {
                    out.push(Message::new(
                        Code::Deprecated,
                        &r.into(),
                        &format!("spec.http[{i}].fault.delay.percent"),
                        "HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage",
                    ));
                }
            }
        }
        for (r, sc) in cx.sidecars() {
            let proxy = sc
                .outbound_traffic_policy
                .as_ref()
                .and_then(|p| p.egress_proxy.as_ref());
            if proxy.is_some() {
                out.push(Message::new(
                    Code::Deprecated,
                    &r.into(),
                    "spec.outboundTrafficPolicy.egressProxy",
                    "OutboundTrafficPolicy.EgressProxy is ignored",
                ));
            }
        }
        for o in cx.others_of_kind("apiextensions.k8s.io", "CustomResourceDefinition") {
            let group = o.value.pointer("/spec/group").and_then(Value::as_str);
            let kind = o.value.pointer("/spec/names/kind").and_then(Value::as_str);
            if let (Some(group), Some(kind)) = (group, kind) {
                if REMOVED_KINDS.contains(&(group, kind)) {
                    out.push(Message::new(
                        Code::Deprecated,
                        &Object::Other(o),
                        "spec",
                        format!("custom resource type {group} {kind} is removed"),
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

    #[test]
    fn deprecated_fields_and_removed_kinds() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: old, namespace: default}
spec:
  hosts: [a]
  http:
  - fault: {delay: {percent: 10, fixedDelay: 1s}}
    route: [{destination: {host: a}}]
  - fault: {delay: {percentage: {value: 10}, fixedDelay: 1s}}
    route: [{destination: {host: a}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sc, namespace: default}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: serviceroles.rbac.istio.io}
spec:
  group: rbac.istio.io
  names: {kind: ServiceRole}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: virtualservices.networking.istio.io}
spec:
  group: networking.istio.io
  names: {kind: VirtualService}
"#;
        let got = run(&DeprecatedFields, yaml);
        assert_eq!(
            got,
            vec![
                (
                    "IST0002".to_string(),
                    "CustomResourceDefinition default/serviceroles.rbac.istio.io".to_string()
                ),
                (
                    "IST0002".to_string(),
                    "VirtualService default/old".to_string()
                ),
            ]
        );
    }
}
