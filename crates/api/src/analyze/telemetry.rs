//! Istio's `telemetry` analyzers: access logging with no provider where the mesh names no default
//! (IST0157), selectors matching no pod (IST0101) or pods selected by several Telemetries
//! (IST0159), several selector-less Telemetries in one namespace (IST0160), and tracing through
//! the deprecated Lightstep provider (IST0002).

use std::collections::{BTreeMap, BTreeSet};

use super::selectors;
use super::{Analyzer, Code, Context, Message};
use crate::resource::Resource;

/// This family's analyzers.
pub const ALL: &[&dyn Analyzer] = &[&Provider, &Selector, &DefaultSelector, &Lightstep];

/// Sorted, comma-separated names, as the conflict messages list them.
fn names(list: &[&Resource]) -> String {
    let mut v: Vec<&str> = list.iter().map(|r| r.name()).collect();
    v.sort_unstable();
    v.join(", ")
}

/// `telemetry.ProviderAnalyzer`: an enabled access logging entry without providers logs nowhere
/// when the mesh config has no default access log provider (IST0157).
pub struct Provider;

impl Analyzer for Provider {
    fn name(&self) -> &'static str {
        "telemetry.ProviderAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        if !cx.mesh.default_providers().access_logging.is_empty() {
            return;
        }
        for (r, t) in cx.telemetries() {
            for (i, l) in t.access_logging.iter().enumerate() {
                if l.disabled == Some(true) || !l.providers.is_empty() {
                    continue;
                }
                out.push(Message::new(
                    Code::InvalidTelemetryProvider,
                    &r.into(),
                    &format!("spec.accessLogging[{i}]"),
                    format!(
                        "Access logging of Telemetry {}/{} names no provider and the mesh config has no \
                         defaultProviders.accessLogging: nothing will be logged",
                        r.namespace(),
                        r.name()
                    ),
                ));
            }
        }
    }
}

/// `telemetry.SelectorAnalyzer`: a Telemetry's selector must match a pod of its namespace
/// (IST0101), and no pod may be selected by more than one Telemetry (IST0159).
pub struct Selector;

impl Analyzer for Selector {
    fn name(&self) -> &'static str {
        "telemetry.SelectorAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let workloads = selectors::workloads(cx);
        let selecting = cx.telemetries().filter_map(|(r, t)| {
            t.selector
                .as_ref()
                .map(|s| &s.match_labels)
                .filter(|l| !l.is_empty())
                .map(|l| (r, l))
        });
        let by_pod = selectors::group_by_selected_pod(
            &workloads,
            selecting,
            "spec.selector.matchLabels",
            out,
        );
        for ((ns, pod), (_, list)) in &by_pod {
            if list.len() < 2 {
                continue;
            }
            let all = names(list);
            for r in list {
                out.push(Message::new(
                    Code::ConflictingTelemetryWorkloadSelectors,
                    &(*r).into(),
                    "metadata.name",
                    format!(
                        "The Telemetries [{all}] in namespace {ns} all select pod {pod}; only one of them applies"
                    ),
                ));
            }
        }
    }
}

/// `telemetry.DefaultSelectorAnalyzer`: one namespace may have only one Telemetry without a
/// selector (IST0160). A selector with no labels still counts as a selector here, as in Istio.
pub struct DefaultSelector;

impl Analyzer for DefaultSelector {
    fn name(&self) -> &'static str {
        "telemetry.DefaultSelectorAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let mut by_namespace: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
        for (r, t) in cx.telemetries() {
            if t.selector.is_none() {
                by_namespace.entry(r.namespace()).or_default().push(r);
            }
        }
        for (ns, list) in &by_namespace {
            if list.len() < 2 {
                continue;
            }
            let all = names(list);
            for r in list {
                out.push(Message::new(
                    Code::MultipleTelemetriesWithoutWorkloadSelectors,
                    &(*r).into(),
                    "",
                    format!(
                        "The Telemetries [{all}] in namespace {ns} all lack a selector; only one of them applies"
                    ),
                ));
            }
        }
    }
}

/// `telemetry.LightstepAnalyzer`: tracing through a mesh provider of the Lightstep kind, which
/// Istio deprecates in favour of OpenTelemetry (IST0002).
pub struct Lightstep;

impl Analyzer for Lightstep {
    fn name(&self) -> &'static str {
        "telemetry.LightstepAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let lightstep: BTreeSet<&str> = cx
            .mesh
            .extension_providers
            .iter()
            .filter(|p| p.lightstep.is_some())
            .map(|p| p.name.as_str())
            .collect();
        if lightstep.is_empty() {
            return;
        }
        for (r, t) in cx.telemetries() {
            for (i, tracing) in t.tracing.iter().enumerate() {
                for (j, p) in tracing.providers.iter().enumerate() {
                    if !lightstep.contains(p.name.as_str()) {
                        continue;
                    }
                    out.push(Message::new(
                        Code::Deprecated,
                        &r.into(),
                        &format!("spec.tracing[{i}].providers[{j}].name"),
                        format!(
                            "The Lightstep provider {:?} is deprecated; migrate to an OpenTelemetry provider",
                            p.name
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
    use crate::analyze::selectors::testing::{m, run, run_with};
    use crate::types::mesh::MeshConfig;

    fn telemetry(name: &str, ns: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
        )
    }

    fn mesh(yaml: &str) -> MeshConfig {
        crate::types::mesh::load_mesh_config("mesh.yaml", yaml).expect("mesh config")
    }

    #[test]
    fn access_logging_without_provider() {
        let yaml = [
            telemetry(
                "t",
                "istio-system",
                "  accessLogging:\n  - providers: [{name: envoy}]\n  - filter: {expression: 'response.code >= 400'}\n  - {}\n",
            ),
            telemetry("off", "foo", "  accessLogging:\n  - disabled: true\n"),
        ]
        .concat();
        assert_eq!(
            run(&Provider, &yaml),
            vec![
                m("IST0157", "Telemetry istio-system/t"),
                m("IST0157", "Telemetry istio-system/t"),
            ]
        );
        let with_default = mesh("defaultProviders:\n  accessLogging: [envoy]\n");
        assert_eq!(run_with(&Provider, &yaml, &with_default), vec![]);
    }

    #[test]
    fn selectors_match_pods_of_their_namespace_once() {
        let pods = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ns, labels: {app: a, tier: x}}\n\
                    ---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: other, labels: {app: b}}\n";
        let yaml = [
            pods.to_string(),
            telemetry("by-app", "ns", "  selector: {matchLabels: {app: a}}\n"),
            telemetry("by-tier", "ns", "  selector: {matchLabels: {tier: x}}\n"),
            telemetry("wrong-ns", "ns", "  selector: {matchLabels: {app: b}}\n"),
            telemetry("empty", "ns", "  selector: {matchLabels: {}}\n"),
            telemetry(
                "none",
                "ns",
                "  metrics: [{providers: [{name: prometheus}]}]\n",
            ),
        ]
        .concat();
        assert_eq!(
            run(&Selector, &yaml),
            vec![
                m("IST0101", "Telemetry ns/wrong-ns"),
                m("IST0159", "Telemetry ns/by-app"),
                m("IST0159", "Telemetry ns/by-tier"),
            ]
        );
    }

    #[test]
    fn several_selectorless_telemetries_in_a_namespace() {
        let yaml = [
            telemetry(
                "a",
                "ns1",
                "  metrics: [{providers: [{name: prometheus}]}]\n",
            ),
            telemetry(
                "b",
                "ns1",
                "  metrics: [{providers: [{name: prometheus}]}]\n",
            ),
            telemetry(
                "c",
                "ns2",
                "  metrics: [{providers: [{name: prometheus}]}]\n",
            ),
            telemetry("d", "ns2", "  selector: {matchLabels: {}}\n"),
        ]
        .concat();
        assert_eq!(
            run(&DefaultSelector, &yaml),
            vec![
                m("IST0160", "Telemetry ns1/a"),
                m("IST0160", "Telemetry ns1/b"),
            ]
        );
    }

    #[test]
    fn lightstep_tracing_is_deprecated() {
        let yaml = telemetry(
            "t",
            "istio-system",
            "  tracing:\n  - providers: [{name: ls}, {name: otel}]\n",
        );
        assert_eq!(run(&Lightstep, &yaml), vec![]);
        let m_cfg = mesh(
            "extensionProviders:\n- name: ls\n  lightstep: {service: ls.svc.cluster.local, port: 443, accessToken: x}\n\
             - name: otel\n  opentelemetry: {service: otel.svc.cluster.local, port: 4317}\n",
        );
        assert_eq!(
            run_with(&Lightstep, &yaml, &m_cfg),
            vec![m("IST0002", "Telemetry istio-system/t")]
        );
    }
}
