//! istio.io's fault-injection, traffic-shifting and mirroring tasks as tests: Istio YAML (our
//! own copies of the tasks' resources) compiled for a sidecar, a real proxy, real backends, real
//! sockets. Randomness is seeded, so counts are the same every run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, StatusCode};
use testkit::client::{self, get, Body, Conn};
use testkit::istio::{backend, flag_count, metric, service, sidecar, subsets};
use testkit::{Backend, Behavior, TestProxy};

fn as_user(mut req: Request<Body>, user: &'static str) -> Request<Body> {
    req.headers_mut()
        .insert("end-user", HeaderValue::from_static(user));
    req
}

fn ratings_delay(delay: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    fault:
      delay:
        percentage:
          value: 100.0
        fixedDelay: {delay}
    route:
    - destination:
        host: ratings
        subset: v1
  - route:
    - destination:
        host: ratings
        subset: v1
"
    )
}

async fn ratings_proxy(vs: String) -> (Backend, TestProxy, SocketAddr) {
    let ratings = backend("ratings", Behavior::default()).await;
    let (proxy, addr) = sidecar(
        &[
            service("ratings", 9080, &[("v1", ratings.addr)]),
            subsets("ratings", &["v1"]),
            vs,
        ],
        "",
        9080,
    )
    .await;
    (ratings, proxy, addr)
}

/// Sends a request as jason and one as nobody; returns how long each took.
async fn jason_and_other(addr: SocketAddr) -> (Duration, Duration) {
    let started = Instant::now();
    let r = client::send(addr, as_user(get("ratings:9080", "/ratings/0"), "jason")).await;
    assert_eq!(r.status, StatusCode::OK);
    let jason = started.elapsed();
    let started = Instant::now();
    let r = client::send(addr, get("ratings:9080", "/ratings/0")).await;
    assert_eq!(r.status, StatusCode::OK);
    (jason, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delay_for_jason_only() {
    let (ratings, proxy, addr) = ratings_proxy(ratings_delay("700ms")).await;
    let (jason, other) = jason_and_other(addr).await;
    assert!(
        jason >= Duration::from_millis(690) && jason < Duration::from_millis(2000),
        "{jason:?}"
    );
    assert!(other < Duration::from_millis(300), "{other:?}");
    assert_eq!(ratings.count(), 2, "a delayed request still goes upstream");
    assert_eq!(flag_count(&proxy.stats().await, "DI"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delay_7s_for_jason_with_istios_figures() {
    let (_ratings, proxy, addr) = ratings_proxy(ratings_delay("7s")).await;
    let (jason, other) = jason_and_other(addr).await;
    assert!(
        jason >= Duration::from_secs(7) && jason < Duration::from_secs(9),
        "{jason:?}"
    );
    assert!(other < Duration::from_millis(300), "{other:?}");
    assert_eq!(flag_count(&proxy.stats().await, "DI"), 1);
}

/// Istio's `virtual-service-ratings-test-abort.yaml`, with the share of jason's requests given.
fn ratings_abort(percent: &str, jason_only: bool) -> String {
    let matcher = if jason_only {
        "  - match:\n    - headers:\n        end-user:\n          exact: jason\n    fault:\n"
    } else {
        "  - fault:\n"
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
{matcher}      abort:
        percentage:
          value: {percent}
        httpStatus: 500
    route:
    - destination:
        host: ratings
        subset: v1
  - route:
    - destination:
        host: ratings
        subset: v1
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_500_for_jason_only() {
    let (ratings, proxy, addr) = ratings_proxy(ratings_abort("100.0", true)).await;
    let r = client::send(addr, as_user(get("ratings:9080", "/ratings/0"), "jason")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "fault filter abort")
    );
    assert_eq!(
        ratings.count(),
        0,
        "an aborted request never leaves the proxy"
    );
    let r = client::send(addr, get("ratings:9080", "/ratings/0")).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ratings"));
    assert_eq!(flag_count(&proxy.stats().await, "FI"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_10_percent_over_1000_requests() {
    let (ratings, proxy, addr) = ratings_proxy(ratings_abort("10", false)).await;
    let mut conn = Conn::open(addr).await;
    let mut aborted = 0;
    for _ in 0..1000 {
        let r = conn.send(get("ratings:9080", "/ratings/0")).await;
        match r.status {
            StatusCode::INTERNAL_SERVER_ERROR => aborted += 1,
            StatusCode::OK => {}
            s => panic!("unexpected {s}"),
        }
    }
    assert!((70..=130).contains(&aborted), "{aborted} of 1000 aborted");
    assert_eq!(ratings.count(), 1000 - aborted);
    assert_eq!(flag_count(&proxy.stats().await, "FI"), aborted as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_with_grpc_status_is_a_trailers_only_answer() {
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
  - fault:
      abort:
        percentage:
          value: 100
        grpcStatus: UNAVAILABLE
    route:
    - destination:
        host: ratings
";
    let (ratings, _proxy, addr) = ratings_proxy(vs.into()).await;
    let r = client::send(addr, get("ratings:9080", "/ratings.Ratings/Get")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("grpc-status"), Some("14"));
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert!(r.body.is_empty());
    assert_eq!(ratings.count(), 0);
}

/// Counts over 1000 requests split between reviews v1 and v3 with `weights`.
async fn split(weights: (u32, u32)) -> (usize, usize) {
    let v1 = backend("reviews-v1", Behavior::default()).await;
    let v3 = backend("reviews-v3", Behavior::default()).await;
    let vs = format!(
        "apiVersion: networking.istio.io/v1
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
        subset: v1
      weight: {}
    - destination:
        host: reviews
        subset: v3
      weight: {}
",
        weights.0, weights.1
    );
    let (_proxy, addr) = sidecar(
        &[
            service("reviews", 9080, &[("v1", v1.addr), ("v3", v3.addr)]),
            subsets("reviews", &["v1", "v3"]),
            vs,
        ],
        "",
        9080,
    )
    .await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..1000 {
        let r = conn.send(get("reviews:9080", "/reviews/0")).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    (v1.count(), v3.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_routing_50_50_80_20_90_10_within_5_points() {
    for (a, b) in [(50, 50), (80, 20), (90, 10)] {
        let (ones, threes) = split((a, b)).await;
        assert_eq!(ones + threes, 1000);
        let share = ones as f64 / 10.0;
        assert!(
            (share - f64::from(a)).abs() <= 5.0,
            "{a}/{b}: v1 got {ones} of 1000"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_to_v2_with_shadow_host_and_a_slow_mirror_never_slows_the_client() {
    // Task "Mirroring": all traffic to httpbin v1, mirrored to v2, which here takes 2 s.
    let v1 = backend("httpbin-v1", Behavior::default()).await;
    let v2 = backend(
        "httpbin-v2",
        Behavior {
            delay: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
  namespace: default
spec:
  hosts:
  - httpbin
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
      weight: 100
    mirror:
      host: httpbin
      subset: v2
    mirrorPercentage:
      value: 100.0
";
    let (proxy, addr) = sidecar(
        &[
            service("httpbin", 8000, &[("v1", v1.addr), ("v2", v2.addr)]),
            subsets("httpbin", &["v1", "v2"]),
            vs.into(),
        ],
        "",
        8000,
    )
    .await;
    let mut conn = Conn::open(addr).await;
    let started = Instant::now();
    let r = conn.send(get("httpbin:8000", "/headers")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "httpbin-v1")
    );
    let post = Request::post("/anything")
        .header("host", "httpbin:8000")
        .body(Body::from("mirrored body"))
        .unwrap();
    let r = conn.send(post).await;
    assert_eq!(r.text(), "httpbin-v1");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1000), "{took:?}");

    assert_eq!(v1.count(), 2);
    assert_eq!(v1.seen()[0].headers["host"], "httpbin:8000");
    // The mirror records each request as it arrives, before its 2 s sleep.
    let deadline = Instant::now() + Duration::from_secs(2);
    while v2.count() < 2 {
        assert!(Instant::now() < deadline, "v2 saw {} requests", v2.count());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = v2.seen();
    assert!(seen
        .iter()
        .all(|s| s.headers["host"] == "httpbin-shadow:8000"));
    let post = seen.iter().find(|s| s.uri.path() == "/anything").unwrap();
    assert_eq!(post.body, "mirrored body");

    // The mirror's answers are read and dropped once they come.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = metric(
            &proxy.stats().await,
            "bowline_mirror_requests_total{result=\"Sent\"}",
        );
        if sent == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "mirrors sent: {sent}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_with_a_percentage_copy_that_share() {
    let v1 = backend("httpbin-v1", Behavior::default()).await;
    let v2 = backend("httpbin-v2", Behavior::default()).await;
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
  namespace: default
spec:
  hosts:
  - httpbin
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
    mirrors:
    - destination:
        host: httpbin
        subset: v2
      percentage:
        value: 25
";
    let (proxy, addr) = sidecar(
        &[
            service("httpbin", 8000, &[("v1", v1.addr), ("v2", v2.addr)]),
            subsets("httpbin", &["v1", "v2"]),
            vs.into(),
        ],
        "",
        8000,
    )
    .await;
    let mut conn = Conn::open(addr).await;
    for _ in 0..400 {
        let r = conn.send(get("httpbin:8000", "/get")).await;
        assert_eq!(r.text(), "httpbin-v1");
    }
    // Copies are fire-and-forget: wait until every one the mirror saw was answered and no
    // more arrive.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = usize::MAX;
    loop {
        let seen = v2.count();
        let s = proxy.stats().await;
        let sent = metric(&s, "bowline_mirror_requests_total{result=\"Sent\"}");
        if sent as usize == seen && seen == last {
            break;
        }
        assert!(Instant::now() < deadline, "sent {sent}, mirror saw {seen}");
        last = seen;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (60..=140).contains(&v2.count()),
        "{} of 400 mirrored",
        v2.count()
    );
}
