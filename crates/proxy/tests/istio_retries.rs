//! istio.io's request-timeout and retry tasks as tests: Istio YAML (our own copies of the
//! tasks' resources) compiled for a sidecar, a real proxy, real backends, real sockets.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use testkit::client::{self, get, Body, Conn};
use testkit::istio::{backend, cluster, flag_count, metric, service, sidecar, subsets};
use testkit::{closed_addr, Behavior};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_half_a_second_gives_504_ut() {
    // Task "Request Timeouts": the backend takes 2 s, the route allows 0.5 s.
    let v2 = backend(
        "reviews-v2",
        Behavior {
            delay: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
    timeout: 0.5s
";
    let (proxy, addr) = sidecar(
        &[
            service("reviews", 9080, &[("v2", v2.addr)]),
            subsets("reviews", &["v2"]),
            vs.into(),
        ],
        "",
        9080,
    )
    .await;
    let started = Instant::now();
    let r = client::send(addr, get("reviews:9080", "/reviews/0")).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.text(), "upstream request timeout");
    assert!(
        took >= Duration::from_millis(480) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(
        v2.count(),
        1,
        "a timeout is not retried by the default policy"
    );
    assert_eq!(flag_count(&proxy.stats().await, "UT"), 1);
}

/// Istio's retry example: three retries, two seconds per try.
const RATINGS_RETRIES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
        subset: v1
    retries:
      attempts: 3
      perTryTimeout: 2s
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_attempts_3_recover_from_two_503s() {
    let ratings = backend(
        "ratings",
        Behavior {
            fail_first: Some((2, 503)),
            ..Default::default()
        },
    )
    .await;
    let (proxy, addr) = sidecar(
        &[
            service("ratings", 9080, &[("v1", ratings.addr)]),
            subsets("ratings", &["v1"]),
            RATINGS_RETRIES.into(),
        ],
        "",
        9080,
    )
    .await;
    let r = client::send(addr, get("ratings:9080", "/ratings/0")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ratings"));
    let attempts: Vec<String> = ratings
        .seen()
        .iter()
        .map(|s| {
            s.headers["x-envoy-attempt-count"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let s = proxy.stats().await;
    let c = cluster("v1", "ratings", 9080);
    assert_eq!(
        metric(
            &s,
            &format!("bowline_upstream_rq_retry_total{{cluster=\"{c}\"}}")
        ),
        2
    );
    assert_eq!(
        metric(
            &s,
            &format!("bowline_upstream_rq_retry_success_total{{cluster=\"{c}\"}}")
        ),
        1
    );
    assert_eq!(flag_count(&s, "URX"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_pass_the_last_503_on_with_urx() {
    let ratings = backend(
        "ratings",
        Behavior {
            fail_first: Some((100, 503)),
            ..Default::default()
        },
    )
    .await;
    let (proxy, addr) = sidecar(
        &[
            service("ratings", 9080, &[("v1", ratings.addr)]),
            subsets("ratings", &["v1"]),
            RATINGS_RETRIES.into(),
        ],
        "",
        9080,
    )
    .await;
    let started = Instant::now();
    let r = client::send(addr, get("ratings:9080", "/ratings/0")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.text(),
        "ratings failing",
        "the backend's own 503 reaches the client"
    );
    assert_eq!(ratings.count(), 4, "one try and three retries");
    // Three backoffs: each below 25, 75 and 175 ms (Envoy's jittered exponential backoff).
    assert!(started.elapsed() < Duration::from_millis(275 + 500));
    let s = proxy.stats().await;
    assert_eq!(flag_count(&s, "URX"), 1);
    let c = cluster("v1", "ratings", 9080);
    assert_eq!(
        metric(
            &s,
            &format!("bowline_upstream_rq_retry_limit_exceeded_total{{cluster=\"{c}\"}}")
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_retries_a_connect_failure_on_the_other_endpoint() {
    // No VirtualService: the route gets Istio's default policy (2 retries on connect-failure,
    // refused-stream, unavailable, cancelled, 503), and a retry avoids the endpoint that failed.
    let alive = backend("details", Behavior::default()).await;
    let (proxy, addr) = sidecar(
        &[service(
            "details",
            9080,
            &[("v1", alive.addr), ("v2", closed_addr())],
        )],
        "",
        9080,
    )
    .await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..20 {
        let r = conn.send(get("details:9080", "/details/0")).await;
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "details"));
    }
    assert_eq!(alive.count(), 20);
    let s = proxy.stats().await;
    let c = cluster("", "details", 9080);
    let retries = metric(
        &s,
        &format!("bowline_upstream_rq_retry_total{{cluster=\"{c}\"}}"),
    );
    // Round robin moves on with every pick, retries included, so most first picks land on the
    // dead endpoint; every one of those was retried on the live one.
    assert!((1..=20).contains(&retries), "{retries}");
    assert_eq!(
        retries as usize,
        alive
            .seen()
            .iter()
            .filter(|s| s.headers["x-envoy-attempt-count"] == "2")
            .count()
    );
    assert_eq!(flag_count(&s, "UF"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_0_disables_retries() {
    let alive = backend("details", Behavior::default()).await;
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details
  namespace: default
spec:
  hosts:
  - details
  http:
  - route:
    - destination:
        host: details
    retries:
      attempts: 0
";
    let (proxy, addr) = sidecar(
        &[
            service(
                "details",
                9080,
                &[("v1", alive.addr), ("v2", closed_addr())],
            ),
            vs.into(),
        ],
        "",
        9080,
    )
    .await;
    let mut conn = Conn::open(addr).await;
    let mut failed = 0;
    for _ in 0..20 {
        let r = conn.send(get("details:9080", "/details/0")).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(r.text().contains("connection failure"), "{}", r.text());
            failed += 1;
        }
    }
    assert_eq!(
        failed, 10,
        "round robin: every other request meets the dead endpoint"
    );
    let s = proxy.stats().await;
    assert_eq!(flag_count(&s, "UF"), 10);
    assert_eq!(flag_count(&s, "URX"), 0, "no retry policy, no retry limit");
    assert!(!s.contains("bowline_upstream_rq_retry_total{"), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_default_http_retry_policy_replaces_istios_default() {
    // Istio's default does not retry a 500; a mesh-wide policy on 5xx does.
    let flaky = |name: &'static str| {
        backend(
            name,
            Behavior {
                fail_first: Some((1, 500)),
                ..Default::default()
            },
        )
    };
    let a = flaky("productpage").await;
    let (_proxy, addr) =
        sidecar(&[service("productpage", 9080, &[("v1", a.addr)])], "", 9080).await;
    let r = client::send(addr, get("productpage:9080", "/")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);

    let b = flaky("productpage").await;
    let mesh = "defaultHttpRetryPolicy:\n  attempts: 1\n  retryOn: 5xx\n";
    let (_proxy, addr) = sidecar(
        &[service("productpage", 9080, &[("v1", b.addr)])],
        mesh,
        9080,
    )
    .await;
    let r = client::send(addr, get("productpage:9080", "/")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(b.count(), 2);
}

/// Istio's `virtual-service-ratings-test-delay.yaml` with the delay given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_replay_a_kept_body_and_stream_a_large_one_without_retry() {
    let ratings = backend(
        "ratings",
        Behavior {
            fail_first: Some((1, 503)),
            ..Default::default()
        },
    )
    .await;
    let (proxy, addr) = sidecar(
        &[
            service("ratings", 9080, &[("v1", ratings.addr)]),
            subsets("ratings", &["v1"]),
            RATINGS_RETRIES.into(),
        ],
        "",
        9080,
    )
    .await;
    let post = |body: Vec<u8>| {
        Request::post("/echo")
            .header("host", "ratings:9080")
            .body(Body::from(body))
            .unwrap()
    };
    // A small body is kept and sent again with the retry.
    let small = b"rate me".to_vec();
    let r = client::send(addr, post(small.clone())).await;
    assert_eq!((r.status, r.body.as_ref()), (StatusCode::OK, &small[..]));
    let seen = ratings.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.body == small));

    // Over 64 KiB the body streams through once: the backend's failure is final.
    let ratings2 = backend(
        "ratings",
        Behavior {
            fail_first: Some((1, 503)),
            ..Default::default()
        },
    )
    .await;
    drop(proxy);
    let (_proxy, addr) = sidecar(
        &[
            service("ratings", 9080, &[("v1", ratings2.addr)]),
            subsets("ratings", &["v1"]),
            RATINGS_RETRIES.into(),
        ],
        "",
        9080,
    )
    .await;
    let large = vec![b'x'; 200 * 1024];
    let r = client::send(addr, post(large.clone())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ratings2.count(), 1);
    assert_eq!(ratings2.last().body.len(), large.len(), "streamed whole");
    let r = client::send(addr, post(large.clone())).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, large.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_moves_on_to_another_endpoint() {
    let slow = backend(
        "slow",
        Behavior {
            delay: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    let fast = backend("fast", Behavior::default()).await;
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
    timeout: 1s
    retries:
      attempts: 2
      perTryTimeout: 200ms
      retryOn: gateway-error
";
    let (proxy, addr) = sidecar(
        &[
            service("reviews", 9080, &[("v1", slow.addr), ("v2", fast.addr)]),
            vs.into(),
        ],
        "",
        9080,
    )
    .await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..4 {
        let started = Instant::now();
        let r = conn.send(get("reviews:9080", "/reviews/0")).await;
        assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "fast"));
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(slow.count() >= 1, "round robin reached the slow endpoint");
    assert_eq!(fast.count(), 4);
    // Each slow try was cut at 200 ms and retried: no UT reached the client.
    assert_eq!(flag_count(&proxy.stats().await, "UT"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_retries_grpc_unavailable_over_http2() {
    // A `grpc` port: HTTP/2 upstream. Istio's default retries `unavailable` (14), read from
    // a trailers-only answer, but not `internal` (13).
    let flaky = backend(
        "ratings-grpc",
        Behavior {
            grpc_fail_first: Some((1, 14)),
            ..Default::default()
        },
    )
    .await;
    let (_proxy, addr) = sidecar(
        &[testkit::istio::service_named(
            "ratings",
            "grpc",
            9090,
            &[("v1", flaky.addr)],
        )],
        "",
        9090,
    )
    .await;
    let req = Request::post("/ratings.Ratings/Get")
        .header("host", "ratings:9090")
        .header("content-type", "application/grpc")
        .body(Body::from(&b"\0\0\0\0\0"[..]))
        .unwrap();
    let r = client::send(addr, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("grpc-status"), None, "{:?}", r.headers);
    let seen = flaky.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_2));
    assert!(seen.iter().all(|s| s.body.as_ref() == b"\0\0\0\0\0"));

    let internal = backend(
        "ratings-grpc",
        Behavior {
            grpc_fail_first: Some((1, 13)),
            ..Default::default()
        },
    )
    .await;
    let (_proxy, addr) = sidecar(
        &[testkit::istio::service_named(
            "ratings",
            "grpc",
            9090,
            &[("v1", internal.addr)],
        )],
        "",
        9090,
    )
    .await;
    let r = client::send(addr, get("ratings:9090", "/ratings.Ratings/Get")).await;
    assert_eq!(r.header("grpc-status"), Some("13"));
    assert_eq!(internal.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_gives_up_after_two_retries_with_uf_and_urx() {
    let (proxy, addr) = sidecar(
        &[service("details", 9080, &[("v1", closed_addr())])],
        "",
        9080,
    )
    .await;
    let r = client::send(addr, get("details:9080", "/details/0")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("connection failure"), "{}", r.text());
    let s = proxy.stats().await;
    assert_eq!((flag_count(&s, "UF"), flag_count(&s, "URX")), (1, 1));
    let c = cluster("", "details", 9080);
    assert_eq!(
        metric(
            &s,
            &format!("bowline_upstream_rq_retry_total{{cluster=\"{c}\"}}")
        ),
        2
    );
}
