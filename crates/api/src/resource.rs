//! From parsed documents to typed resources: kind lookup by group/version/kind, strict decoding
//! of the spec (unknown fields are errors, as with kubectl's strict field validation), and the
//! [`Problem`] type that names file, line, resource and field path for every finding.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::meta::ObjectMeta;
use crate::source::{Origin, Positions, RawDocument, SyntaxError};
use crate::types::*;
use crate::validate::{self, Report, Severity};

/// Every kind Bowline reads. Istio kinds are decoded strictly and validated; Kubernetes kinds are
/// read only for what describes workloads (metadata, labels, ports, selectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    Sidecar,
    WorkloadEntry,
    WorkloadGroup,
    EnvoyFilter,
    ProxyConfig,
    AuthorizationPolicy,
    PeerAuthentication,
    RequestAuthentication,
    Telemetry,
    WasmPlugin,
    Namespace,
    Service,
    Pod,
    Deployment,
    ServiceAccount,
    Secret,
    ConfigMap,
}

const NETWORKING: &str = "networking.istio.io";
const SECURITY: &str = "security.istio.io";
const TELEMETRY: &str = "telemetry.istio.io";
const EXTENSIONS: &str = "extensions.istio.io";
/// Groups whose kinds must be known: an unknown kind there is a typo, not someone else's CRD.
pub const ISTIO_GROUPS: [&str; 4] = [NETWORKING, SECURITY, TELEMETRY, EXTENSIONS];

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::Gateway,
        Kind::ServiceEntry,
        Kind::Sidecar,
        Kind::WorkloadEntry,
        Kind::WorkloadGroup,
        Kind::EnvoyFilter,
        Kind::ProxyConfig,
        Kind::AuthorizationPolicy,
        Kind::PeerAuthentication,
        Kind::RequestAuthentication,
        Kind::Telemetry,
        Kind::WasmPlugin,
        Kind::Namespace,
        Kind::Service,
        Kind::Pod,
        Kind::Deployment,
        Kind::ServiceAccount,
        Kind::Secret,
        Kind::ConfigMap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Gateway => "Gateway",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Sidecar => "Sidecar",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::WorkloadGroup => "WorkloadGroup",
            Kind::EnvoyFilter => "EnvoyFilter",
            Kind::ProxyConfig => "ProxyConfig",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::Telemetry => "Telemetry",
            Kind::WasmPlugin => "WasmPlugin",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    /// API group ("" for the Kubernetes core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::Gateway
            | Kind::ServiceEntry
            | Kind::Sidecar
            | Kind::WorkloadEntry
            | Kind::WorkloadGroup
            | Kind::EnvoyFilter
            | Kind::ProxyConfig => NETWORKING,
            Kind::AuthorizationPolicy | Kind::PeerAuthentication | Kind::RequestAuthentication => {
                SECURITY
            }
            Kind::Telemetry => TELEMETRY,
            Kind::WasmPlugin => EXTENSIONS,
            Kind::Deployment => "apps",
            Kind::Namespace
            | Kind::Service
            | Kind::Pod
            | Kind::ServiceAccount
            | Kind::Secret
            | Kind::ConfigMap => "",
        }
    }

    /// Versions served, as Istio's CRDs list them.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Kind::EnvoyFilter => &["v1alpha3"],
            Kind::ProxyConfig => &["v1beta1"],
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::Gateway
            | Kind::ServiceEntry
            | Kind::Sidecar
            | Kind::WorkloadEntry
            | Kind::WorkloadGroup => &["v1alpha3", "v1beta1", "v1"],
            Kind::AuthorizationPolicy | Kind::PeerAuthentication | Kind::RequestAuthentication => {
                &["v1beta1", "v1"]
            }
            Kind::Telemetry => &["v1alpha1", "v1"],
            Kind::WasmPlugin => &["v1alpha1"],
            Kind::Deployment => &["v1"],
            _ => &["v1"],
        }
    }

    pub fn is_istio(self) -> bool {
        ISTIO_GROUPS.contains(&self.group())
    }

    /// Lower-case plural, as `kubectl` and `bowline get` spell it.
    pub fn plural(self) -> String {
        match self {
            Kind::ProxyConfig => "proxyconfigs".into(),
            Kind::AuthorizationPolicy => "authorizationpolicies".into(),
            _ => format!("{}s", self.name().to_ascii_lowercase()),
        }
    }

    /// Find by kind name (case-insensitive) and group.
    pub fn lookup(group: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.name().eq_ignore_ascii_case(kind))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A resource's typed body.
#[derive(Debug, Clone)]
pub enum Spec {
    VirtualService(Box<VirtualService>),
    DestinationRule(Box<DestinationRule>),
    Gateway(Box<Gateway>),
    ServiceEntry(Box<ServiceEntry>),
    Sidecar(Box<Sidecar>),
    WorkloadEntry(Box<WorkloadEntry>),
    WorkloadGroup(Box<WorkloadGroup>),
    EnvoyFilter(Box<EnvoyFilter>),
    ProxyConfig(Box<ProxyConfig>),
    AuthorizationPolicy(Box<AuthorizationPolicy>),
    PeerAuthentication(Box<PeerAuthentication>),
    RequestAuthentication(Box<RequestAuthentication>),
    Telemetry(Box<Telemetry>),
    WasmPlugin(Box<WasmPlugin>),
    Namespace,
    Service(Box<k8s::ServiceSpec>),
    Pod(Box<k8s::PodSpec>),
    Deployment(Box<k8s::DeploymentSpec>),
    ServiceAccount,
    Secret(Box<k8s::SecretData>),
    ConfigMap(Box<k8s::ConfigMapData>),
}

/// A decoded resource and where it came from.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: Kind,
    pub api_version: String,
    pub meta: ObjectMeta,
    pub spec: Spec,
    /// The object's `status`, kept for analyzers that read conditions.
    pub status: Option<Value>,
    pub origin: Origin,
    pub positions: Positions,
}

impl Resource {
    pub fn name(&self) -> &str {
        &self.meta.name
    }
    pub fn namespace(&self) -> &str {
        self.meta.namespace_or_default()
    }
    /// `Kind namespace/name`, as istioctl names a resource in messages.
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace(), self.meta.name)
    }

    /// Istio's validation of this resource (for Kubernetes kinds, only what Bowline relies on).
    pub fn validate(&self) -> Report {
        let mut r = Report::default();
        crate::validate::metadata(&self.meta, self.kind, &mut r);
        let m = &self.meta;
        match &self.spec {
            Spec::VirtualService(s) => validate::virtual_service::validate(m, s, &mut r),
            Spec::DestinationRule(s) => validate::destination_rule::validate(m, s, &mut r),
            Spec::Gateway(s) => validate::gateway::validate(m, s, &mut r),
            Spec::ServiceEntry(s) => validate::service_entry::validate(m, s, &mut r),
            Spec::Sidecar(s) => validate::sidecar::validate(m, s, &mut r),
            Spec::WorkloadEntry(s) => validate::workload::validate_entry(m, s, &mut r),
            Spec::WorkloadGroup(s) => validate::workload::validate_group(m, s, &mut r),
            Spec::EnvoyFilter(s) => validate::envoy_filter::validate(m, s, &mut r),
            Spec::ProxyConfig(s) => validate::proxy_config::validate(m, s, &mut r),
            Spec::AuthorizationPolicy(s) => validate::authorization::validate(m, s, &mut r),
            Spec::PeerAuthentication(s) => validate::authentication::validate_peer(m, s, &mut r),
            Spec::RequestAuthentication(s) => {
                validate::authentication::validate_request(m, s, &mut r)
            }
            Spec::Telemetry(s) => validate::telemetry::validate(m, s, &mut r),
            Spec::WasmPlugin(s) => validate::wasm::validate(m, s, &mut r),
            Spec::Service(s) => validate::k8s::validate_service(m, s, &mut r),
            Spec::Namespace
            | Spec::Pod(_)
            | Spec::Deployment(_)
            | Spec::ServiceAccount
            | Spec::Secret(_)
            | Spec::ConfigMap(_) => {}
        }
        r
    }

    /// Findings of [`Resource::validate`] as problems with file and line.
    pub fn problems(&self) -> Vec<Problem> {
        let id = self.id();
        self.validate()
            .findings
            .into_iter()
            .map(|f| Problem {
                file: self.origin.file.to_string(),
                line: self.positions.line_of(&f.path),
                resource: Some(id.clone()),
                path: f.path,
                message: f.message,
                severity: f.severity,
            })
            .collect()
    }
}

/// One thing wrong (or worth a warning) in one document, with everything needed to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    /// `Kind namespace/name` when the document got that far.
    pub resource: Option<String>,
    /// Field path, empty when the problem is the document as a whole.
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl From<SyntaxError> for Problem {
    fn from(e: SyntaxError) -> Self {
        Problem {
            file: e.file.to_string(),
            line: e.line,
            resource: None,
            path: String::new(),
            message: format!("invalid YAML: {}", e.message),
            severity: Severity::Error,
        }
    }
}

/// An object of a kind Bowline does not model (Gateway API routes, webhooks, CRDs of other
/// projects), kept whole so that analyzers can still look at it.
#[derive(Debug, Clone)]
pub struct OtherObject {
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    pub meta: ObjectMeta,
    pub value: Value,
    pub positions: Positions,
}

impl OtherObject {
    /// The API group (`gateway.networking.k8s.io`), empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// What became of one document.
#[derive(Debug)]
pub enum Decoded {
    /// A known kind, decoded. Validation is a separate step ([`Resource::validate`]).
    Resource(Box<Resource>),
    /// Not a kind Bowline reads (another group's CRD, an RBAC object...): kept for analysis, no
    /// error.
    Other(Box<OtherObject>),
    /// Could not be decoded; the reasons.
    Invalid(Vec<Problem>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Envelope<T> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<T>,
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<Value>,
}

/// Decode a parsed document into a typed resource.
pub fn decode(doc: RawDocument) -> Decoded {
    let RawDocument {
        origin,
        value,
        positions,
    } = doc;
    let fail = |path: &str, message: String, resource: Option<String>| {
        Decoded::Invalid(vec![Problem {
            file: origin.file.to_string(),
            line: positions.line_of(path),
            resource,
            path: path.to_string(),
            message,
            severity: Severity::Error,
        }])
    };
    let Value::Object(obj) = &value else {
        return fail(
            "",
            "a resource must be a mapping with apiVersion, kind and metadata".into(),
            None,
        );
    };
    let api_version = match obj.get("apiVersion") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return fail(
                "apiVersion",
                "apiVersion must be a non-empty string".into(),
                None,
            )
        }
        None => return fail("apiVersion", "missing apiVersion".into(), None),
    };
    let kind_name = match obj.get("kind") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return fail("kind", "kind must be a non-empty string".into(), None),
        None => return fail("kind", "missing kind".into(), None),
    };
    let (group, version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.clone()),
    };
    let loose_meta = || {
        obj.get("metadata")
            .and_then(|m| serde_json::from_value::<LooseMeta>(m.clone()).ok())
            .map(LooseMeta::into_meta)
            .unwrap_or_default()
    };
    let Some(kind) = Kind::lookup(&group, &kind_name) else {
        if ISTIO_GROUPS.contains(&group.as_str()) {
            return fail(
                "kind",
                format!("{kind_name} is not a known kind in {group}"),
                None,
            );
        }
        let meta = loose_meta();
        return Decoded::Other(Box::new(OtherObject {
            meta,
            origin,
            api_version,
            kind: kind_name,
            value,
            positions,
        }));
    };
    if kind.name() != kind_name {
        return fail(
            "kind",
            format!(
                "unknown kind {kind_name:?}; did you mean {:?}?",
                kind.name()
            ),
            None,
        );
    }
    if !kind.versions().contains(&version.as_str()) {
        return fail(
            "apiVersion",
            format!(
                "{group}/{version} does not serve {kind}; served versions: {}",
                kind.versions().join(", ")
            ),
            None,
        );
    }
    let guess_id = || {
        let m = loose_meta();
        Some(format!("{kind} {}/{}", m.namespace_or_default(), m.name))
    };
    let decoded = match kind {
        Kind::VirtualService => istio(&value, Spec::VirtualService),
        Kind::DestinationRule => istio(&value, Spec::DestinationRule),
        Kind::Gateway => istio(&value, Spec::Gateway),
        Kind::ServiceEntry => istio(&value, Spec::ServiceEntry),
        Kind::Sidecar => istio(&value, Spec::Sidecar),
        Kind::WorkloadEntry => istio(&value, Spec::WorkloadEntry),
        Kind::WorkloadGroup => istio(&value, Spec::WorkloadGroup),
        Kind::EnvoyFilter => istio(&value, Spec::EnvoyFilter),
        Kind::ProxyConfig => istio(&value, Spec::ProxyConfig),
        Kind::AuthorizationPolicy => istio(&value, Spec::AuthorizationPolicy),
        Kind::PeerAuthentication => istio(&value, Spec::PeerAuthentication),
        Kind::RequestAuthentication => istio(&value, Spec::RequestAuthentication),
        Kind::Telemetry => istio(&value, Spec::Telemetry),
        Kind::WasmPlugin => istio(&value, Spec::WasmPlugin),
        Kind::Service => workload(&value, |s| Spec::Service(Box::new(s))),
        Kind::Pod => workload(&value, |s| Spec::Pod(Box::new(s))),
        Kind::Deployment => workload(&value, |s| Spec::Deployment(Box::new(s))),
        Kind::Secret => workload(&value, |s| Spec::Secret(Box::new(s))),
        Kind::ConfigMap => workload(&value, |s| Spec::ConfigMap(Box::new(s))),
        Kind::Namespace => Ok((loose_meta(), Spec::Namespace)),
        Kind::ServiceAccount => Ok((loose_meta(), Spec::ServiceAccount)),
    };
    match decoded {
        Ok((meta, spec)) => Decoded::Resource(Box::new(Resource {
            kind,
            api_version,
            meta,
            spec,
            status: obj.get("status").cloned(),
            origin,
            positions,
        })),
        Err((path, message)) => fail(&path, message, guess_id()),
    }
}

type DecodeResult = Result<(ObjectMeta, Spec), (String, String)>;

fn istio<T: DeserializeOwned + Default>(
    value: &Value,
    wrap: impl FnOnce(Box<T>) -> Spec,
) -> DecodeResult {
    let env: Envelope<T> = from_value(value)?;
    Ok((env.metadata, wrap(Box::new(env.spec.unwrap_or_default()))))
}

/// Kubernetes workload kinds: read leniently (their specs are far larger than what we need), but
/// with the types of the fields we do read checked.
fn workload<T: DeserializeOwned>(value: &Value, wrap: impl FnOnce(T) -> Spec) -> DecodeResult {
    let meta: LooseObject = from_value(value)?;
    let body: T = from_value(value)?;
    Ok((meta.metadata.into_meta(), wrap(body)))
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, clean_serde_message(&e.inner().to_string()))
    })
}

/// serde's messages name Rust types; say what a YAML author would.
pub(crate) fn clean_serde_message(m: &str) -> String {
    m.replace("expected u32", "expected a non-negative integer (uint32)")
        .replace("expected i32", "expected an integer (int32)")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected f32", "expected a number")
        .replace("a sequence", "a list")
        .replace("expected a map", "expected a mapping")
}

#[derive(Deserialize, Default)]
struct LooseObject {
    #[serde(default)]
    metadata: LooseMeta,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LooseMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl LooseMeta {
    fn into_meta(self) -> ObjectMeta {
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            labels: self.labels,
            annotations: self.annotations,
            ..Default::default()
        }
    }
}

/// Parse a whole file and decode every document in it; the items of a `kind: List` (as
/// `kubectl get -o yaml` prints several objects) are decoded one by one.
pub fn load_str(file: &str, text: &str) -> Vec<Decoded> {
    let mut out = Vec::new();
    for d in crate::source::parse_stream(file, text) {
        match d {
            Ok(doc) => match list_items(&doc) {
                Some(items) => out.extend(items.into_iter().map(decode)),
                None => out.push(decode(doc)),
            },
            Err(e) => out.push(Decoded::Invalid(vec![e.into()])),
        }
    }
    out
}

/// The objects of a `v1` `List` (or `<Kind>List`) document, each with its own positions.
fn list_items(doc: &RawDocument) -> Option<Vec<RawDocument>> {
    let kind = doc.value.get("kind")?.as_str()?;
    let version = doc.value.get("apiVersion")?.as_str()?;
    if version != "v1" || !kind.ends_with("List") {
        return None;
    }
    let items = doc.value.get("items")?.as_array()?;
    Some(
        items
            .iter()
            .enumerate()
            .map(|(i, item)| RawDocument {
                origin: doc.origin.clone(),
                value: item.clone(),
                positions: doc.positions.subtree(&format!("items[{i}]")),
            })
            .collect(),
    )
}
