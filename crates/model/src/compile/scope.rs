//! Sidecar resource scoping: which services a sidecar's config includes, and its outbound
//! traffic policy, from the Sidecar resource that applies to the proxy.
//!
//! Istio picks one Sidecar per workload: one in the proxy's namespace whose `workloadSelector`
//! matches its labels, else the namespace's Sidecar without a selector, else the one without a
//! selector in the mesh's root namespace (`istio-system` by default). Its egress listeners'
//! `hosts` (`namespace/dnsName`; namespace `*` any, `.` the proxy's own, `~` none; dnsName
//! exact, `*` or `*.suffix`) say which services the proxy sees; no Sidecar means every
//! exported service. Its `outboundTrafficPolicy` overrides the mesh's.
//!
//! Per-port egress listeners and `bind` addresses are not compiled yet: every egress
//! listener's hosts widen the one set of visible services.

use std::sync::Arc;

use api::types::mesh::OutboundTrafficPolicyMode;
use api::types::{OutboundMode, Sidecar};
use api::{Resource, Spec};

use super::{labels_match, Cx};
use crate::registry::Service;

/// The Sidecar resource in force for one proxy.
pub(super) struct Scope<'a> {
    resource: &'a Resource,
    sidecar: &'a Sidecar,
}

impl<'a> Scope<'a> {
    /// The Sidecar that applies to the proxy, if any.
    pub(super) fn of(cx: &Cx<'a>) -> Option<Scope<'a>> {
        let ns = cx.proxy.namespace.as_str();
        let root = cx.mesh.root_namespace();
        let sidecars = || {
            cx.resources.iter().filter_map(|r| match &r.spec {
                Spec::Sidecar(s) => Some(Scope {
                    resource: r,
                    sidecar: s.as_ref(),
                }),
                _ => None,
            })
        };
        let selected = sidecars().find(|s| {
            s.resource.namespace() == ns
                && s.sidecar
                    .workload_selector
                    .as_ref()
                    .is_some_and(|sel| labels_match(&sel.labels, &cx.proxy.labels))
        });
        selected
            .or_else(|| {
                sidecars()
                    .find(|s| s.resource.namespace() == ns && s.sidecar.workload_selector.is_none())
            })
            .or_else(|| {
                sidecars().find(|s| {
                    s.resource.namespace() == root && s.sidecar.workload_selector.is_none()
                })
            })
    }

    /// Whether the egress hosts let a proxy in `proxy_ns` see `service`.
    pub(super) fn sees(&self, service: &Service, proxy_ns: &str) -> bool {
        let hosts = self.sidecar.egress.iter().flat_map(|e| e.hosts.iter());
        hosts.into_iter().any(|h| {
            let Some((ns, name)) = h.split_once('/') else {
                return false;
            };
            let ns_ok = match ns {
                "*" => true,
                "~" => false,
                "." => service.namespace == proxy_ns,
                other => service.namespace == other,
            };
            ns_ok && host_matches(name, &service.hostname)
        })
    }

    /// The outbound traffic policy: the Sidecar's when it sets one, else the mesh's.
    pub(super) fn outbound_policy(
        scope: Option<&Scope<'_>>,
        mesh: OutboundTrafficPolicyMode,
    ) -> OutboundTrafficPolicyMode {
        match scope.and_then(|s| s.sidecar.outbound_traffic_policy.as_ref()) {
            Some(p) => match p.mode {
                OutboundMode::RegistryOnly => OutboundTrafficPolicyMode::RegistryOnly,
                OutboundMode::AllowAny => OutboundTrafficPolicyMode::AllowAny,
            },
            None => mesh,
        }
    }
}

/// An egress dnsName against a service hostname: `*`, `*.suffix` or exact.
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => pattern == host,
    }
}

/// The services a sidecar's outbound config covers: the visible ones, narrowed by its Sidecar.
/// Shared with the registry: the compile needs them while it changes its context.
pub(super) fn visible_services(cx: &Cx<'_>, ns: &str) -> Vec<Arc<Service>> {
    let scope = Scope::of(cx);
    cx.registry
        .visible_shared(ns)
        .into_iter()
        .filter(|s| scope.as_ref().is_none_or(|sc| sc.sees(s, ns)))
        .cloned()
        .collect()
}

/// The proxy's outbound traffic policy (for the passthrough of unknown destinations).
pub(super) fn outbound_policy(cx: &Cx<'_>) -> OutboundTrafficPolicyMode {
    Scope::outbound_policy(Scope::of(cx).as_ref(), cx.mesh.outbound_policy())
}

#[cfg(test)]
mod tests {
    use super::host_matches;
    use crate::compile::{compile, ProxyIdentity, Role};
    use crate::registry::tests::resources;
    use api::types::mesh::MeshConfig;

    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: other}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system}
spec:
  ports: [{name: http-monitoring, port: 15014}]
"#;

    fn hosts(extra: &str, labels: &[(&str, &str)]) -> Vec<String> {
        let rs = resources(&format!("{MESH}\n---\n{extra}"));
        let mut p = ProxyIdentity::new(Role::Sidecar, "shop");
        for (k, v) in labels {
            p.labels.insert(k.to_string(), v.to_string());
        }
        let c = compile(&rs, &MeshConfig::istio_default(), &p).unwrap();
        let mut out: Vec<String> = c
            .snapshot
            .clusters
            .iter()
            .map(|c| c.name.rsplit('|').next().unwrap_or_default().to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_workloads_sidecar_overrides_the_mesh_outbound_policy() {
        let fallback = |yaml: &str| {
            let rs = resources(&format!("{MESH}\n---\n{yaml}"));
            let mut p = ProxyIdentity::new(Role::Sidecar, "shop");
            p.labels.insert("app".into(), "web".into());
            p.capture = true;
            let c = compile(&rs, &MeshConfig::istio_default(), &p).unwrap();
            c.snapshot
                .listeners
                .iter()
                .find_map(|l| match &l.kind {
                    crate::ListenerKind::OutboundCapture { fallback, .. } => {
                        Some(fallback[0].cluster.clone())
                    }
                    _ => None,
                })
                .unwrap()
        };
        // Istio's mesh default is ALLOW_ANY; the workload's Sidecar says REGISTRY_ONLY.
        assert_eq!(fallback(""), crate::compile::PASSTHROUGH_CLUSTER);
        let sidecar = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: web, namespace: shop}\nspec:\n  workloadSelector: {labels: {app: web}}\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";
        assert_eq!(fallback(sidecar), crate::compile::BLACKHOLE_CLUSTER);
    }

    #[test]
    fn a_sidecar_narrows_the_dns_name_table_too() {
        let names = |extra: &str| {
            let rs = resources(&format!("{MESH}\n---\n{extra}"));
            let p = ProxyIdentity::new(Role::Sidecar, "shop");
            let c = compile(&rs, &MeshConfig::istio_default(), &p).unwrap();
            c.snapshot
                .dns
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
        };
        let all = names("");
        assert!(all.contains(&"api.other".to_string()), "{all:?}");
        assert!(all.contains(&"web".to_string()), "{all:?}");
        let own = names("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec:\n  egress:\n  - hosts: [\"./*\"]\n");
        assert!(own.contains(&"web".to_string()), "{own:?}");
        assert!(
            own.iter()
                .all(|n| !n.contains("other") && !n.contains("istio-system")),
            "{own:?}"
        );
    }

    #[test]
    fn a_sidecar_narrows_what_the_proxy_sees() {
        let all = hosts("", &[]);
        assert_eq!(all.len(), 3, "{all:?}");
        let ns_default = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
"#;
        assert_eq!(
            hosts(ns_default, &[]),
            [
                "istiod.istio-system.svc.cluster.local",
                "web.shop.svc.cluster.local"
            ]
        );
        // A workload's own Sidecar beats the namespace's.
        let selected = format!(
            "{ns_default}---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: w, namespace: shop}}\nspec:\n  workloadSelector: {{labels: {{app: web}}}}\n  egress:\n  - hosts: [\"other/api.other.svc.cluster.local\"]\n"
        );
        assert_eq!(
            hosts(&selected, &[("app", "web")]),
            ["api.other.svc.cluster.local"]
        );
        assert_eq!(hosts(&selected, &[("app", "db")]).len(), 2);
        // The root namespace's Sidecar is the mesh-wide default.
        let root = ns_default.replace("namespace: shop", "namespace: istio-system");
        assert_eq!(
            hosts(&root, &[]),
            [
                "istiod.istio-system.svc.cluster.local",
                "web.shop.svc.cluster.local"
            ],
            "`.` is the proxy's namespace, not the Sidecar's"
        );
    }

    #[test]
    fn egress_host_patterns() {
        assert!(host_matches("*", "a.b"));
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches(
            "reviews.default.svc.cluster.local",
            "reviews.default.svc.cluster.local"
        ));
        assert!(!host_matches(
            "reviews.default.svc.cluster.local",
            "ratings.default.svc.cluster.local"
        ));
    }
}
