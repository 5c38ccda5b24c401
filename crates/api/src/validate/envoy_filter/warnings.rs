//! Warnings on EnvoyFilter patches: deprecated filter names, what can be told about a patch
//! value from its JSON alone (Envoy's typed protos are not available here), and the
//! per-resource patch-operation warnings of `istioctl analyze`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::s;
use crate::types::envoy_filter::*;
use crate::validate::{idx, Report};

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

/// The canonical name for a deprecated filter name, if it is one.
pub fn canonical_filter_name(deprecated: &str) -> Option<&'static str> {
    DEPRECATED_FILTER_NAMES
        .iter()
        .find(|(_, old)| *old == deprecated)
        .map(|(new, _)| *new)
}

pub(super) fn deprecated_name_warning(r: &mut Report, path: &str, name: &str) {
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
pub(super) fn value_warnings(
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
