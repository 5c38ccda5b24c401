//! Request failures that know which side failed and how Istio's access log names them.

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelValue;

/// Which party a failure is attributed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client: malformed request, disconnect.
    Downstream,
    /// The backend: refused, reset, timed out, spoke bad HTTP.
    Upstream,
    /// Our configuration or state: no route, no endpoint.
    Proxy,
}

/// Envoy/Istio response flags (`%RESPONSE_FLAGS%`), the vocabulary operators already grep for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum ResponseFlag {
    /// No route configured for the request.
    NR,
    /// No healthy upstream host in the cluster.
    UH,
    /// Upstream connection failure.
    UF,
    /// Upstream connection termination (reset or closed before a full response).
    UC,
    /// Upstream request timeout.
    UT,
    /// Downstream connection termination before the response was sent.
    DC,
    /// Downstream protocol error (malformed or refused request).
    DPE,
    /// Upstream protocol error (the backend spoke bad HTTP).
    UPE,
}

impl ResponseFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::NR => "NR",
            ResponseFlag::UH => "UH",
            ResponseFlag::UF => "UF",
            ResponseFlag::UC => "UC",
            ResponseFlag::UT => "UT",
            ResponseFlag::DC => "DC",
            ResponseFlag::DPE => "DPE",
            ResponseFlag::UPE => "UPE",
        }
    }

    pub fn side(self) -> Side {
        match self {
            ResponseFlag::NR | ResponseFlag::UH => Side::Proxy,
            ResponseFlag::UF | ResponseFlag::UC | ResponseFlag::UT | ResponseFlag::UPE => {
                Side::Upstream
            }
            ResponseFlag::DC | ResponseFlag::DPE => Side::Downstream,
        }
    }

    /// The status sent downstream, as Envoy sends it. (For DC nothing reaches the client; the
    /// status is what the access log records.)
    pub fn status(self) -> StatusCode {
        match self {
            ResponseFlag::NR => StatusCode::NOT_FOUND,
            ResponseFlag::UH | ResponseFlag::UF | ResponseFlag::UC => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ResponseFlag::UT => StatusCode::GATEWAY_TIMEOUT,
            ResponseFlag::DPE => StatusCode::BAD_REQUEST,
            ResponseFlag::UPE => StatusCode::BAD_GATEWAY,
            // Envoy logs 0 for a request the client abandoned; 499 is the nearest real code.
            ResponseFlag::DC => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }
}

/// A request that could not be proxied.
#[derive(Debug, thiserror::Error)]
#[error("{} ({:?} side): {detail}", flag.as_str(), flag.side())]
pub struct RequestError {
    pub flag: ResponseFlag,
    pub detail: String,
}

impl RequestError {
    pub fn new(flag: ResponseFlag, detail: impl Into<String>) -> Self {
        RequestError {
            flag,
            detail: detail.into(),
        }
    }

    /// The body Envoy sends for the same failure, so clients and tests see familiar text.
    pub fn body(&self) -> String {
        match self.flag {
            ResponseFlag::NR => String::new(),
            ResponseFlag::UH => "no healthy upstream".into(),
            ResponseFlag::UT => "upstream request timeout".into(),
            ResponseFlag::UF => format!(
                "upstream connect error or disconnect/reset before headers. reset reason: \
                 connection failure, {}",
                self.detail
            ),
            ResponseFlag::UC => format!(
                "upstream connect error or disconnect/reset before headers. reset reason: \
                 connection termination, {}",
                self.detail
            ),
            _ => self.detail.clone(),
        }
    }
}

/// Why the proxy could not start or apply a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("snapshot rejected: {0}")]
    Snapshot(#[from] model::BuildError),
    #[error("listener `{name}` cannot bind {addr}: {source}")]
    Bind {
        name: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("snapshot applied, but not all its listeners: {0}")]
    Listeners(String),
    #[error("{what} server cannot bind {addr}: {source}")]
    AdminBind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the admin thread: {0}")]
    AdminThread(std::io::Error),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
}
