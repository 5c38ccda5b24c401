//! Istio's cross-resource analysis, as `istioctl analyze` does it: a set of analyzers run over
//! every resource given (Istio kinds, Kubernetes workload kinds, and other objects kept as raw
//! values), each reporting [`Message`]s with Istio's message codes and levels.
//!
//! - [`messages`]: the code catalogue (code, level, type name).
//! - [`Context`]: the resources, indexed, plus the mesh config; analyzers only read it.
//! - one module per analyzer family (`schema`, `service`, `conditions`, ...), each exposing
//!   analyzers that implement [`Analyzer`]; [`all`] lists them.

pub mod authz;
pub mod conditions;
pub mod context;
pub mod deprecation;
pub mod destinationrule;
pub mod gateway;
pub mod hosts;
pub mod messages;
pub mod schema;
pub mod selectors;
pub mod service;
pub mod serviceentry;
pub mod sidecar;
pub mod telemetry;
pub mod virtualservice;

use std::fmt;

use serde::Serialize;

pub use context::{Context, Object};
pub use messages::{Code, Level};

/// One finding of an analyzer about one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub code: &'static str,
    pub level: Level,
    /// Istio's message type name, e.g. `ReferencedResourceNotFound`.
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub message: String,
    /// `Kind namespace/name`, as `istioctl analyze -o json` names the origin.
    pub origin: String,
    /// `file:line` where the resource (or the offending field) is, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Istio's documentation page for this code.
    #[serde(rename = "documentationUrl")]
    pub documentation_url: String,
}

impl Message {
    /// A message about `obj`, pointing at the line of `path` within it (`""` for the object).
    pub fn new(code: Code, obj: &Object<'_>, path: &str, message: impl Into<String>) -> Message {
        Message {
            code: code.code(),
            level: code.level(),
            type_name: code.type_name(),
            message: message.into(),
            origin: obj.id(),
            reference: obj.reference(path),
            documentation_url: format!(
                "https://istio.io/latest/docs/reference/config/analysis/{}/",
                code.code().to_ascii_lowercase()
            ),
        }
    }
}

impl fmt::Display for Message {
    /// istioctl's text form: `Error [IST0101] (VirtualService default/reviews file:12) text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] ({}", self.level, self.code, self.origin)?;
        if let Some(r) = &self.reference {
            write!(f, " {r}")?;
        }
        write!(f, ") {}", self.message)
    }
}

/// One analyzer: reads the context, reports messages.
pub trait Analyzer: Sync {
    /// Istio's name for it, e.g. `virtualservice.GatewayAnalyzer`.
    fn name(&self) -> &'static str;
    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>);
}

/// Every analyzer Bowline runs.
pub fn all() -> Vec<&'static dyn Analyzer> {
    let mut v: Vec<&'static dyn Analyzer> = vec![
        &schema::SchemaValidation,
        &service::PortName,
        &conditions::NegativeConditions,
    ];
    v.extend_from_slice(virtualservice::ALL);
    v.extend_from_slice(destinationrule::ALL);
    v.extend_from_slice(deprecation::ALL);
    v.extend(
        [
            gateway::ALL,
            serviceentry::ALL,
            sidecar::ALL,
            telemetry::ALL,
            authz::ALL,
        ]
        .concat(),
    );
    v.sort_by_key(|a| a.name());
    v
}

/// Namespaces whose resources are never reported on.
pub const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// Run every analyzer; messages sorted by origin, then code, then text, without duplicates.
pub fn analyze(cx: &Context<'_>) -> Vec<Message> {
    let mut out = Vec::new();
    for a in all() {
        a.analyze(cx, &mut out);
    }
    // As istioctl: Kubernetes' own namespaces are not the user's to fix.
    out.retain(|m| {
        let ns = m
            .origin
            .split_once(' ')
            .and_then(|(_, id)| id.split_once('/'))
            .map(|(ns, _)| ns);
        !ns.is_some_and(|ns| SYSTEM_NAMESPACES.contains(&ns))
    });
    out.sort_by(|a, b| (&a.origin, a.code, &a.message).cmp(&(&b.origin, b.code, &b.message)));
    out.dedup();
    out
}

/// Checks the analyzers left out because the input holds only part of the picture (routing config
/// without any Service or ServiceEntry, or without any DestinationRule), in words for the user.
pub fn partial_input_notes(cx: &Context<'_>) -> Vec<&'static str> {
    let mut notes = Vec::new();
    if cx.virtual_services().next().is_none() {
        return notes;
    }
    if cx.services().next().is_none() && cx.service_entries().next().is_none() {
        notes.push(
            "no Service or ServiceEntry in the input: destination hosts were not checked \
             (add the workload descriptions to check them)",
        );
    }
    let uses_subsets = cx
        .virtual_services()
        .flat_map(|(_, vs)| vs.http.iter().flat_map(|h| &h.route))
        .any(|d| d.destination.as_ref().is_some_and(|d| !d.subset.is_empty()));
    if uses_subsets && cx.destination_rules().next().is_none() {
        notes.push("no DestinationRule in the input: subsets were not checked");
    }
    notes
}
