//! Snapshot swaps under load, rejected snapshots, listener changes, and drain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use model::*;
use testkit::client::{self, get};
use testkit::snap::*;
use testkit::{Backend, TestProxy};

fn to(cluster_name: &str, clusters: Vec<Cluster>, version: usize) -> ProxySnapshot {
    let mut s = http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to(cluster_name))],
        )],
        clusters,
    );
    s.version = format!("v{version}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_fails_no_request() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let clusters = || vec![cluster("a", &[a.addr]), cluster("b", &[b.addr])];
    let proxy = TestProxy::start(to("a", clusters(), 0)).await;
    let addr = proxy.addr("http");
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let deadline = Instant::now() + Duration::from_millis(1500);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (ok, failed) = (ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut conn = client::Conn::open(addr).await;
                // Bounded in time and count.
                for _ in 0..5000 {
                    if Instant::now() > deadline {
                        break;
                    }
                    match conn.try_send(get("x", "/")).await {
                        Ok(r) if r.status == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let mut swaps = 0;
    while Instant::now() < deadline {
        swaps += 1;
        let target = if swaps % 2 == 0 { "a" } else { "b" };
        proxy
            .handle
            .apply(to(target, clusters(), swaps))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{ok} ok, {failed} failed over {swaps} swaps");
    assert!(ok > 100, "only {ok} requests went through");
    assert!(a.count() > 0 && b.count() > 0, "both configurations served");
    let (_, stats) = proxy.admin("/stats/prometheus").await;
    assert!(
        stats.contains(&format!(
            "bowline_snapshot_updates_total{{result=\"Accepted\"}} {swaps}"
        )),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_snapshot_keeps_the_last_good_one() {
    let a = Backend::start("a").await;
    let proxy = TestProxy::start(to("a", vec![cluster("a", &[a.addr])], 0)).await;
    let bad = to("missing", vec![cluster("a", &[a.addr])], 1);
    let err = proxy.handle.apply(bad).await.unwrap_err();
    assert!(
        err.to_string().contains("unknown cluster `missing`"),
        "{err}"
    );
    let r = client::send(proxy.addr("http"), get("x", "/")).await;
    assert_eq!(r.text(), "a");
    let (_, dump) = proxy.admin("/config_dump").await;
    assert!(dump.contains("\"version\": \"v0\""), "{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_the_snapshot() {
    let a = Backend::start("a").await;
    let mut s = to("a", vec![cluster("a", &[a.addr])], 0);
    let proxy = TestProxy::start(s.clone()).await;
    let first = proxy.addr("http");
    s.listeners.push(http_listener("second", "rt"));
    proxy.handle.apply(s.clone()).await.unwrap();
    assert_eq!(
        proxy.addr("http"),
        first,
        "unchanged listener keeps its socket"
    );
    let second = proxy.addr("second");
    let mut kept = client::Conn::open(second).await;
    assert_eq!(kept.send(get("x", "/")).await.text(), "a");
    s.listeners.retain(|l| l.name == "http");
    proxy.handle.apply(s).await.unwrap();
    // Open connections of a removed listener are closed gracefully, not left serving it.
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if kept.try_send(get("x", "/")).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "connection to the removed listener still open"
    );
    assert!(proxy.handle.listener_addr("second").is_none());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(second).await.is_err(),
        "removed listener no longer accepts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_requests_and_stops_accepting() {
    let a = Backend::start("a").await;
    let proxy = TestProxy::start(to("a", vec![cluster("a", &[a.addr])], 0)).await;
    let addr = proxy.addr("http");
    let slow = tokio::spawn(client::send(addr, get("x", "/slow/300")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.handle.shared().drain.start();
    assert_eq!(
        proxy.admin("/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let health = client::send(proxy.handle.health_addr(), get("h", "/healthz/ready")).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let left = proxy.handle.drain(Duration::from_secs(5)).await;
    assert_eq!(left, 0);
    let r = slow.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "a"));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_forces_connections_after_the_period() {
    let a = Backend::start("a").await;
    let proxy = TestProxy::start(to("a", vec![cluster("a", &[a.addr])], 0)).await;
    let addr = proxy.addr("http");
    let slow = tokio::spawn(async move {
        let mut conn = client::Conn::open(addr).await;
        conn.try_send(get("x", "/slow/5000")).await.is_err()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let left = proxy.handle.drain(Duration::from_millis(200)).await;
    assert_eq!(left, 1, "the slow request's connection was still open");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The client sees its connection closed rather than waiting five seconds.
    let failed = tokio::time::timeout(Duration::from_secs(2), slow).await;
    assert!(
        matches!(failed, Ok(Ok(true))),
        "connection was closed by the forced drain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitquitquit_is_reported_to_the_owner() {
    let a = Backend::start("a").await;
    let proxy = TestProxy::start(to("a", vec![cluster("a", &[a.addr])], 0)).await;
    let post = http::Request::post("/quitquitquit")
        .header("host", "admin")
        .body(client::Body::default())
        .unwrap();
    let r = client::send(proxy.handle.admin_addr(), post).await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(1), proxy.handle.quit_requested())
        .await
        .expect("quit reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_cannot_bind_is_reported_and_the_rest_applied() {
    let a = Backend::start("a").await;
    let mut s = to("a", vec![cluster("a", &[a.addr])], 0);
    let proxy = TestProxy::start(s.clone()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut busy = http_listener("busy", "rt");
    busy.port = taken.local_addr().unwrap().port();
    s.listeners.push(busy);
    s.listeners.push(http_listener("fine", "rt"));
    let err = proxy.handle.apply(s).await.unwrap_err();
    assert!(
        err.to_string().contains("listener `busy` cannot bind"),
        "{err}"
    );
    let r = client::send(proxy.addr("fine"), get("x", "/")).await;
    assert_eq!(r.text(), "a");
}
