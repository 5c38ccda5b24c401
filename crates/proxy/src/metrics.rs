//! Prometheus metrics with typed labels.
//!
//! The data path never formats a label per request: each snapshot's cluster state holds the
//! counter handles for its cluster (see [`crate::state`]), so recording a request is one atomic
//! add. Families are only looked up per connection or per error.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::ResponseFlag;

/// HTTP status classes, as Envoy's `upstream_rq_2xx` family splits them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeClass {
    C1xx,
    C2xx,
    C3xx,
    C4xx,
    C5xx,
}

impl EncodeLabelValue for CodeClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            CodeClass::C1xx => "1xx",
            CodeClass::C2xx => "2xx",
            CodeClass::C3xx => "3xx",
            CodeClass::C4xx => "4xx",
            CodeClass::C5xx => "5xx",
        })
    }
}

impl CodeClass {
    pub const ALL: [CodeClass; 5] = [
        CodeClass::C1xx,
        CodeClass::C2xx,
        CodeClass::C3xx,
        CodeClass::C4xx,
        CodeClass::C5xx,
    ];

    pub fn of(status: u16) -> CodeClass {
        match status {
            0..=199 => CodeClass::C1xx,
            200..=299 => CodeClass::C2xx,
            300..=399 => CodeClass::C3xx,
            400..=499 => CodeClass::C4xx,
            _ => CodeClass::C5xx,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The cluster the request went to; empty for requests answered by the proxy itself
    /// (no route, redirect, direct response).
    pub cluster: String,
    pub code_class: CodeClass,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FlagLabels {
    pub response_flag: ResponseFlag,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MirrorLabels {
    pub result: MirrorResult,
}

/// What became of a mirrored copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum MirrorResult {
    /// Sent, and the mirror answered (whatever the status).
    Sent,
    /// Sent, but the mirror failed or timed out.
    Failed,
    /// Not sent: too many in flight, no endpoint, or the body was not buffered.
    Dropped,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: UpdateResult,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum UpdateResult {
    Accepted,
    Rejected,
}

/// Every metric the proxy exports. Cheap to clone (handles are shared).
#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub connections_active: Family<ListenerLabels, Gauge>,
    pub connections_total: Family<ListenerLabels, Counter>,
    pub errors: Family<FlagLabels, Counter>,
    pub snapshot_updates: Family<ResultLabels, Counter>,
    /// Envoy's `upstream_rq_retry`: retries sent (attempts beyond the first), by cluster.
    pub retries: Family<ClusterLabels, Counter>,
    /// Envoy's `upstream_rq_retry_success`: requests that succeeded on a retry.
    pub retry_successes: Family<ClusterLabels, Counter>,
    /// Envoy's `upstream_rq_retry_limit_exceeded`: retriable failures with no retry left (URX).
    pub retry_limit_exceeded: Family<ClusterLabels, Counter>,
    pub mirrors: Family<MirrorLabels, Counter>,
}

impl Metrics {
    pub fn new() -> (Metrics, Registry) {
        let m = Metrics {
            requests: Family::default(),
            connections_active: Family::default(),
            connections_total: Family::default(),
            errors: Family::default(),
            snapshot_updates: Family::default(),
            retries: Family::default(),
            retry_successes: Family::default(),
            retry_limit_exceeded: Family::default(),
            mirrors: Family::default(),
        };
        let mut r = Registry::with_prefix("bowline");
        r.register(
            "http_requests",
            "HTTP requests by upstream cluster and response code class",
            m.requests.clone(),
        );
        r.register(
            "downstream_connections_active",
            "Open downstream connections by listener",
            m.connections_active.clone(),
        );
        r.register(
            "downstream_connections",
            "Accepted downstream connections by listener",
            m.connections_total.clone(),
        );
        r.register(
            "errors",
            "Requests and connections by Istio response flag (failures, and faults injected)",
            m.errors.clone(),
        );
        r.register(
            "snapshot_updates",
            "Snapshots offered to the proxy, by result",
            m.snapshot_updates.clone(),
        );
        r.register(
            "upstream_rq_retry",
            "Retries sent upstream (attempts beyond the first) by cluster",
            m.retries.clone(),
        );
        r.register(
            "upstream_rq_retry_success",
            "Requests that succeeded on a retry, by cluster",
            m.retry_successes.clone(),
        );
        r.register(
            "upstream_rq_retry_limit_exceeded",
            "Retriable failures with no retry left (URX), by cluster",
            m.retry_limit_exceeded.clone(),
        );
        r.register(
            "mirror_requests",
            "Mirrored (shadow) requests by result",
            m.mirrors.clone(),
        );
        (m, r)
    }

    /// Counts one of `family` for `cluster` (a lookup: only on retry paths, never per request).
    pub fn cluster_inc(family: &Family<ClusterLabels, Counter>, cluster: &str) {
        family
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .inc();
    }

    pub fn mirror(&self, result: MirrorResult) {
        self.mirrors.get_or_create(&MirrorLabels { result }).inc();
    }

    pub fn error(&self, flag: ResponseFlag) {
        self.errors
            .get_or_create(&FlagLabels {
                response_flag: flag,
            })
            .inc();
    }

    /// The counters for one cluster, one per code class, resolved once per snapshot.
    pub fn cluster_counters(&self, cluster: &str) -> [Counter; 5] {
        CodeClass::ALL.map(|code_class| {
            self.requests
                .get_or_create(&RequestLabels {
                    cluster: cluster.to_string(),
                    code_class,
                })
                .clone()
        })
    }

    /// Counts an open connection until the returned guard drops, whatever path closes it.
    pub fn connection(&self, listener: &str) -> ConnectionGuard {
        let labels = ListenerLabels {
            listener: listener.to_string(),
        };
        self.connections_total.get_or_create(&labels).inc();
        let gauge = self.connections_active.get_or_create(&labels).clone();
        gauge.inc();
        ConnectionGuard { gauge }
    }
}

pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
