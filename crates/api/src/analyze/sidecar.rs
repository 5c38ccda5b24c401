//! Istio's `sidecar.SelectorAnalyzer`: a Sidecar's workload selector must match a pod of its
//! namespace (IST0101); a pod may be selected by one Sidecar only (IST0110) and a namespace may
//! have one selector-less Sidecar only (IST0111); Sidecars for ambient pods or namespaces have no
//! effect (IST0167).

use std::collections::{BTreeMap, BTreeSet};

use super::selectors::{self, in_ambient_mode, namespace_in_ambient_mode, namespace_object};
use super::{Analyzer, Code, Context, Message};
use crate::resource::Resource;

/// This family's analyzers.
pub const ALL: &[&dyn Analyzer] = &[&Selector];

pub struct Selector;

/// Sorted, comma-separated names, as the conflict messages list them.
fn names(list: &[&Resource]) -> String {
    let mut v: Vec<&str> = list.iter().map(|r| r.name()).collect();
    v.sort_unstable();
    v.join(", ")
}

impl Analyzer for Selector {
    fn name(&self) -> &'static str {
        "sidecar.SelectorAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let workloads = selectors::workloads(cx);
        // (namespace, pod name) -> the workload and the Sidecars selecting it.
        let mut by_namespace: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
        let mut selecting = Vec::new();
        for (r, sc) in cx.sidecars() {
            match &sc.workload_selector {
                Some(s) if !s.labels.is_empty() => selecting.push((r, &s.labels)),
                _ => by_namespace.entry(r.namespace()).or_default().push(r),
            }
        }
        let by_pod = selectors::group_by_selected_pod(
            &workloads,
            selecting,
            "spec.workloadSelector.labels",
            out,
        );

        // Ambient workloads have no sidecar to configure: say so once per Sidecar.
        let mut ineffective: BTreeSet<String> = BTreeSet::new();
        for ((ns, pod), (w, list)) in &by_pod {
            let ambient = in_ambient_mode(w);
            if list.len() == 1 && !ambient {
                continue;
            }
            let all = names(list);
            for r in list {
                if ambient {
                    if ineffective.insert(r.id()) {
                        out.push(Message::new(
                            Code::IneffectivePolicy,
                            &(*r).into(),
                            "spec.workloadSelector",
                            format!(
                                "The policy has no impact: the selected workload {ns}/{pod} runs in ambient \
                                 mode, without a sidecar"
                            ),
                        ));
                    }
                    continue;
                }
                out.push(Message::new(
                    Code::ConflictingSidecarWorkloadSelectors,
                    &(*r).into(),
                    "metadata.name",
                    format!(
                        "The Sidecars [{all}] in namespace {ns} all select pod {pod}; only one of them applies"
                    ),
                ));
            }
        }

        for (ns, list) in &by_namespace {
            if namespace_in_ambient_mode(namespace_object(cx, ns)) {
                for r in list {
                    if ineffective.insert(r.id()) {
                        out.push(Message::new(
                            Code::IneffectivePolicy,
                            &(*r).into(),
                            "",
                            format!(
                                "The policy has no impact: namespace {ns} runs in ambient mode, without sidecars"
                            ),
                        ));
                    }
                }
                continue;
            }
            if list.len() > 1 {
                let all = names(list);
                for r in list {
                    out.push(Message::new(
                        Code::MultipleSidecarsWithoutWorkloadSelectors,
                        &(*r).into(),
                        "",
                        format!(
                            "The Sidecars [{all}] in namespace {ns} all lack a workload selector; only one of them applies"
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::selectors::testing::{m, run};

    fn sidecar(name: &str, ns: &str, labels: Option<&str>) -> String {
        let sel = labels
            .map(|l| format!("spec:\n  workloadSelector:\n    labels: {l}\n"))
            .unwrap_or_default();
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\n{sel}"
        )
    }

    fn pod(name: &str, ns: &str, labels: &str, annotations: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}, \
             annotations: {annotations}}}\n"
        )
    }

    #[test]
    fn one_sidecar_per_pod_and_one_default_per_namespace_is_clean() {
        let yaml = [
            pod("a", "ns", "{app: a}", "{}"),
            pod("b", "ns", "{app: b}", "{}"),
            sidecar("for-a", "ns", Some("{app: a}")),
            sidecar("for-b", "ns", Some("{app: b}")),
            sidecar("default", "ns", None),
            sidecar("default", "other", None),
        ]
        .concat();
        assert_eq!(run(&Selector, &yaml), vec![]);
    }

    #[test]
    fn conflicts_are_per_pod_and_selectors_stay_in_their_namespace() {
        let yaml = [
            pod("a1", "ns", "{app: a}", "{}"),
            pod("a2", "ns", "{app: a, v: '2'}", "{}"),
            pod("x", "elsewhere", "{app: x}", "{}"),
            sidecar("s1", "ns", Some("{app: a}")),
            sidecar("s2", "ns", Some("{v: '2'}")),
            sidecar("lost", "ns", Some("{app: x}")),
            sidecar("d1", "ns", None),
            sidecar("d2", "ns", None),
        ]
        .concat();
        assert_eq!(
            run(&Selector, &yaml),
            vec![
                m("IST0101", "Sidecar ns/lost"),
                m("IST0110", "Sidecar ns/s1"),
                m("IST0110", "Sidecar ns/s2"),
                m("IST0111", "Sidecar ns/d1"),
                m("IST0111", "Sidecar ns/d2"),
            ]
        );
    }

    #[test]
    fn ambient_pods_and_namespaces_make_sidecars_ineffective() {
        let yaml = [
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}\n"
                .to_string(),
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: inj, labels: {istio.io/dataplane-mode: ambient, istio-injection: enabled}}\n"
                .to_string(),
            pod("z", "amb", "{app: z}", "{ambient.istio.io/redirection: enabled}"),
            sidecar("pod-scoped", "amb", Some("{app: z}")),
            sidecar("other-pod-scoped", "amb", Some("{app: z}")),
            sidecar("ns-scoped", "amb", None),
            sidecar("ns-scoped", "inj", None),
        ]
        .concat();
        assert_eq!(
            run(&Selector, &yaml),
            vec![
                m("IST0167", "Sidecar amb/ns-scoped"),
                m("IST0167", "Sidecar amb/other-pod-scoped"),
                m("IST0167", "Sidecar amb/pod-scoped"),
            ]
        );
    }
}
