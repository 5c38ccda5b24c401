//! Clients for tests: a fresh-connection HTTP/1.1 client, an h2c client, a keep-alive
//! connection, and raw bytes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type Body = Full<Bytes>;

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A GET for `path` with `Host: host`.
pub fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", host)
        .body(Body::default())
        .expect("request")
}

/// One request on a new HTTP/1.1 connection.
pub async fn send(addr: SocketAddr, req: Request<Body>) -> Reply {
    let mut conn = Conn::open(addr).await;
    conn.send(req).await
}

/// An HTTP/1.1 keep-alive connection.
pub struct Conn {
    sender: http1::SendRequest<Body>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let sock = TcpStream::connect(addr).await.expect("connect to proxy");
        let (sender, conn) = http1::handshake(TokioIo::new(sock))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Conn { sender }
    }

    pub async fn send(&mut self, req: Request<Body>) -> Reply {
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("response");
        read(resp).await
    }

    pub async fn try_send(&mut self, req: Request<Body>) -> Result<Reply, hyper::Error> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        Ok(read(resp).await)
    }

    pub async fn send_raw(&mut self, req: Request<Body>) -> http::Response<hyper::body::Incoming> {
        self.sender.ready().await.expect("connection ready");
        self.sender.send_request(req).await.expect("response")
    }
}

/// An h2c (prior knowledge) connection.
pub struct H2Conn {
    sender: http2::SendRequest<Body>,
}

impl H2Conn {
    pub async fn open(addr: SocketAddr) -> H2Conn {
        let sock = TcpStream::connect(addr).await.expect("connect to proxy");
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(sock))
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        H2Conn { sender }
    }

    /// `req`'s URI must be absolute (`http://host/path`): HTTP/2 has no Host header.
    pub async fn send(&mut self, req: Request<Body>) -> Reply {
        let mut s = self.sender.clone();
        s.ready().await.expect("h2 ready");
        read(s.send_request(req).await.expect("h2 response")).await
    }
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Writes `bytes`, then reads until the server closes or 2 s pass; returns what came back.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
