//! The outbound HTTP client the Bookinfo services call each other with: plain HTTP/1.1, pooled,
//! every call bounded by a timeout that covers connecting, the response and its body.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

/// Upstream bodies larger than this are refused: the demo's are a few hundred bytes.
const MAX_RESPONSE_BODY: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid upstream URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: {source}")]
    Request {
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url}: reading body: {reason}")]
    Body { url: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client { inner }
    }

    /// `GET url` with `headers`, all of it within `timeout`.
    pub async fn get(
        &self,
        url: &str,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| Error::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let mut req = http::Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        req.headers_mut().extend(headers.clone());
        let call = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|source| Error::Request {
                    url: url.to_owned(),
                    source,
                })?;
            let (head, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BODY)
                .collect()
                .await
                .map_err(|e| Error::Body {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok(Reply {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                url: url.to_owned(),
                timeout,
            }),
        }
    }
}
