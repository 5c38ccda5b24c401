//! The push side over a real store: an endpoint-only change is patched into each shape's last
//! config instead of compiled, and what is pushed equals what a full compile gives.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use control::push::{PushOptions, Pusher};
use control::store::ConfigSnapshot;
use model::{ProxyIdentity, Role};
use xds::resources::{section, CLUSTER, ENDPOINTS, ROUTE_TABLE};
use xds::{Generated, Provider};

/// `payments` with two endpoints, the second on `port`; `sidecar` puts a sidecar (auto mTLS) on
/// the second.
fn payments(port: u16, sidecar: bool) -> String {
    let tls = if sidecar {
        ", security.istio.io/tlsMode: istio"
    } else {
        ""
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payments, namespace: shop}}
spec:
  hosts: [payments.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 10.1.0.1, ports: {{http: 8080}}, labels: {{version: v1}}}}
  - {{address: 10.1.0.2, ports: {{http: {port}}}, labels: {{version: v2{tls}}}, serviceAccount: payments}}
"
    )
}

const REST: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders, namespace: shop}
spec:
  hosts: [orders.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.2.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments, namespace: shop}
spec:
  host: payments.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
";

fn routes(timeout_s: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: payments, namespace: shop}}
spec:
  hosts: [payments.shop.svc.cluster.local]
  http:
  - timeout: {timeout_s}s
    route:
    - {{destination: {{host: payments.shop.svc.cluster.local, subset: v1}}, weight: 90}}
    - {{destination: {{host: payments.shop.svc.cluster.local, subset: v2}}, weight: 10}}
"
    )
}

/// What a full compile of `snap` gives `proxy`.
fn full_compile(snap: &ConfigSnapshot, proxy: &ProxyIdentity) -> Generated {
    let resources: Vec<api::Resource> = snap
        .resources
        .values()
        .flat_map(|m| m.values())
        .map(|e| e.resource.clone())
        .collect();
    let compiled = model::compile(&resources, &snap.mesh, proxy).expect("compiles");
    Generated::new(
        &compiled.snapshot,
        "full".into(),
        std::time::Instant::now(),
        None,
    )
    .expect("splits")
}

fn assert_same_resources(pushed: &Generated, full: &Generated) {
    for (i, s) in xds::SECTIONS.iter().enumerate() {
        assert_eq!(
            *pushed.sections[i], *full.sections[i],
            "{} differs",
            s.short
        );
    }
}

async fn next_push(pusher: &Pusher, rx: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("a push within 10 s")
        .expect("the pusher runs");
    let _ = pusher;
}

#[tokio::test]
async fn an_endpoint_only_change_is_patched_and_equals_a_full_compile() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "payments.yaml", &payments(8080, false));
    write(dir.path(), "rest.yaml", REST);
    write(dir.path(), "routes.yaml", &routes(1));
    let store = start(dir.path(), Duration::from_millis(20)).await;
    let pusher = Pusher::new(
        store.handle(),
        PushOptions {
            debounce: Duration::from_millis(20),
            ..Default::default()
        },
    );
    let _task = pusher.spawn();
    let mut pushes = pusher.pushes();
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "shop");
    proxy.service_account = "web".into();

    let first = pusher.generate(&proxy).await.expect("first config");
    assert_same_resources(&first, &full_compile(&store.handle().load(), &proxy));

    // The second endpoint moves port and gains a sidecar: endpoints and mesh mTLS change.
    write(dir.path(), "payments.yaml", &payments(9090, true));
    next_push(&pusher, &mut pushes).await;
    let moved = pusher
        .generate(&proxy)
        .await
        .expect("config after the move");
    assert_eq!(pusher.endpoint_patches(), 1, "patched, not compiled");
    assert_same_resources(&moved, &full_compile(&store.handle().load(), &proxy));
    let (cds, eds, rds) = (
        section(CLUSTER).unwrap().0,
        section(ENDPOINTS).unwrap().0,
        section(ROUTE_TABLE).unwrap().0,
    );
    for i in [cds, rds] {
        assert!(Arc::ptr_eq(&first.sections[i], &moved.sections[i]));
    }
    let mtls = section(xds::resources::MESH_TLS).unwrap().0;
    assert_eq!(
        moved.sections[mtls].len(),
        1,
        "auto mTLS for the v2 subset only"
    );
    let delta = moved.deltas[eds].as_ref().expect("an EDS delta");
    assert_eq!(
        delta.changed,
        ["outbound|80|v2|payments.shop.svc.cluster.local"],
        "the v1 subset's endpoint did not move"
    );

    // A route change is compiled in full.
    write(dir.path(), "routes.yaml", &routes(2));
    next_push(&pusher, &mut pushes).await;
    let rerouted = pusher
        .generate(&proxy)
        .await
        .expect("config after the route change");
    assert_eq!(pusher.endpoint_patches(), 1);
    assert_same_resources(&rerouted, &full_compile(&store.handle().load(), &proxy));
    assert!(!Arc::ptr_eq(&moved.sections[rds], &rerouted.sections[rds]));
}
