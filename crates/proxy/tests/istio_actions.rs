//! Istio HTTPRoute actions end to end: Istio YAML compiled by the model, the real proxy, real
//! requests. Weighted destinations and subsets, destination ports, rewrites, redirects, direct
//! responses, header operations, CORS, delegation and the headers every request gets.

use std::net::IpAddr;

use http::{Method, Request, StatusCode};
use testkit::client::{self, get, Body};
use testkit::istio_yaml::{backends, ingress, serve, service, sidecar};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn with(mut req: Request<Body>, headers: &[(&'static str, &'static str)]) -> Request<Body> {
    for (k, v) in headers {
        req.headers_mut()
            .append(*k, http::HeaderValue::from_static(v));
    }
    req
}

/// Relative weights split traffic (seeded), subsets pick endpoints by label, and a destination
/// port picks the service port (and so the endpoint port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_subsets_and_destination_port() {
    let (b, port) = backends(&["v1", "v2", "v3"]).await;
    let admin = testkit::Backend::start("admin-port").await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{app: reviews}}
  ports: [{{name: http, port: 9080, targetPort: {port}}}, {{name: http-admin, port: 9090, targetPort: {admin_port}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: r1, namespace: default, labels: {{app: reviews, version: v1}}, annotations: {{bowline.io/address: 127.0.0.1}}}}
spec: {{}}
---
apiVersion: v1
kind: Pod
metadata: {{name: r2, namespace: default, labels: {{app: reviews, version: v2}}, annotations: {{bowline.io/address: 127.0.0.2}}}}
spec: {{}}
---
apiVersion: v1
kind: Pod
metadata: {{name: r3, namespace: default, labels: {{app: reviews, version: v3}}, annotations: {{bowline.io/address: 127.0.0.3}}}}
spec: {{}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - match: [{{uri: {{prefix: /admin}}}}]
    route: [{{destination: {{host: reviews, port: {{number: 9090}}}}}}]
  - match: [{{uri: {{prefix: /v3}}}}]
    route: [{{destination: {{host: reviews, subset: v3, port: {{number: 9080}}}}}}]
  - route:
    - {{destination: {{host: reviews, subset: v1}}, weight: 3}}
    - {{destination: {{host: reviews, subset: v2}}, weight: 1}}
"#,
        admin_port = admin.addr.port()
    );
    let (proxy, warnings) = serve(&yaml, &sidecar("default", &[])).await;
    let addr = proxy.addr("0.0.0.0_9080");
    let mut conn = client::Conn::open(addr).await;
    for _ in 0..400 {
        let r = conn.send(get("reviews", "/")).await;
        assert_eq!(r.status, StatusCode::OK, "{warnings:?} {}", r.text());
    }
    let (v1, v2) = (b[0].count(), b[1].count());
    assert_eq!(v1 + v2, 400);
    assert!((250..=350).contains(&v1), "3:1 split, got v1={v1} v2={v2}");
    let r = client::send(addr, get("reviews", "/v3/x")).await;
    assert_eq!(r.text(), "v3");
    assert_eq!(b[2].last().uri.path(), "/v3/x");
    // Port 9090 is its own listener; port 9080's route table sends /admin there too.
    let r = client::send(addr, get("reviews", "/admin")).await;
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, "admin-port".into()),
        "{warnings:?}"
    );
    assert_eq!(admin.last().headers["host"], "reviews");
}

const ACTIONS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: backend.internal}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /strip}}]
    rewrite: {uri: /}
    route: [{destination: {host: web}}]
  - match: [{uri: {regex: "/rx/.*"}}]
    rewrite: {uriRegexRewrite: {match: "^/rx/([a-z]+)/(.*)$", rewrite: '/\2/\1'}}
    route: [{destination: {host: web}}]
  - match: [{uri: {exact: /r/all}}]
    redirect: {uri: /moved, authority: other.example, port: 8443, scheme: https, redirectCode: 308}
  - match: [{uri: {exact: /r/default}}]
    redirect: {uri: /moved}
  - match: [{uri: {exact: /r/request-port}}]
    redirect: {authority: other.example, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {exact: /r/protocol-default}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {exact: /r/http-80}}]
    redirect: {port: 80, redirectCode: 302}
  - match: [{uri: {exact: /direct/text}}]
    directResponse: {status: 503, body: {string: "down for maintenance"}}
  - match: [{uri: {exact: /direct/bytes}}]
    directResponse: {status: 200, body: {bytes: "AAEC/w=="}}
  - match: [{uri: {exact: /direct/empty}}]
    directResponse: {status: 204}
  - match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-set: route}, add: {x-add: route}, remove: [x-remove]}
      response: {set: {x-resp-set: route}, add: {x-resp-add: route}, remove: [x-backend]}
    route:
    - destination: {host: web}
      headers:
        request: {set: {x-dest: "yes"}, remove: [x-dest-remove]}
        response: {add: {x-resp-dest: "yes"}}
  - route: [{destination: {host: web}}]
"#;

/// Rewrites (prefix, whole path, regex with groups, authority), redirects (every part, default
/// code, derivePort both ways, a scheme's default port left out), direct responses (text, bytes,
/// none) and header operations at route and destination level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_redirects_direct_responses_and_headers() {
    let (b, port) = backends(&["web"]).await;
    let yaml = format!(
        "{}---\n{ACTIONS}",
        service("web", "shop", "http", 8000, port, &[(ip(1), "")])
    );
    let (proxy, warnings) = serve(&yaml, &sidecar("shop", &[])).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let addr = proxy.addr("0.0.0.0_8000");
    let web = &b[0];

    let r = client::send(addr, get("web", "/old/page?x=1")).await;
    assert_eq!(r.text(), "web");
    let seen = web.last();
    assert_eq!(seen.uri.path_and_query().unwrap().as_str(), "/new/page?x=1");
    assert_eq!(seen.headers["host"], "backend.internal");
    client::send(addr, get("web", "/strip/a")).await;
    assert_eq!(web.last().uri.path(), "/a");
    client::send(addr, get("web", "/rx/abc/def/g")).await;
    assert_eq!(web.last().uri.path(), "/def/g/abc");
    assert_eq!(web.last().headers["host"], "web");

    let before = web.count();
    for (path, status, location) in [
        ("/r/all?q=1", 308, "https://other.example:8443/moved?q=1"),
        ("/r/default", 301, "http://web:8000/moved"),
        (
            "/r/request-port",
            301,
            "http://other.example:8000/r/request-port",
        ),
        ("/r/protocol-default", 301, "https://web/r/protocol-default"),
        ("/r/http-80", 302, "http://web/r/http-80"),
    ] {
        let r = client::send(addr, get("web:8000", path)).await;
        assert_eq!(r.status.as_u16(), status, "{path}");
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
    let r = client::send(addr, get("web", "/direct/text")).await;
    assert_eq!(
        (r.status, r.text()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "down for maintenance".into()
        )
    );
    let r = client::send(addr, get("web", "/direct/bytes")).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::OK, &[0u8, 1, 2, 255][..])
    );
    let r = client::send(addr, get("web", "/direct/empty")).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NO_CONTENT, 0));
    assert_eq!(
        web.count(),
        before,
        "redirects and direct responses stay in the proxy"
    );

    let r = client::send(
        addr,
        with(
            get("web", "/headers"),
            &[
                ("x-set", "client"),
                ("x-add", "client"),
                ("x-remove", "1"),
                ("x-dest-remove", "1"),
            ],
        ),
    )
    .await;
    let seen = web.last();
    assert_eq!(seen.headers["x-set"], "route");
    let added: Vec<_> = seen.headers.get_all("x-add").iter().collect();
    assert_eq!(added, ["client", "route"]);
    assert!(!seen.headers.contains_key("x-remove"));
    assert!(!seen.headers.contains_key("x-dest-remove"));
    assert_eq!(seen.headers["x-dest"], "yes");
    assert_eq!(r.header("x-resp-set"), Some("route"));
    assert_eq!(r.header("x-resp-add"), Some("route"));
    assert_eq!(r.header("x-resp-dest"), Some("yes"));
    assert_eq!(r.header("x-backend"), None, "removed from the response");
}

/// Every request forwarded carries an `x-request-id` (the client's kept), `x-forwarded-for`
/// with the client appended and `x-forwarded-proto`; tracing headers pass untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_forwarding_and_tracing_headers() {
    let (b, port) = backends(&["web"]).await;
    let yaml = service("web", "shop", "http", 8000, port, &[(ip(1), "")]);
    let (proxy, _) = serve(&yaml, &sidecar("shop", &[])).await;
    let addr = proxy.addr("0.0.0.0_8000");
    client::send(addr, get("web", "/")).await;
    let first = b[0].last();
    let id = first.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(first.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(first.headers["x-forwarded-proto"], "http");
    client::send(addr, get("web", "/")).await;
    assert_ne!(b[0].last().headers["x-request-id"], id.as_str());

    let tracing = [
        ("x-request-id", "my-id"),
        ("x-forwarded-for", "10.1.2.3"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    ];
    client::send(addr, with(get("web", "/"), &tracing)).await;
    let seen = b[0].last();
    for (k, v) in tracing.iter().skip(2) {
        assert_eq!(seen.headers[*k], *v, "{k}");
    }
    assert_eq!(seen.headers["x-request-id"], "my-id");
    assert_eq!(seen.headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
}

const CORS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {prefix: "https://b."}, {regex: "https://[a-z]+\\.c\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-backend]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: web}}]
"#;

/// Preflights from allowed origins (exact, prefix, regex) are answered by the proxy with the
/// policy; actual requests get the allow and expose headers; other origins get none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_policy() {
    let (b, port) = backends(&["web"]).await;
    let yaml = format!(
        "{}---\n{CORS}",
        service("web", "shop", "http", 8000, port, &[(ip(1), "")])
    );
    let (proxy, _) = serve(&yaml, &sidecar("shop", &[])).await;
    let addr = proxy.addr("0.0.0.0_8000");
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api")
            .header("host", "web")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::default())
            .unwrap()
    };
    for origin in [
        "https://a.example",
        "https://b.anything",
        "https://xy.c.example",
    ] {
        let r = client::send(addr, preflight(origin)).await;
        assert_eq!(r.status, StatusCode::OK, "{origin}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("x-custom,content-type")
        );
        assert_eq!(r.header("access-control-max-age"), Some("86400"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    }
    assert_eq!(b[0].count(), 0, "preflights are answered by the proxy");

    let r = client::send(
        addr,
        with(get("web", "/api"), &[("origin", "https://a.example")]),
    )
    .await;
    assert_eq!(r.text(), "web");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-backend"));

    for origin in [
        "https://evil.example",
        "https://a.example.evil",
        "https://1.c.example",
    ] {
        let r = client::send(addr, with(get("web", "/api"), &[("origin", origin)])).await;
        assert_eq!(r.text(), "web");
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
    }
}

const DELEGATE: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: istio-system}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http:
  - name: products
    match: [{uri: {prefix: /products}}]
    headers: {request: {set: {x-root: "1"}}}
    delegate: {name: products, namespace: shop}
  - name: private
    match: [{uri: {prefix: /private}}]
    delegate: {name: private, namespace: shop}
  - directResponse: {status: 404, body: {string: root-fallback}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: products, namespace: shop}
spec:
  http:
  - match: [{uri: {prefix: /products/v2}}]
    route: [{destination: {host: web-v2}}]
  - match: [{uri: {prefix: /elsewhere}}]
    route: [{destination: {host: web-v2}}]
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: shop}
spec:
  exportTo: ["."]
  http: [{route: [{destination: {host: web}}]}]
"#;

/// A root VirtualService delegates by prefix; delegate rules merge with the root's match (a
/// delegate match outside the root's prefix is dropped), inherit its header operations, resolve
/// short names in the delegate's namespace; a delegate not exported to the root is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegate_virtual_services() {
    let (b, port) = backends(&["web", "web-v2"]).await;
    let yaml = [
        service("web", "shop", "http", 80, port, &[(ip(1), "")]),
        service("web-v2", "shop", "http", 80, port, &[(ip(2), "")]),
        DELEGATE.to_string(),
    ]
    .join("---\n");
    let (gw, warnings) = serve(&yaml, &ingress()).await;
    let addr = gw.addr("0.0.0.0_80");
    let r = client::send(addr, get("shop.example.com", "/products/v2/1")).await;
    assert_eq!(r.text(), "web-v2", "{warnings:?}");
    assert_eq!(b[1].last().headers["x-root"], "1", "root headers inherited");
    let r = client::send(addr, get("shop.example.com", "/products/1")).await;
    assert_eq!(r.text(), "web");
    let r = client::send(addr, get("shop.example.com", "/elsewhere")).await;
    assert_eq!(
        r.text(),
        "root-fallback",
        "outside the root's prefix: dropped"
    );
    let r = client::send(addr, get("shop.example.com", "/private")).await;
    assert_eq!(
        r.text(),
        "root-fallback",
        "not exported to the root's namespace"
    );
    assert!(
        warnings.iter().any(|w| w.contains("not exported")),
        "{warnings:?}"
    );
}

/// A Gateway HTTP server with `tls.httpsRedirect` answers every request with a 301 to https,
/// whatever the VirtualService routes; other servers on the port keep routing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_https_redirect() {
    let (b, port) = backends(&["web"]).await;
    let yaml = [
        service("web", "shop", "http", 80, port, &[(ip(1), "")]),
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 80, name: http-plain, protocol: HTTP}
    hosts: [plain.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [secure.example.com, plain.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: web}}]}]
"#
        .to_string(),
    ]
    .join("---\n");
    let (gw, warnings) = serve(&yaml, &ingress()).await;
    let addr = gw.addr("0.0.0.0_80");
    let r = client::send(addr, get("secure.example.com:80", "/a/b?c=d")).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY, "{warnings:?}");
    assert_eq!(
        r.header("location"),
        Some("https://secure.example.com/a/b?c=d")
    );
    assert_eq!(b[0].count(), 0);
    let r = client::send(addr, get("plain.example.com", "/")).await;
    assert_eq!(r.text(), "web");
}
