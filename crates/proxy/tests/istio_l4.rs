//! Istio `tcp` and `tls` routes end to end: Istio YAML compiled by the model for a sidecar or
//! the ingress gateway, the real proxy, real connections to echo servers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use testkit::istio_yaml::{compile, ingress, serve, sidecar, tcp_backends};
use testkit::TestProxy;

/// One connection: send `payload`, return the first reply.
async fn roundtrip(addr: SocketAddr, payload: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(payload).await.expect("write");
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .expect("a reply in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Which echo server answered (`name:` prefix).
async fn who(addr: SocketAddr, payload: &[u8]) -> String {
    let got = roundtrip(addr, payload).await;
    got.split(':').next().unwrap_or("").to_string()
}

fn workloads(port: u16) -> String {
    let mut out = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: shop}}
spec:
  selector: {{app: db}}
  clusterIP: 10.96.0.20
  ports: [{{name: tcp-pg, port: 5432, targetPort: {port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: secure, namespace: shop}}
spec:
  selector: {{app: secure}}
  clusterIP: 10.96.0.30
  ports: [{{name: tls, port: 443, targetPort: {port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tls-a, namespace: shop}}
spec:
  selector: {{app: tls-a}}
  ports: [{{name: tls, port: 443, targetPort: {port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tls-b, namespace: shop}}
spec:
  selector: {{app: tls-b}}
  ports: [{{name: tls, port: 443, targetPort: {port}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: db, namespace: shop}}
spec:
  host: db
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
"#
    );
    for (i, labels) in [
        "app: db, version: v1",
        "app: db, version: v2",
        "app: secure",
        "app: tls-a",
        "app: tls-b",
    ]
    .iter()
    .enumerate()
    {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: shop, labels: {{{labels}}}, annotations: {{bowline.io/address: 127.0.0.{}}}}}\nspec: {{}}\n",
            i + 1
        ));
    }
    out
}

const SIDECAR_ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 9999}]
    route: [{destination: {host: db, subset: v2}}]
  - match: [{destinationSubnets: [10.97.0.0/16]}]
    route: [{destination: {host: db, subset: v2}}]
  - match: [{sourceLabels: {app: batch}}]
    route: [{destination: {host: db, subset: v2}}]
  - match: [{port: 5432, destinationSubnets: [10.96.0.0/16], sourceLabels: {app: sleep}}]
    route:
    - {destination: {host: db, subset: v1}, weight: 3}
    - {destination: {host: db, subset: v2}, weight: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: shop}
spec:
  hosts: [secure, "*.secure.example"]
  tls:
  - match: [{sniHosts: [a.secure.example]}]
    route: [{destination: {host: tls-a}}]
  - match: [{sniHosts: ["*.secure.example"], port: 443}]
    route:
    - {destination: {host: tls-a}, weight: 50}
    - {destination: {host: tls-b}, weight: 50}
"#;

/// TCP rules match on port, destinationSubnets (the service address the sidecar listens on)
/// and sourceLabels, and split by relative weight; TLS rules route by SNI (exact, then a
/// wildcard split by weight); SNI no rule claims goes to the service itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_tcp_and_tls_routes() {
    let (_echo, port) = tcp_backends(&["db-v1", "db-v2", "secure", "tls-a", "tls-b"]).await;
    let yaml = format!("{}---\n{SIDECAR_ROUTES}", workloads(port));
    let (proxy, warnings) = serve(&yaml, &sidecar("shop", &[("app", "sleep")])).await;
    let db = proxy.addr("10.96.0.20_5432");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..100 {
        *counts.entry(who(db, b"select 1").await).or_default() += 1;
    }
    let v1 = counts.get("db-v1").copied().unwrap_or(0);
    assert_eq!(
        v1 + counts.get("db-v2").copied().unwrap_or(0),
        100,
        "{counts:?}"
    );
    assert!(
        (60..=90).contains(&v1),
        "3:1 split: {counts:?} {warnings:?}"
    );

    let secure = proxy.addr("10.96.0.30_443");
    let hello = |sni: &str| proxy::sni::client_hello_for(sni);
    assert_eq!(who(secure, &hello("a.secure.example")).await, "tls-a");
    let mut split = std::collections::BTreeSet::new();
    for _ in 0..40 {
        split.insert(who(secure, &hello("x.secure.example")).await);
    }
    assert_eq!(
        split.into_iter().collect::<Vec<_>>(),
        ["tls-a", "tls-b"],
        "a 50/50 split uses both"
    );
    assert_eq!(
        who(secure, &hello("secure.shop.svc.cluster.local")).await,
        "secure"
    );

    // The same rules for a batch job: its sourceLabels rule comes first.
    let (batch, _) = serve(&yaml, &sidecar("shop", &[("app", "batch")])).await;
    for _ in 0..5 {
        assert_eq!(who(batch.addr("10.96.0.20_5432"), b"x").await, "db-v2");
    }
}

const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [www.example.com]
    tls: {mode: SIMPLE, credentialName: www-cert, minProtocolVersion: TLSV1_2}
  - port: {number: 9443, name: mtls, protocol: HTTPS}
    hosts: [api.example.com]
    tls: {mode: MUTUAL, credentialName: api-cert, subjectAltNames: [client.example.com]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: shop}
spec:
  hosts: [a.example.com, b.example.com, other.org]
  gateways: [edge]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: tls-a}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: tls-b}}]
  - match: [{sniHosts: [other.org]}]
    route: [{destination: {host: secure}}]
  tcp:
  - match: [{port: 5432}]
    route: [{destination: {host: db, subset: v2}}]
  - match: [{port: 31400}]
    route: [{destination: {host: db, subset: v1, port: {number: 5432}}}]
"#;

/// Gateway TLS PASSTHROUGH servers route by SNI among the server's hosts; TCP servers use the
/// rule matching their port; SIMPLE and MUTUAL servers compile their TLS settings into the
/// listener, which refuses connections until termination lands (never plaintext).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_tls_passthrough_tcp_and_tls_settings() {
    let (_echo, port) = tcp_backends(&["db-v1", "db-v2", "secure", "tls-a", "tls-b"]).await;
    let yaml = format!("{}---\n{GATEWAY}", workloads(port));
    let (snapshot, warnings) = compile(&yaml, &ingress());
    let https = snapshot
        .listeners
        .iter()
        .find(|l| l.name == "0.0.0.0_8443")
        .and_then(|l| l.tls.clone())
        .expect("the HTTPS listener carries its TLS settings");
    assert_eq!(https.mode, model::TlsMode::Simple);
    assert_eq!(
        https.certificates[0].credential_name.as_deref(),
        Some("www-cert")
    );
    assert_eq!(https.certificates[0].sni_hosts, ["www.example.com"]);
    assert_eq!(https.min_protocol_version.as_deref(), Some("TLSV1_2"));
    assert_eq!(https.alpn, ["h2", "http/1.1"]);
    let mtls = snapshot
        .listeners
        .iter()
        .find(|l| l.name == "0.0.0.0_9443")
        .and_then(|l| l.tls.clone())
        .expect("mutual");
    assert_eq!(mtls.mode, model::TlsMode::Mutual);
    assert_eq!(mtls.subject_alt_names, ["client.example.com"]);

    let proxy = TestProxy::start(snapshot).await;
    let tls = proxy.addr("0.0.0.0_443");
    let hello = |sni: &str| proxy::sni::client_hello_for(sni);
    assert_eq!(
        who(tls, &hello("a.example.com")).await,
        "tls-a",
        "{warnings:?}"
    );
    assert_eq!(who(tls, &hello("b.example.com")).await, "tls-b");
    assert_eq!(
        roundtrip(tls, &hello("other.org")).await,
        "",
        "not a host of the server: no route, closed"
    );
    assert_eq!(who(proxy.addr("0.0.0.0_31400"), b"q").await, "db-v1");
    assert_eq!(
        roundtrip(
            proxy.addr("0.0.0.0_8443"),
            b"GET / HTTP/1.1\r\nhost: www.example.com\r\n\r\n"
        )
        .await,
        "",
        "no plaintext where TLS is configured"
    );
}

/// A port's protocol comes from its name prefix or `appProtocol`, as Istio decides it: `grpc-`
/// ports get HTTP/2 upstream, `tcp-` ports opaque TCP, `appProtocol: http` plain HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_protocol_from_name_prefix_and_app_protocol() {
    let grpc = testkit::Backend::start("grpc").await;
    let web = testkit::Backend::start("web").await;
    let db = testkit::TcpEcho::start("db").await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: shop}}
spec:
  selector: {{app: app}}
  clusterIP: 10.96.0.40
  ports:
  - {{name: grpc-api, port: 9000, targetPort: {grpc}}}
  - {{name: tcp-db, port: 5432, targetPort: {db}}}
  - {{name: frontend, appProtocol: http, port: 8000, targetPort: {web}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: app-1, namespace: shop, labels: {{app: app}}, annotations: {{bowline.io/address: 127.0.0.1}}}}
spec: {{}}
"#,
        grpc = grpc.addr.port(),
        db = db.addr.port(),
        web = web.addr.port()
    );
    let (proxy, warnings) = serve(&yaml, &sidecar("shop", &[])).await;
    let r = testkit::client::send(
        proxy.addr("0.0.0.0_9000"),
        testkit::client::get("app", "/x"),
    )
    .await;
    assert_eq!(r.text(), "grpc", "{warnings:?}");
    assert_eq!(grpc.last().version, http::Version::HTTP_2);
    let r =
        testkit::client::send(proxy.addr("0.0.0.0_8000"), testkit::client::get("app", "/")).await;
    assert_eq!(r.text(), "web");
    assert_eq!(web.last().version, http::Version::HTTP_11);
    assert_eq!(roundtrip(proxy.addr("10.96.0.40_5432"), b"q").await, "db:q");
}

/// A port whose protocol Istio cannot tell (no known name prefix, no appProtocol) is sniffed:
/// HTTP is routed by Host as on any HTTP port, anything else is proxied as TCP to the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_ports_are_sniffed() {
    let raw = testkit::TcpEcho::start("raw").await;
    let web = testkit::Backend::start("web").await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: raw, namespace: shop}}
spec:
  selector: {{app: raw}}
  ports: [{{name: data, port: 7000, targetPort: {raw}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 7000, targetPort: {web}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: raw-1, namespace: shop, labels: {{app: raw}}, annotations: {{bowline.io/address: 127.0.0.1}}}}
spec: {{}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web-1, namespace: shop, labels: {{app: web}}, annotations: {{bowline.io/address: 127.0.0.1}}}}
spec: {{}}
"#,
        raw = raw.addr.port(),
        web = web.addr.port()
    );
    let (snapshot, warnings) = compile(&yaml, &sidecar("shop", &[]));
    assert!(
        matches!(
            snapshot.listeners[0].kind,
            model::ListenerKind::AutoSniff { .. }
        ),
        "{:?} {warnings:?}",
        snapshot.listeners
    );
    let proxy = TestProxy::start(snapshot).await;
    let addr = proxy.addr("0.0.0.0_7000");
    assert_eq!(roundtrip(addr, b"\x00binary").await, "raw:\x00binary");
    let r = testkit::client::send(addr, testkit::client::get("web", "/")).await;
    assert_eq!(r.text(), "web");
}
