//! Unit tests of the virtualservice analyzers, mostly the cases where nothing must be reported.

use crate::analyze::{Analyzer, Context};
use crate::resource::Decoded;
use crate::types::mesh::MeshConfig;

/// `(code, origin)` of what `analyzer` reports on `yaml`, sorted.
pub(crate) fn run(analyzer: &dyn Analyzer, yaml: &str) -> Vec<(String, String)> {
    run_with_mesh(analyzer, yaml, &MeshConfig::default())
}

pub(crate) fn run_with_mesh(
    analyzer: &dyn Analyzer,
    yaml: &str,
    mesh: &MeshConfig,
) -> Vec<(String, String)> {
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
    analyzer.analyze(&cx, &mut out);
    let mut v: Vec<(String, String)> = out
        .into_iter()
        .map(|m| (m.code.to_string(), m.origin))
        .collect();
    v.sort();
    v
}

fn msg(code: &str, origin: &str) -> (String, String) {
    (code.to_string(), origin.to_string())
}

use super::conflicts::ConflictingMeshGatewayHosts;
use super::destinations::{DestinationHosts, DestinationRules};
use super::gateways::Gateways;
use super::jwt::JwtClaimRoute;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{port: 9080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: two, namespace: default}
spec:
  ports: [{port: 80, name: http}, {port: 443, name: https}]
---
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: other
  annotations: {networking.istio.io/exportTo: "."}
spec:
  ports: [{port: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: NONE
"#;

fn vs(name: &str, ns: &str, body: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{body}\n"
    )
}

#[test]
fn known_hosts_ports_and_wildcards_are_quiet() {
    let yaml = [
        SERVICES,
        &vs("a", "default", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: reviews}\n    mirror: {host: reviews.default.svc.cluster.local}"),
        &vs("b", "default", "  hosts: [b]\n  http:\n  - route:\n    - destination: {host: two, port: {number: 443}}"),
        &vs("c", "default", "  hosts: [c]\n  tls:\n  - match: [{sniHosts: [c]}]\n    route:\n    - destination: {host: api.example.com}"),
        &vs("d", "other", "  hosts: [d]\n  http:\n  - route:\n    - destination: {host: private}"),
        // The ingress gateway istioctl assumes is a known host.
        &vs("e", "default", "  hosts: [e]\n  http:\n  - route:\n    - destination: {host: istio-ingressgateway.istio-system.svc.cluster.local, port: {number: 80}}"),
    ]
    .concat();
    assert_eq!(run(&DestinationHosts, &yaml), vec![]);
}

#[test]
fn missing_hosts_ports_and_ambiguous_ports_are_reported() {
    let yaml = [
        SERVICES,
        &vs("a", "default", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: nope}\n    mirrors:\n    - destination: {host: nope2}"),
        &vs("b", "default", "  hosts: [b]\n  http:\n  - route:\n    - destination: {host: two}"),
        &vs("c", "default", "  hosts: [c]\n  tcp:\n  - route:\n    - destination: {host: reviews, port: {number: 1}}"),
        // Exported only inside `other`.
        &vs("d", "default", "  hosts: [d]\n  http:\n  - route:\n    - destination: {host: private.other.svc.cluster.local}"),
    ]
    .concat();
    assert_eq!(
        run(&DestinationHosts, &yaml),
        vec![
            msg("IST0101", "VirtualService default/a"),
            msg("IST0101", "VirtualService default/a"),
            msg("IST0101", "VirtualService default/c"),
            msg("IST0101", "VirtualService default/d"),
            msg("IST0112", "VirtualService default/b"),
        ]
    );
}

#[test]
fn implicit_ingress_disappears_when_the_ingress_controller_is_off() {
    let yaml = [SERVICES, &vs("e", "default", "  hosts: [e]\n  http:\n  - route:\n    - destination: {host: istio-ingressgateway.istio-system.svc.cluster.local}")].concat();
    let mesh: MeshConfig =
        serde_json::from_value(serde_json::json!({"ingressControllerMode": "OFF"}))
            .expect("mesh config");
    assert_eq!(
        run_with_mesh(&DestinationHosts, &yaml, &mesh),
        vec![msg("IST0101", "VirtualService default/e")]
    );
}

#[test]
fn hosts_and_subsets_are_not_judged_without_any_registry_or_destination_rule() {
    let yaml = vs(
        "f",
        "default",
        "  hosts: [f]\n  http:\n  - route:\n    - destination: {host: elsewhere, subset: v1}",
    );
    assert_eq!(run(&DestinationHosts, &yaml), vec![]);
    assert_eq!(run(&DestinationRules, &yaml), vec![]);
    let with_registry = [SERVICES, &yaml].concat();
    assert_eq!(
        run(&DestinationHosts, &with_registry),
        vec![msg("IST0101", "VirtualService default/f")]
    );
}

#[test]
fn gateway_routes_without_subset_to_a_split_host() {
    let yaml = [
        SERVICES,
        &vs("split", "default", "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}"),
        &vs("edge", "default", "  hosts: [x.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: reviews}"),
        // Not bound to a gateway, or picking a subset: nothing to say.
        &vs("mesh", "default", "  hosts: [y]\n  http:\n  - route:\n    - destination: {host: reviews}"),
        &vs("edge2", "default", "  hosts: [z.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}"),
    ]
    .concat();
    let got = run(&DestinationHosts, &yaml);
    assert_eq!(got, vec![msg("IST0140", "VirtualService default/edge")]);
}

#[test]
fn subsets_resolve_short_names_and_fqdns() {
    let yaml = [
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: reviews.default.svc.cluster.local\n  subsets: [{name: v1, labels: {v: '1'}}]\n",
        &vs("a", "default", "  hosts: [a]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n    mirror: {host: reviews.default.svc.cluster.local, subset: v1}"),
        // Same short name, other namespace: another service.
        &vs("b", "other", "  hosts: [b]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}"),
        &vs("c", "default", "  hosts: [c]\n  http:\n  - route:\n    - destination: {host: reviews}\n    mirror: {host: reviews, subset: v2}"),
    ]
    .concat();
    assert_eq!(
        run(&DestinationRules, &yaml),
        vec![
            msg("IST0101", "VirtualService default/c"),
            msg("IST0101", "VirtualService other/b"),
        ]
    );
}

#[test]
fn mesh_host_conflicts_respect_export_scopes() {
    let yaml = [
        &vs("a", "foo", "  hosts: [svc]\n  http:\n  - route:\n    - destination: {host: svc}")[..],
        &vs("b", "bar", "  hosts: [svc.foo.svc.cluster.local]\n  gateways: [mesh, gw]\n  http:\n  - route:\n    - destination: {host: svc}"),
        // Bound to a gateway only: no conflict.
        &vs("c", "baz", "  hosts: [svc.foo.svc.cluster.local]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: svc}"),
        // Each visible only in its own namespace: no conflict.
        &vs("d", "t1", "  hosts: [x.org]\n  exportTo: [.]\n  http:\n  - route:\n    - destination: {host: svc}"),
        &vs("e", "t2", "  hosts: [x.org]\n  exportTo: [.]\n  http:\n  - route:\n    - destination: {host: svc}"),
        // Namespace-scoped wildcard against a global one that covers it.
        &vs("f", "t3", "  hosts: ['*.w.com']\n  exportTo: [.]\n  http:\n  - route:\n    - destination: {host: svc}"),
        &vs("g", "t4", "  hosts: ['*.com']\n  http:\n  - route:\n    - destination: {host: svc}"),
    ]
    .concat();
    assert_eq!(
        run(&ConflictingMeshGatewayHosts, &yaml),
        vec![
            msg("IST0109", "VirtualService bar/b"),
            msg("IST0109", "VirtualService foo/a"),
            msg("IST0109", "VirtualService t3/f"),
            msg("IST0109", "VirtualService t4/g"),
        ]
    );
}

const GATEWAYS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["./local.com", "shop/shop.com", "*.any.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: all, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/*"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: k8s, namespace: edge}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
"#;

#[test]
fn gateway_hosts_follow_namespace_prefixes() {
    let yaml = [
        GATEWAYS,
        &vs("ok1", "edge", "  hosts: [local.com]\n  gateways: [gw]"),
        &vs(
            "ok2",
            "shop",
            "  hosts: [a.any.com, shop.com]\n  gateways: [edge/gw]",
        ),
        &vs(
            "ok3",
            "shop",
            "  hosts: [whatever.org]\n  gateways: [edge/all, mesh]",
        ),
        // A listener without hostname serves every host.
        &vs(
            "ok4",
            "shop",
            "  hosts: [whatever.org]\n  gateways: [edge/k8s]",
        ),
        // `./local.com` belongs to the gateway's namespace, not to `shop`.
        &vs(
            "bad1",
            "shop",
            "  hosts: [local.com]\n  gateways: [edge/gw]",
        ),
        &vs("bad2", "edge", "  hosts: [x.com]\n  gateways: [missing]"),
        &vs(
            "int",
            "edge",
            "  hosts: [x.com]\n  gateways: [edge/k8s~istio-autogenerated-k8s-gateway~http]",
        ),
    ]
    .concat();
    assert_eq!(
        run(&Gateways, &yaml),
        vec![
            msg("IST0101", "VirtualService edge/bad2"),
            msg("IST0132", "VirtualService edge/bad2"),
            msg("IST0132", "VirtualService shop/bad1"),
            msg("IST0165", "VirtualService edge/int"),
        ]
    );
}

const JWT_VS: &str = "  hosts: [foo.com]\n  gateways: [istio-system/gw]\n  http:\n  - match:\n    - headers:\n        '@request.auth.claims.group': {exact: admin}\n    route:\n    - destination: {host: foo}";

const JWT_GW: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"#;

#[test]
fn jwt_claim_routes_need_request_authentication_on_gateway_pods() {
    let without = [JWT_GW, &vs("foo", "default", JWT_VS)].concat();
    assert_eq!(
        run(&JwtClaimRoute, &without),
        vec![msg("IST0149", "VirtualService default/foo")]
    );
    let with = [
        &without[..],
        "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: istio-system}\nspec:\n  selector: {matchLabels: {istio: ingressgateway}}\n  jwtRules: [{issuer: me, jwksUri: 'https://me/jwks'}]\n",
    ]
    .concat();
    assert_eq!(run(&JwtClaimRoute, &with), vec![]);
    // Without claim routing nothing is needed.
    let plain = [JWT_GW, &vs("foo", "default", "  hosts: [foo.com]\n  gateways: [istio-system/gw]\n  http:\n  - route:\n    - destination: {host: foo}")].concat();
    assert_eq!(run(&JwtClaimRoute, &plain), vec![]);
}
