//! Selector and policy target reference checks: Istio's webhook rules together with the CRD
//! schema's bounds, the one place every kind with a `selector`/`workloadSelector` or
//! `targetRef(s)` checks them.

use std::collections::BTreeMap;

use super::super::{at, idx, is_dns1123_subdomain, Report};
use crate::types::common::{PolicyTargetReference, WorkloadSelector};
use crate::types::sidecar::SidecarWorkloadSelector;

/// Istio's rules on a selector's labels: no empty keys, no wildcards. Reported at `path` (the
/// label map).
pub fn selector_labels(r: &mut Report, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if k.is_empty() {
            r.error(
                path,
                format!("empty key is not supported in selector: \"{k}={v}\""),
            );
        }
        if k.contains('*') || v.contains('*') {
            r.error(
                path,
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            );
        }
    }
}

/// The CRD schema's bounds on a selector's label map: at most `max_properties` entries (4096 for
/// `matchLabels`, 256 for networking's `labels`), values at most 63 characters.
pub fn label_map_schema(
    r: &mut Report,
    path: &str,
    labels: &BTreeMap<String, String>,
    max_properties: usize,
) {
    if labels.len() > max_properties {
        r.error(
            path,
            format!(
                "Too many: {}: must have at most {max_properties} items",
                labels.len()
            ),
        );
    }
    for (k, v) in labels {
        if v.chars().count() > 63 {
            r.error(
                at(path, k),
                format!("Too long: value of label {k:?} may not be longer than 63"),
            );
        }
    }
}

/// `selector` (`istio.type.v1beta1.WorkloadSelector`): Istio's rules and the CRD's bounds on
/// `matchLabels`; an empty selector is a warning.
pub fn workload_selector(r: &mut Report, path: &str, sel: Option<&WorkloadSelector>) {
    let Some(sel) = sel else { return };
    let labels = at(path, "matchLabels");
    selector_labels(r, &labels, &sel.match_labels);
    label_map_schema(r, &labels, &sel.match_labels, 4096);
    if sel.match_labels.is_empty() {
        r.warning(path, "workload selector specified without labels");
    }
}

/// Networking's label-map selector (`networking.v1alpha3.WorkloadSelector` of Sidecar,
/// ServiceEntry, EnvoyFilter): Istio's rules and the CRD's bounds on `labels`. Each kind words
/// its own warning for an empty selector.
pub fn alpha_workload_selector(r: &mut Report, path: &str, sel: &SidecarWorkloadSelector) {
    let labels = at(path, "labels");
    selector_labels(r, &labels, &sel.labels);
    label_map_schema(r, &labels, &sel.labels, 256);
}

/// `targetRef`/`targetRefs`: a named Service, ServiceEntry, Gateway or GatewayClass in the same
/// namespace.
pub fn policy_target_ref(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    policy_target_ref_name(r, path, t);
    let group = if t.group.is_empty() {
        "core"
    } else {
        t.group.as_str()
    };
    let allowed = matches!(
        (group, t.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway")
            | ("gateway.networking.k8s.io", "GatewayClass")
    );
    if !allowed {
        r.error(
            path,
            format!(
                "targetRef must be to one of [core/Service networking.istio.io/ServiceEntry \
                 gateway.networking.k8s.io/Gateway gateway.networking.k8s.io/GatewayClass] but was {}/{}",
                t.group, t.kind
            ),
        );
    }
}

/// One policy target reference: the CRD schema's rules (group a DNS subdomain, kind a name, length
/// bounds) and, with `webhook`, Istio's [`policy_target_ref`] (EnvoyFilter's webhook does not
/// check its targets). Where the schema already refuses the group or kind, Istio's allowed-kinds
/// rule is not reported again.
pub fn target_ref(r: &mut Report, path: &str, t: &PolicyTargetReference, webhook: bool) {
    let before = r.findings.len();
    if t.group.len() > 253 {
        r.error(at(path, "group"), "Too long: may not be longer than 253");
    } else if !t.group.is_empty() && !is_dns1123_subdomain(&t.group) {
        r.error(
            at(path, "group"),
            format!(
                "Invalid value: {:?}: group must be empty or a DNS subdomain (lower case)",
                t.group
            ),
        );
    }
    if t.kind.is_empty() {
        r.error(at(path, "kind"), "Required value: kind must be set");
    } else if t.kind.len() > 63 {
        r.error(at(path, "kind"), "Too long: may not be longer than 63");
    } else if !is_kind_name(&t.kind) {
        r.error(
            at(path, "kind"),
            format!(
                "Invalid value: {:?}: should match '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$'",
                t.kind
            ),
        );
    }
    let group_kind_ok = r.findings.len() == before;
    if t.name.len() > 253 {
        r.error(at(path, "name"), "Too long: may not be longer than 253");
    }
    if webhook {
        if group_kind_ok {
            policy_target_ref(r, path, t);
        } else {
            policy_target_ref_name(r, path, t);
        }
        return;
    }
    if t.name.is_empty() {
        r.error(at(path, "name"), "Required value: name must be set");
    }
    if !t.namespace.is_empty() {
        r.error(
            at(path, "namespace"),
            "cross namespace referencing is not currently supported",
        );
    }
}

/// `targetRefs`: at most 16 (the CRD), each a [`target_ref`].
pub fn target_refs(r: &mut Report, path: &str, refs: &[PolicyTargetReference], webhook: bool) {
    if refs.len() > 16 {
        r.error(
            path,
            format!("Too many: {}: must have at most 16 items", refs.len()),
        );
    }
    for (i, t) in refs.iter().enumerate() {
        target_ref(r, &idx(path, i), t, webhook);
    }
}

/// Who a policy applies to (AuthorizationPolicy, RequestAuthentication, PeerAuthentication's
/// selector, Telemetry, WasmPlugin): at most one of `spec.selector`, `spec.targetRef`,
/// `spec.targetRefs`, each checked by Istio's webhook and the CRD schema.
pub fn policy_scope(
    r: &mut Report,
    selector: Option<&WorkloadSelector>,
    target: Option<&PolicyTargetReference>,
    targets: &[PolicyTargetReference],
) {
    one_selector_kind(
        r,
        "spec",
        selector.is_some(),
        target.is_some(),
        !targets.is_empty(),
    );
    workload_selector(r, "spec.selector", selector);
    if let Some(t) = target {
        target_ref(r, "spec.targetRef", t, true);
    }
    target_refs(r, "spec.targetRefs", targets, true);
}

/// A Kubernetes kind name: `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`.
fn is_kind_name(kind: &str) -> bool {
    let b = kind.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// Istio's rules on a target reference's name and namespace.
fn policy_target_ref_name(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    if t.name.is_empty() {
        r.error(at(path, "name"), "targetRef name must be set");
    }
    if !t.namespace.is_empty() {
        r.error(
            at(path, "namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
}

/// Only one of `selector`, `targetRef`, `targetRefs` may be set.
pub fn one_selector_kind(
    r: &mut Report,
    path: &str,
    selector: bool,
    target_ref: bool,
    target_refs: bool,
) {
    if [selector, target_ref, target_refs]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        r.error(
            path,
            "only one of targetRefs or workloadSelector can be set",
        );
    }
}
