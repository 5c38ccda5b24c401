//! Workload selection as Istio's analyzers see it: the pods given, plus the stand-in ingress
//! gateway that `istioctl analyze` assumes when it reads files only, the Services in front of
//! them, label selectors written as Kubernetes prints them, and which namespaces and pods are
//! ambient, sidecar-injected or the mesh's root.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::context::labels_match;
use super::hosts::ImplicitIngress;
use super::{Code, Context, Message};
use crate::resource::{Kind, Resource, Spec};
use crate::types::k8s::IntOrString;

/// Namespace of the stand-in ingress gateway (istioctl's default `--istioNamespace`).
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// A pod a selector can match: one given in the input, or the stand-in ingress gateway.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub labels: Cow<'a, BTreeMap<String, String>>,
    pub annotations: Cow<'a, BTreeMap<String, String>>,
    /// The Pod resource; `None` for the stand-in.
    pub pod: Option<&'a Resource>,
}

/// One TCP port of a Service: the port and, when numeric, the container port it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePortMap {
    pub port: i64,
    pub target_port: Option<i64>,
}

/// A Service as far as gateway port checks need it.
#[derive(Debug, Clone)]
pub struct WorkloadService<'a> {
    pub namespace: Cow<'a, str>,
    pub selector: Cow<'a, BTreeMap<String, String>>,
    pub tcp_ports: Vec<ServicePortMap>,
}

/// Every pod of the input, then the stand-in ingress gateway when there is one (istioctl adds it
/// unless the mesh turns the ingress controller off, so that file-only analysis does not flag
/// every Gateway that selects the default `istio: ingressgateway`; see [`ImplicitIngress`]).
pub fn workloads<'a>(cx: &Context<'a>) -> Vec<Workload<'a>> {
    let mut v: Vec<Workload<'a>> = cx
        .of_kind(Kind::Pod)
        .map(|p| Workload {
            namespace: Cow::Borrowed(p.namespace()),
            name: Cow::Borrowed(p.name()),
            labels: Cow::Borrowed(&p.meta.labels),
            annotations: Cow::Borrowed(&p.meta.annotations),
            pod: Some(p),
        })
        .collect();
    if let Some(ingress) = ImplicitIngress::of(cx) {
        v.push(Workload {
            namespace: Cow::Borrowed(ISTIO_NAMESPACE),
            name: Cow::Owned(ingress.pod_name()),
            labels: Cow::Owned(ImplicitIngress::labels()),
            annotations: Cow::Owned(BTreeMap::new()),
            pod: None,
        });
    }
    v
}

/// Every Service of the input with its TCP ports, then the stand-in ingress gateway's.
/// A port without `protocol` is TCP, as the API server defaults it.
pub fn workload_services<'a>(cx: &Context<'a>) -> Vec<WorkloadService<'a>> {
    let mut v: Vec<WorkloadService<'a>> = cx
        .services()
        .map(|(r, s)| WorkloadService {
            namespace: Cow::Borrowed(r.namespace()),
            selector: Cow::Borrowed(&s.spec.selector),
            tcp_ports: s
                .spec
                .ports
                .iter()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .map(|p| ServicePortMap {
                    port: p.port,
                    target_port: match &p.target_port {
                        Some(IntOrString::Int(n)) if *n != 0 => Some(*n),
                        Some(IntOrString::String(s)) => s.parse().ok().filter(|n| *n != 0),
                        _ => None,
                    },
                })
                .collect(),
        })
        .collect();
    if ImplicitIngress::of(cx).is_some() {
        v.push(WorkloadService {
            namespace: Cow::Borrowed(ISTIO_NAMESPACE),
            selector: Cow::Owned(ImplicitIngress::labels()),
            tcp_ports: crate::analyze::hosts::IMPLICIT_INGRESS_PORTS
                .iter()
                .map(|&p| ServicePortMap {
                    port: i64::from(p),
                    target_port: Some(i64::from(p)),
                })
                .collect(),
        });
    }
    v
}

/// A selector as Kubernetes prints it: `key=value` pairs sorted by key, comma-separated; empty
/// for the empty selector (which matches everything).
pub fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The path of a selector's first label inside `base` (e.g. `spec.selector.istio`), where Istio
/// points its "selector matches nothing" messages; `base` itself when the selector is empty.
pub fn first_label_path(base: &str, selector: &BTreeMap<String, String>) -> String {
    match selector.keys().next() {
        Some(k) => format!("{base}.{k}"),
        None => base.to_string(),
    }
}

/// Policies (Sidecars, Telemetries...) grouped by the pod their selector picks, keyed by
/// (namespace, pod name). A selector that picks no pod of its policy's namespace is reported as
/// IST0101 at `labels_path` (the selector's labels field).
pub fn group_by_selected_pod<'w, 'a>(
    workloads: &'w [Workload<'a>],
    policies: impl IntoIterator<Item = (&'a Resource, &'a BTreeMap<String, String>)>,
    labels_path: &str,
    out: &mut Vec<Message>,
) -> BTreeMap<(String, String), (&'w Workload<'a>, Vec<&'a Resource>)> {
    let mut by_pod: BTreeMap<(String, String), (&'w Workload<'a>, Vec<&'a Resource>)> =
        BTreeMap::new();
    for (r, selector) in policies {
        let mut found = false;
        for w in matching_in(workloads, r.namespace(), selector) {
            found = true;
            by_pod
                .entry((w.namespace.to_string(), w.name.to_string()))
                .or_insert_with(|| (w, Vec::new()))
                .1
                .push(r);
        }
        if !found {
            out.push(Message::new(
                Code::ReferencedResourceNotFound,
                &r.into(),
                &first_label_path(labels_path, selector),
                format!(
                    "Referenced selector not found: {:?} (no pod in namespace {} has these labels)",
                    selector_string(selector),
                    r.namespace()
                ),
            ));
        }
    }
    by_pod
}

/// Workloads in `namespace` that `selector` matches.
pub fn matching_in<'w, 'a>(
    workloads: &'w [Workload<'a>],
    namespace: &'w str,
    selector: &'w BTreeMap<String, String>,
) -> impl Iterator<Item = &'w Workload<'a>> + 'w {
    workloads
        .iter()
        .filter(move |w| w.namespace == namespace && labels_match(selector, &w.labels))
}

/// The Namespace object named `name`, when the input declares one.
pub fn namespace_object<'a>(cx: &Context<'a>, name: &str) -> Option<&'a Resource> {
    cx.of_kind(Kind::Namespace).find(|r| r.meta.name == name)
}

/// Whether `namespace` is the mesh's root namespace (policies there apply mesh-wide).
pub fn is_root_namespace(cx: &Context<'_>, namespace: &str) -> bool {
    namespace == cx.mesh.root_namespace()
}

/// Whether the workload's traffic is redirected to ztunnel (ambient mode).
pub fn in_ambient_mode(w: &Workload<'_>) -> bool {
    w.annotations
        .get("ambient.istio.io/redirection")
        .is_some_and(|v| v == "enabled")
}

/// Whether a declared namespace enrolls its pods in ambient mode. Sidecar injection (by
/// `istio-injection=enabled` or a revision label) takes precedence over the ambient label.
pub fn namespace_in_ambient_mode(ns: Option<&Resource>) -> bool {
    let Some(ns) = ns else { return false };
    let labels = &ns.meta.labels;
    if labels
        .get("istio-injection")
        .is_some_and(|v| v == "enabled")
    {
        return false;
    }
    if labels.get("istio.io/rev").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    labels
        .get("istio.io/dataplane-mode")
        .is_some_and(|v| v == "ambient")
}

/// Whether a workload runs a sidecar: it has an `istio-proxy` container with an image, or else
/// its `sidecar.istio.io/inject` label, else that annotation, else its namespace's
/// `istio-injection` label decides.
pub fn has_sidecar(cx: &Context<'_>, w: &Workload<'_>) -> bool {
    if let Some(Spec::Pod(p)) = w.pod.map(|r| &r.spec) {
        let proxy = p
            .spec
            .containers
            .iter()
            .chain(&p.spec.init_containers)
            .find(|c| c.name == "istio-proxy");
        if proxy.is_some_and(|c| c.image.as_deref().is_some_and(|i| !i.is_empty())) {
            return true;
        }
    }
    const INJECT: &str = "sidecar.istio.io/inject";
    if let Some(v) = w.labels.get(INJECT).or_else(|| w.annotations.get(INJECT)) {
        return v == "true";
    }
    namespace_object(cx, &w.namespace).is_some_and(|ns| {
        ns.meta
            .labels
            .get("istio-injection")
            .is_some_and(|v| v == "enabled")
    })
}

/// Test support: run one analyzer over YAML documents.
#[cfg(test)]
pub(crate) mod testing {
    use super::super::{Analyzer, Context};
    use crate::resource::Decoded;
    use crate::types::mesh::MeshConfig;

    /// `(code, origin)` of each message `a` reports on `yaml`, sorted, under `mesh`.
    pub fn run_with(a: &dyn Analyzer, yaml: &str, mesh: &MeshConfig) -> Vec<(String, String)> {
        let mut resources = Vec::new();
        let mut others = Vec::new();
        for d in crate::load_str("test.yaml", yaml) {
            match d {
                Decoded::Resource(r) => resources.push(*r),
                Decoded::Other(o) => others.push(*o),
                Decoded::Invalid(p) => panic!("test input does not decode: {p:?}"),
            }
        }
        let cx = Context::new(resources.iter().collect(), others.iter().collect(), mesh);
        let mut out = Vec::new();
        a.analyze(&cx, &mut out);
        let mut v: Vec<(String, String)> = out
            .into_iter()
            .map(|m| (m.code.to_string(), m.origin))
            .collect();
        v.sort();
        v
    }

    /// As [`run_with`], under the default mesh config.
    pub fn run(a: &dyn Analyzer, yaml: &str) -> Vec<(String, String)> {
        run_with(a, yaml, &MeshConfig::default())
    }

    /// Shorthand for an expected `(code, origin)`.
    pub fn m(code: &str, origin: &str) -> (String, String) {
        (code.to_string(), origin.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::mesh::IngressControllerMode;
    use crate::types::mesh::MeshConfig;

    fn load(yaml: &str) -> Vec<Resource> {
        crate::load_str("t.yaml", yaml)
            .into_iter()
            .filter_map(|d| match d {
                crate::resource::Decoded::Resource(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn selector_strings_sort_keys() {
        let s = BTreeMap::from([
            ("istio".to_string(), "ingressgateway".to_string()),
            ("app".to_string(), "gw".to_string()),
        ]);
        assert_eq!(selector_string(&s), "app=gw,istio=ingressgateway");
        assert_eq!(first_label_path("spec.selector", &s), "spec.selector.app");
        assert_eq!(selector_string(&BTreeMap::new()), "");
    }

    #[test]
    fn stand_in_ingress_is_added_unless_ingress_is_off() {
        let rs = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\n");
        let mesh = MeshConfig::default();
        let cx = Context::new(rs.iter().collect(), vec![], &mesh);
        let w = workloads(&cx);
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].namespace, ISTIO_NAMESPACE);
        assert_eq!(
            w[1].labels.get("istio").map(String::as_str),
            Some("ingressgateway")
        );
        assert_eq!(workload_services(&cx).len(), 1);

        let off = MeshConfig {
            ingress_controller_mode: Some(IngressControllerMode::Off),
            ..Default::default()
        };
        let cx = Context::new(rs.iter().collect(), vec![], &off);
        assert_eq!(workloads(&cx).len(), 1);
        assert!(workload_services(&cx).is_empty());
    }

    #[test]
    fn sidecar_and_ambient_detection() {
        let rs = load(
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: inj, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: both, labels: {istio.io/dataplane-mode: ambient, istio.io/rev: canary}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: inj}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: inj, labels: {sidecar.istio.io/inject: "false"}}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: other}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: other, annotations: {ambient.istio.io/redirection: enabled}}
"#,
        );
        let mesh = MeshConfig::default();
        let cx = Context::new(rs.iter().collect(), vec![], &mesh);
        let w = workloads(&cx);
        let by = |n: &str| w.iter().find(|w| w.name == n).expect("workload");
        assert!(has_sidecar(&cx, by("a")));
        assert!(!has_sidecar(&cx, by("b")));
        assert!(has_sidecar(&cx, by("c")));
        assert!(!has_sidecar(&cx, by("d")));
        assert!(in_ambient_mode(by("d")));
        assert!(!in_ambient_mode(by("c")));
        assert!(namespace_in_ambient_mode(namespace_object(&cx, "amb")));
        assert!(!namespace_in_ambient_mode(namespace_object(&cx, "both")));
        assert!(!namespace_in_ambient_mode(namespace_object(&cx, "missing")));
        assert!(is_root_namespace(&cx, "istio-system"));
    }
}
