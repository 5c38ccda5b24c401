use super::*;
use crate::cluster::LbPolicy;
use crate::registry::tests::resources;
use crate::route::{Route, RouteAction, StringMatch};
use crate::snapshot::ListenerKind;

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}, annotations: {bowline.io/address: 127.0.0.11}}
spec: {}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web, version: v2}, annotations: {bowline.io/address: 127.0.0.12}}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  clusterIP: 10.96.0.20
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}, annotations: {bowline.io/address: 127.0.0.13}}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#;

fn gateway_proxy() -> ProxyIdentity {
    let mut p = ProxyIdentity::new(Role::Gateway, "istio-system");
    p.labels.insert("istio".into(), "ingressgateway".into());
    p
}

fn run(yaml: &str, proxy: &ProxyIdentity) -> Compiled {
    let rs = resources(&format!("{WORKLOADS}\n---\n{yaml}"));
    compile(&rs, &MeshConfig::istio_default(), proxy).unwrap()
}

fn routes<'s>(c: &'s Compiled, table: &str, domain: &str) -> &'s [Route] {
    let t = c
        .snapshot
        .route_tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("no table {table}: {:#?}", c.snapshot));
    &t.virtual_hosts
        .iter()
        .find(|v| v.domains.iter().any(|d| d == domain))
        .unwrap_or_else(|| panic!("no vhost {domain} in {t:#?}"))
        .routes
}

fn forward_clusters(r: &Route) -> Vec<(String, u32)> {
    match &r.action {
        RouteAction::Forward(f) => f
            .clusters
            .iter()
            .map(|c| (c.cluster.clone(), c.weight))
            .collect(),
        other => panic!("not a forward: {other:?}"),
    }
}

#[test]
fn gateway_listens_only_for_selected_gateways_carries_tls_and_applies_the_port_offset() {
    let mut proxy = gateway_proxy();
    proxy.port_offset = 10000;
    let c = run(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: shop}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 81, name: http, protocol: HTTP}
    hosts: ["*"]
"#,
        &proxy,
    );
    let ports: Vec<(String, u16)> = c
        .snapshot
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.port))
        .collect();
    assert_eq!(
        ports,
        [
            ("0.0.0.0_10080".to_string(), 10080),
            ("0.0.0.0_10443".to_string(), 10443)
        ]
    );
    assert_eq!(c.snapshot.route_tables[0].name, "http.443");
    assert_eq!(c.snapshot.route_tables[1].name, "http.80");
    // No VirtualService is bound: no virtual host at all, so every request is a 404.
    assert!(c.snapshot.route_tables[1].virtual_hosts.is_empty());
    // The HTTPS server's settings travel with its listener; termination is not there yet.
    let tls = c.snapshot.listeners[1].tls.as_ref().expect("tls settings");
    assert_eq!(tls.mode, crate::TlsMode::Simple);
    assert_eq!(tls.certificates[0].credential_name.as_deref(), Some("cert"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].message.contains("TLS termination"));
}

#[test]
fn gateway_virtual_hosts_intersect_virtual_service_and_server_hosts() {
    let c = run(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop/*.example.com", "other/api.other.org"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: ["*", "api.other.org"]
  gateways: [istio-system/gw]
  http:
  - match:
    - {uri: {prefix: /v2}, gateways: [mesh]}
    route: [{destination: {host: web, subset: v2}}]
  - match:
    - uri: {prefix: /a}
      sourceLabels: {istio: ingressgateway}
    - uri: {prefix: /b}
      sourceLabels: {app: somebody-else}
    - {uri: {prefix: /c}, port: 8443}
    route: [{destination: {host: web, subset: v1}}]
  - redirect: {uri: /new, authority: example.org, redirectCode: 308}
"#,
        &gateway_proxy(),
    );
    let t = &c.snapshot.route_tables[0];
    // `*` narrows to the server's `*.example.com`; api.other.org is served to VirtualServices
    // of the `other` namespace only.
    let domains: Vec<&[String]> = t.virtual_hosts.iter().map(|v| &v.domains[..]).collect();
    assert_eq!(domains, [["*.example.com".to_string()]]);
    let rs = routes(&c, "http.80", "*.example.com");
    // The mesh-only match drops its whole rule; the sourceLabels and port mismatches drop
    // their matches only.
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].matches.len(), 1);
    assert_eq!(
        rs[0].matches[0].path,
        Some(StringMatch::Prefix("/a".into()))
    );
    assert_eq!(
        forward_clusters(&rs[0]),
        [("outbound|80|v1|web.shop.svc.cluster.local".to_string(), 100)]
    );
    match &rs[1].action {
        RouteAction::Redirect(r) => {
            assert_eq!(r.status, 308);
            assert_eq!(r.path.as_deref(), Some("/new"));
            assert_eq!(r.authority.as_deref(), Some("example.org"));
        }
        other => panic!("{other:?}"),
    }
    // Subset endpoints, DestinationRule load balancing with the subset's override, targetPort.
    let v1 = &c.snapshot.clusters[0];
    assert_eq!(v1.name, "outbound|80|v1|web.shop.svc.cluster.local");
    assert_eq!(v1.lb_policy, LbPolicy::LeastRequest);
    let eps: Vec<String> = v1
        .endpoints
        .iter()
        .map(|e| format!("{}:{}", e.address, e.port))
        .collect();
    assert_eq!(eps, ["127.0.0.11:8080"]);
}

#[test]
fn unknown_subsets_and_hosts_give_empty_clusters_and_warnings() {
    let c = run(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /x}}]
    route: [{destination: {host: web, subset: v9}}]
  - match: [{uri: {prefix: /y}}]
    route: [{destination: {host: nowhere.example.com, port: {number: 80}}}]
  - match: [{uri: {prefix: /z}}]
    route: [{destination: {host: web, port: {number: 81}}}]
  - route: [{destination: {host: nowhere.example.com}}]
"#,
        &gateway_proxy(),
    );
    let names: Vec<(&str, usize)> = c
        .snapshot
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.endpoints.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("outbound|80||nowhere.example.com", 0),
            ("outbound|80|v9|web.shop.svc.cluster.local", 0),
            ("outbound|81||web.shop.svc.cluster.local", 0)
        ]
    );
    let text: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert!(text.iter().any(|w| w.contains("subset `v9`")), "{text:?}");
    assert!(
        text.iter()
            .any(|w| w.contains("not in the service registry")),
        "{text:?}"
    );
    // As pilot: no port on a service outside the registry means the listener's port (80).
    assert!(
        text.iter().any(|w| w.contains("has no port 81")),
        "{text:?}"
    );
    assert_eq!(routes(&c, "http.80", "*").len(), 4);
}

#[test]
fn sidecar_routes_mesh_virtual_services_and_defaults_the_rest() {
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "shop");
    proxy.labels.insert("app".into(), "client".into());
    let c = run(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: web, subset: v2}}]
  - route:
    - {destination: {host: web, subset: v1}, weight: 80}
    - {destination: {host: web, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway-only, namespace: shop}
spec:
  hosts: [db]
  gateways: [gw]
  tcp: [{route: [{destination: {host: web}}]}]
"#,
        &proxy,
    );
    let listeners: Vec<(&str, &ListenerKind)> = c
        .snapshot
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), &l.kind))
        .collect();
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    assert_eq!(listeners[0].0, "0.0.0.0_80");
    // The TCP service listens on its cluster IP; the gateway-only VirtualService does not apply.
    assert_eq!(listeners[1].0, "10.96.0.20_5432");
    match listeners[1].1 {
        ListenerKind::Tcp { clusters } => {
            assert_eq!(
                clusters[0].cluster,
                "outbound|5432||db.shop.svc.cluster.local"
            )
        }
        other => panic!("{other:?}"),
    }
    let rs = routes(&c, "80", "web");
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].matches[0].headers[0].name, "end-user");
    assert_eq!(
        forward_clusters(&rs[1]),
        [
            ("outbound|80|v1|web.shop.svc.cluster.local".to_string(), 80),
            ("outbound|80|v2|web.shop.svc.cluster.local".to_string(), 20)
        ]
    );
    for d in ["web:80", "web.shop", "web.shop.svc.cluster.local:80"] {
        routes(&c, "80", d);
    }
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn sidecars_in_other_namespaces_get_no_short_names_and_no_hidden_services() {
    let proxy = ProxyIdentity::new(Role::Sidecar, "elsewhere");
    let c = run(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: shop
  annotations: {networking.istio.io/exportTo: "."}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"#,
        &proxy,
    );
    let t = &c.snapshot.route_tables[0];
    let all: Vec<&String> = t.virtual_hosts.iter().flat_map(|v| &v.domains).collect();
    assert!(all.iter().any(|d| *d == "web.shop"));
    assert!(!all.iter().any(|d| *d == "web"));
    assert!(!all.iter().any(|d| d.starts_with("private")));
}

#[test]
fn a_port_offset_outside_the_port_range_is_an_error() {
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "shop");
    proxy.port_offset = -80;
    let rs = resources(WORKLOADS);
    let err = compile(&rs, &MeshConfig::istio_default(), &proxy).unwrap_err();
    assert!(
        matches!(err, CompileError::PortOutOfRange { port: 80, .. }),
        "{err}"
    );
}

/// What a full compile of `yaml` gives for the clusters of `hosts`, next to what the
/// endpoint-only recompile from the compile of `before` gives.
fn full_and_recompiled(
    before: &str,
    after: &str,
    proxy: &ProxyIdentity,
) -> Option<(Recompiled, Recompiled)> {
    let mesh = MeshConfig::istio_default();
    let was = resources(&format!("{WORKLOADS}\n---\n{before}"));
    let now = resources(&format!("{WORKLOADS}\n---\n{after}"));
    let was: Vec<&Resource> = was.iter().collect();
    let now: Vec<&Resource> = now.iter().collect();
    let was_registry = build_registry(&was, &mesh);
    let now_registry = build_registry(&now, &mesh);
    let hosts = now_registry
        .registry
        .endpoint_changes(&was_registry.registry)?;
    assert!(!hosts.is_empty(), "the change moves endpoints");
    let old = compile_with(&was, &was_registry, &mesh, proxy)
        .unwrap()
        .snapshot;
    let names: Vec<ClusterName> = old
        .clusters
        .iter()
        .filter_map(|c| c.name.parse::<ClusterName>().ok())
        .filter(|n| hosts.contains(&n.host))
        .collect();
    assert!(names.len() >= 3, "web, web v1 and web v2: {names:?}");
    let patched = recompile_clusters(
        &now,
        &now_registry,
        &was_registry.registry,
        &mesh,
        proxy,
        &names,
    )?;
    let full = compile_with(&now, &now_registry, &mesh, proxy)
        .unwrap()
        .snapshot;
    let wanted: Vec<String> = names.iter().map(ToString::to_string).collect();
    let expected = Recompiled {
        clusters: full
            .clusters
            .into_iter()
            .filter(|c| wanted.contains(&c.name))
            .collect(),
        mesh_tls: full
            .mesh_tls
            .into_iter()
            .filter(|m| wanted.contains(&m.cluster))
            .collect(),
    };
    Some((patched, expected))
}

const WEB_ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - route:
    - {destination: {host: web, subset: v1}, weight: 50}
    - {destination: {host: web, subset: v2}, weight: 50}
  - route:
    - destination: {host: web}
"#;

#[test]
fn an_endpoint_only_recompile_equals_the_full_compile() {
    let moved = format!(
        "{WEB_ROUTES}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web-3, namespace: shop, labels: {{app: web, version: v2, security.istio.io/tlsMode: istio}}, annotations: {{bowline.io/address: 127.0.0.14}}}}\nspec: {{serviceAccountName: web}}\n"
    );
    let mut sidecar = ProxyIdentity::new(Role::Sidecar, "shop");
    sidecar.locality = "r1/z1".into();
    let (patched, full) = full_and_recompiled(WEB_ROUTES, &moved, &sidecar).expect("endpoint-only");
    assert_eq!(patched, full);
    // The new sidecar endpoint brings auto mTLS to two of the clusters, with its identity.
    assert_eq!(full.mesh_tls.len(), 2, "{:?}", full.mesh_tls);
    let sans = &full.mesh_tls[0].subject_alt_names;
    assert!(sans.iter().any(|s| s.ends_with("/sa/web")), "{sans:?}");
}

#[test]
fn anything_but_endpoints_changing_needs_the_full_compile() {
    let mesh = MeshConfig::istio_default();
    let refs = |rs: &[Resource]| build_registry(&rs.iter().collect::<Vec<_>>(), &mesh);
    let was = refs(&resources(WORKLOADS));
    let more = format!("{WORKLOADS}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: cache, namespace: shop}}\nspec:\n  ports: [{{port: 6379}}]\n");
    let now = refs(&resources(&more));
    assert_eq!(now.registry.endpoint_changes(&was.registry), None);
    let port = WORKLOADS.replace("tcp-pg, port: 5432", "tcp-pg, port: 5433");
    let now = refs(&resources(&port));
    assert_eq!(now.registry.endpoint_changes(&was.registry), None);
    assert_eq!(
        was.registry.endpoint_changes(&was.registry),
        Some(Default::default())
    );
}

#[test]
fn a_capture_sidecar_whose_own_ports_move_needs_the_full_compile() {
    // The sidecar of web-3 learns it serves web's port from web-3's endpoint appearing.
    let moved = format!(
        "{WEB_ROUTES}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web-3, namespace: shop, labels: {{app: web, version: v3}}, annotations: {{bowline.io/address: 127.0.0.14}}}}\nspec: {{}}\n"
    );
    let mut own = ProxyIdentity::new(Role::Sidecar, "shop");
    own.capture = true;
    own.pod_ip = Some("127.0.0.14".parse().unwrap());
    assert!(full_and_recompiled(WEB_ROUTES, &moved, &own).is_none());
    // Another capture sidecar is patched, and the patch is right.
    own.pod_ip = Some("127.0.0.99".parse().unwrap());
    let (patched, full) = full_and_recompiled(WEB_ROUTES, &moved, &own).expect("endpoint-only");
    assert_eq!(patched, full);
}
