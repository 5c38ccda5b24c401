//! Upstream connections: an HTTP/1.1 keep-alive pool and an HTTP/2 multiplexed connection per
//! endpoint, shared across snapshots so a config swap does not drop warm connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::error::{RequestError, ResponseFlag};

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// What requests carry upstream: the client's body, replayable for retries and mirrors.
pub use crate::http::body::UpstreamBody;

pub type H1Client = Client<HttpConnector, UpstreamBody>;

/// Pools for every cluster, keyed by what changes how a connection is made. The endpoint
/// address is part of each request's URI, so hyper's pool keeps one pool per endpoint.
#[derive(Default)]
pub struct Upstreams {
    h1: Mutex<HashMap<Duration, H1Client>>,
    h2: Arc<H2Pool>,
}

impl Upstreams {
    /// The HTTP/1 client for clusters with this connect timeout (one per distinct timeout).
    pub fn h1(&self, connect_timeout: Duration) -> H1Client {
        let mut map = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(connect_timeout)
            .or_insert_with(|| {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(connect_timeout));
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(POOL_IDLE)
                    .build(connector)
            })
            .clone()
    }

    pub fn h2(&self) -> Arc<H2Pool> {
        self.h2.clone()
    }
}

/// Classifies a hyper-util client error by the side that failed.
pub fn classify_h1(e: hyper_util::client::legacy::Error) -> RequestError {
    if e.is_connect() {
        return RequestError::new(ResponseFlag::UF, source_text(&e));
    }
    classify_hyper_chain(&e)
}

pub(crate) fn classify_hyper_chain(e: &(dyn std::error::Error + 'static)) -> RequestError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                let mut e = RequestError::new(ResponseFlag::UC, source_text(e));
                e.refused_stream = true;
                return e;
            }
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return RequestError::new(ResponseFlag::UPE, h.to_string());
            }
            if h.is_user() || h.is_body_write_aborted() {
                // Our side of the exchange failed: in a proxy that is the downstream body.
                return RequestError::new(ResponseFlag::DC, h.to_string());
            }
        }
        cur = err.source();
    }
    RequestError::new(ResponseFlag::UC, source_text(e))
}

fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// One HTTP/2 connection per endpoint, opened on first use and replaced once it closes.
///
/// Hand-written rather than hyper-util's pool so the `:authority` sent upstream is the
/// request's, not the endpoint address the pool would key on.
#[derive(Default)]
pub struct H2Pool {
    conns: Mutex<HashMap<SocketAddr, H2Slot>>,
}

#[derive(Default)]
struct H2Slot {
    sender: Option<http2::SendRequest<UpstreamBody>>,
    /// Held while connecting, so concurrent first requests share one connection.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl H2Pool {
    pub async fn send(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, RequestError> {
        let mut sender = self.sender(addr, connect_timeout).await?;
        sender.ready().await.map_err(|e| classify_hyper_chain(&e))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| classify_hyper_chain(&e))
    }

    fn live(
        &self,
        addr: SocketAddr,
    ) -> Result<http2::SendRequest<UpstreamBody>, Arc<tokio::sync::Mutex<()>>> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let slot = conns.entry(addr).or_default();
        match slot.sender.as_ref().filter(|s| !s.is_closed()) {
            Some(s) => Ok(s.clone()),
            None => Err(slot.connecting.clone()),
        }
    }

    async fn sender(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<UpstreamBody>, RequestError> {
        let connecting = match self.live(addr) {
            Ok(s) => return Ok(s),
            Err(lock) => lock,
        };
        let _connecting = connecting.lock().await;
        // Someone else may have connected while we waited.
        if let Ok(s) = self.live(addr) {
            return Ok(s);
        }
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RequestError::new(ResponseFlag::UF, "connect timeout"))?
            .map_err(|e| RequestError::new(ResponseFlag::UF, e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| RequestError::new(ResponseFlag::UF, e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream h2 connection closed");
            }
        });
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr)
            .or_default()
            .sender = Some(sender.clone());
        Ok(sender)
    }

    /// Endpoints with an open connection, for `/clusters`.
    pub fn open(&self) -> Vec<SocketAddr> {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns
            .iter()
            .filter(|(_, s)| s.sender.as_ref().is_some_and(|s| !s.is_closed()))
            .map(|(a, _)| *a)
            .collect()
    }
}
