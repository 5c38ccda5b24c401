//! Protocols through the real proxy: h2c, chunked bodies, upgrades, TCP, TLS passthrough,
//! sniffing, and byte-level hardening cases.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use model::*;
use testkit::client::{self, get, Body};
use testkit::snap::*;
use testkit::{Backend, TcpEcho, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn one_backend_proxy(backend: &Backend, h2_upstream: bool) -> TestProxy {
    let mut c = cluster("svc", &[backend.addr]);
    if h2_upstream {
        c.protocol = UpstreamProtocol::Http2;
    }
    TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("svc"))],
        )],
        vec![c],
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_downstream_to_http1_upstream() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, false).await;
    let mut h2 = client::H2Conn::open(proxy.addr("http")).await;
    let mut replies = Vec::new();
    for i in 0..3 {
        let req = Request::get(format!("http://reviews:9080/item/{i}"))
            .body(Body::default())
            .unwrap();
        replies.push(h2.send(req).await);
    }
    assert!(replies
        .iter()
        .all(|r| r.status == StatusCode::OK && r.text() == "svc"));
    let seen = backend.last();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(
        seen.headers["host"], "reviews:9080",
        ":authority becomes Host"
    );
    assert_eq!(seen.uri.path(), "/item/2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_only_listener_refuses_http1() {
    let backend = Backend::start("svc").await;
    let mut snapshot = http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("svc"))],
        )],
        vec![cluster("svc", &[backend.addr])],
    );
    snapshot.listeners[0].kind = ListenerKind::Http2 {
        route_table: "rt".into(),
    };
    let proxy = TestProxy::start(snapshot).await;
    let mut h2 = client::H2Conn::open(proxy.addr("http")).await;
    let req = Request::get("http://svc/").body(Body::default()).unwrap();
    assert_eq!(h2.send(req).await.text(), "svc");
    let resp = client::raw(proxy.addr("http"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    assert_eq!(backend.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_is_multiplexed_on_one_connection() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, true).await;
    let addr = proxy.addr("http");
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(client::send(addr, get("svc.local", "/slow/50"))))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(backend.count(), 8);
    assert_eq!(backend.connections(), 1, "all streams on one h2 connection");
    let seen = backend.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.uri.authority().unwrap().as_str(), "svc.local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_and_response_bodies_stream_through() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, false).await;
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    tokio::spawn(async move {
        for i in 0..50 {
            if tx
                .send_data(Bytes::from(format!("chunk-{i};")))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let sock = TcpStream::connect(proxy.addr("http")).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(sock))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/echo")
        .header("host", "x")
        .body(body)
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    let expected: String = (0..50).map(|i| format!("chunk-{i};")).collect();
    assert_eq!(got, expected.as_bytes());
    assert!(!backend.last().headers.contains_key("content-length"));
    assert_eq!(backend.last().headers["transfer-encoding"], "chunked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_honoured() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, false).await;
    let mut sock = TcpStream::connect(proxy.addr("http")).await.unwrap();
    sock.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf))
        .await
        .expect("100 Continue before the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    sock.write_all(b"hello").await.unwrap();
    let n = sock.read(&mut buf).await.unwrap();
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("hello"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_passed_through() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, false).await;
    let mut sock = TcpStream::connect(proxy.addr("http")).await.unwrap();
    sock.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = sock.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"ping-1"[..], b"ping-2 longer message"] {
        sock.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(2), sock.read_exact(&mut got))
            .await
            .expect("echo")
            .unwrap();
        assert_eq!(got, msg);
    }
    let seen = backend.last();
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(
        seen.headers["sec-websocket-key"],
        "dGhlIHNhbXBsZSBub25jZQ=="
    );
}

async fn roundtrip(addr: std::net::SocketAddr, payload: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(payload).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf))
        .await
        .expect("reply")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_sni_passthrough_and_sniffing() {
    let (db, tls_a, tls_b, other) = (
        TcpEcho::start("db").await,
        TcpEcho::start("tls-a").await,
        TcpEcho::start("tls-b").await,
        TcpEcho::start("other").await,
    );
    let web = Backend::start("web").await;
    let snapshot = ProxySnapshot {
        version: "t".into(),
        listeners: vec![
            listener(
                "tcp",
                ListenerKind::Tcp {
                    clusters: weighted(&[("db", 1)]),
                },
            ),
            listener(
                "tls",
                ListenerKind::TlsPassthrough {
                    routes: vec![
                        SniRoute {
                            sni_hosts: vec!["*.a.example.com".into()],
                            clusters: weighted(&[("tls-a", 1)]),
                        },
                        SniRoute {
                            sni_hosts: vec!["b.example.com".into()],
                            clusters: weighted(&[("tls-b", 1)]),
                        },
                    ],
                },
            ),
            listener(
                "sniff",
                ListenerKind::AutoSniff {
                    route_table: "rt".into(),
                    tcp_clusters: weighted(&[("other", 1)]),
                },
            ),
        ],
        route_tables: vec![table(
            "rt",
            vec![vhost(
                "all",
                &["*"],
                vec![route("r", vec![], forward_to("web"))],
            )],
        )],
        clusters: vec![
            cluster("db", &[db.addr]),
            cluster("tls-a", &[tls_a.addr]),
            cluster("tls-b", &[tls_b.addr]),
            cluster("other", &[other.addr]),
            cluster("web", &[web.addr]),
        ],
        ..Default::default()
    };
    let proxy = TestProxy::start(snapshot).await;
    assert_eq!(
        roundtrip(proxy.addr("tcp"), b"select 1").await,
        "db:select 1"
    );

    let hello = proxy::sni::client_hello_for("api.a.example.com");
    let got = roundtrip(proxy.addr("tls"), &hello).await;
    assert!(got.starts_with("tls-a:"), "{got}");
    let hello = proxy::sni::client_hello_for("b.example.com");
    assert!(roundtrip(proxy.addr("tls"), &hello)
        .await
        .starts_with("tls-b:"));

    assert_eq!(
        roundtrip(proxy.addr("sniff"), b"\x00binary").await,
        "other:\x00binary"
    );
    let r = client::send(proxy.addr("sniff"), get("x", "/")).await;
    assert_eq!(r.text(), "web", "HTTP on the sniffing listener is routed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_get_431() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, false).await;
    let addr = proxy.addr("http");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let resp = client::raw(addr, big.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let resp = client::raw(addr, many.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert_eq!(backend.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_smuggling_requests_get_400() {
    let backend = Backend::start("svc").await;
    let proxy = one_backend_proxy(&backend, false).await;
    let addr = proxy.addr("http");
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ] {
        let resp = client::raw(addr, bad).await;
        assert!(
            resp.starts_with("HTTP/1.1 400"),
            "{:?} -> {resp:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // A good request pipelined before a smuggling attempt is still answered first.
    let resp = client::raw(
        addr,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\n\
          Content-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("HTTP/1.1 400"), "{resp}");
    assert_eq!(backend.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_cut_off() {
    let backend = Backend::start("svc").await;
    let limits = proxy::Limits {
        header_read_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let proxy = TestProxy::start_with(
        http_snapshot(
            vec![vhost(
                "all",
                &["*"],
                vec![route("r", vec![], forward_to("svc"))],
            )],
            vec![cluster("svc", &[backend.addr])],
        ),
        limits,
    )
    .await;
    let mut sock = TcpStream::connect(proxy.addr("http")).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the proxy closes a connection whose head never completes"
    );
    let _ = Full::new(Bytes::new());
}
