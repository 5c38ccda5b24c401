//! Validation of `EnvoyFilter`: Istio's `ValidateEnvoyFilter` (selector, patch structure,
//! applyTo/match/operation combinations, proxy version regex, deprecated filter names and
//! type URLs), the CRD schema's rules (match oneof, waypoint context, target references), and
//! the per-resource patch-operation warnings of `istioctl analyze` (IST0151..IST0155).
//!
//! Envoy's typed protos are not available here, so patch values are checked only for what can be
//! decided from their JSON: that they are mappings, which `@type`s are certainly unknown to
//! Istio (Envoy's removed v2 API), and filters configured by name without `typed_config`.

#[cfg(test)]
mod tests;
mod warnings;

use serde_json::Value;

pub use warnings::{
    canonical_filter_name, is_removed_envoy_type, operation_warnings, DEPRECATED_FILTER_NAMES,
};
use warnings::{deprecated_name_warning, value_warnings};

use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::envoy_filter::*;

/// Longest `proxyVersion` pattern Istio compiles; longer ones are ignored with a warning.
pub const MAX_PROXY_VERSION_LEN: usize = 1024;

const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";

fn s(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

pub fn validate(_meta: &ObjectMeta, spec: &EnvoyFilter, r: &mut Report) {
    r.warning(
        "",
        "EnvoyFilter exposes internal implementation details that may change at any time. \
         Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
    );
    validate_selector(r, spec);
    fields::target_refs(r, "spec.targetRefs", &spec.target_refs, false);
    if spec.workload_selector.is_some() && !spec.target_refs.is_empty() {
        r.error(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    for (i, cp) in spec.config_patches.iter().enumerate() {
        let path = idx("spec.configPatches", i);
        validate_match_schema(r, &at(&path, "match"), cp.r#match.as_ref());
        validate_patch(r, &path, cp);
    }
    operation_warnings(r, spec);
}

/// `workloadSelector.labels`: the schema's bounds, and Istio's rules (no empty keys, no
/// wildcards; an empty selector selects the whole namespace, which earns a warning).
fn validate_selector(r: &mut Report, spec: &EnvoyFilter) {
    let Some(sel) = &spec.workload_selector else {
        return;
    };
    fields::alpha_workload_selector(r, "spec.workloadSelector", sel);
    if sel.labels.is_empty() {
        r.warning(
            "spec.workloadSelector",
            "Envoy filter: workload selector specified without labels, will be applied to all services in namespace",
        );
    }
}

/// The schema's rules on `match`: one object type at most, `waypoint` exactly when the context
/// is `WAYPOINT`, and a real port number for waypoints.
fn validate_match_schema(r: &mut Report, path: &str, m: Option<&EnvoyConfigObjectMatch>) {
    let Some(m) = m else { return };
    let set = [
        m.listener.is_some(),
        m.route_configuration.is_some(),
        m.cluster.is_some(),
        m.waypoint.is_some(),
    ];
    if set.iter().filter(|b| **b).count() > 1 {
        r.error(
            path,
            "only one of listener, routeConfiguration, cluster or waypoint may be set",
        );
    }
    if (m.context == PatchContext::Waypoint) != m.waypoint.is_some() {
        r.error(
            path,
            "Invalid value: \"object\": only support waypointMatch when context is WAYPOINT",
        );
    }
    if let Some(port) = m.waypoint.as_ref().and_then(|w| w.port_number) {
        if !(1..=65535).contains(&port) {
            r.error(
                at(&at(path, "waypoint"), "portNumber"),
                "Invalid value: \"integer\": port must be between 1-65535",
            );
        }
    }
}

/// One config patch, as Istio's webhook checks it. Like Istio, the first structural error of a
/// patch ends its checks.
fn validate_patch(r: &mut Report, path: &str, cp: &EnvoyConfigObjectPatch) {
    let value_path = at(&at(path, "patch"), "value");
    if let Some(v) = cp.patch.as_ref().and_then(|p| p.value.as_ref()) {
        if !v.is_object() {
            r.error(&value_path, "Invalid value: must be of type object");
            return;
        }
    }
    let m = cp.r#match.as_ref();
    // Istio does not validate waypoint patches yet.
    if m.is_some_and(|m| m.context == PatchContext::Waypoint) {
        return;
    }
    if cp.apply_to == ApplyTo::Invalid {
        r.error(at(path, "applyTo"), "Envoy filter: missing applyTo");
        return;
    }
    let Some(patch) = &cp.patch else {
        r.error(at(path, "patch"), "Envoy filter: missing patch");
        return;
    };
    if patch.operation == PatchOperation::Invalid {
        r.error(
            at(&at(path, "patch"), "operation"),
            "Envoy filter: missing patch operation",
        );
        return;
    }
    if patch.operation != PatchOperation::Remove && patch.value.is_none() {
        r.error(
            &value_path,
            "Envoy filter: missing patch value for non-remove operation",
        );
        return;
    }
    let match_path = at(path, "match");
    if let Some(version) = m
        .and_then(|m| m.proxy.as_ref())
        .map(|p| s(&p.proxy_version))
    {
        let vpath = at(&at(&match_path, "proxy"), "proxyVersion");
        if version.len() > MAX_PROXY_VERSION_LEN {
            r.warning(
                &vpath,
                format!("Envoy filter: proxyVersion match exceeds {MAX_PROXY_VERSION_LEN} characters and will be ignored"),
            );
        } else if !version.is_empty() {
            if let Err(e) = regex::Regex::new(version) {
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                r.error(
                    &vpath,
                    format!("Envoy filter: invalid regex for proxy version, [{msg}]"),
                );
                return;
            }
        }
    }
    if !validate_apply_to_match(r, &match_path, cp.apply_to, m) {
        return;
    }
    if let Some(Value::Object(value)) = &patch.value {
        value_warnings(r, &value_path, cp.apply_to, value);
    }
}

/// That the match's object type fits `applyTo`; false when the patch's checks should stop.
fn validate_apply_to_match(
    r: &mut Report,
    path: &str,
    apply_to: ApplyTo,
    m: Option<&EnvoyConfigObjectMatch>,
) -> bool {
    let Some(m) = m.filter(|m| m.has_object_type()) else {
        return true;
    };
    match apply_to {
        ApplyTo::Listener | ApplyTo::FilterChain | ApplyTo::NetworkFilter | ApplyTo::HttpFilter => {
            let Some(listener) = &m.listener else {
                r.error(
                    path,
                    "Envoy filter: applyTo for listener class objects cannot have non listener match",
                );
                return false;
            };
            let Some(filter) = listener
                .filter_chain
                .as_ref()
                .and_then(|fc| fc.filter.as_ref())
            else {
                return true;
            };
            let fpath = at(&at(&at(path, "listener"), "filterChain"), "filter");
            if matches!(apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
                // Istio would reject this if it were new; kept a warning for compatibility.
                r.warning(
                    &fpath,
                    format!(
                        "Envoy filter: filter match has no effect when used with {}",
                        apply_to.name()
                    ),
                );
            }
            let name = s(&filter.name);
            if name.is_empty() {
                r.error(
                    at(&fpath, "name"),
                    "Envoy filter: filter match has no name to match on",
                );
                return false;
            }
            if let Some(sub) = &filter.sub_filter {
                if apply_to != ApplyTo::HttpFilter {
                    r.error(
                        at(&fpath, "subFilter"),
                        "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
                    );
                    return false;
                }
                if name != HTTP_CONNECTION_MANAGER && name != "envoy.http_connection_manager" {
                    r.error(
                        at(&fpath, "name"),
                        format!("Envoy filter: subfilter match requires filter match with {HTTP_CONNECTION_MANAGER}"),
                    );
                    return false;
                }
                if s(&sub.name).is_empty() {
                    r.error(
                        at(&at(&fpath, "subFilter"), "name"),
                        "Envoy filter: subfilter match has no name to match on",
                    );
                    return false;
                }
            }
            deprecated_name_warning(r, &at(&fpath, "name"), name);
            if let Some(sub) = &filter.sub_filter {
                deprecated_name_warning(r, &at(&at(&fpath, "subFilter"), "name"), s(&sub.name));
            }
        }
        ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute
            if m.route_configuration.is_none() =>
        {
            r.error(
                path,
                "Envoy filter: applyTo for http route class objects cannot have non route configuration match",
            );
        }
        ApplyTo::Cluster if m.cluster.is_none() => {
            r.error(
                path,
                "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
            );
        }
        _ => {}
    }
    true
}
