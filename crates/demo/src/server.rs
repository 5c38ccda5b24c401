//! The HTTP server every demo app runs on: accept loop, HTTP/1 and h2c on one port, bounded
//! request bodies, and graceful shutdown.
//!
//! Apps implement [`Service`] over a fully read [`Request`]; their bodies are small, and reading
//! them up front keeps every handler a plain function of its input.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Largest request body an app is handed; larger ones get 413 without reaching the app.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// How long in-flight requests may run once shutdown starts before connections are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A request with its body read.
#[derive(Debug)]
pub struct Request {
    pub head: http::request::Parts,
    pub body: Bytes,
    /// The TCP peer; apps that report a client address (httpbin's `origin`) use it.
    pub peer: SocketAddr,
}

impl Request {
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    pub fn query(&self) -> &str {
        self.head.uri.query().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type Response = http::Response<Full<Bytes>>;

/// One demo app: a function from a request to a response. Failures are responses too.
pub trait Service: Send + Sync + 'static {
    fn call(self: Arc<Self>, req: Request) -> impl Future<Output = Response> + Send;
}

/// A running server. Dropping it leaves the server running; call [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving `svc` on it.
    pub async fn start<S: Service>(addr: SocketAddr, svc: S) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::new(svc), stopped));
        info!(%addr, "listening");
        Ok(Server { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to a few seconds), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            warn!(addr = %self.addr, "server task ended abnormally: {e}");
        }
    }
}

async fn accept_loop<S: Service>(
    listener: TcpListener,
    svc: Arc<S>,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let svc = svc.clone();
                    let service = service_fn(move |req| {
                        let svc = svc.clone();
                        async move { Ok::<_, std::convert::Infallible>(dispatch(svc, req, peer).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            debug!(%peer, "connection ended with error: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("connections still open after drain timeout; dropping them"),
    }
}

async fn dispatch<S: Service>(
    svc: Arc<S>,
    req: http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response {
    let (head, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
            }
            return text(StatusCode::BAD_REQUEST, "could not read request body\n");
        }
    };
    let method = head.method.clone();
    let path = head.uri.path().to_owned();
    let resp = svc.call(Request { head, body, peer }).await;
    debug!(%peer, %method, %path, status = resp.status().as_u16(), "served");
    resp
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

/// A JSON response, pretty-printed as the sample apps that use JSON print it.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    with_type(status, "application/json", body.into())
}

/// A JSON response on one line, as the Bookinfo services print theirs.
pub fn json_compact(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_type(status, "application/json", body.into())
}

pub fn html(status: StatusCode, body: String) -> Response {
    with_type(status, "text/html; charset=utf-8", body.into())
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut resp = http::Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

pub fn method_not_allowed() -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
}
