//! Shared test helpers: a raw HTTP client and a recording middleman that sits between two real
//! servers to observe what one sends the other.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use demo::server::{self, Request, Response, Server, Service};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::new(Full::new(body.into()));
    *req.method_mut() = method;
    *req.uri_mut() = url.parse().expect("test URL");
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (head, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: head.status,
        headers: head.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], Bytes::new()).await
}

/// A port nothing listens on: bound, then released.
pub async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Records every request's headers, then forwards it (GET, same path, same headers) to
/// `target`. It can first fail a number of requests with 503, or delay each one.
#[derive(Default)]
pub struct Recorder {
    pub target: Option<SocketAddr>,
    pub fail_first: AtomicUsize,
    pub delay: Duration,
    pub seen: Mutex<Vec<HeaderMap>>,
}

impl Recorder {
    pub fn to(target: SocketAddr) -> Recorder {
        Recorder {
            target: Some(target),
            ..Recorder::default()
        }
    }

    pub async fn start(self) -> (Arc<Recorder>, Server) {
        let rec = Arc::new(self);
        let server = Server::start(loopback(), Shared(rec.clone()))
            .await
            .expect("start recorder");
        (rec, server)
    }

    pub fn requests(&self) -> Vec<HeaderMap> {
        self.seen.lock().expect("lock").clone()
    }
}

struct Shared(Arc<Recorder>);

impl Service for Shared {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        let rec = &self.0;
        rec.seen
            .lock()
            .expect("lock")
            .push(req.head.headers.clone());
        if rec
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return server::text(StatusCode::SERVICE_UNAVAILABLE, "injected failure");
        }
        tokio::time::sleep(rec.delay).await;
        let Some(target) = rec.target else {
            return server::text(StatusCode::OK, "recorded");
        };
        let mut headers = req.head.headers.clone();
        headers.remove(http::header::HOST);
        let url = format!("http://{target}{}", req.head.uri);
        match demo::client::Client::new()
            .get(&url, &headers, Duration::from_secs(20))
            .await
        {
            Ok(r) => {
                let mut resp = server::with_type(r.status, "application/json", r.body);
                if let Some(ct) = r.headers.get(http::header::CONTENT_TYPE) {
                    resp.headers_mut()
                        .insert(http::header::CONTENT_TYPE, ct.clone());
                }
                resp
            }
            Err(e) => server::text(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}
