//! The control plane's Prometheus metrics. Istio's names are used where istiod has a metric for
//! the same thing; the config store has no istiod equivalent that counts documents by outcome, so
//! those are Bowline's own (`bowline_config_*`).

use api::Kind;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::{ConfigSnapshot, Outcome, WriteResult};

/// A resource kind as a label value; `unknown` for a document rejected before its kind was
/// known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindLabel(pub Option<Kind>);

impl EncodeLabelValue for KindLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name = self.0.map_or("unknown", Kind::name);
        EncodeLabelValue::encode(&name, encoder)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocumentState {
    Accepted,
    Rejected,
}

/// Label values in Prometheus's lower-case style, from one `as_str` per enum.
macro_rules! lower_case_label {
    ($t:ty) => {
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

impl DocumentState {
    fn as_str(self) -> &'static str {
        match self {
            DocumentState::Accepted => "accepted",
            DocumentState::Rejected => "rejected",
        }
    }
}
lower_case_label!(DocumentState);

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DocumentLabels {
    pub kind: KindLabel,
    pub state: DocumentState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteOp {
    Apply,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteOutcome {
    Created,
    Configured,
    Unchanged,
    Deleted,
    NotFound,
    Rejected,
}

impl WriteOp {
    fn as_str(self) -> &'static str {
        match self {
            WriteOp::Apply => "apply",
            WriteOp::Delete => "delete",
        }
    }
}
lower_case_label!(WriteOp);

impl WriteOutcome {
    fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Created => "created",
            WriteOutcome::Configured => "configured",
            WriteOutcome::Unchanged => "unchanged",
            WriteOutcome::Deleted => "deleted",
            WriteOutcome::NotFound => "not_found",
            WriteOutcome::Rejected => "rejected",
        }
    }
}
lower_case_label!(WriteOutcome);

impl From<&Outcome> for WriteOutcome {
    fn from(o: &Outcome) -> WriteOutcome {
        match o {
            Outcome::Created => WriteOutcome::Created,
            Outcome::Configured => WriteOutcome::Configured,
            Outcome::Unchanged => WriteOutcome::Unchanged,
            Outcome::Deleted => WriteOutcome::Deleted,
            Outcome::NotFound => WriteOutcome::NotFound,
            Outcome::Rejected(_) => WriteOutcome::Rejected,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WriteLabels {
    pub op: WriteOp,
    pub outcome: WriteOutcome,
}

/// Every metric the control plane exports. Cloning shares the metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Documents in the current snapshot, by kind and whether they were accepted.
    pub documents: Family<DocumentLabels, Gauge>,
    /// The version of the snapshot in force.
    pub snapshot_version: Gauge,
    /// Seconds spent scanning and rebuilding the configuration.
    pub reload_seconds: Histogram,
    /// Documents written through `/apis/apply` and `/apis/delete`, by outcome.
    pub writes: Family<WriteLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            documents: Family::default(),
            snapshot_version: Gauge::default(),
            // 1 ms to ~16 s: a small directory rebuilds in milliseconds, a huge one in seconds.
            reload_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            writes: Family::default(),
        }
    }
}

impl Metrics {
    /// Register every metric under its exported name (the `_total`, `_seconds` suffixes are the
    /// encoder's and the unit's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "bowline_config_documents",
            "Documents in the current config snapshot, by kind and state",
            self.documents.clone(),
        );
        registry.register(
            "bowline_config_snapshot_version",
            "Version of the config snapshot in force",
            self.snapshot_version.clone(),
        );
        registry.register_with_unit(
            "bowline_config_reload_duration",
            "Time to scan and rebuild the configuration",
            prometheus_client::registry::Unit::Seconds,
            self.reload_seconds.clone(),
        );
        registry.register(
            "bowline_config_writes",
            "Documents written through apply and delete, by outcome",
            self.writes.clone(),
        );
    }

    /// Bring the gauges in line with `snap`. Every kind is set, zeros included, so that a kind
    /// whose last resource went away reads 0 rather than keeping its old value.
    pub fn observe_snapshot(&self, snap: &ConfigSnapshot) {
        self.snapshot_version
            .set(i64::try_from(snap.version).unwrap_or(i64::MAX));
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for kind in Kind::ALL {
            let accepted = snap.of_kind(kind).count();
            let rejected = snap
                .rejected
                .iter()
                .filter(|r| r.key.as_ref().map(|k| k.kind) == Some(kind))
                .count();
            self.set_documents(Some(kind), DocumentState::Accepted, count(accepted));
            self.set_documents(Some(kind), DocumentState::Rejected, count(rejected));
        }
        let unknown = snap.rejected.iter().filter(|r| r.key.is_none()).count();
        self.set_documents(None, DocumentState::Rejected, count(unknown));
    }

    fn set_documents(&self, kind: Option<Kind>, state: DocumentState, n: i64) {
        self.documents
            .get_or_create(&DocumentLabels {
                kind: KindLabel(kind),
                state,
            })
            .set(n);
    }

    pub fn observe_writes(&self, op: WriteOp, results: &[WriteResult]) {
        for r in results {
            self.writes
                .get_or_create(&WriteLabels {
                    op,
                    outcome: (&r.outcome).into(),
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_typed_labels() {
        let m = Metrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.observe_snapshot(&ConfigSnapshot::empty());
        m.observe_writes(
            WriteOp::Apply,
            &[WriteResult {
                key: None,
                input: "x:1".into(),
                file: None,
                outcome: Outcome::Rejected("bad".into()),
            }],
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        assert!(
            out.contains(r#"bowline_config_documents{kind="VirtualService",state="accepted"} 0"#),
            "{out}"
        );
        assert!(
            out.contains(r#"bowline_config_documents{kind="unknown",state="rejected"} 0"#),
            "{out}"
        );
        assert!(
            out.contains(r#"bowline_config_writes_total{op="apply",outcome="rejected"} 1"#),
            "{out}"
        );
        assert!(
            out.contains("bowline_config_reload_duration_seconds_bucket"),
            "{out}"
        );
    }
}
