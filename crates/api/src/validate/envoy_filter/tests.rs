//! EnvoyFilter rules the conformance cases do not cover.

use crate::validate::testutil::{assert_error, assert_valid};
use crate::Report;

/// An EnvoyFilter whose spec is `spec` (YAML, indented by two).
fn filter(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: ef\n  namespace: ns\nspec:\n{}\n",
        spec.trim_matches('\n')
    )
}

/// A filter with one patch; `patch` is the YAML of the patch's fields.
fn one_patch(patch: &str) -> String {
    let body = patch.trim_matches('\n').replace('\n', "\n    ");
    filter(&format!("  configPatches:\n  - {body}"))
}

fn has_warning(r: &Report, needle: &str) -> bool {
    r.warnings().any(|f| f.message.contains(needle))
}

const HCM: &str = "envoy.filters.network.http_connection_manager";

#[test]
fn every_envoy_filter_gets_the_general_warning() {
    let r = assert_valid(&filter("  priority: 1"));
    assert!(has_warning(
        &r,
        "EnvoyFilter exposes internal implementation details"
    ));
}

#[test]
fn patches_need_apply_to_patch_operation_and_value() {
    assert_error(
        &one_patch("patch: {operation: REMOVE}"),
        "spec.configPatches[0].applyTo",
        "missing applyTo",
    );
    assert_error(
        &one_patch("applyTo: CLUSTER"),
        "spec.configPatches[0].patch",
        "missing patch",
    );
    assert_error(
        &one_patch("applyTo: CLUSTER\npatch: {value: {name: c}}"),
        "spec.configPatches[0].patch.operation",
        "missing patch operation",
    );
    assert_error(
        &one_patch("applyTo: CLUSTER\npatch: {operation: MERGE}"),
        "spec.configPatches[0].patch.value",
        "missing patch value",
    );
    assert_error(
        &one_patch("applyTo: CLUSTER\npatch: {operation: ADD, value: [a]}"),
        "spec.configPatches[0].patch.value",
        "type object",
    );
    assert_valid(&one_patch("applyTo: CLUSTER\npatch: {operation: REMOVE}"));
}

#[test]
fn waypoint_patches_skip_istio_checks_but_not_the_schema() {
    assert_valid(&one_patch(
        "match: {context: WAYPOINT, waypoint: {portNumber: 8080}}",
    ));
    assert_error(
        &one_patch("match: {context: WAYPOINT, waypoint: {portNumber: 0}}"),
        "spec.configPatches[0].match.waypoint.portNumber",
        "1-65535",
    );
}

#[test]
fn match_object_types_are_a_oneof() {
    assert_error(
        &one_patch("applyTo: CLUSTER\nmatch: {cluster: {name: a}, listener: {name: b}}\npatch: {operation: REMOVE}"),
        "spec.configPatches[0].match",
        "only one of",
    );
}

#[test]
fn apply_to_must_fit_the_match() {
    assert_error(
        &one_patch("applyTo: HTTP_FILTER\nmatch: {cluster: {name: a}}\npatch: {operation: REMOVE}"),
        "spec.configPatches[0].match",
        "listener class objects",
    );
    assert_error(
        &one_patch("applyTo: VIRTUAL_HOST\nmatch: {listener: {portNumber: 80}}\npatch: {operation: REMOVE}"),
        "spec.configPatches[0].match",
        "http route class objects",
    );
    assert_error(
        &one_patch(
            "applyTo: CLUSTER\nmatch: {routeConfiguration: {name: r}}\npatch: {operation: REMOVE}",
        ),
        "spec.configPatches[0].match",
        "cluster class objects",
    );
    // Without an object type any applyTo goes.
    assert_valid(&one_patch(
        "applyTo: CLUSTER\nmatch: {context: SIDECAR_OUTBOUND}\npatch: {operation: REMOVE}",
    ));
}

#[test]
fn filter_and_sub_filter_matches() {
    let fpath = "spec.configPatches[0].match.listener.filterChain.filter";
    assert_error(
        &one_patch("applyTo: NETWORK_FILTER\nmatch: {listener: {filterChain: {filter: {}}}}\npatch: {operation: REMOVE}"),
        &format!("{fpath}.name"),
        "no name to match on",
    );
    assert_error(
        &one_patch(&format!("applyTo: NETWORK_FILTER\nmatch: {{listener: {{filterChain: {{filter: {{name: {HCM}, subFilter: {{name: envoy.filters.http.router}}}}}}}}}}\npatch: {{operation: REMOVE}}")),
        &format!("{fpath}.subFilter"),
        "HTTP_FILTER only",
    );
    assert_error(
        &one_patch("applyTo: HTTP_FILTER\nmatch: {listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy, subFilter: {name: x}}}}}\npatch: {operation: REMOVE}"),
        &format!("{fpath}.name"),
        "requires filter match with",
    );
    assert_error(
        &one_patch(&format!("applyTo: HTTP_FILTER\nmatch: {{listener: {{filterChain: {{filter: {{name: {HCM}, subFilter: {{}}}}}}}}}}\npatch: {{operation: REMOVE}}")),
        &format!("{fpath}.subFilter.name"),
        "no name to match on",
    );
    // The deprecated HCM name still works for sub-filter matches, with warnings.
    let r = assert_valid(&one_patch("applyTo: HTTP_FILTER\nmatch: {listener: {filterChain: {filter: {name: envoy.http_connection_manager, subFilter: {name: envoy.router}}}}}\npatch: {operation: REMOVE}"));
    assert!(has_warning(
        &r,
        "use \"envoy.filters.network.http_connection_manager\" instead"
    ));
    assert!(has_warning(&r, "use \"envoy.filters.http.router\" instead"));
    let r = assert_valid(&one_patch(&format!(
        "applyTo: FILTER_CHAIN\nmatch: {{listener: {{filterChain: {{filter: {{name: {HCM}}}}}}}}}\npatch: {{operation: REMOVE}}"
    )));
    assert!(has_warning(
        &r,
        "filter match has no effect when used with FILTER_CHAIN"
    ));
}

#[test]
fn proxy_version_is_a_regex() {
    assert_valid(&one_patch(
        "applyTo: CLUSTER\nmatch: {proxy: {proxyVersion: '^1\\.2[0-9].*'}}\npatch: {operation: REMOVE}",
    ));
    assert_error(
        &one_patch(
            "applyTo: CLUSTER\nmatch: {proxy: {proxyVersion: '1.(2'}}\npatch: {operation: REMOVE}",
        ),
        "spec.configPatches[0].match.proxy.proxyVersion",
        "invalid regex for proxy version",
    );
    let long = "a".repeat(1025);
    let r = assert_valid(&one_patch(&format!(
        "applyTo: CLUSTER\nmatch: {{proxy: {{proxyVersion: '{long}('}}}}\npatch: {{operation: REMOVE}}"
    )));
    assert!(has_warning(&r, "exceeds 1024 characters"));
}

#[test]
fn workload_selector_rules() {
    assert_error(
        &filter("  workloadSelector:\n    labels: {app: 'web*'}"),
        "spec.workloadSelector.labels",
        "wildcard is not supported",
    );
    assert_error(
        &filter("  workloadSelector:\n    labels: {'': web}"),
        "spec.workloadSelector.labels",
        "empty key",
    );
    let r = assert_valid(&filter("  workloadSelector: {}"));
    assert!(has_warning(
        &r,
        "will be applied to all services in namespace"
    ));
    assert_error(
        &filter("  workloadSelector:\n    labels: {app: web}\n  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}"),
        "spec",
        "only one of targetRefs or workloadSelector",
    );
}

#[test]
fn target_refs_follow_the_schema() {
    assert_valid(&filter(
        "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}",
    ));
    assert_error(
        &filter("  targetRefs:\n  - {kind: Gateway, name: gw, namespace: other}"),
        "spec.targetRefs[0].namespace",
        "cross namespace",
    );
    assert_error(
        &filter("  targetRefs:\n  - {name: gw}"),
        "spec.targetRefs[0].kind",
        "Required value",
    );
    assert_error(
        &filter("  targetRefs:\n  - {kind: Gateway, group: Gateway.Networking, name: gw}"),
        "spec.targetRefs[0].group",
        "Invalid value",
    );
}

#[test]
fn removed_v2_types_and_untyped_filters_warn() {
    let r = assert_valid(&one_patch(
        "applyTo: HTTP_FILTER\npatch:\n  operation: INSERT_FIRST\n  value:\n    name: envoy.lua\n    typed_config:\n      '@type': type.googleapis.com/envoy.config.filter.http.lua.v2.Lua",
    ));
    assert!(has_warning(&r, "unknown @type values detected"));
    let r = assert_valid(&one_patch(
        "applyTo: HTTP_FILTER\npatch:\n  operation: INSERT_FIRST\n  value:\n    name: envoy.filters.http.cors",
    ));
    assert!(has_warning(
        &r,
        "without typed_config; envoy.filters.http.cors"
    ));
    let r = assert_valid(&one_patch(
        "applyTo: CLUSTER\npatch:\n  operation: ADD\n  value:\n    name: c\n    transport_socket: {name: envoy.transport_sockets.tls}",
    ));
    assert!(has_warning(
        &r,
        "without typed_config; envoy.transport_sockets.tls"
    ));
    let r = assert_valid(&one_patch(
        "applyTo: HTTP_FILTER\npatch:\n  operation: INSERT_FIRST\n  value:\n    name: envoy.filters.http.cors\n    typed_config:\n      '@type': type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
    ));
    assert!(!has_warning(&r, "typed_config"));
    assert!(!has_warning(&r, "@type"));
}

#[test]
fn operation_warnings_follow_istioctl_analyze() {
    let r = assert_valid(&one_patch(
        "applyTo: CLUSTER\npatch: {operation: REPLACE, value: {name: c}}",
    ));
    assert!(has_warning(&r, "IST0152"));
    let r = assert_valid(&one_patch(
        "applyTo: HTTP_ROUTE\nmatch: {routeConfiguration: {name: r}}\npatch: {operation: ADD, value: {name: c}}",
    ));
    assert!(has_warning(&r, "IST0153"));
    let r = assert_valid(&one_patch(
        "applyTo: ROUTE_CONFIGURATION\npatch: {operation: REMOVE}",
    ));
    assert!(has_warning(&r, "IST0154"));
    let before = format!("applyTo: HTTP_FILTER\nmatch: {{listener: {{filterChain: {{filter: {{name: {HCM}, subFilter: {{name: envoy.filters.http.router}}}}}}}}}}\npatch:\n  operation: INSERT_BEFORE\n  value:\n    name: f\n    typed_config: {{'@type': type.googleapis.com/udpa.type.v1.TypedStruct}}");
    let r = assert_valid(&one_patch(&before));
    assert!(has_warning(&r, "IST0151"));
    let with_priority = one_patch(&before).replace("spec:\n", "spec:\n  priority: 10\n");
    let r = assert_valid(&with_priority);
    assert!(!has_warning(&r, "IST0151"));
    // A relative patch on a name an earlier patch matched under a proxy version.
    let versioned = format!(
        "{}\n  - {}",
        one_patch(&before.replace("match: {", "match: {proxy: {proxyVersion: '^1\\.2.*'}, "))
            .trim_end(),
        before.replace('\n', "\n    ")
    );
    let r = assert_valid(&versioned);
    assert!(has_warning(&r, "IST0155"), "{:?}", r.findings);
}

#[test]
fn canonical_names() {
    assert_eq!(
        super::canonical_filter_name("envoy.tcp_proxy"),
        Some("envoy.filters.network.tcp_proxy")
    );
    assert_eq!(super::canonical_filter_name(HCM), None);
    assert!(super::is_removed_envoy_type(
        "type.googleapis.com/envoy.api.v2.Cluster"
    ));
    assert!(!super::is_removed_envoy_type(
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ));
}
