//! Validation of Istio resources, equal to Istio's: the admission webhook's rules, the CRD
//! schema's constraints and its CEL rules. Each kind has a module with one entry point,
//! `validate(meta, spec, report)`; shared field checks (hosts, ports, labels, durations...) live
//! in [`fields`].
//!
//! Findings carry the field path (`spec.http[0].route[1].weight`); the caller turns paths into
//! file lines with the document's positions.

pub mod fields;
#[cfg(test)]
pub(crate) mod testutil;

use std::fmt;

/// How bad a finding is: errors reject the resource, warnings are reported and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Field path from the document root, e.g. `spec.http[0].timeout`; empty for the whole object.
    pub path: String,
    pub message: String,
    /// For findings that `istioctl analyze` reports under their own message code (unreachable
    /// VirtualService rules, ineffective matches), that code; otherwise `None`.
    pub code: Option<&'static str>,
}

/// What validating one resource found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            code: None,
        });
    }
    pub fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
            code: None,
        });
    }
    /// A warning that analysis reports under its own message code (e.g. `IST0130`).
    pub fn warning_coded(
        &mut self,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
            code: Some(code),
        });
    }
    /// Record `check`'s error, if any, at `path`.
    pub fn check(&mut self, path: impl Into<String>, check: Result<(), String>) {
        if let Err(m) = check {
            self.error(path, m);
        }
    }
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

/// `parent.field`, the way every path in a report is spelled.
pub fn at(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// `parent[i]`.
pub fn idx(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

pub mod authentication;
pub mod authorization;
pub mod destination_rule;
pub mod envoy_filter;
pub mod gateway;
pub mod k8s;
pub mod mesh;
pub mod proxy_config;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;
pub mod wasm;
pub mod workload;

use crate::meta::ObjectMeta;
use crate::resource::Kind;

/// Checks on `metadata` common to every Istio kind: a valid name, a valid namespace, and the
/// annotations Istio's webhook refuses (internal ones, and `istio.io/dry-run` outside
/// AuthorizationPolicy; the AuthorizationPolicy module checks its value).
pub fn metadata(meta: &ObjectMeta, kind: Kind, r: &mut Report) {
    if meta.name.is_empty() && meta.generate_name.is_empty() {
        r.error("metadata.name", "name is required");
    } else if !meta.name.is_empty() && !is_dns1123_subdomain(&meta.name) {
        r.error(
            "metadata.name",
            format!("{:?} is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters", meta.name),
        );
    }
    if !meta.namespace.is_empty() && !fields::is_dns1123_label(&meta.namespace)
        || meta.namespace.chars().any(|c| c.is_ascii_uppercase())
    {
        r.error(
            "metadata.namespace",
            format!("{:?} is not a valid namespace name", meta.namespace),
        );
    }
    if !kind.is_istio() {
        return;
    }
    if meta.annotations.contains_key("istio.io/dry-run") && kind != Kind::AuthorizationPolicy {
        r.error(
            "metadata.annotations",
            format!(
                "{}/{} has unsupported annotation istio.io/dry-run, please remove the annotation",
                meta.namespace_or_default(),
                meta.name
            ),
        );
    }
    for internal in [
        "internal.istio.io/webhook-always-reject",
        "internal.istio.io/parent-namespace",
        "internal.istio.io/parents",
    ] {
        if meta.annotations.contains_key(internal) {
            r.error(
                "metadata.annotations",
                format!("{internal:?} annotation found, this may not be set by users"),
            );
        }
    }
}

/// Kubernetes object names: a DNS-1123 subdomain.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}
