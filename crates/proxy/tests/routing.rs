//! HTTP routing through the real proxy over real sockets.

use std::collections::BTreeMap;

use http::{Request, StatusCode};
use model::*;
use testkit::client::{self, get, Body};
use testkit::snap::*;
use testkit::{closed_addr, Backend, TestProxy};

fn with_header(mut req: Request<Body>, name: &'static str, value: &'static str) -> Request<Body> {
    req.headers_mut()
        .insert(name, http::HeaderValue::from_static(value));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_path_and_header() {
    let (reviews_v1, reviews_v2, ratings) = (
        Backend::start("reviews-v1").await,
        Backend::start("reviews-v2").await,
        Backend::start("ratings").await,
    );
    let v1 = "outbound|9080|v1|reviews.default.svc.cluster.local";
    let v2 = "outbound|9080|v2|reviews.default.svc.cluster.local";
    let snapshot = http_snapshot(
        vec![
            vhost(
                "reviews",
                &["reviews", "reviews:9080", "*.reviews.example.com"],
                vec![
                    route(
                        "jason",
                        vec![RouteMatch {
                            headers: vec![HeaderMatch {
                                name: "end-user".into(),
                                value: Some(StringMatch::Exact("jason".into())),
                            }],
                            ..Default::default()
                        }],
                        forward_to(v2),
                    ),
                    route("default", vec![], forward_to(v1)),
                ],
            ),
            vhost(
                "ratings",
                &["ratings*"],
                vec![route("api", vec![prefix("/api/")], forward_to("ratings"))],
            ),
        ],
        vec![
            cluster(v1, &[reviews_v1.addr]),
            cluster(v2, &[reviews_v2.addr]),
            cluster("ratings", &[ratings.addr]),
        ],
    );
    let proxy = TestProxy::start(snapshot).await;
    let addr = proxy.addr("http");

    let r = client::send(addr, get("reviews:9080", "/x")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "reviews-v1")
    );
    let r = client::send(addr, with_header(get("reviews", "/x"), "end-user", "jason")).await;
    assert_eq!(r.text(), "reviews-v2");
    let r = client::send(addr, get("EU.Reviews.Example.com", "/")).await;
    assert_eq!(r.text(), "reviews-v1", "suffix wildcard, any case");
    let r = client::send(addr, get("ratings.default", "/api/1")).await;
    assert_eq!(r.text(), "ratings");
    assert_eq!(ratings.last().uri.path(), "/api/1");

    let r = client::send(addr, get("ratings.default", "/other")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no route in the vhost: NR");
    let r = client::send(addr, get("unknown.host", "/")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no vhost: NR");

    let (_, stats) = proxy.admin("/stats/prometheus").await;
    assert!(
        stats.contains("bowline_errors_total{response_flag=\"NR\"} 2"),
        "{stats}"
    );
    assert!(
        stats.contains(&format!(
            "bowline_http_requests_total{{cluster=\"{v1}\",code_class=\"2xx\"}} 2"
        )),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_follows_weights_with_a_seeded_rng() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let mut action = forward_to("a");
    if let RouteAction::Forward(f) = &mut action {
        f.clusters = weighted(&[("a", 80), ("b", 20)]);
    }
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost("all", &["*"], vec![route("split", vec![], action)])],
        vec![cluster("a", &[a.addr]), cluster("b", &[b.addr])],
    ))
    .await;
    let mut conn = client::Conn::open(proxy.addr("http")).await;
    for _ in 0..500 {
        assert_eq!(conn.send(get("x", "/")).await.status, StatusCode::OK);
    }
    let (na, nb) = (a.count(), b.count());
    assert_eq!(na + nb, 500);
    // 80/20 of 500 is 400/100; a seeded generator keeps this stable, the bound keeps it honest.
    assert!((360..=440).contains(&na), "a got {na}, b got {nb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_over_endpoints_and_reuses_connections() {
    let (e1, e2) = (Backend::start("e1").await, Backend::start("e2").await);
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("c"))],
        )],
        vec![cluster("c", &[e1.addr, e2.addr])],
    ))
    .await;
    let mut conn = client::Conn::open(proxy.addr("http")).await;
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(conn.send(get("x", "/")).await.text());
    }
    assert_eq!(order, ["e1", "e2", "e1", "e2", "e1", "e2"]);
    // Sequential requests: each endpoint's pool kept one connection alive for all three.
    assert_eq!((e1.connections(), e2.connections()), (1, 1));
    let seen: Vec<usize> = e1.seen().iter().map(|s| s.conn).collect();
    assert_eq!(seen, [1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_and_direct_response() {
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![
                route(
                    "moved",
                    vec![prefix("/old")],
                    RouteAction::Redirect(Redirect {
                        scheme: Some("https".into()),
                        authority: Some("new.example.com".into()),
                        port: None,
                        path: Some("/new".into()),
                        status: 308,
                    }),
                ),
                route(
                    "teapot",
                    vec![],
                    RouteAction::DirectResponse(DirectResponse {
                        status: 418,
                        body: Some("short and stout".into()),
                    }),
                ),
            ],
        )],
        vec![],
    ))
    .await;
    let addr = proxy.addr("http");
    let r = client::send(addr, get("old.example.com", "/old/page?q=1")).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.header("location"),
        Some("https://new.example.com/new?q=1")
    );
    let r = client::send(addr, get("x", "/anything")).await;
    assert_eq!(r.status.as_u16(), 418);
    assert_eq!(r.text(), "short and stout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_and_header_operations() {
    let backend = Backend::start("svc").await;
    let mut prefix_rewrite = route(
        "prefix",
        vec![prefix("/v1/")],
        RouteAction::Forward(ForwardAction {
            clusters: weighted(&[("svc", 1)]),
            rewrite: Some(Rewrite {
                uri_prefix: Some("/api/v2/".into()),
                uri_regex: None,
                authority: Some("internal.svc".into()),
            }),
            timeout_ms: None,
            retry: None,
            ..Default::default()
        }),
    );
    prefix_rewrite.request_headers = HeaderOps {
        set: BTreeMap::from([("x-set".into(), "set".into())]),
        add: BTreeMap::from([("x-multi".into(), "added".into())]),
        remove: vec!["x-drop".into()],
    };
    prefix_rewrite.response_headers = HeaderOps {
        set: BTreeMap::from([("x-resp".into(), "yes".into())]),
        add: BTreeMap::new(),
        remove: vec!["x-backend".into()],
    };
    let regex_rewrite = route(
        "regex",
        vec![prefix("/service/")],
        RouteAction::Forward(ForwardAction {
            clusters: weighted(&[("svc", 1)]),
            rewrite: Some(Rewrite {
                uri_prefix: None,
                uri_regex: Some(RegexRewrite {
                    pattern: "^/service/([^/]+)(/.*)$".into(),
                    substitution: "${2}/instance/${1}".into(),
                }),
                authority: None,
            }),
            timeout_ms: None,
            retry: None,
            ..Default::default()
        }),
    );
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost("all", &["*"], vec![prefix_rewrite, regex_rewrite])],
        vec![cluster("svc", &[backend.addr])],
    ))
    .await;
    let addr = proxy.addr("http");

    let mut req = get("front.example.com", "/v1/items?page=2");
    for (k, v) in [
        ("x-drop", "secret"),
        ("x-set", "client"),
        ("x-multi", "client"),
        ("connection", "x-hop"),
        ("x-hop", "1"),
    ] {
        req.headers_mut()
            .append(k, http::HeaderValue::from_static(v));
    }
    let r = client::send(addr, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-resp"), Some("yes"));
    assert_eq!(r.header("x-backend"), None, "response header removed");
    let seen = backend.last();
    assert_eq!(
        seen.uri.path_and_query().unwrap().as_str(),
        "/api/v2/items?page=2"
    );
    assert_eq!(seen.headers["host"], "internal.svc");
    assert_eq!(seen.headers["x-set"], "set");
    let multi: Vec<_> = seen.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["client", "added"]);
    assert!(!seen.headers.contains_key("x-drop"));
    assert!(
        !seen.headers.contains_key("x-hop"),
        "named in Connection: hop-by-hop"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-envoy-attempt-count"], "1");
    assert_eq!(
        seen.headers["x-request-id"].len(),
        36,
        "generated when missing"
    );

    let mut req = get("x", "/service/foo/v1/api");
    req.headers_mut()
        .insert("x-request-id", http::HeaderValue::from_static("keep-me"));
    client::send(addr, req).await;
    let seen = backend.last();
    assert_eq!(seen.uri.path(), "/v1/api/instance/foo");
    assert_eq!(seen.headers["host"], "x", "the client's Host is kept");
    assert_eq!(seen.headers["x-request-id"], "keep-me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_response_flags() {
    let alive = Backend::start("alive").await;
    let mut empty = cluster("empty", &[]);
    empty.endpoints.clear();
    let mut timeout = forward_to("alive");
    if let RouteAction::Forward(f) = &mut timeout {
        f.timeout_ms = Some(100);
    }
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![
                route("down", vec![prefix("/down")], forward_to("down")),
                route("empty", vec![prefix("/empty")], forward_to("empty")),
                route("no-timeout", vec![prefix("/slow/400")], forward_to("alive")),
                route("slow", vec![prefix("/slow")], timeout),
                route("reset", vec![prefix("/reset")], forward_to("reset")),
                route("garbage", vec![prefix("/garbage")], forward_to("garbage")),
            ],
        )],
        vec![
            cluster("down", &[closed_addr()]),
            empty,
            cluster("alive", &[alive.addr]),
            cluster("reset", &[testkit::bad_upstream(b"").await]),
            cluster(
                "garbage",
                &[testkit::bad_upstream(b"NOT HTTP AT ALL\r\n\r\n").await],
            ),
        ],
    ))
    .await;
    let addr = proxy.addr("http");
    let r = client::send(addr, get("x", "/down")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("connection failure"), "{}", r.text());
    let r = client::send(addr, get("x", "/empty")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream")
    );
    let r = client::send(addr, get("x", "/slow/2000")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.text(), "upstream request timeout");

    let r = client::send(addr, get("x", "/reset")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("connection termination"), "{}", r.text());
    let r = client::send(addr, get("x", "/garbage")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());

    // The client gives up while the upstream is still working: DC.
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut sock, b"GET /slow/400 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(sock);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let (_, stats) = proxy.admin("/stats/prometheus").await;
    for flag in ["UF", "UH", "UT", "UC", "UPE", "DC"] {
        assert!(
            stats.contains(&format!(
                "bowline_errors_total{{response_flag=\"{flag}\"}} 1"
            )),
            "{flag}: {stats}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_actual_request() {
    let backend = Backend::start("svc").await;
    let mut r = route("r", vec![], forward_to("svc"));
    r.cors = Some(CorsPolicy {
        allow_origins: vec![StringMatch::Exact("https://app.example.com".into())],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["x-token".into()],
        expose_headers: vec!["x-backend".into()],
        max_age_secs: Some(600),
        allow_credentials: Some(true),
    });
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost("all", &["*"], vec![r])],
        vec![cluster("svc", &[backend.addr])],
    ))
    .await;
    let addr = proxy.addr("http");
    let pre = Request::options("/")
        .header("host", "x")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .body(Body::default())
        .unwrap();
    let r = client::send(addr, pre).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(backend.count(), 0, "preflight answered by the proxy");

    let req = with_header(get("x", "/"), "origin", "https://app.example.com");
    let r = client::send(addr, req).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-backend"));
    let req = with_header(get("x", "/"), "origin", "https://evil.example.com");
    let r = client::send(addr, req).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let backend = Backend::start("svc").await;
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("svc"))],
        )],
        vec![cluster("svc", &[backend.addr])],
    ))
    .await;
    let mut conn = client::Conn::open(proxy.addr("http")).await;
    assert_eq!(conn.send(get("x", "/")).await.status, StatusCode::OK);
    let (status, dump) = proxy.admin("/config_dump").await;
    assert_eq!(status, StatusCode::OK);
    let parsed: ProxySnapshot = serde_json::from_str(&dump).expect("config_dump is a snapshot");
    assert_eq!(parsed.clusters[0].name, "svc");
    let (_, clusters) = proxy.admin("/clusters").await;
    assert!(
        clusters.contains(&format!("svc::{}::health_flags::healthy", backend.addr)),
        "{clusters}"
    );
    assert_eq!(proxy.admin("/ready").await.0, StatusCode::OK);
    let health = client::send(proxy.handle.health_addr(), get("h", "/healthz/ready")).await;
    assert_eq!(health.status, StatusCode::OK);
    let (_, stats) = proxy.admin("/stats/prometheus").await;
    assert!(
        stats.contains("bowline_downstream_connections_active{listener=\"http\"} 1"),
        "the open client connection: {stats}"
    );
}
