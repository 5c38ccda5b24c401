//! More protocols through the real proxy: gRPC trailers and grpc-status over HTTP/2, CONNECT,
//! HTTP/1.1 pipelining, server-first protocols on a sniffing listener, idle keep-alive
//! connections, and which HTTP version goes upstream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use model::*;
use testkit::client::{self, get};
use testkit::snap::*;
use testkit::{Backend, TcpEcho, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A body of fixed frames (data, then trailers).
struct Frames(VecDeque<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// An h2c gRPC-style server: a length-prefixed message, then trailers with `grpc-status` taken
/// from the request's `x-status` header and the `te` it received.
async fn grpc_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let status = req
                            .headers()
                            .get("x-status")
                            .cloned()
                            .unwrap_or_else(|| HeaderValue::from_static("0"));
                        let te = req.headers().get("te").cloned();
                        let _ = req.into_body().collect().await;
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", status);
                        trailers.insert("grpc-message", HeaderValue::from_static("done"));
                        if let Some(te) = te {
                            trailers.insert("x-seen-te", te);
                        }
                        let frames = Frames(VecDeque::from([
                            Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")),
                            Frame::trailers(trailers),
                        ]));
                        let mut resp = Response::new(frames);
                        resp.headers_mut()
                            .insert("content-type", HeaderValue::from_static("application/grpc"));
                        Ok::<_, Infallible>(resp)
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_and_status_pass_through() {
    let backend = grpc_backend().await;
    let mut c = cluster("grpc", &[backend]);
    c.protocol = UpstreamProtocol::Http2;
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("grpc"))],
        )],
        vec![c],
    ))
    .await;
    let sock = TcpStream::connect(proxy.addr("http")).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(sock))
            .await
            .unwrap();
    tokio::spawn(conn);
    for status in ["0", "14"] {
        let req = Request::post("http://greeter.local/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-status", status)
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02yo")))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers arrive");
        assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi");
        assert_eq!(trailers["grpc-status"], status);
        assert_eq!(trailers["grpc-message"], "done");
        assert_eq!(
            trailers["x-seen-te"], "trailers",
            "te: trailers reaches the backend"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_routed_by_authority_and_tunnelled() {
    let db = TcpEcho::start("db").await;
    let proxy = TestProxy::start(http_snapshot(
        vec![vhost(
            "db",
            &["db.example.com:5432"],
            vec![route("r", vec![], forward_to("db"))],
        )],
        vec![cluster("db", &[db.addr])],
    ))
    .await;
    let mut sock = TcpStream::connect(proxy.addr("http")).await.unwrap();
    sock.write_all(b"CONNECT db.example.com:5432 HTTP/1.1\r\nhost: db.example.com:5432\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(sock.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    sock.write_all(b"select 1").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"db:select 1");

    let r = client::raw(
        proxy.addr("http"),
        b"CONNECT elsewhere:443 HTTP/1.1\r\nhost: elsewhere:443\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "unrouted CONNECT: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
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
    let r = client::raw(
        proxy.addr("http"),
        b"GET /slow/100 HTTP/1.1\r\nhost: a\r\n\r\nGET /status/201 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    let first = r.find("HTTP/1.1 200").expect("first answered");
    let second = r.find("HTTP/1.1 201").expect("second answered");
    assert!(first < second, "in order: {r}");
    assert_eq!(backend.count(), 2);
    let paths: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| s.uri.path().to_string())
        .collect();
    assert_eq!(
        paths,
        ["/slow/100", "/status/201"],
        "one at a time, in order"
    );
}

/// A server-first protocol (the backend speaks first, like MySQL) on a sniffing listener: after
/// the detection timeout the connection is proxied as TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sniffing_falls_back_to_tcp_for_server_first_protocols() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let banner_addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = server.accept().await {
            let _ = s.write_all(b"220 hello\r\n").await;
        }
    });
    let web = Backend::start("web").await;
    let mut snapshot = http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("web"))],
        )],
        vec![
            cluster("web", &[web.addr]),
            cluster("banner", &[banner_addr]),
        ],
    );
    snapshot.listeners = vec![listener(
        "sniff",
        ListenerKind::AutoSniff {
            route_table: "rt".into(),
            tcp_clusters: weighted(&[("banner", 1)]),
        },
    )];
    snapshot.route_tables[0].name = "rt".into();
    let proxy = TestProxy::start(snapshot).await;
    let started = Instant::now();
    let mut sock = TcpStream::connect(proxy.addr("sniff")).await.unwrap();
    let mut buf = [0u8; 32];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"220 hello\r\n");
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "the banner waits for the detection timeout"
    );
    let r = client::send(proxy.addr("sniff"), get("x", "/")).await;
    assert_eq!(r.text(), "web", "HTTP clients still get HTTP");
}

/// An HTTP/1.1 keep-alive connection left idle is closed by the proxy after the header read
/// timeout (the wait for the next request head counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let backend = Backend::start("svc").await;
    let limits = proxy::Limits {
        header_read_timeout: Duration::from_millis(300),
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
    sock.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("closed within 5 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "kept open while fresh"
    );
}

/// Without a DestinationRule upgrade, the upstream protocol is the cluster's (HTTP/1.1 for an
/// `http` port) whatever the client spoke; an HTTP/2 cluster gets HTTP/2 from HTTP/1 clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_version_is_the_clusters() {
    let (h1, h2) = (Backend::start("h1").await, Backend::start("h2").await);
    let mut c2 = cluster("h2", &[h2.addr]);
    c2.protocol = UpstreamProtocol::Http2;
    let proxy = TestProxy::start(http_snapshot(
        vec![
            vhost("h1", &["h1"], vec![route("r", vec![], forward_to("h1"))]),
            vhost("h2", &["h2"], vec![route("r", vec![], forward_to("h2"))]),
        ],
        vec![cluster("h1", &[h1.addr]), c2],
    ))
    .await;
    let addr = proxy.addr("http");
    let mut h2c = client::H2Conn::open(addr).await;
    let r = h2c
        .send(
            Request::get("http://h1/")
                .body(client::Body::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.text(), "h1");
    assert_eq!(h1.last().version, Version::HTTP_11);
    client::send(addr, get("h2", "/")).await;
    assert_eq!(h2.last().version, Version::HTTP_2);
}
