//! `/stats`: counters and gauges as Envoy's `name: value` lines, and the gauges the Prometheus
//! registry cannot hold (in-flight requests per cluster, read from the live state).
//!
//! Cluster and listener lines use Envoy's names (`cluster.<name>.upstream_rq_2xx`,
//! `listener.<name>.downstream_cx_active`) so habits and scripts carry over; every other
//! registry sample follows as `bowline.<metric>.<label>.<value>: n`.

use std::fmt::Write as _;

use prometheus_client::registry::Registry;

use crate::metrics::{CodeClass, ListenerLabels};
use crate::Shared;

/// The `/stats` body; `query` may hold `filter=substring`.
pub fn text(shared: &Shared, registry: &Registry, query: &str) -> String {
    let filter = query
        .split('&')
        .find_map(|p| p.strip_prefix("filter="))
        .unwrap_or("");
    let mut lines: Vec<(String, String)> = Vec::new();
    let state = shared.store.load();
    for (c, cs) in state.runtime.clusters.iter().zip(&state.clusters) {
        let name = |stat: &str| format!("cluster.{}.{stat}", c.name);
        let mut total = 0;
        for class in CodeClass::ALL {
            let n = cs.counters[class.index()].get();
            total += n;
            lines.push((
                name(&format!("upstream_rq_{}", class_name(class))),
                n.to_string(),
            ));
        }
        lines.push((name("upstream_rq_total"), total.to_string()));
        let active: u64 = (0..c.endpoints.len())
            .map(|i| u64::from(cs.active(i)))
            .sum();
        lines.push((name("upstream_rq_active"), active.to_string()));
        lines.push((
            name("upstream_cx_tx_bytes_total"),
            cs.bytes.sent.get().to_string(),
        ));
        lines.push((
            name("upstream_cx_rx_bytes_total"),
            cs.bytes.received.get().to_string(),
        ));
        lines.push((name("membership_total"), c.endpoints.len().to_string()));
    }
    for l in &state.runtime.listeners {
        let labels = ListenerLabels {
            listener: l.name.clone(),
        };
        let m = &shared.metrics;
        lines.push((
            format!("listener.{}.downstream_cx_active", l.name),
            m.connections_active
                .get_or_create(&labels)
                .get()
                .to_string(),
        ));
        lines.push((
            format!("listener.{}.downstream_cx_total", l.name),
            m.connections_total.get_or_create(&labels).get().to_string(),
        ));
    }
    lines.push((
        "server.state".into(),
        match shared.drain.phase() {
            crate::drain::Phase::Running => "0",
            _ => "1",
        }
        .into(),
    ));
    lines.push((
        "server.total_connections".into(),
        shared.drain.open_connections().to_string(),
    ));
    // Everything else the registry holds (errors by response flag, snapshot updates...).
    let mut encoded = String::new();
    if prometheus_client::encoding::text::encode(&mut encoded, registry).is_ok() {
        for sample in encoded.lines().filter(|l| !l.starts_with('#')) {
            if sample.starts_with("bowline_http_requests")
                || sample.starts_with("bowline_downstream_connections")
                || sample.starts_with("bowline_upstream_bytes")
            {
                continue;
            }
            if let Some(line) = envoy_name(sample) {
                lines.push(line);
            }
        }
    }
    let mut out = String::new();
    for (name, value) in lines.iter().filter(|(n, _)| n.contains(filter)) {
        let _ = writeln!(out, "{name}: {value}");
    }
    out
}

fn class_name(c: CodeClass) -> &'static str {
    match c {
        CodeClass::C1xx => "1xx",
        CodeClass::C2xx => "2xx",
        CodeClass::C3xx => "3xx",
        CodeClass::C4xx => "4xx",
        CodeClass::C5xx => "5xx",
    }
}

/// `bowline_errors_total{response_flag="NR"} 2` → (`bowline.errors.response_flag.NR`, `2`).
fn envoy_name(sample: &str) -> Option<(String, String)> {
    let (series, value) = sample.rsplit_once(' ')?;
    let (metric, labels) = match series.split_once('{') {
        Some((m, rest)) => (m, rest.trim_end_matches('}')),
        None => (series, ""),
    };
    let metric = metric.strip_suffix("_total").unwrap_or(metric);
    let mut name = metric.replacen('_', ".", 1);
    for pair in labels.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        let _ = write!(name, ".{k}.{}", v.trim_matches('"'));
    }
    Some((name, value.to_string()))
}

/// Adds `bowline_upstream_rq_active{cluster}` (in-flight requests) to a Prometheus text body,
/// before OpenMetrics' closing `# EOF`.
pub fn append_prometheus(shared: &Shared, out: &mut String) {
    let eof = out.rfind("# EOF").unwrap_or(out.len());
    let tail = out.split_off(eof);
    let state = shared.store.load();
    out.push_str("# HELP bowline_upstream_rq_active Requests in flight by upstream cluster.\n");
    out.push_str("# TYPE bowline_upstream_rq_active gauge\n");
    for (c, cs) in state.runtime.clusters.iter().zip(&state.clusters) {
        let active: u64 = (0..c.endpoints.len())
            .map(|i| u64::from(cs.active(i)))
            .sum();
        let cluster = c.name.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "bowline_upstream_rq_active{{cluster=\"{cluster}\"}} {active}"
        );
    }
    out.push_str(&tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_samples_get_dotted_names() {
        assert_eq!(
            envoy_name("bowline_errors_total{response_flag=\"NR\"} 2"),
            Some(("bowline.errors.response_flag.NR".into(), "2".into()))
        );
        assert_eq!(
            envoy_name("bowline_up 1"),
            Some(("bowline.up".into(), "1".into()))
        );
    }
}
