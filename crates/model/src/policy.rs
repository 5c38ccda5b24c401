//! A cluster's traffic policy in compiled form: what a DestinationRule's `trafficPolicy` (after
//! Istio's inheritance: top level, port level, subset, subset port level) asks of the proxy.
//!
//! Plain data with defaults that mean "not configured", so a cluster without a DestinationRule
//! serializes exactly as before. Durations are milliseconds. The proxy turns this into load
//! balancers, connection limits, outlier detection and upstream TLS.

use serde::{Deserialize, Serialize};

/// Everything a DestinationRule can say about one cluster beyond `lb_policy` and the connect
/// timeout, which stay on [`crate::Cluster`] itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPolicy {
    /// `loadBalancer.consistentHash`: takes precedence over `lb_policy` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHash>,
    /// `loadBalancer.warmup`: slow start for endpoints that join an existing cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
    /// `connectionPool`: Envoy's circuit breakers and pool settings.
    #[serde(default, skip_serializing_if = "ConnectionPool::is_default")]
    pub connection_pool: ConnectionPool,
    /// `outlierDetection`; `None` means no ejection at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// `tls`: how the proxy speaks to the endpoints.
    #[serde(default, skip_serializing_if = "UpstreamTls::is_disabled")]
    pub tls: UpstreamTls,
}

impl ClusterPolicy {
    pub fn is_default(&self) -> bool {
        *self == ClusterPolicy::default()
    }
}

/// Hash-based affinity: the same key reaches the same endpoint while the endpoint set holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistentHash {
    pub key: HashKey,
    pub algorithm: HashAlgorithm,
}

/// What a request is hashed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashKey {
    Header {
        name: String,
    },
    /// When the request lacks the cookie, the proxy makes one up, hashes on it and sets it on
    /// the response (with `path` and, if `ttl_ms` is set, `Max-Age`), as Envoy does.
    Cookie {
        name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    SourceIp,
    QueryParameter {
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashAlgorithm {
    /// Ketama-style ring; `minimum_ring_size` entries at least (Istio's default 1024).
    RingHash { minimum_ring_size: u64 },
    /// Maglev lookup table of `table_size` entries (a prime; Envoy's default 65537).
    Maglev { table_size: u64 },
}

/// Envoy's slow start: a new endpoint's weight ramps up over `duration_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    pub duration_ms: u64,
    /// Share of the full weight at the start, in percent (Envoy's default 10).
    pub minimum_percent: f64,
    /// Curve of the ramp; 1.0 is linear.
    pub aggression: f64,
}

/// `connectionPool.tcp` and `.http`. `None` means Envoy's default (effectively unlimited for
/// the circuit-breaker thresholds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPool {
    /// Envoy `max_connections`: upstream connections for the whole cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Envoy `max_pending_requests`: requests waiting for a connection, cluster-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Envoy `max_requests`: requests in flight, cluster-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Envoy `max_retries`: retries in flight, cluster-wide. The retry code reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Requests carried by one connection before it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Concurrent streams on one upstream HTTP/2 connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Connections older than this are closed once idle, and not reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration_ms: Option<u64>,
    /// Idle upstream connections are closed after this (`http.idleTimeout`, else
    /// `tcp.idleTimeout`); `Some(0)` disables the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// `useClientProtocol`: speak upstream what the client spoke downstream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_client_protocol: bool,
}

impl ConnectionPool {
    pub fn is_default(&self) -> bool {
        *self == ConnectionPool::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// Envoy's outlier detection as Istio configures it (success-rate ejection disabled).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx (and, unless split, local-origin failures) before ejection; 0 disables.
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 (and local-origin failures) before ejection; 0 disables.
    pub consecutive_gateway: u32,
    /// Local-origin failures (connect failure, reset, timeout) counted apart from HTTP status.
    pub split_external_local_origin_errors: bool,
    /// With the split: consecutive local-origin failures before ejection; 0 disables.
    pub consecutive_local_origin: u32,
    pub interval_ms: u64,
    /// Ejection lasts this times the number of times the host was ejected.
    pub base_ejection_time_ms: u64,
    pub max_ejection_percent: u32,
    /// Below this share of healthy endpoints the proxy balances across all (Envoy's panic).
    pub min_health_percent: u32,
    /// Statuses counted as errors instead of 5xx (`outlierDetectionHttpErrorCodes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_codes: Vec<u16>,
}

/// TLS from the proxy to the endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamTls {
    /// Plain text.
    #[default]
    Disable,
    /// TLS verifying the server (unless `insecure_skip_verify`) against `ca_certificates`, or the
    /// system roots when empty.
    Simple(TlsFiles),
    /// TLS with a client certificate.
    Mutual(TlsFiles),
    /// Mesh mTLS with the workload's own certificate, verifying the peer's SPIFFE identity. Filled
    /// in by the mesh TLS code; `subject_alt_names` are the identities allowed.
    IstioMutual {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        sni: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        subject_alt_names: Vec<String>,
    },
}

impl UpstreamTls {
    pub fn is_disabled(&self) -> bool {
        *self == UpstreamTls::Disable
    }
}

/// Files and checks for `SIMPLE` and `MUTUAL`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// SNI sent; empty sends none... unless the cluster's host is used (decided at compile).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    /// Names the server certificate must carry (any one); empty checks the SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}
