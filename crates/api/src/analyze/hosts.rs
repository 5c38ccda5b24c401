//! Service and host lookups shared by analyzers, with istioctl's semantics: short names resolved
//! in a namespace, `<name>.<namespace>.svc.cluster.local` FQDNs, ServiceEntry and Service hosts
//! scoped by their `exportTo`, and Istio's wildcard host matching.
//!
//! It also models the ingress gateway istioctl assumes when it analyzes files only (a Service
//! and a Pod in `istio-system`, unless the mesh turns the ingress controller off), so that
//! references to it are not reported as missing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::Context;
use crate::types::mesh::IngressControllerMode;

/// The Kubernetes DNS suffix of services.
pub const SERVICE_DOMAIN: &str = "svc.cluster.local";
/// The namespace istioctl assumes the control plane (and its default ingress) runs in.
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// `exportTo` value meaning every namespace.
pub const EXPORT_ALL: &str = "*";
/// `exportTo` value meaning the resource's own namespace.
pub const EXPORT_LOCAL: &str = ".";
/// The reserved gateway name for sidecars.
pub const MESH_GATEWAY: &str = "mesh";

/// `host` as an FQDN: short names (no dot, not a wildcard) get `.<namespace>.svc.cluster.local`.
pub fn to_fqdn(namespace: &str, host: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_string()
    } else {
        format!("{host}.{namespace}.{SERVICE_DOMAIN}")
    }
}

/// `(name, namespace)` of a `<name>.<namespace>.svc.cluster.local` host; the namespace is the
/// last label before the suffix.
pub fn split_service_fqdn(host: &str) -> Option<(&str, &str)> {
    let rest = host.strip_suffix(SERVICE_DOMAIN)?.strip_suffix('.')?;
    let (name, ns) = rest.rsplit_once('.')?;
    (!name.is_empty() && !ns.is_empty()).then_some((name, ns))
}

/// The `(namespace, name)` a destination host designates: from its FQDN, or the short name in
/// `default_ns` (anything else, e.g. `reviews.other`, stays a name in `default_ns`).
pub fn resource_name_of_host<'h>(default_ns: &'h str, host: &'h str) -> (&'h str, &'h str) {
    match split_service_fqdn(host) {
        Some((name, ns)) => (ns, name),
        None => (default_ns, host),
    }
}

/// Istio's host matching: equal names, or a `*` wildcard on either side covering the other
/// (two wildcards match when one's suffix ends the other's).
pub fn host_matches(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if a.len() < b.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether an `exportTo` list makes a resource visible everywhere (empty, or containing `*`).
pub fn exports_to_all(export_to: &[String]) -> bool {
    export_to.is_empty() || export_to.iter().any(|e| e == EXPORT_ALL)
}

/// What analyzers need to know of a service found by host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceInfo<'a> {
    pub ports: Vec<u32>,
    /// A ServiceEntry's workload selector (Kubernetes Services carry none here, as in Istio).
    pub workload_selector: Option<&'a BTreeMap<String, String>>,
}

/// Every ServiceEntry host and Kubernetes Service, keyed by `(scope, fqdn)` where scope is a
/// namespace the host is visible from or `*`.
#[derive(Debug, Default)]
pub struct ServiceHosts<'a> {
    services: Vec<ServiceInfo<'a>>,
    by_scope: BTreeMap<(String, String), usize>,
}

impl<'a> ServiceHosts<'a> {
    pub fn new(cx: &Context<'a>) -> Self {
        let mut s = ServiceHosts::default();
        if let Some(ingress) = ImplicitIngress::of(cx) {
            let i = s.push(ServiceInfo {
                ports: IMPLICIT_INGRESS_PORTS.to_vec(),
                workload_selector: None,
            });
            s.insert(EXPORT_ALL, ISTIO_NAMESPACE, ingress.service, i);
        }
        for (r, se) in cx.service_entries() {
            let ns = r.namespace();
            let i = s.push(ServiceInfo {
                ports: se.ports.iter().map(|p| p.number).collect(),
                workload_selector: se.workload_selector.as_ref().map(|w| &w.labels),
            });
            let scopes: Vec<&str> = if exports_to_all(&se.export_to) {
                vec![EXPORT_ALL]
            } else {
                se.export_to
                    .iter()
                    .map(|e| if e == EXPORT_LOCAL { ns } else { e.as_str() })
                    .collect()
            };
            for h in &se.hosts {
                for scope in &scopes {
                    s.insert(scope, ns, h, i);
                }
            }
        }
        for (r, svc) in cx.services() {
            let ns = r.namespace();
            let i = s.push(ServiceInfo {
                ports: svc
                    .spec
                    .ports
                    .iter()
                    .filter_map(|p| u32::try_from(p.port).ok())
                    .collect(),
                workload_selector: None,
            });
            let scopes: Vec<&str> = match r.meta.annotations.get("networking.istio.io/exportTo") {
                Some(a) if !a.is_empty() => a
                    .split(',')
                    .map(str::trim)
                    .map(|e| if e == EXPORT_LOCAL { ns } else { e })
                    .collect(),
                _ => vec![EXPORT_ALL],
            };
            for scope in scopes {
                s.insert(scope, ns, r.name(), i);
            }
        }
        s
    }

    fn push(&mut self, info: ServiceInfo<'a>) -> usize {
        self.services.push(info);
        self.services.len() - 1
    }

    /// Later definitions of the same scoped host replace earlier ones, as in Istio.
    fn insert(&mut self, scope: &str, ns: &str, host: &str, i: usize) {
        self.by_scope
            .insert((scope.to_string(), to_fqdn(ns, host)), i);
    }

    fn get(&self, scope: &str, ns: &str, host: &str) -> Option<&ServiceInfo<'a>> {
        self.by_scope
            .get(&(scope.to_string(), to_fqdn(ns, host)))
            .map(|&i| &self.services[i])
    }

    /// The service `host` designates for a resource in `source_ns` with `export_to`: one visible
    /// everywhere, then one visible in the namespaces the resource is exported to, then a
    /// wildcard ServiceEntry host covering it that is visible everywhere or in `source_ns`.
    pub fn lookup(
        &self,
        source_ns: &str,
        export_to: &[String],
        host: &str,
    ) -> Option<&ServiceInfo<'a>> {
        if let Some(s) = self.get(EXPORT_ALL, source_ns, host) {
            return Some(s);
        }
        if export_to.is_empty() {
            if let Some(s) = self.get(source_ns, source_ns, host) {
                return Some(s);
            }
        } else {
            for e in export_to {
                let scope = if e == EXPORT_LOCAL { source_ns } else { e };
                if let Some(s) = self.get(scope, source_ns, host) {
                    return Some(s);
                }
            }
        }
        let bare = host.strip_prefix('*').unwrap_or(host);
        self.by_scope
            .iter()
            .find(|((scope, fqdn), _)| {
                (scope == EXPORT_ALL || scope == source_ns)
                    && fqdn
                        .strip_prefix('*')
                        .is_some_and(|suffix| bare.ends_with(suffix))
            })
            .map(|(_, &i)| &self.services[i])
    }
}

/// Ports of the ingress Service istioctl assumes.
pub const IMPLICIT_INGRESS_PORTS: [u32; 4] = [80, 443, 31400, 15443];

/// The ingress gateway istioctl adds to a files-only analysis: Service `<ingressService>` and Pod
/// `<ingressService>-dummypod` labelled `istio: ingressgateway`, both in `istio-system`.
#[derive(Debug, Clone, Copy)]
pub struct ImplicitIngress<'a> {
    pub service: &'a str,
}

impl<'a> ImplicitIngress<'a> {
    /// The labels of istioctl's stand-in pod, which its Service also selects.
    pub fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())])
    }

    /// The stand-in pod's name, `<ingressService>-dummypod`.
    pub fn pod_name(&self) -> String {
        format!("{}-dummypod", self.service)
    }

    /// None when the mesh config turns the ingress controller off.
    pub fn of(cx: &Context<'a>) -> Option<Self> {
        (cx.mesh.ingress_controller_mode() != IngressControllerMode::Off).then(|| ImplicitIngress {
            service: cx.mesh.ingress_service(),
        })
    }
}

/// A pod as analyzers that select workloads see it: declared Pods, Deployments' pod templates,
/// and the implicit ingress pod.
#[derive(Debug, Clone)]
pub struct PodView<'a> {
    pub name: Cow<'a, str>,
    pub namespace: &'a str,
    pub labels: Cow<'a, BTreeMap<String, String>>,
    pub node_name: Option<&'a str>,
}

/// Every pod of the analysis, the implicit ingress pod (if any) last.
pub fn pods<'a>(cx: &Context<'a>) -> Vec<PodView<'a>> {
    let mut v: Vec<PodView<'a>> = cx
        .pods()
        .map(|(r, p)| PodView {
            name: Cow::Borrowed(r.name()),
            namespace: r.namespace(),
            labels: Cow::Borrowed(&r.meta.labels),
            node_name: p.spec.node_name.as_deref(),
        })
        .collect();
    // In Bowline a Deployment describes a workload on its own (the local mesh runs its pod
    // template), so its template counts as a pod even when no Pod object is given.
    v.extend(
        cx.of_kind(crate::resource::Kind::Deployment)
            .filter_map(|r| match &r.spec {
                crate::resource::Spec::Deployment(d) => Some(PodView {
                    name: Cow::Borrowed(r.name()),
                    namespace: r.namespace(),
                    labels: Cow::Borrowed(&d.spec.template.metadata.labels),
                    node_name: d.spec.template.spec.node_name.as_deref(),
                }),
                _ => None,
            }),
    );
    if let Some(ingress) = ImplicitIngress::of(cx) {
        v.push(PodView {
            name: Cow::Owned(ingress.pod_name()),
            namespace: ISTIO_NAMESPACE,
            labels: Cow::Owned(ImplicitIngress::labels()),
            node_name: None,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_of_short_names_only() {
        assert_eq!(to_fqdn("ns", "a"), "a.ns.svc.cluster.local");
        assert_eq!(to_fqdn("ns", "a.b"), "a.b");
        assert_eq!(to_fqdn("ns", "*"), "*");
        assert_eq!(to_fqdn("ns", ""), ".ns.svc.cluster.local");
    }

    #[test]
    fn service_fqdn_split() {
        assert_eq!(
            split_service_fqdn("a.b.svc.cluster.local"),
            Some(("a", "b"))
        );
        assert_eq!(
            split_service_fqdn("x.a.b.svc.cluster.local"),
            Some(("x.a", "b"))
        );
        assert_eq!(split_service_fqdn("b.svc.cluster.local"), None);
        assert_eq!(split_service_fqdn("a.b.example.com"), None);
        assert_eq!(resource_name_of_host("d", "r"), ("d", "r"));
        assert_eq!(resource_name_of_host("d", "r.o"), ("d", "r.o"));
    }

    #[test]
    fn wildcard_matching() {
        assert!(host_matches("*.a.com", "b.a.com"));
        assert!(host_matches("b.a.com", "*.a.com"));
        assert!(host_matches("*.com", "*.a.com"));
        assert!(host_matches("*", "anything"));
        assert!(!host_matches("a.com", "b.com"));
        assert!(!host_matches("*.a.com", "a.com"));
    }
}
