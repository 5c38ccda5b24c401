//! The admin API (:15000) and health (:15021) against a proxy serving real traffic.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use testkit::client::{self, get, Body};
use testkit::snap::*;
use testkit::{Backend, TcpEcho, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(proxy: &TestProxy, path: &str) -> (StatusCode, String) {
    let req = Request::post(path)
        .header("host", "admin")
        .body(Body::default())
        .unwrap();
    let r = client::send(proxy.handle.admin_addr(), req).await;
    (r.status, r.text())
}

fn stat(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{stats}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_text_and_prometheus_count_requests_bytes_and_flags() {
    let web = Backend::start("web").await;
    let echo = TcpEcho::start("db").await;
    let mut snapshot = http_snapshot(
        vec![vhost(
            "all",
            &["web"],
            vec![route("r", vec![], forward_to("web"))],
        )],
        vec![cluster("web", &[web.addr]), cluster("db", &[echo.addr])],
    );
    snapshot.listeners.push(listener(
        "tcp",
        model::ListenerKind::Tcp {
            clusters: weighted(&[("db", 1)]),
        },
    ));
    let proxy = TestProxy::start(snapshot).await;
    let addr = proxy.addr("http");
    for path in ["/", "/status/503", "/echo"] {
        let req = Request::post(path)
            .header("host", "web")
            .body(Body::from("12345"))
            .unwrap();
        client::send(addr, req).await;
    }
    client::send(addr, get("nowhere", "/")).await;
    let mut sock = tokio::net::TcpStream::connect(proxy.addr("tcp"))
        .await
        .unwrap();
    sock.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    let n = sock.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"db:ping");
    drop(sock);

    // TCP bytes are counted when the stream ends: poll until they are.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let (status, stats) = proxy.admin("/stats").await;
        assert_eq!(status, StatusCode::OK);
        if stat(&stats, "cluster.db.upstream_cx_rx_bytes_total") == 7 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stat(&stats, "cluster.web.upstream_rq_2xx"), 2, "{stats}");
    assert_eq!(stat(&stats, "cluster.web.upstream_rq_5xx"), 1);
    assert_eq!(stat(&stats, "cluster.web.upstream_rq_total"), 3);
    assert_eq!(stat(&stats, "cluster.web.upstream_rq_active"), 0);
    assert_eq!(stat(&stats, "cluster.web.upstream_cx_tx_bytes_total"), 15);
    // "web" twice, "12345" echoed once.
    assert_eq!(stat(&stats, "cluster.web.upstream_cx_rx_bytes_total"), 11);
    assert_eq!(stat(&stats, "cluster.db.upstream_cx_tx_bytes_total"), 4);
    assert_eq!(stat(&stats, "cluster.db.upstream_cx_rx_bytes_total"), 7);
    assert_eq!(stat(&stats, "cluster.web.membership_total"), 1);
    assert_eq!(stat(&stats, "listener.http.downstream_cx_total"), 4);
    assert_eq!(stat(&stats, "bowline.errors.response_flag.NR"), 1);
    assert_eq!(stat(&stats, "server.state"), 0);
    let (_, filtered) = proxy.admin("/stats?filter=cluster.db.").await;
    assert!(
        filtered.lines().all(|l| l.starts_with("cluster.db.")),
        "{filtered}"
    );

    let (_, prom) = proxy.admin("/stats/prometheus").await;
    for line in [
        "bowline_http_requests_total{cluster=\"web\",code_class=\"5xx\"} 1",
        "bowline_upstream_bytes_sent_total{cluster=\"db\"} 4",
        "bowline_upstream_bytes_received_total{cluster=\"web\"} 11",
        "bowline_errors_total{response_flag=\"NR\"} 1",
        "bowline_upstream_rq_active{cluster=\"web\"} 0",
    ] {
        assert!(prom.contains(line), "{line} in\n{prom}");
    }
    assert!(prom.trim_end().ends_with("# EOF"), "{prom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_lists_and_changes_levels() {
    let proxy = TestProxy::start(http_snapshot(vec![], vec![])).await;
    let (status, _) = post(&proxy, "/logging?level=debug").await;
    assert_eq!(
        status,
        StatusCode::NOT_IMPLEMENTED,
        "no levels handed over yet"
    );
    let applied = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = applied.clone();
    proxy
        .handle
        .set_log_levels(Arc::new(proxy::logging::LogLevels::new("info", move |d| {
            sink.lock().unwrap().push(d.to_string());
            Ok(())
        })));
    let (status, body) = proxy.admin("/logging").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("  http: info"), "{body}");
    let (status, body) = post(&proxy, "/logging?http=debug").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("  http: debug") && body.contains("  tcp: info"),
        "{body}"
    );
    assert_eq!(
        applied.lock().unwrap().last().unwrap(),
        "info,proxy::http=debug"
    );
    let (status, _) = post(&proxy, "/logging?level=warn").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(applied.lock().unwrap().last().unwrap(), "warn");
    let (status, body) = post(&proxy, "/logging?level=loud").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = post(&proxy, "/logging?nosuch=debug").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        applied.lock().unwrap().len(),
        2,
        "refused changes apply nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_listeners_stops_accepting_and_keeps_open_connections() {
    let web = Backend::start("web").await;
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("web"))],
        )],
        vec![cluster("web", &[web.addr])],
    ))
    .await;
    let addr = proxy.addr("http");
    let mut open = client::Conn::open(addr).await;
    assert_eq!(open.send(get("x", "/")).await.text(), "web");
    let slow = tokio::spawn(async move { open.send(get("x", "/slow/300")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _) = post(&proxy, "/drain_listeners").await;
    assert_eq!(status, StatusCode::OK);
    let r = slow.await.unwrap();
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, "web".into()),
        "in flight finishes"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting after drain_listeners"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = proxy.admin("/ready").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
    );
    let r = client::send(proxy.handle.health_addr(), get("h", "/healthz/ready")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = proxy.admin("/drain_listeners").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
