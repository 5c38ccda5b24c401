//! Validation of Telemetry: Istio's `ValidateTelemetry` (providers, tracing, metric overrides,
//! access-log filters parsed as CEL) and the CRD schema's constraints and CEL rules.

pub mod cel;

#[cfg(test)]
mod tests;

use super::fields::policy_scope;
use super::{at, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::telemetry::*;

pub fn validate(_meta: &ObjectMeta, spec: &Telemetry, r: &mut Report) {
    policy_scope(
        r,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    for (i, m) in spec.metrics.iter().enumerate() {
        metrics(&idx("spec.metrics", i), m, r);
    }
    if spec.tracing.len() > 1 {
        r.warning(
            "spec.tracing",
            "multiple tracing is not currently supported",
        );
    }
    for (i, t) in spec.tracing.iter().enumerate() {
        tracing(&idx("spec.tracing", i), t, r);
    }
    for (i, l) in spec.access_logging.iter().enumerate() {
        access_logging(&idx("spec.accessLogging", i), l, r);
    }
}

fn providers(path: &str, list: &[ProviderRef], r: &mut Report) {
    for (i, p) in list.iter().enumerate() {
        if p.name.is_empty() {
            r.error(at(&idx(path, i), "name"), "providers.name may not be empty");
        }
    }
}

fn metrics(path: &str, m: &Metrics, r: &mut Report) {
    providers(&at(path, "providers"), &m.providers, r);
    for (i, o) in m.overrides.iter().enumerate() {
        let p = idx(&at(path, "overrides"), i);
        for (name, tag) in &o.tag_overrides {
            tag_override(&at(&at(&p, "tagOverrides"), name), name, tag, r);
        }
        if let Some(sel) = &o.match_ {
            let mp = at(&p, "match");
            if sel.custom_metric.as_deref() == Some("") {
                r.error(at(&mp, "customMetric"), "customMetric may not be empty");
            }
            if sel.metric.is_some() && sel.custom_metric.is_some() {
                r.error(&mp, "only one of metric or customMetric may be set");
            }
        }
    }
    if let Some(d) = &m.reporting_interval {
        if d.as_nanos() < 1_000_000 {
            r.error(
                at(path, "reportingInterval"),
                "must be a valid duration greater than 1ms",
            );
        }
    }
}

/// UPSERT (the default) needs a value; REMOVE takes none. Istio checks for an empty value; the
/// CRD also refuses a REMOVE whose value is present but empty.
fn tag_override(path: &str, name: &str, tag: &TagOverride, r: &mut Report) {
    if name.is_empty() {
        r.warning(path, "tagOverrides.name may not be empty");
    }
    let value = tag.value.as_deref();
    match tag.operation.unwrap_or_default() {
        TagOperation::Upsert => {
            if value.unwrap_or("").is_empty() {
                r.error(
                    at(path, "value"),
                    "tagOverrides.value must be set when operation is UPSERT",
                );
            }
        }
        TagOperation::Remove => {
            if value.is_some() {
                r.error(
                    at(path, "value"),
                    "tagOverrides.value must not be set when operation is REMOVE",
                );
            }
        }
    }
}

fn tracing(path: &str, t: &Tracing, r: &mut Report) {
    if t.providers.len() > 1 {
        r.warning(
            at(path, "providers"),
            "multiple providers is not currently supported",
        );
    }
    providers(&at(path, "providers"), &t.providers, r);
    if let Some(pct) = t.random_sampling_percentage {
        if !(0.0..=100.0).contains(&pct) {
            r.error(
                at(path, "randomSamplingPercentage"),
                "randomSamplingPercentage must be in range [0.0, 100.0]",
            );
        }
    }
    for (name, tag) in &t.custom_tags {
        let p = at(&at(path, "customTags"), name);
        if name.is_empty() {
            r.error(&p, "tag name may not be empty");
        }
        custom_tag(&p, tag, r);
    }
}

fn custom_tag(path: &str, tag: &CustomTag, r: &mut Report) {
    let set = [
        tag.literal.is_some(),
        tag.environment.is_some(),
        tag.header.is_some(),
        tag.formatter.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        r.error(
            path,
            "only one of literal, environment, header or formatter may be set",
        );
    }
    if let Some(l) = &tag.literal {
        if l.value.is_empty() {
            r.error(
                at(&at(path, "literal"), "value"),
                "literal tag value may not be empty",
            );
        }
    }
    if let Some(e) = &tag.environment {
        if e.name.is_empty() {
            r.error(
                at(&at(path, "environment"), "name"),
                "environment tag name may not be empty",
            );
        }
    }
    if let Some(h) = &tag.header {
        if h.name.is_empty() {
            r.error(
                at(&at(path, "header"), "name"),
                "header tag name may not be empty",
            );
        }
    }
    if let Some(f) = &tag.formatter {
        if f.value.is_empty() {
            r.error(
                at(&at(path, "formatter"), "value"),
                "formatter tag value may not be empty",
            );
        }
    }
}

fn access_logging(path: &str, l: &AccessLogging, r: &mut Report) {
    if let Some(f) = &l.filter {
        if let Err(e) = cel::parse(&f.expression) {
            r.error(
                at(&at(path, "filter"), "expression"),
                format!("must be a valid CEL expression, {e}"),
            );
        }
    }
    providers(&at(path, "providers"), &l.providers, r);
}
