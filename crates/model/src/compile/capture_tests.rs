//! The sidecar with capture: virtual listeners, inbound chains, PeerAuthentication precedence
//! and auto mTLS.

use std::net::SocketAddr;

use super::*;
use crate::registry::tests::resources;
use crate::runtime::RuntimeListenerKind;
use crate::snapshot::{ListenerKind, PeerMtls};

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp-admin, port: 9000}, {name: other, port: 7070}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web, security.istio.io/tlsMode: istio}
  annotations: {bowline.io/address: 10.88.0.11}
spec: {serviceAccountName: web-sa}
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
metadata: {name: db-1, namespace: shop, labels: {app: db}, annotations: {bowline.io/address: 10.88.0.13}}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [ext.example.com]
  addresses: [10.96.2.1, 10.96.2.2]
  ports: [{number: 6000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.1}]
"#;

fn web_proxy() -> ProxyIdentity {
    let mut p = ProxyIdentity::new(Role::Sidecar, "shop");
    p.labels.insert("app".into(), "web".into());
    p.capture = true;
    p.pod_ip = Some("10.88.0.11".parse().unwrap());
    p
}

fn run_with(yaml: &str, mesh: &MeshConfig, proxy: &ProxyIdentity) -> Compiled {
    let rs = resources(&format!("{MESH}\n---\n{yaml}"));
    compile(&rs, mesh, proxy).unwrap()
}

fn run(yaml: &str) -> Compiled {
    run_with(yaml, &MeshConfig::istio_default(), &web_proxy())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn capture_gives_two_virtual_listeners_that_dispatch_by_original_destination() {
    let c = run("");
    let names: Vec<(&str, u16)> = c
        .snapshot
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.port))
        .collect();
    assert_eq!(
        names,
        [("virtualInbound", 15006), ("virtualOutbound", 15001)]
    );
    let rt = Runtime::build(c.snapshot.clone()).unwrap();
    let out = &rt.listener(VIRTUAL_OUTBOUND).unwrap().kind;
    // The TCP service is matched on its VIP; HTTP ports on 0.0.0.0:port.
    let db = out.chain_for(addr("10.96.0.20:5432")).unwrap();
    assert!(matches!(db.kind, RuntimeListenerKind::Tcp { .. }));
    assert!(out.chain_for(addr("10.96.0.99:5432")).is_none());
    // Every address of the service leads to it.
    for vip in ["10.96.2.1:6000", "10.96.2.2:6000"] {
        assert!(out.chain_for(addr(vip)).is_some(), "{vip}");
    }
    assert!(out.http_table(Some(addr("10.1.2.3:80"))).is_some());
    assert!(out.chain_for(addr("10.1.2.3:81")).is_none());
    // A port of unknown protocol sniffs on the service address: HTTP or TCP to the service.
    let sniff = out.chain_for(addr("10.96.0.10:7070")).unwrap();
    assert!(matches!(sniff.kind, RuntimeListenerKind::AutoSniff { .. }));
    // On other addresses the port sniffs too: HTTP by Host, anything else passes through.
    let any = out.chain_for(addr("10.1.2.3:7070")).unwrap();
    assert_eq!(any.address, None);
    let RuntimeListenerKind::AutoSniff { tcp, .. } = &any.kind else {
        panic!("0.0.0.0:7070 sniffs")
    };
    assert_eq!(rt.clusters[tcp.pick(0)].name, PASSTHROUGH_CLUSTER);
    let RuntimeListenerKind::Capture { fallback, .. } = out else {
        panic!("not a capture listener")
    };
    assert_eq!(rt.clusters[fallback.pick(0)].name, PASSTHROUGH_CLUSTER);
    // Unknown hosts on a known HTTP port go to the original destination.
    let table = c
        .snapshot
        .route_tables
        .iter()
        .find(|t| t.name == "80")
        .unwrap();
    assert_eq!(table.virtual_hosts.last().unwrap().name, "allow_any");

    let inb = &rt.listener(VIRTUAL_INBOUND).unwrap().kind;
    let http = inb.chain_for(addr("10.88.0.11:8080")).unwrap();
    assert_eq!(http.mtls, PeerMtls::Permissive);
    assert!(matches!(http.kind, RuntimeListenerKind::Http { .. }));
    let tcp = inb.chain_for(addr("10.88.0.11:9000")).unwrap();
    assert!(matches!(tcp.kind, RuntimeListenerKind::Tcp { .. }));
    let sniff = inb.chain_for(addr("10.88.0.11:7070")).unwrap();
    assert!(matches!(sniff.kind, RuntimeListenerKind::AutoSniff { .. }));
    assert!(inb.chain_for(addr("10.88.0.11:7777")).is_none());
    let inbound = c
        .snapshot
        .clusters
        .iter()
        .find(|cl| cl.name == "inbound|8080||")
        .unwrap();
    assert_eq!(inbound.lb_policy, LbPolicy::Passthrough);
}

#[test]
fn registry_only_sends_unknown_destinations_to_the_black_hole() {
    let mut mesh = MeshConfig::istio_default();
    mesh.outbound_traffic_policy = Some(api::types::mesh::OutboundTrafficPolicy {
        mode: api::types::mesh::OutboundTrafficPolicyMode::RegistryOnly,
        ..Default::default()
    });
    let c = run_with("", &mesh, &web_proxy());
    let ListenerKind::OutboundCapture { fallback, .. } = &c
        .snapshot
        .listeners
        .iter()
        .find(|l| l.name == VIRTUAL_OUTBOUND)
        .unwrap()
        .kind
    else {
        panic!()
    };
    assert_eq!(fallback[0].cluster, BLACKHOLE_CLUSTER);
    let table = c
        .snapshot
        .route_tables
        .iter()
        .find(|t| t.name == "80")
        .unwrap();
    let last = table.virtual_hosts.last().unwrap();
    assert_eq!(last.name, "block_all");
    assert!(matches!(
        &last.routes[0].action,
        crate::RouteAction::DirectResponse(d) if d.status == 502
    ));
}

fn inbound_modes(c: &Compiled) -> (PeerMtls, Vec<(u16, PeerMtls)>) {
    let l = c
        .snapshot
        .listeners
        .iter()
        .find(|l| l.name == VIRTUAL_INBOUND)
        .unwrap();
    let ListenerKind::InboundCapture {
        chains,
        fallback_mtls,
        ..
    } = &l.kind
    else {
        panic!()
    };
    (
        *fallback_mtls,
        chains.iter().map(|c| (c.port, c.mtls)).collect(),
    )
}

#[test]
fn peer_authentication_precedence_is_workload_then_namespace_then_mesh() {
    let mesh_strict = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"#;
    assert_eq!(
        inbound_modes(&run(mesh_strict)),
        (
            PeerMtls::Strict,
            vec![
                (7070, PeerMtls::Strict),
                (8080, PeerMtls::Strict),
                (9000, PeerMtls::Strict)
            ]
        )
    );
    let ns_disable = r#"
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: DISABLE}}
"#;
    assert_eq!(
        inbound_modes(&run(&format!("{mesh_strict}{ns_disable}"))).0,
        PeerMtls::Disable
    );
    // Workload UNSET inherits the namespace's; ports 9000 and 7070 override.
    let workload = r#"
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls:
    9000: {mode: STRICT}
    7070: {mode: PERMISSIVE}
    6060: {mode: STRICT}
"#;
    assert_eq!(
        inbound_modes(&run(&format!("{mesh_strict}{ns_disable}{workload}"))),
        (
            PeerMtls::Disable,
            vec![
                // A port no service names still gets its mode (as opaque TCP).
                (6060, PeerMtls::Strict),
                (7070, PeerMtls::Permissive),
                (8080, PeerMtls::Disable),
                (9000, PeerMtls::Strict)
            ]
        )
    );
    // A policy selecting another workload changes nothing.
    let other = r#"
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: shop}
spec: {selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}}
"#;
    assert_eq!(
        inbound_modes(&run(&format!("{mesh_strict}{other}"))).0,
        PeerMtls::Strict
    );
}

#[test]
fn auto_mtls_covers_sidecar_endpoints_and_destination_rules_override_it() {
    let mut client = ProxyIdentity::new(Role::Sidecar, "shop");
    client.labels.insert("app".into(), "db".into());
    let c = run_with("", &MeshConfig::istio_default(), &client);
    let web = c
        .snapshot
        .mesh_tls
        .iter()
        .find(|m| m.cluster == "outbound|80||web.shop.svc.cluster.local")
        .expect("auto mTLS for web, which runs a sidecar");
    assert!(!web.all_endpoints);
    assert_eq!(
        web.subject_alt_names,
        ["spiffe://cluster.local/ns/shop/sa/web-sa"]
    );
    assert_eq!(web.sni, "outbound_.80_._.web.shop.svc.cluster.local");
    // db has no sidecar label: plain text.
    assert!(!c
        .snapshot
        .mesh_tls
        .iter()
        .any(|m| m.cluster.contains("db.shop")));

    let drs = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec: {host: web, trafficPolicy: {tls: {mode: DISABLE}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec: {host: db, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
"#;
    let c = run_with(drs, &MeshConfig::istio_default(), &client);
    let clusters: Vec<(&str, bool)> = c
        .snapshot
        .mesh_tls
        .iter()
        .map(|m| (m.cluster.as_str(), m.all_endpoints))
        .collect();
    assert_eq!(
        clusters,
        [("outbound|5432||db.shop.svc.cluster.local", true)]
    );

    let mut mesh = MeshConfig::istio_default();
    mesh.enable_auto_mtls = Some(false);
    assert!(run_with("", &mesh, &client).snapshot.mesh_tls.is_empty());
}

#[test]
fn gateways_originate_mesh_mtls_to_sidecars_too() {
    let yaml = r#"
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
  http: [{route: [{destination: {host: web, port: {number: 80}}}]}]
"#;
    let mut gateway = ProxyIdentity::new(Role::Gateway, "istio-system");
    gateway
        .labels
        .insert("istio".into(), "ingressgateway".into());
    let c = run_with(yaml, &MeshConfig::istio_default(), &gateway);
    assert_eq!(c.snapshot.mesh_tls.len(), 1, "{:?}", c.snapshot.mesh_tls);
    assert_eq!(
        c.snapshot.mesh_tls[0].cluster,
        "outbound|80||web.shop.svc.cluster.local"
    );
    let rt = Runtime::build(c.snapshot).unwrap();
    let ci = rt
        .clusters
        .iter()
        .position(|cl| cl.name == "outbound|80||web.shop.svc.cluster.local")
        .unwrap();
    assert_eq!(rt.mesh_tls[ci].as_ref().unwrap().endpoints, [true]);
}

#[test]
fn the_runtime_refuses_two_chains_for_one_destination() {
    let mut snapshot = run("").snapshot;
    let l = snapshot
        .listeners
        .iter_mut()
        .find(|l| l.name == VIRTUAL_INBOUND)
        .unwrap();
    let ListenerKind::InboundCapture { chains, .. } = &mut l.kind else {
        panic!()
    };
    chains.push(chains[0].clone());
    let err = Runtime::build(snapshot).unwrap_err().to_string();
    assert!(err.contains("another chain already matches *:"), "{err}");
}
