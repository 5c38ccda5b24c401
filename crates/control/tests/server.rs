//! The monitoring endpoint in process: routing and errors, apply answered only once the store
//! serves the change, get's JSON, metrics following the snapshot, and shutdown not held up by an
//! idle keep-alive connection.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;

use control::server::{ControlPlane, Metrics, Server};
use control::store::{ConfigWriter, DirSource, Store};

// Long enough that an apply answered before the store caught up would be seen by get.
const DEBOUNCE: Duration = Duration::from_millis(300);

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _store: Store,
}

async fn run(dir: &std::path::Path) -> Running {
    let metrics = Metrics::default();
    let reloads = metrics.reload_seconds.clone();
    let source = DirSource::new(dir, DEBOUNCE).expect("watch");
    let store = Store::start_observed(source, move |d| reloads.observe(d.as_secs_f64()))
        .await
        .expect("store");
    let writer = ConfigWriter::new(dir, store.handle());
    let plane = ControlPlane::new(store.handle(), writer, metrics);
    let server = Server::bind("127.0.0.1:0".parse().expect("addr"), plane)
        .await
        .expect("bind");
    let addr = server.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
        _store: store,
    }
}

async fn call(addr: SocketAddr, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "cp")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(dir.path()).await;
    let cases = [
        (Method::GET, "/ready", StatusCode::OK),
        (Method::GET, "/nope", StatusCode::NOT_FOUND),
        (Method::POST, "/ready", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/apis/apply", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/apis/get", StatusCode::BAD_REQUEST),
        (
            Method::GET,
            "/apis/get?kind=Widget",
            StatusCode::BAD_REQUEST,
        ),
        (Method::GET, "/apis/get?kind=VirtualService", StatusCode::OK),
    ];
    for (method, path, want) in cases {
        let (status, body) = call(r.addr, method.clone(), path, "").await;
        assert_eq!(status, want, "{method} {path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_answers_once_served_and_get_returns_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(dir.path()).await;
    let text = format!(
        "{}---\n{}",
        vs("bookinfo", "reviews", "v1"),
        invalid_vs("bookinfo", "ratings")
    );
    let (status, body) = call(
        r.addr,
        Method::POST,
        "/apis/apply?input=in%20put.yaml",
        &text,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["status"], "Failure", "{answer:#}");
    assert_eq!(answer["results"][0]["outcome"], "created");
    assert_eq!(
        answer["results"][0]["message"],
        "virtualservice.networking.istio.io/reviews created"
    );
    assert_eq!(answer["results"][1]["outcome"], "rejected");
    let reason = answer["results"][1]["message"].as_str().unwrap_or("");
    assert!(
        reason.contains("in put.yaml:") && reason.contains("70000"),
        "{reason}"
    );

    // No sleep: the answer came only once the store served the write.
    let (_, body) = call(
        r.addr,
        Method::GET,
        "/apis/get?kind=VirtualService&namespace=bookinfo",
        "",
    )
    .await;
    let got: Value = serde_json::from_str(&body).expect("json");
    let items = got["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{got:#}");
    assert_eq!(items[0]["object"]["metadata"]["name"], "reviews");
    assert!(items[0]["origin"]
        .as_str()
        .is_some_and(|o| o.ends_with("virtualservice-bookinfo-reviews.yaml:2")));
    let (_, body) = call(
        r.addr,
        Method::GET,
        "/apis/get?kind=VirtualService&namespace=other",
        "",
    )
    .await;
    assert!(body.contains("\"items\": []"), "{body}");

    let (_, metrics) = call(r.addr, Method::GET, "/metrics", "").await;
    for want in [
        r#"bowline_config_documents{kind="VirtualService",state="accepted"} 1"#,
        r#"bowline_config_writes_total{op="apply",outcome="created"} 1"#,
        r#"bowline_config_writes_total{op="apply",outcome="rejected"} 1"#,
        "bowline_config_snapshot_version 2",
        "bowline_config_reload_duration_seconds_count 2",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }

    let (_, body) = call(r.addr, Method::POST, "/apis/delete", &text).await;
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["results"][0]["outcome"], "deleted", "{answer:#}");
    assert_eq!(answer["results"][1]["outcome"], "notFound", "{answer:#}");
    let (_, body) = call(r.addr, Method::GET, "/apis/get?kind=VirtualService", "").await;
    assert!(body.contains("\"items\": []"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_by_an_idle_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut r = run(dir.path()).await;
    // An open keep-alive connection, idle after one request.
    let stream = tokio::net::TcpStream::connect(r.addr)
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    let req = Request::get("/ready")
        .header("host", "cp")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(send.send_request(req).await.expect("ok").status(), 200);

    let started = Instant::now();
    let _ = r.stop.take().map(|s| s.send(()));
    tokio::time::timeout(Duration::from_secs(5), &mut r.task)
        .await
        .expect("server stops")
        .expect("no panic");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The idle connection was closed by the server, not left dangling.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn)
        .await
        .expect("client connection ended");
    assert!(tokio::net::TcpStream::connect(r.addr).await.is_err());
}
