//! Istio VirtualService host binding and HTTP match conditions, end to end: Istio YAML compiled
//! by the model for one proxy, served by the real proxy, real requests over real sockets.
//! Each case checks what the client got and, when the request is forwarded, what the backend
//! received.

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

/// Short names resolve in the VirtualService's namespace, FQDNs as written, `*.suffix` as a
/// wildcard; clients may use any of the service's names, with or without the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_short_fqdn_wildcard_port_qualified_and_export_to() {
    let (b, port) = backends(&["reviews-v1", "reviews-v2", "ratings", "details"]).await;
    let yaml = [
        service(
            "reviews",
            "default",
            "http",
            9080,
            port,
            &[(ip(1), "version: v1"), (ip(2), "version: v2")],
        ),
        service("ratings", "other", "http", 9080, port, &[(ip(3), "")]),
        service("details", "other", "http", 9080, port, &[(ip(4), "")]),
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other-wildcard, namespace: other}
spec:
  hosts: ["*.other.svc.cluster.local"]
  http: [{directResponse: {status: 200, body: {string: wildcard}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: other}
spec:
  hosts: [ratings.other.svc.cluster.local]
  http: [{directResponse: {status: 200, body: {string: ratings-fqdn}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details-private, namespace: other}
spec:
  hosts: [details.other.svc.cluster.local]
  exportTo: ["."]
  http: [{directResponse: {status: 200, body: {string: private}}}]
"#
        .to_string(),
    ]
    .join("---\n");
    let (proxy, _) = serve(&yaml, &sidecar("default", &[("app", "productpage")])).await;
    let addr = proxy.addr("0.0.0.0_9080");
    for host in [
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local:9080",
        "REVIEWS.default.svc.cluster.local",
    ] {
        let r = client::send(addr, get(host, "/r")).await;
        assert_eq!(
            (r.status, r.text()),
            (StatusCode::OK, "reviews-v2".into()),
            "{host}"
        );
    }
    assert_eq!(
        b[1].count(),
        6,
        "the short-name VirtualService's subset got them all"
    );
    assert_eq!(b[0].count(), 0);
    assert_eq!(
        b[1].last().headers["host"],
        "REVIEWS.default.svc.cluster.local"
    );

    // An exact host beats a wildcard one.
    let r = client::send(addr, get("ratings.other:9080", "/")).await;
    assert_eq!(r.text(), "ratings-fqdn");
    // exportTo "." hides details' VirtualService from `default`; the wildcard one applies.
    let r = client::send(addr, get("details.other.svc.cluster.local", "/")).await;
    assert_eq!(r.text(), "wildcard");
    // A short name from another namespace is not a name of that service here.
    let r = client::send(addr, get("details", "/")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The same VirtualService's namespace sees the private one.
    let (inside, _) = serve(&yaml, &sidecar("other", &[])).await;
    let r = client::send(inside.addr("0.0.0.0_9080"), get("details", "/")).await;
    assert_eq!(r.text(), "private");
}

/// Gateway binding: `gateways` by short name (the VirtualService's namespace), `ns/name`, and
/// `mesh`; server hosts `*` and `*.suffix`; per-match `gateways`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_binding_mesh_named_and_namespaced() {
    let (b, port) = backends(&["web", "api"]).await;
    let yaml = [
        service("web", "shop", "http", 8000, port, &[(ip(1), "")]),
        service("api", "shop", "http", 8080, port, &[(ip(2), "")]),
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.shop.example"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [www.shop.example]
  gateways: [shop-gw]
  http: [{route: [{destination: {host: web}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com, api]
  gateways: [istio-system/public, mesh]
  http:
  - match: [{uri: {prefix: /internal}, gateways: [mesh]}]
    directResponse: {status: 200, body: {string: mesh-only}}
  - match: [{uri: {prefix: /edge}, gateways: [istio-system/public]}]
    directResponse: {status: 200, body: {string: gateway-only}}
  - route: [{destination: {host: api, port: {number: 8080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: shop}
spec:
  hosts: [mesh-only.example.com]
  http: [{directResponse: {status: 200, body: {string: bound-to-mesh}}}]
"#
        .to_string(),
    ]
    .join("---\n");
    let (gw, warnings) = serve(&yaml, &ingress()).await;
    let addr = gw.addr("0.0.0.0_80");
    let r = client::send(addr, get("www.shop.example", "/")).await;
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, "web".into()),
        "{warnings:?}"
    );
    let r = client::send(addr, get("api.example.com:80", "/v1")).await;
    assert_eq!(r.text(), "api");
    assert_eq!(b[1].last().uri.path(), "/v1");
    let r = client::send(addr, get("api.example.com", "/edge")).await;
    assert_eq!(r.text(), "gateway-only");
    let r = client::send(addr, get("api.example.com", "/internal")).await;
    assert_eq!(
        r.text(),
        "api",
        "a match for the mesh only does not apply at the gateway"
    );
    let r = client::send(addr, get("mesh-only.example.com", "/")).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no gateways: bound to the mesh only"
    );
    let r = client::send(addr, get("other.shop.example", "/")).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "hosts no VirtualService claims: NR"
    );
    assert_eq!(b[0].count(), 1);

    let (mesh, _) = serve(&yaml, &sidecar("shop", &[])).await;
    let addr = mesh.addr("0.0.0.0_8080");
    let r = client::send(addr, get("api:8080", "/internal")).await;
    assert_eq!(r.text(), "mesh-only");
    let r = client::send(addr, get("api", "/edge")).await;
    assert_eq!(
        r.text(),
        "api",
        "a gateway-only match does not apply in the mesh"
    );
}

const MATCHES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {exact: /exact}}]
    directResponse: {status: 200, body: {string: uri-exact}}
  - match: [{uri: {prefix: /prefix/}}]
    directResponse: {status: 200, body: {string: uri-prefix}}
  - match: [{uri: {regex: "/re/[0-9]+"}}]
    directResponse: {status: 200, body: {string: uri-regex}}
  - match: [{uri: {exact: /case}, ignoreUriCase: true}, {uri: {prefix: /Upper}, ignoreUriCase: true}]
    directResponse: {status: 200, body: {string: ignore-case}}
  - match: [{uri: {exact: /m}, method: {exact: POST}}]
    directResponse: {status: 200, body: {string: method-post}}
  - match: [{uri: {exact: /m}, method: {regex: "GET|HEAD"}}]
    directResponse: {status: 200, body: {string: method-get}}
  - match: [{uri: {exact: /scheme}, scheme: {exact: https}}]
    directResponse: {status: 200, body: {string: scheme-https}}
  - match: [{uri: {exact: /scheme}, scheme: {exact: http}}]
    directResponse: {status: 200, body: {string: scheme-http}}
  - match: [{uri: {exact: /authority}, authority: {exact: "web.shop:80"}}]
    directResponse: {status: 200, body: {string: authority-exact}}
  - match: [{uri: {exact: /authority}, authority: {prefix: web.shop.svc}}]
    directResponse: {status: 200, body: {string: authority-prefix}}
  - match: [{uri: {exact: /authority}, authority: {regex: "w[a-z]+"}}]
    directResponse: {status: 200, body: {string: authority-regex}}
  - match: [{uri: {exact: /h}, headers: {x-exact: {exact: a}}}]
    directResponse: {status: 200, body: {string: header-exact}}
  - match: [{uri: {exact: /h}, headers: {x-prefix: {prefix: pre}}}]
    directResponse: {status: 200, body: {string: header-prefix}}
  - match: [{uri: {exact: /h}, headers: {x-regex: {regex: "v[0-9]"}}}]
    directResponse: {status: 200, body: {string: header-regex}}
  - match: [{uri: {exact: /h}, headers: {x-present: {}}}]
    directResponse: {status: 200, body: {string: header-present}}
  - match: [{uri: {exact: /without}, withoutHeaders: {x-block: {exact: "yes"}}}]
    directResponse: {status: 200, body: {string: without-headers}}
  - match: [{uri: {exact: /without}, withoutHeaders: {x-anything: {}}}]
    directResponse: {status: 200, body: {string: without-present}}
  - match: [{uri: {exact: /q}, queryParams: {a: {exact: "1"}}}]
    directResponse: {status: 200, body: {string: query-exact}}
  - match: [{uri: {exact: /q}, queryParams: {b: {prefix: pre}}}]
    directResponse: {status: 200, body: {string: query-prefix}}
  - match: [{uri: {exact: /q}, queryParams: {c: {regex: "[a-z]+"}}}]
    directResponse: {status: 200, body: {string: query-regex}}
  - match: [{uri: {exact: /port}, port: 9999}]
    directResponse: {status: 200, body: {string: port-9999}}
  - match: [{uri: {exact: /port}, port: 8000}]
    directResponse: {status: 200, body: {string: port-8000}}
  - match: [{uri: {exact: /source}, sourceLabels: {app: shell}}]
    directResponse: {status: 200, body: {string: source-labels-shell}}
  - match: [{uri: {exact: /source}, sourceNamespace: elsewhere}]
    directResponse: {status: 200, body: {string: source-namespace-elsewhere}}
  - match: [{uri: {exact: /source}, sourceLabels: {app: sleep}, sourceNamespace: shop}]
    directResponse: {status: 200, body: {string: source-sleep-shop}}
  - match: [{uri: {exact: /or-a}}, {uri: {exact: /or-b}}]
    directResponse: {status: 200, body: {string: ored}}
  - match: [{uri: {prefix: /first}}]
    directResponse: {status: 200, body: {string: first}}
  - match: [{uri: {prefix: /first/second}}]
    directResponse: {status: 200, body: {string: second}}
  - route: [{destination: {host: web}}]
"#;

/// Every HTTPMatchRequest field; first match wins; match blocks are ORed; conditions Istio
/// resolves for the sidecar at compile time (port, sourceLabels, sourceNamespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_match_conditions() {
    let (b, port) = backends(&["web"]).await;
    let yaml = format!(
        "{}---\n{MATCHES}",
        service("web", "shop", "http", 8000, port, &[(ip(1), "")])
    );
    let (proxy, warnings) = serve(&yaml, &sidecar("shop", &[("app", "sleep")])).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    let addr = proxy.addr("0.0.0.0_8000");
    let cases: Vec<(Request<Body>, &str)> = vec![
        (get("web", "/exact"), "uri-exact"),
        (get("web", "/exact/more"), "web"),
        (get("web", "/exact?x=1"), "uri-exact"),
        (get("web", "/prefix/a/b"), "uri-prefix"),
        (get("web", "/prefix"), "web"),
        (get("web", "/re/123"), "uri-regex"),
        (get("web", "/re/123x"), "web"),
        (get("web", "/x/re/1"), "web"),
        (get("web", "/CaSe"), "ignore-case"),
        (get("web", "/uPPer/x"), "ignore-case"),
        (get("web", "/m"), "method-get"),
        (
            Request::post("/m")
                .header("host", "web")
                .body(Body::default())
                .unwrap(),
            "method-post",
        ),
        (
            Request::put("/m")
                .header("host", "web")
                .body(Body::default())
                .unwrap(),
            "web",
        ),
        (get("web", "/scheme"), "scheme-http"),
        (get("web.shop:80", "/authority"), "authority-exact"),
        (get("web.shop.svc:8000", "/authority"), "authority-prefix"),
        (get("web", "/authority"), "authority-regex"),
        (get("web:8000", "/authority"), "web"),
        (with(get("web", "/h"), &[("x-exact", "a")]), "header-exact"),
        (with(get("web", "/h"), &[("x-exact", "ab")]), "web"),
        (
            with(get("web", "/h"), &[("x-prefix", "prefix")]),
            "header-prefix",
        ),
        (with(get("web", "/h"), &[("x-regex", "v1")]), "header-regex"),
        (with(get("web", "/h"), &[("x-regex", "v12")]), "web"),
        (
            with(get("web", "/h"), &[("x-present", "")]),
            "header-present",
        ),
        (get("web", "/h"), "web"),
        (
            with(get("web", "/without"), &[("x-anything", "1")]),
            "without-headers",
        ),
        (
            with(get("web", "/without"), &[("x-block", "yes")]),
            "without-present",
        ),
        (
            with(
                get("web", "/without"),
                &[("x-block", "yes"), ("x-anything", "1")],
            ),
            "web",
        ),
        (get("web", "/q?b=1&a=1"), "query-exact"),
        (get("web", "/q?a=12"), "web"),
        (get("web", "/q?b=prefix"), "query-prefix"),
        (get("web", "/q?c=abc"), "query-regex"),
        (get("web", "/q?c=abc1"), "web"),
        (get("web", "/port"), "port-8000"),
        (get("web", "/source"), "source-sleep-shop"),
        (get("web", "/or-a"), "ored"),
        (get("web", "/or-b"), "ored"),
        (get("web", "/first/second"), "first"),
    ];
    let mut forwarded = 0;
    for (req, want) in cases {
        let what = format!("{} {} {:?}", req.method(), req.uri(), req.headers());
        let r = client::send(addr, req).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (StatusCode::OK, want),
            "{what}"
        );
        if want == "web" {
            forwarded += 1;
            assert_eq!(b[0].count(), forwarded, "{what} reached the backend");
        }
    }
    assert_eq!(b[0].last().method, Method::GET);

    // The same rules for a sidecar with other labels in another namespace.
    let (shell, _) = serve(&yaml, &sidecar("elsewhere", &[("app", "shell")])).await;
    let r = client::send(shell.addr("0.0.0.0_8000"), get("web.shop", "/source")).await;
    assert_eq!(r.text(), "source-labels-shell");
    let (plain, _) = serve(&yaml, &sidecar("elsewhere", &[])).await;
    let r = client::send(plain.addr("0.0.0.0_8000"), get("web.shop", "/source")).await;
    assert_eq!(r.text(), "source-namespace-elsewhere");
}

/// Without a VirtualService a service's endpoints take turns; an unknown host gets 404 with
/// the NR flag counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_virtual_service_round_robin_and_no_route() {
    let (b, port) = backends(&["a", "b", "c"]).await;
    let yaml = service(
        "web",
        "shop",
        "http",
        8000,
        port,
        &[(ip(1), ""), (ip(2), ""), (ip(3), "")],
    );
    let (proxy, _) = serve(&yaml, &sidecar("shop", &[])).await;
    let addr = proxy.addr("0.0.0.0_8000");
    let mut conn = client::Conn::open(addr).await;
    for _ in 0..9 {
        assert_eq!(conn.send(get("web", "/")).await.status, StatusCode::OK);
    }
    assert_eq!(
        b.iter().map(|b| b.count()).collect::<Vec<_>>(),
        vec![3, 3, 3],
        "round robin over the endpoints"
    );
    let r = client::send(addr, get("nothing.shop.svc.cluster.local", "/")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (_, stats) = proxy.admin("/stats/prometheus").await;
    assert!(
        stats.contains("bowline_errors_total{response_flag=\"NR\"} 1"),
        "{stats}"
    );
}
