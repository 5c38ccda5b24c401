use super::*;

pub(crate) fn resources(yaml: &str) -> Vec<Resource> {
    api::load_str("test.yaml", yaml)
        .into_iter()
        .map(|d| match d {
            api::Decoded::Resource(r) => *r,
            other => panic!("not a resource: {other:?}"),
        })
        .collect()
}

fn registry(yaml: &str) -> (Registry, Vec<Warning>) {
    let rs = resources(yaml);
    let refs: Vec<&Resource> = rs.iter().collect();
    let mut warnings = Vec::new();
    let r = Registry::build(&refs, "cluster.local", &mut warnings);
    (r, warnings)
}

const KUBE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  clusterIP: 10.96.0.7
  ports:
  - {name: http, port: 9080, targetPort: web}
  - {name: grpc-api, port: 9090, targetPort: 7000}
---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-1
  namespace: shop
  labels: {app: reviews, version: v1, topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1}
spec:
  serviceAccountName: reviews
  containers:
  - name: app
    ports: [{name: web, containerPort: 8080}]
status:
  podIP: 10.0.0.5
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: reviews, version: v2}
      annotations: {bowline.io/address: 127.0.0.9}
    spec:
      containers:
      - name: app
        ports: [{name: web, containerPort: 8081}]
---
apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: shop, labels: {app: reviews}}
spec: {}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: other, labels: {app: reviews}, annotations: {bowline.io/address: 127.0.0.10}}
spec: {}
"#;

#[test]
fn kubernetes_service_endpoints_come_from_matching_pods_and_deployments_with_an_address() {
    let (reg, warnings) = registry(KUBE);
    assert!(warnings.is_empty(), "{warnings:?}");
    let s = reg
        .lookup("shop", "reviews.shop.svc.cluster.local")
        .unwrap();
    assert_eq!(s.kube_name.as_deref(), Some("reviews"));
    assert_eq!(s.addresses, ["10.96.0.7"]);
    assert_eq!(s.port(9080).unwrap().protocol, Protocol::Http);
    assert_eq!(s.port(9090).unwrap().protocol, Protocol::Grpc);
    let on = |port: u16| -> Vec<(String, u16)> {
        s.endpoints
            .iter()
            .filter(|e| e.service_port == port)
            .map(|e| (e.address.to_string(), e.port))
            .collect()
    };
    // Named targetPort resolves per workload; the pod without an address and the pod in
    // another namespace are not endpoints.
    assert_eq!(
        on(9080),
        [("10.0.0.5".into(), 8080), ("127.0.0.9".into(), 8081)]
    );
    assert_eq!(
        on(9090),
        [("10.0.0.5".into(), 7000), ("127.0.0.9".into(), 7000)]
    );
    let pod = &s.endpoints[0];
    assert_eq!(pod.locality, "eu/eu-1");
    assert_eq!(
        pod.service_account,
        "spiffe://cluster.local/ns/shop/sa/reviews"
    );
    assert_eq!(pod.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(
        s.endpoints[1].service_account,
        "spiffe://cluster.local/ns/shop/sa/default"
    );
}

#[test]
fn service_entries_give_one_service_per_host_with_static_and_selected_endpoints() {
    let (reg, warnings) = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example.com, api2.example.com]
  addresses: [240.0.0.1]
  location: MESH_EXTERNAL
  resolution: STATIC
  exportTo: ["."]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  endpoints:
  - {address: 10.1.0.1, labels: {v: a}, locality: us/east, weight: 3, serviceAccount: ext}
  - {address: 10.1.0.2, ports: {http: 9999}}
  - {address: api.internal}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: shop}
spec:
  hosts: [vm.shop.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: shop, labels: {app: vm}}
spec: {address: 10.2.0.1, labels: {app: vm}, serviceAccount: vm}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-other-ns, namespace: other, labels: {app: vm}}
spec: {address: 10.2.0.2}
"#,
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("api.internal"));
    let api = reg.lookup("shop", "api.example.com").unwrap();
    assert!(reg.lookup("shop", "api2.example.com").is_some());
    // exportTo "." hides it from other namespaces.
    assert!(reg.lookup("other", "api.example.com").is_none());
    assert_eq!(api.location, ServiceEntryLocation::MeshExternal);
    assert_eq!(api.addresses, ["240.0.0.1"]);
    let eps: Vec<(String, u16, u32, &str, &str)> = api
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.to_string(),
                e.port,
                e.weight,
                e.locality.as_str(),
                e.service_account.as_str(),
            )
        })
        .collect();
    assert_eq!(
        eps,
        [
            (
                "10.1.0.1".into(),
                8080,
                3,
                "us/east",
                "spiffe://cluster.local/ns/shop/sa/ext"
            ),
            ("10.1.0.2".into(), 9999, 1, "", ""),
        ]
    );
    let vm = reg.lookup("other", "vm.shop.internal").unwrap();
    assert_eq!(vm.endpoints.len(), 1);
    assert_eq!(vm.endpoints[0].address.to_string(), "10.2.0.1");
    assert_eq!(vm.endpoints[0].port, 9080);
}

#[test]
fn a_host_defined_in_several_namespaces_resolves_to_the_proxys_own_first() {
    let (reg, _) = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: aaa}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: zzz}
spec:
  hosts: [db.example.com]
  ports: [{number: 5433, name: tcp, protocol: TCP}]
"#,
    );
    assert_eq!(
        reg.lookup("zzz", "db.example.com").unwrap().namespace,
        "zzz"
    );
    assert_eq!(
        reg.lookup("mmm", "db.example.com").unwrap().namespace,
        "aaa"
    );
    let visible = reg.visible("zzz");
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].namespace, "zzz");
}

/// A host defined in several namespaces, among hosts sorting before and after it: the lookup
/// (a binary search over the sorted services) finds the proxy's own namespace's first, else the
/// first visible one, and `visible` keeps one service per hostname.
#[test]
fn lookup_among_namespaces_and_neighbours() {
    let se = |name: &str, ns: &str, host: &str, export: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  exportTo: [\"{export}\"]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 10.0.0.1}}]\n"
        )
    };
    let yaml = [
        se("a", "one", "a.example.com", "*"),
        se("m1", "one", "m.example.com", "*"),
        se("m2", "two", "m.example.com", "*"),
        se("m3", "three", "m.example.com", "."),
        se("z", "two", "z.example.com", "*"),
    ]
    .concat();
    let (reg, warnings) = registry(&yaml);
    assert!(warnings.is_empty(), "{warnings:?}");
    let ns_of =
        |proxy_ns: &str, host: &str| reg.lookup(proxy_ns, host).map(|s| s.namespace.as_str());
    assert_eq!(ns_of("two", "m.example.com"), Some("two"));
    assert_eq!(ns_of("three", "m.example.com"), Some("three"));
    // Not defined in `four`, and `three`'s is private: the first visible, in namespace order.
    assert_eq!(ns_of("four", "m.example.com"), Some("one"));
    assert_eq!(ns_of("four", "a.example.com"), Some("one"));
    assert_eq!(ns_of("four", "z.example.com"), Some("two"));
    assert_eq!(ns_of("four", "n.example.com"), None);
    assert_eq!(ns_of("four", "zz.example.com"), None);
    let visible: Vec<(&str, &str)> = reg
        .visible("three")
        .iter()
        .map(|s| (s.hostname.as_str(), s.namespace.as_str()))
        .collect();
    assert_eq!(
        visible,
        [
            ("a.example.com", "one"),
            ("m.example.com", "three"),
            ("z.example.com", "two")
        ]
    );
}
