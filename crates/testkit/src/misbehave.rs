//! Backends for traffic-policy scenarios: one whose status can be switched while it runs
//! (outlier detection, failover), and an HTTPS one on a caller's rustls config (upstream TLS).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// An HTTP backend answering every request with its current status, its name as the body and
/// `x-backend: name`, after an optional delay.
#[derive(Clone)]
pub struct StatusBackend {
    pub name: String,
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

impl StatusBackend {
    pub async fn start(name: &str, status: u16) -> StatusBackend {
        Self::start_at(name, SocketAddr::from(([127, 0, 0, 1], 0)), status).await
    }

    pub async fn start_at(name: &str, addr: SocketAddr, status: u16) -> StatusBackend {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind backend on {addr}: {e}"));
        let b = StatusBackend {
            name: name.to_string(),
            addr: listener.local_addr().expect("addr"),
            status: Arc::new(AtomicU16::new(status)),
            delay_ms: Arc::new(AtomicU16::new(0)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let me = b.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.answer().await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        b
    }

    async fn answer(&self) -> Response<Full<Bytes>> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        let mut r = Response::new(Full::new(Bytes::from(self.name.clone())));
        *r.status_mut() = StatusCode::from_u16(self.status.load(Ordering::SeqCst))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut().insert(
            "x-backend",
            http::HeaderValue::from_str(&self.name).expect("name is a header value"),
        );
        r
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn set_delay_ms(&self, ms: u16) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// (SNI sent, client certificate presented) of one handshake.
pub type Handshake = (Option<String>, bool);

/// An HTTPS (HTTP/1.1 over rustls) backend answering its name. Records the SNI each handshake
/// carried and whether the client presented a certificate.
#[derive(Clone)]
pub struct TlsBackend {
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
}

impl TlsBackend {
    pub async fn start(name: &str, config: Arc<rustls::ServerConfig>) -> TlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let b = TlsBackend {
            addr: listener.local_addr().expect("addr"),
            handshakes: Arc::default(),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (log, name): (_, Arc<str>) = (b.handshakes.clone(), name.into());
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, log, name) = (acceptor.clone(), log.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(sock).await else {
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    let sni = conn.server_name().map(str::to_string);
                    let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
                    log.lock().expect("log").push((sni, client_cert));
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let name = name.clone();
                        async move {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                                name.to_string(),
                            ))))
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        b
    }

    /// (SNI, client certificate presented) per completed handshake.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().expect("log").clone()
    }
}
