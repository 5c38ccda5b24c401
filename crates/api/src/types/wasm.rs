//! Types of `WasmPlugin` (extensions.istio.io/v1alpha1): a WebAssembly module added to the
//! proxies' filter chains, where to fetch it, how to configure it and where in the chain it goes,
//! as `extensions/v1alpha1/wasm.proto` defines them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{is_default, PolicyTargetReference, WorkloadSelector};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WasmPlugin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// `oci://`, `https://`, `http://` or `file://`; no scheme means OCI. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Hex SHA-256 of the module (or of the OCI image), checked after download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub image_pull_policy: PullPolicy,
    /// Name of a pull secret in the plugin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// Reserved by Istio; not implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_key: Option<String>,
    /// Handed to the plugin as is (a `google.protobuf.Struct`, so a mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<Value>,
    /// Root ID of the plugin inside the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub phase: PluginPhase,
    /// Order within a phase: higher first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub fail_strategy: FailStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    /// Traffic the plugin applies to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<WasmTrafficSelector>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub r#type: PluginType,
}

/// `WasmPlugin.TrafficSelector`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WasmTrafficSelector {
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: WasmWorkloadMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WasmPortSelector>,
}

/// `istio.type.v1beta1.WorkloadMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WasmWorkloadMode {
    /// Both directions.
    #[default]
    Undefined,
    Client,
    Server,
    ClientAndServer,
}

/// `istio.type.v1beta1.PortSelector`: a port number, required by the schema.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WasmPortSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// `PluginType`: which filter chain the plugin joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginType {
    /// HTTP.
    #[default]
    UnspecifiedPluginType,
    Http,
    Network,
}

/// `PluginPhase`: where in the filter chain, relative to Istio's own filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginPhase {
    /// Just before the router.
    #[default]
    UnspecifiedPhase,
    Authn,
    Authz,
    Stats,
}

/// `PullPolicy`, spelled as Kubernetes spells image pull policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum PullPolicy {
    /// `IfNotPresent`, or `Always` for the `latest` tag.
    #[default]
    #[serde(rename = "UNSPECIFIED_POLICY")]
    UnspecifiedPolicy,
    IfNotPresent,
    Always,
}

/// `FailStrategy`: what the proxy does when the plugin cannot be fetched or crashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    #[default]
    FailClose,
    FailOpen,
    FailReload,
}

/// Settings of the Wasm VM.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VmConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// An environment variable of the VM.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub value_from: EnvValueSource,
    /// Only with `valueFrom: INLINE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `EnvValueSource`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvValueSource {
    /// The `value` given.
    #[default]
    Inline,
    /// The proxy's own environment variable of that name.
    Host,
}
