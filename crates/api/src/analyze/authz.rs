//! Istio's `auth.AuthorizationPoliciesAnalyzer`: policies that apply to no workload of the mesh
//! (IST0127) and source namespaces that match no namespace (IST0101).

use std::collections::BTreeMap;

use super::context::labels_match;
use super::selectors::{self, has_sidecar, in_ambient_mode, is_root_namespace, selector_string};
use super::{Analyzer, Code, Context, Message};
use crate::resource::Resource;
use crate::types::authorization::AuthorizationPolicy;

/// This family's analyzers.
pub const ALL: &[&dyn Analyzer] = &[&AuthorizationPolicies];

pub struct AuthorizationPolicies;

/// Labels of the mesh's workloads (with a sidecar or in ambient mode), per namespace.
type MeshPods<'a> = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn mesh_pods<'a>(cx: &Context<'a>) -> MeshPods<'a> {
    let mut m: MeshPods<'a> = BTreeMap::new();
    for w in selectors::workloads(cx) {
        let list = m.entry(w.namespace.to_string()).or_default();
        if has_sidecar(cx, &w) || in_ambient_mode(&w) {
            list.push(w.labels.into_owned());
        }
    }
    m
}

/// Whether a `namespaces` entry of a source (exact, `prefix*`, `*suffix` or `*`) matches `ns`.
pub fn namespace_matches(ns: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    ns.eq_ignore_ascii_case(pattern)
}

fn no_workloads(r: &Resource, selector: &str, scope: &str) -> Message {
    let what = if selector.is_empty() {
        String::new()
    } else {
        format!(" with labels {selector:?}")
    };
    Message::new(
        Code::NoMatchingWorkloadsFound,
        &r.into(),
        "",
        format!("The policy matches no workload: no pod{what} in {scope} is in the mesh (with a sidecar or in ambient mode)"),
    )
}

fn check_workloads(
    cx: &Context<'_>,
    r: &Resource,
    ap: &AuthorizationPolicy,
    pods: &MeshPods<'_>,
    out: &mut Vec<Message>,
) {
    let ns = r.namespace();
    let selector = ap.selector.as_ref().map(|s| &s.match_labels);
    if is_root_namespace(cx, ns) {
        // Mesh-wide: a selector may match a workload in any namespace; none means everywhere.
        if let Some(sel) = selector {
            if !pods.values().flatten().any(|l| labels_match(sel, l)) {
                out.push(no_workloads(r, &selector_string(sel), "the mesh"));
            }
        }
        return;
    }
    let here = pods.get(ns).map(Vec::as_slice).unwrap_or_default();
    let scope = format!("namespace {ns}");
    match selector {
        None if here.is_empty() => out.push(no_workloads(r, "", &scope)),
        None => {}
        Some(sel) if !here.iter().any(|l| labels_match(sel, l)) => {
            out.push(no_workloads(r, &selector_string(sel), &scope))
        }
        Some(_) => {}
    }
}

fn check_namespaces(
    cx: &Context<'_>,
    r: &Resource,
    ap: &AuthorizationPolicy,
    out: &mut Vec<Message>,
) {
    let known = cx.namespaces();
    for (i, rule) in ap.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().flatten().enumerate() {
            let Some(src) = &from.source else { continue };
            let lists = [
                ("namespaces", &src.namespaces),
                ("notNamespaces", &src.not_namespaces),
            ];
            for (field, list) in lists {
                for (k, pattern) in list.iter().enumerate() {
                    if known.iter().any(|ns| namespace_matches(ns, pattern)) {
                        continue;
                    }
                    out.push(Message::new(
                        Code::ReferencedResourceNotFound,
                        &r.into(),
                        &format!("spec.rules[{i}].from[{j}].source.{field}[{k}]"),
                        format!("Referenced namespace not found: {pattern:?} matches no namespace"),
                    ));
                }
            }
        }
    }
}

impl Analyzer for AuthorizationPolicies {
    fn name(&self) -> &'static str {
        "auth.AuthorizationPoliciesAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let pods = mesh_pods(cx);
        for (r, ap) in cx.authorization_policies() {
            check_workloads(cx, r, ap, &pods, out);
            check_namespaces(cx, r, ap, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::selectors::testing::{m, run};

    const WORLD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
---
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: bare, labels: {app: plain}}
---
apiVersion: v1
kind: Pod
metadata: {name: amb, namespace: ztunnel, labels: {app: amb}, annotations: {ambient.istio.io/redirection: enabled}}
"#;

    fn policy(name: &str, ns: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
        )
    }

    #[test]
    fn policies_need_mesh_workloads() {
        let yaml = [
            WORLD.to_string(),
            policy("ok", "app", "  selector: {matchLabels: {app: web}}\n"),
            policy("ns-wide", "app", "  action: ALLOW\n"),
            policy(
                "ambient",
                "ztunnel",
                "  selector: {matchLabels: {app: amb}}\n",
            ),
            // `plain` has no sidecar: policies for it do nothing.
            policy(
                "no-sidecar",
                "bare",
                "  selector: {matchLabels: {app: plain}}\n",
            ),
            policy("no-sidecar-ns", "bare", "  action: ALLOW\n"),
            policy("empty-ns", "ghost", "  action: ALLOW\n"),
            policy("mesh-wide", "istio-system", "  action: ALLOW\n"),
            policy(
                "mesh-web",
                "istio-system",
                "  selector: {matchLabels: {app: web}}\n",
            ),
            policy(
                "mesh-bogus",
                "istio-system",
                "  selector: {matchLabels: {app: bogus}}\n",
            ),
        ]
        .concat();
        assert_eq!(
            run(&AuthorizationPolicies, &yaml),
            vec![
                m("IST0127", "AuthorizationPolicy bare/no-sidecar"),
                m("IST0127", "AuthorizationPolicy bare/no-sidecar-ns"),
                m("IST0127", "AuthorizationPolicy ghost/empty-ns"),
                m("IST0127", "AuthorizationPolicy istio-system/mesh-bogus"),
            ]
        );
    }

    #[test]
    fn source_namespaces_must_match_some_namespace() {
        let rules = "  selector: {matchLabels: {app: web}}\n  rules:\n  - from:\n    - source:\n        \
                     namespaces: [app, 'ap*', '*pp', '*', APP, 'nope-*']\n        notNamespaces: [ghost]\n";
        let yaml = [WORLD.to_string(), policy("p", "app", rules)].concat();
        assert_eq!(
            run(&AuthorizationPolicies, &yaml),
            vec![
                m("IST0101", "AuthorizationPolicy app/p"),
                m("IST0101", "AuthorizationPolicy app/p"),
            ]
        );
    }

    #[test]
    fn namespace_patterns() {
        assert!(namespace_matches("prod-web", "prod-*"));
        assert!(namespace_matches("web-test", "*-test"));
        assert!(namespace_matches("Web", "web"));
        assert!(namespace_matches("x", "*"));
        assert!(!namespace_matches("web", "prod-*"));
    }
}
