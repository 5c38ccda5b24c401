//! Validation of `EnvoyFilter`: Istio's `ValidateEnvoyFilter` (selector, patch structure,
//! applyTo/match/operation combinations, proxy version regex, deprecated filter names and
//! type URLs), the CRD schema's rules (match oneof, waypoint context, target references), and
//! the per-resource patch-operation warnings of `istioctl analyze` (IST0151..IST0155).
//!
//! Envoy's typed protos are not available here, so patch values are checked only for what can be
//! decided from their JSON: that they are mappings, which `@type`s are certainly unknown to
//! Istio (Envoy's removed v2 API), and filters configured by name without `typed_config`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::wasm::{label_map_schema, target_refs_schema};
use super::{at, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::envoy_filter::*;

/// Longest `proxyVersion` pattern Istio compiles; longer ones are ignored with a warning.
pub const MAX_PROXY_VERSION_LEN: usize = 1024;

/// Canonical Envoy filter names and the deprecated names Istio still matches them by. The HTTP
/// and the network ext_authz filters share one old name; the HTTP one is suggested for it.
pub const DEPRECATED_FILTER_NAMES: [(&str, &str); 28] = [
    ("envoy.filters.http.buffer", "envoy.buffer"),
    ("envoy.filters.http.cors", "envoy.cors"),
    ("envoy.filters.http.csrf", "envoy.csrf"),
    ("envoy.filters.http.dynamo", "envoy.http_dynamo_filter"),
    ("envoy.filters.http.ext_authz", "envoy.ext_authz"),
    ("envoy.filters.http.fault", "envoy.fault"),
    (
        "envoy.filters.http.grpc_http1_bridge",
        "envoy.grpc_http1_bridge",
    ),
    (
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.grpc_json_transcoder",
    ),
    ("envoy.filters.http.grpc_web", "envoy.grpc_web"),
    ("envoy.filters.http.gzip", "envoy.gzip"),
    ("envoy.filters.http.health_check", "envoy.health_check"),
    ("envoy.filters.http.ip_tagging", "envoy.ip_tagging"),
    ("envoy.filters.http.lua", "envoy.lua"),
    ("envoy.filters.http.ratelimit", "envoy.rate_limit"),
    ("envoy.filters.http.router", "envoy.router"),
    ("envoy.filters.http.squash", "envoy.squash"),
    (
        "envoy.filters.listener.http_inspector",
        "envoy.listener.http_inspector",
    ),
    (
        "envoy.filters.listener.original_dst",
        "envoy.listener.original_dst",
    ),
    (
        "envoy.filters.listener.original_src",
        "envoy.listener.original_src",
    ),
    (
        "envoy.filters.listener.proxy_protocol",
        "envoy.listener.proxy_protocol",
    ),
    (
        "envoy.filters.listener.tls_inspector",
        "envoy.listener.tls_inspector",
    ),
    (
        "envoy.filters.network.client_ssl_auth",
        "envoy.client_ssl_auth",
    ),
    ("envoy.filters.network.ext_authz", "envoy.ext_authz"),
    (
        "envoy.filters.network.http_connection_manager",
        "envoy.http_connection_manager",
    ),
    ("envoy.filters.network.mongo_proxy", "envoy.mongo_proxy"),
    ("envoy.filters.network.ratelimit", "envoy.ratelimit"),
    ("envoy.filters.network.redis_proxy", "envoy.redis_proxy"),
    ("envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"),
];

const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";

/// The canonical name for a deprecated filter name, if it is one.
pub fn canonical_filter_name(deprecated: &str) -> Option<&'static str> {
    DEPRECATED_FILTER_NAMES
        .iter()
        .find(|(_, old)| *old == deprecated)
        .map(|(new, _)| *new)
}

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
    target_refs_schema(r, "spec.targetRefs", &spec.target_refs);
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
    let path = "spec.workloadSelector.labels";
    label_map_schema(r, path, &sel.labels, 256);
    for (k, v) in &sel.labels {
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

fn deprecated_name_warning(r: &mut Report, path: &str, name: &str) {
    if let Some(new) = canonical_filter_name(name) {
        r.warning(
            path,
            format!("using deprecated filter name {name:?}; use {new:?} instead"),
        );
    }
}

/// What can be told about a patch value without Envoy's protos: `@type`s from Envoy's removed v2
/// API (Istio cannot validate them and sends them unchecked), and filters configured by name
/// alone, which Envoy is phasing out.
fn value_warnings(
    r: &mut Report,
    path: &str,
    apply_to: ApplyTo,
    value: &serde_json::Map<String, Value>,
) {
    let mut unknown = BTreeSet::new();
    collect_removed_types(&Value::Object(value.clone()), &mut unknown);
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(String::as_str).collect();
        r.warning(
            path,
            format!(
                "Envoy filter: unknown @type values detected; message will be sent as unvalidated: [{}]",
                list.join(" ")
            ),
        );
        // Istio stops at this point: the strict conversion failed, so nothing more is checked.
        return;
    }
    let mut missing = Vec::new();
    let top_level_typed = matches!(
        apply_to,
        ApplyTo::HttpFilter
            | ApplyTo::NetworkFilter
            | ApplyTo::ListenerFilter
            | ApplyTo::ExtensionConfig
    );
    if top_level_typed {
        missing_typed_config(value, &mut missing);
    }
    // Singular sub-messages that carry a `typed_config` of their own.
    let nested: &[&[&str]] = match apply_to {
        ApplyTo::Cluster => &[
            &["transport_socket", "transportSocket"],
            &["cluster_type", "clusterType"],
            &["upstream_config", "upstreamConfig"],
        ],
        ApplyTo::FilterChain => &[&["transport_socket", "transportSocket"]],
        _ => &[],
    };
    for names in nested {
        if let Some(Value::Object(sub)) = names.iter().find_map(|n| value.get(*n)) {
            missing_typed_config(sub, &mut missing);
        }
    }
    if !missing.is_empty() {
        r.warning(
            path,
            format!(
                "using deprecated types by name without typed_config; {}",
                missing.join(", ")
            ),
        );
    }
}

fn missing_typed_config(obj: &serde_json::Map<String, Value>, out: &mut Vec<String>) {
    let has = [
        "typed_config",
        "typedConfig",
        "config_discovery",
        "configDiscovery",
    ]
    .iter()
    .any(|k| obj.contains_key(*k));
    if !has {
        out.push(match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            _ => String::new(),
        });
    }
}

/// `@type` URLs anywhere in the value that name a message of Envoy's v2 API, which Istio no
/// longer links and so cannot know.
fn collect_removed_types(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(t)) = m.get("@type") {
                if is_removed_envoy_type(t) {
                    out.insert(t.clone());
                    // Istio wraps the whole object, so nothing below it is looked at.
                    return;
                }
            }
            for child in m.values() {
                collect_removed_types(child, out);
            }
        }
        Value::Array(items) => {
            for child in items {
                if child.is_object() {
                    collect_removed_types(child, out);
                }
            }
        }
        _ => {}
    }
}

/// `type.googleapis.com/envoy.config.filter.http.lua.v2.Lua` and the like.
pub fn is_removed_envoy_type(type_url: &str) -> bool {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let parts: Vec<&str> = name.split('.').collect();
    parts.first() == Some(&"envoy")
        && parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|p| matches!(*p, "v2" | "v2alpha" | "v2alpha1" | "v2beta1"))
}

/// `istioctl analyze`'s warnings on patch operations, for what one resource shows: operations
/// Istio ignores for the given `applyTo`, and relative operations (whose result depends on the
/// order filters are applied in) without a priority.
pub fn operation_warnings(r: &mut Report, spec: &EnvoyFilter) {
    let priority = spec.priority.unwrap_or(0);
    // Names of objects patched under a proxyVersion match by earlier patches.
    let mut versioned: Vec<String> = Vec::new();
    for (i, cp) in spec.config_patches.iter().enumerate() {
        let path = idx("spec.configPatches", i);
        let Some(patch) = &cp.patch else { break };
        let name = patched_name(cp);
        let route_level = matches!(
            cp.apply_to,
            ApplyTo::RouteConfiguration | ApplyTo::HttpRoute
        );
        let relative = match patch.operation {
            PatchOperation::Add => {
                if route_level {
                    r.warning(&path, "IST0153: The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.");
                }
                false
            }
            PatchOperation::Remove => {
                if route_level {
                    r.warning(&path, "IST0154: The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.");
                }
                !route_level
            }
            PatchOperation::Replace => {
                let fits = matches!(
                    cp.apply_to,
                    ApplyTo::NetworkFilter | ApplyTo::HttpFilter | ApplyTo::VirtualHost
                );
                if !fits {
                    r.warning(
                        &path,
                        "IST0152: The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
                    );
                }
                fits
            }
            PatchOperation::InsertBefore | PatchOperation::InsertAfter => true,
            _ => false,
        };
        if relative && priority == 0 {
            if versioned.contains(&name) {
                r.warning(&path, "IST0155: This EnvoyFilter does not have a priority and has a relative patch operation (INSERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.");
            } else {
                r.warning(&path, "IST0151: This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.");
            }
        }
        let has_version = cp
            .r#match
            .as_ref()
            .and_then(|m| m.proxy.as_ref())
            .is_some_and(|p| !s(&p.proxy_version).is_empty());
        if has_version {
            versioned.push(name);
        }
    }
}

/// The name a patch's object goes by: the value's `name`, else the matched network filter's.
fn patched_name(cp: &EnvoyConfigObjectPatch) -> String {
    let Some(Value::Object(value)) = cp.patch.as_ref().and_then(|p| p.value.as_ref()) else {
        return String::new();
    };
    if let Some(n) = value.get("name") {
        return n.to_string();
    }
    cp.r#match
        .as_ref()
        .and_then(|m| m.listener.as_ref())
        .and_then(|l| l.filter_chain.as_ref())
        .and_then(|fc| fc.filter.as_ref())
        .map(|f| s(&f.name).to_string())
        .unwrap_or_default()
}
