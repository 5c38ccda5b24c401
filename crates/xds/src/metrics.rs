//! The push side's metrics, with istiod's names: `pilot_xds` (connected proxies),
//! `pilot_xds_pushes` and `pilot_total_xds_rejects` by type, `pilot_proxy_convergence_time`,
//! `pilot_xds_push_time` and `pilot_xds_config_size_bytes`. prometheus-client appends `_total`
//! to counters, as OpenMetrics requires.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TypeLabels {
    /// `cds`, `eds`, `lds`, `rds`...
    pub r#type: &'static str,
}

/// Cloning shares the metrics.
#[derive(Clone)]
pub struct XdsMetrics {
    pub connected: Gauge,
    pub pushes: Family<TypeLabels, Counter>,
    pub rejects: Family<TypeLabels, Counter>,
    pub convergence: Histogram,
    pub push_time: Family<TypeLabels, Histogram>,
    pub config_size: Family<TypeLabels, Histogram>,
    pub push_bytes: Family<TypeLabels, Counter>,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        XdsMetrics {
            connected: Gauge::default(),
            pushes: Family::default(),
            rejects: Family::default(),
            convergence: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            push_time: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
            config_size: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(64.0, 4.0, 12))
            }),
            push_bytes: Family::default(),
        }
    }
}

impl XdsMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "pilot_xds",
            "Number of proxies connected to this control plane",
            self.connected.clone(),
        );
        r.register(
            "pilot_xds_pushes",
            "Responses sent to proxies, by type",
            self.pushes.clone(),
        );
        r.register(
            "pilot_total_xds_rejects",
            "Responses proxies rejected (NACK), by type",
            self.rejects.clone(),
        );
        r.register(
            "pilot_proxy_convergence_time",
            "Seconds from a config change to a proxy acknowledging it",
            self.convergence.clone(),
        );
        r.register(
            "pilot_xds_push_time",
            "Seconds to compute and send one response, by type",
            self.push_time.clone(),
        );
        r.register(
            "pilot_xds_config_size_bytes",
            "Size of the resources in one response, by type",
            self.config_size.clone(),
        );
        r.register(
            "bowline_xds_push_bytes",
            "Resource bytes sent to proxies, by type",
            self.push_bytes.clone(),
        );
    }
}
