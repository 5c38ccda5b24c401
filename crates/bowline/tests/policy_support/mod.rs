//! Helpers shared by the traffic-policy scenario tests: Istio YAML for one service
//! (`HOST`, port 8000) compiled for a sidecar and served by a real proxy on loopback.
#![allow(dead_code)]

use std::net::SocketAddr;

use api::types::mesh::MeshConfig;
use testkit::client::{self, get, Reply};
use testkit::TestProxy;

pub const HOST: &str = "httpbin.default.svc.cluster.local";

/// Parses and validates `yaml`, compiles it for a sidecar in `default` at `locality`, and
/// moves the listeners to free loopback ports.
pub fn snapshot(yaml: &str, locality: &str) -> model::ProxySnapshot {
    let resources: Vec<api::Resource> = api::load_str("test.yaml", yaml)
        .into_iter()
        .map(|d| match d {
            api::Decoded::Resource(r) => *r,
            other => panic!("not a resource: {other:?}"),
        })
        .collect();
    for r in &resources {
        let errors: Vec<_> = r
            .validate()
            .findings
            .into_iter()
            .filter(|f| f.severity == api::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", r.id());
    }
    let mut proxy = model::ProxyIdentity::new(model::Role::Sidecar, "default");
    proxy.locality = locality.to_string();
    let compiled = model::compile(&resources, &MeshConfig::istio_default(), &proxy).unwrap();
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    let mut snap = compiled.snapshot;
    for l in &mut snap.listeners {
        l.address = "127.0.0.1".parse().unwrap();
        l.port = 0;
    }
    snap
}

/// A ServiceEntry for `HOST` on port 8000 backed by `endpoints` (address, locality).
pub fn service_entry(endpoints: &[(SocketAddr, &str)]) -> String {
    let mut eps = String::new();
    for (i, (a, locality)) in endpoints.iter().enumerate() {
        eps.push_str(&format!(
            "  - address: {}\n    ports: {{http: {}}}\n    labels: {{instance: i{i}}}\n    locality: {locality}\n",
            a.ip(),
            a.port()
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: httpbin, namespace: default}}\nspec:\n  hosts: [{HOST}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 8000, name: http, protocol: HTTP}}]\n  endpoints:\n{eps}"
    )
}

pub fn destination_rule(traffic_policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: httpbin, namespace: default}}\nspec:\n  host: {HOST}\n  trafficPolicy:\n{traffic_policy}"
    )
}

pub async fn start(yaml: &str, locality: &str) -> (TestProxy, SocketAddr) {
    let proxy = TestProxy::start(snapshot(yaml, locality)).await;
    let addr = proxy.addr("0.0.0.0_8000");
    (proxy, addr)
}

pub async fn call(addr: SocketAddr, path: &str) -> Reply {
    client::send(addr, get(HOST, path)).await
}

pub async fn futures_names(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(call(addr, "/").await.text());
    }
    out
}

pub fn count_name(names: &[String], n: &str) -> usize {
    names.iter().filter(|x| *x == n).count()
}
