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
    /// Upstream overflow: a circuit breaker (pending requests, requests) refused the request.
    UO,
    /// Retries exhausted: the last attempt's failure is what the client gets.
    URX,
    /// The request was delayed by fault injection.
    DI,
    /// The request was aborted by fault injection.
    FI,
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
            ResponseFlag::UO => "UO",
            ResponseFlag::URX => "URX",
            ResponseFlag::DI => "DI",
            ResponseFlag::FI => "FI",
        }
    }

    pub fn side(self) -> Side {
        match self {
            ResponseFlag::NR
            | ResponseFlag::UH
            | ResponseFlag::UO
            | ResponseFlag::DI
            | ResponseFlag::FI => Side::Proxy,
            ResponseFlag::UF
            | ResponseFlag::UC
            | ResponseFlag::UT
            | ResponseFlag::UPE
            | ResponseFlag::URX => Side::Upstream,
            ResponseFlag::DC | ResponseFlag::DPE => Side::Downstream,
        }
    }

    /// The status sent downstream, as Envoy sends it. (For DC nothing reaches the client; the
    /// status is what the access log records.)
    pub fn status(self) -> StatusCode {
        match self {
            ResponseFlag::NR => StatusCode::NOT_FOUND,
            ResponseFlag::UH
            | ResponseFlag::UF
            | ResponseFlag::UC
            | ResponseFlag::UO
            | ResponseFlag::URX => StatusCode::SERVICE_UNAVAILABLE,
            // Injected faults carry their own status; these are fallbacks.
            ResponseFlag::DI => StatusCode::OK,
            ResponseFlag::FI => StatusCode::INTERNAL_SERVER_ERROR,
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
    /// An HTTP/2 REFUSED_STREAM reset: the backend did not process the request.
    pub refused_stream: bool,
}

impl RequestError {
    pub fn new(flag: ResponseFlag, detail: impl Into<String>) -> Self {
        RequestError {
            flag,
            detail: detail.into(),
            refused_stream: false,
        }
    }

    /// The body Envoy sends for the same failure, so clients and tests see familiar text.
    pub fn body(&self) -> String {
        match self.flag {
            ResponseFlag::NR => String::new(),
            ResponseFlag::UH => "no healthy upstream".into(),
            ResponseFlag::UO => "upstream connect error or disconnect/reset before headers. \
                                 reset reason: overflow"
                .into(),
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

/// The flags one request collected besides its error's (URX with UF, DI on a success...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlagSet(u16);

impl FlagSet {
    const ALL: [ResponseFlag; 12] = [
        ResponseFlag::NR,
        ResponseFlag::UH,
        ResponseFlag::UF,
        ResponseFlag::UC,
        ResponseFlag::UT,
        ResponseFlag::DC,
        ResponseFlag::DPE,
        ResponseFlag::UPE,
        ResponseFlag::URX,
        ResponseFlag::DI,
        ResponseFlag::FI,
        ResponseFlag::UO,
    ];

    fn bit(flag: ResponseFlag) -> u16 {
        let i = Self::ALL.iter().position(|f| *f == flag).unwrap_or(0);
        1 << i
    }

    pub fn add(&mut self, flag: ResponseFlag) {
        self.0 |= Self::bit(flag);
    }

    pub fn contains(self, flag: ResponseFlag) -> bool {
        self.0 & Self::bit(flag) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = ResponseFlag> {
        Self::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl std::fmt::Display for FlagSet {
    /// Envoy's `%RESPONSE_FLAGS%`: comma-separated, `-` when none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.as_str())?;
        }
        Ok(())
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
