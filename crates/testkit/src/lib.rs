//! Test harness for the proxy: real sockets on 127.0.0.1 only.
//!
//! - [`Backend`]: an HTTP/1.1 + h2c server that records every request it receives and answers
//!   with its name; `/status/N` answers N, `/slow/MS` waits first, and `Upgrade` requests get a
//!   101 and an echo of the upgraded stream.
//! - [`TcpEcho`]: a TCP server that answers each read with its name and the bytes.
//! - [`TestProxy`]: a proxy under test with admin and health servers on free ports.
//! - [`Behavior`]: misbehaving backends: a fixed delay on every request, the first N requests
//!   failed with a status.
//! - [`misbehave`]: a backend whose status (and delay) can be switched while it runs, and an
//!   HTTPS backend on a caller's rustls config.
//! - [`snap`]: terse builders for snapshots; [`istio`]: snapshots compiled from Istio YAML;
//!   [`istio_yaml`]: Istio YAML compiled into a running proxy.
//! - [`client`]: an HTTP client and a raw-bytes client for byte-level cases.

pub mod client;
pub mod istio;
pub mod istio_yaml;
pub mod misbehave;
pub mod snap;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as a backend saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Which accepted connection carried it (1-based, in accept order).
    pub conn: usize,
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    conns: AtomicUsize,
    behavior: Behavior,
}

/// How a [`Backend`] misbehaves, whatever the path.
#[derive(Clone, Copy, Debug, Default)]
pub struct Behavior {
    /// Waited before every answer.
    pub delay: Duration,
    /// The first `.0` requests are answered with status `.1`.
    pub fail_first: Option<(usize, u16)>,
    /// The first `.0` requests get a gRPC trailers-only answer with `grpc-status: .1`.
    pub grpc_fail_first: Option<(usize, u32)>,
}

/// A recording HTTP backend. Dropping it does not stop it; tests are short-lived processes.
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    log: Arc<Log>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Backend::start_at(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// A backend on a given address, for configurations that name fixed endpoint addresses
    /// (any 127.x.y.z works on Linux without setup).
    pub async fn start_at(name: &str, addr: SocketAddr) -> Backend {
        Backend::start_with(name, addr, Behavior::default()).await
    }

    /// A backend that misbehaves as `behavior` says.
    pub async fn start_with(name: &str, addr: SocketAddr, behavior: Behavior) -> Backend {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind backend on {addr}: {e}"));
        let addr = listener.local_addr().expect("backend addr");
        let log = Arc::new(Log {
            behavior,
            ..Log::default()
        });
        let backend = Backend {
            name: name.to_string(),
            addr,
            log: log.clone(),
        };
        let name: Arc<str> = name.into();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let conn = log.conns.fetch_add(1, Ordering::SeqCst) + 1;
                let (log, name) = (log.clone(), name.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(name.clone(), log.clone(), conn, req));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        backend
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().expect("log").clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("backend saw no request")
    }

    pub fn count(&self) -> usize {
        self.log.seen.lock().expect("log").len()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.conns.load(Ordering::SeqCst)
    }
}

async fn respond(
    name: Arc<str>,
    log: Arc<Log>,
    conn: usize,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let upgrade = req.headers().get(http::header::UPGRADE).cloned();
    let on_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let nth = {
        let mut seen = log.seen.lock().expect("log");
        seen.push(Seen {
            method: parts.method,
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers,
            body: body.clone(),
            conn,
        });
        seen.len()
    };
    if !log.behavior.delay.is_zero() {
        tokio::time::sleep(log.behavior.delay).await;
    }
    if let Some((n, code)) = log.behavior.grpc_fail_first {
        if nth <= n {
            let mut r = Response::new(Full::new(Bytes::new()));
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", http::HeaderValue::from(code));
            return Ok(r);
        }
    }
    if let Some((n, code)) = log.behavior.fail_first {
        if nth <= n {
            let mut r = Response::new(Full::new(Bytes::from(format!("{name} failing"))));
            *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            return Ok(r);
        }
    }
    if let (Some(proto), Some(on)) = (upgrade, on_upgrade) {
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert(http::header::UPGRADE, proto);
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        return Ok(r);
    }
    let path = parts.uri.path();
    let mut status = StatusCode::OK;
    if let Some(code) = path.strip_prefix("/status/") {
        status = code
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
    }
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|m| m.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let reply = if path == "/echo" {
        body
    } else {
        Bytes::from(name.to_string())
    };
    let mut r = Response::new(Full::new(reply));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "x-backend",
        http::HeaderValue::from_str(&name).expect("backend name is a header value"),
    );
    Ok(r)
}

/// A TCP server that answers every read with `"<name>:" + bytes`.
pub struct TcpEcho {
    pub addr: SocketAddr,
}

impl TcpEcho {
    pub async fn start(name: &str) -> TcpEcho {
        TcpEcho::start_at(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// An echo server on a given address (any 127.x.y.z).
    pub async fn start_at(name: &str, addr: SocketAddr) -> TcpEcho {
        let listener = TcpListener::bind(addr).await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let prefix = format!("{name}:").into_bytes();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let mut out = prefix.clone();
                        out.extend_from_slice(&buf[..n]);
                        if sock.write_all(&out).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        TcpEcho { addr }
    }
}

/// A server that reads a little of each connection and then writes `reply` (possibly nothing)
/// and closes: for upstream resets and protocol errors.
pub async fn bad_upstream(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(reply).await;
            });
        }
    });
    addr
}

/// A port free right now, for a process the test starts to bind (it may be taken again by the
/// time that process binds it; callers retry or tolerate that).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// An address that refuses connections: bound by this process and never listening.
pub fn closed_addr() -> SocketAddr {
    // Bound but never listening: connections are refused, and the port stays this process's for
    // its lifetime, so no other server (another test, another process) can take it meanwhile.
    let s = tokio::net::TcpSocket::new_v4().expect("socket");
    s.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = s.local_addr().expect("addr");
    std::mem::forget(s);
    addr
}

/// A proxy under test: listeners as the snapshot says (use port 0), admin and health on free
/// ports, seeded randomness.
pub struct TestProxy {
    pub handle: proxy::ProxyHandle,
}

impl TestProxy {
    pub async fn start(snapshot: model::ProxySnapshot) -> TestProxy {
        Self::start_with(snapshot, proxy::Limits::default()).await
    }

    pub async fn start_with(snapshot: model::ProxySnapshot, limits: proxy::Limits) -> TestProxy {
        let config = proxy::ProxyConfig {
            admin_addr: "127.0.0.1:0".parse().expect("addr"),
            health_addr: "127.0.0.1:0".parse().expect("addr"),
            limits,
            seed: Some(7),
            ..Default::default()
        };
        let handle = proxy::start(config, snapshot).await.expect("proxy starts");
        TestProxy { handle }
    }

    /// Where the listener `name` accepts.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.handle
            .listener_addr(name)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    /// The proxy's Prometheus metrics, as text.
    pub async fn stats(&self) -> String {
        self.admin("/stats/prometheus").await.1
    }

    /// GET on the admin server; (status, body).
    pub async fn admin(&self, path: &str) -> (StatusCode, String) {
        let r = client::send(self.handle.admin_addr(), client::get("admin", path)).await;
        (r.status, r.text())
    }
}
