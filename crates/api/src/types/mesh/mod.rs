//! MeshConfig (`istio.mesh.v1alpha1.MeshConfig`): the mesh-wide settings Istio reads from the
//! `mesh` key of the `istio` ConfigMap (Helm's `meshConfig`), as a plain YAML document.
//!
//! Layout:
//! - this module: the `MeshConfig` message and its small nested messages;
//! - [`proxy`]: the mesh `ProxyConfig` (`defaultConfig`), tracing and the proxy's knobs;
//! - [`providers`]: `extensionProviders` (tracing, access logging, ext-authz, metrics);
//! - [`defaults`]: Istio's defaults and the accessors that answer with them;
//! - [`load`]: reading a `mesh.yaml` (or the `istio` ConfigMap) with positions.
//!
//! Unlike CRDs, MeshConfig is read with Go's jsonpb: a field present in the YAML replaces the
//! default even when it holds the zero value, while an absent one keeps Istio's default. Fields
//! with a non-zero default are therefore `Option`s; ask the accessors in [`defaults`] for the
//! value in effect.
//!
//! Fields typed by networking messages (HTTPRetry, LocalityLoadBalancerSetting,
//! ClientTLSSettings, ConnectionPoolSettings, OutlierDetection, ...) use the VirtualService and
//! DestinationRule types, so they decode and validate exactly as in those kinds.

use std::collections::BTreeMap;

pub(crate) use super::common::is_default;
use super::common::Duration;
use super::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, LocalityLoadBalancerSetting, OutlierDetection,
    TcpKeepalive, ZoneAwareLoadBalancerSetting,
};
use super::virtual_service::HttpRetry;
use serde::{Deserialize, Serialize};

pub mod defaults;
pub mod load;
pub mod providers;
pub mod proxy;

pub use load::{load_mesh_config, read_mesh_config, LoadedMesh};
pub use providers::*;
pub use proxy::*;

/// `istio.mesh.v1alpha1.MeshConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshConfig {
    /// Outbound capture port; Istio's default is 15001.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_listen_port: Option<i32>,
    /// Inbound capture port; Istio's default is 15006.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_inbound_listen_port: Option<i32>,
    /// Port for HTTP PROXY requests; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_http_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Idle timeout of Envoy's HBONE connection pools to ztunnel; 1h when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hbone_idle_timeout: Option<Duration>,
    /// 0s (the default) disables the protocol sniffing timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_detection_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_controller_mode: Option<IngressControllerMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<bool>,
    /// Empty disables access logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_envoy_access_log_service: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_envoy_listener_log: Option<bool>,
    /// Merged field by field over Istio's default proxy config (see [`MeshConfig::proxy_config`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    /// Present-but-empty means `REGISTRY_ONLY` (the enum's zero value), not the mesh default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_traffic_policy: Option<InboundTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_sources: Vec<ConfigSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_auto_mtls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domain_aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<CertificateData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_service_export_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_virtual_service_export_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_destination_rule_export_to: Option<Vec<String>>,
    /// Namespace whose config applies mesh-wide; `istio-system` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    /// `minClusterSize` is a uint64, which jsonpb also reads from a string (the CRD does not).
    #[serde(
        default,
        deserialize_with = "load::zone_aware_lb",
        skip_serializing_if = "Option::is_none"
    )]
    pub zone_aware_lb_setting: Option<ZoneAwareLoadBalancerSetting>,
    /// Only used when DNS resolution fails; 60s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_cluster_stat_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_cluster_stat_name: Option<String>,
    /// Deprecated in the proto; still read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_settings: Vec<ServiceSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_scope_configs: Vec<ServiceScopeConfigs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_prometheus_merge: Option<bool>,
    /// Deprecated in the proto; still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_certificate_at_client: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<Ca>,
    /// Merged by name over Istio's built-in providers (see [`MeshConfig::extension_providers`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<ExtensionProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<DefaultProviders>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovery_selectors: Vec<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<ProxyPathNormalization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_http_retry_policy: Option<HttpRetry>,
    /// Retry policy of sidecars' inbound routes; `{}` turns inbound retries off. Newer than the
    /// proto in /work/ref/api, but validated by Istio's `ValidateMeshConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_inbound_http_retry_policy: Option<HttpRetry>,
    #[serde(default, rename = "meshMTLS", skip_serializing_if = "Option::is_none")]
    pub mesh_mtls: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_defaults: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_traffic_policy: Option<DefaultTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_entry_visibility: Option<ServiceEntryVisibility>,
}

/// `MeshConfig.IngressControllerMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IngressControllerMode {
    #[default]
    Unspecified,
    Off,
    Default,
    Strict,
}

/// `MeshConfig.AccessLogEncoding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    #[default]
    Text,
    Json,
}

/// `MeshConfig.H2UpgradePolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    #[default]
    DoNotUpgrade,
    Upgrade,
}

/// `MeshConfig.OutboundTrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: OutboundTrafficPolicyMode,
    /// TLS origination for passthrough traffic (ALLOW_ANY_DYNAMIC_DNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// `MeshConfig.OutboundTrafficPolicy.Mode`. The zero value is `REGISTRY_ONLY`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    #[default]
    RegistryOnly,
    AllowAny,
    AllowAnyDynamicDns,
}

/// `MeshConfig.InboundTrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: InboundTrafficPolicyMode,
}

/// `MeshConfig.InboundTrafficPolicy.Mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InboundTrafficPolicyMode {
    #[default]
    Passthrough,
    Localhost,
}

/// `MeshConfig.CertificateData`: one trust anchor. `pem` and `spiffeBundleUrl` are a oneof.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_bundle_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_signers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
}

/// `MeshConfig.ServiceSettings`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ServiceSettingsSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// `MeshConfig.ServiceSettings.Settings`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSettingsSettings {
    #[serde(default, skip_serializing_if = "is_default")]
    pub cluster_local: bool,
}

/// `MeshConfig.ServiceScopeConfigs`: which services ambient multi-cluster treats as global.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceScopeConfigs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub scope: ServiceScope,
}

/// `MeshConfig.ServiceScopeConfigs.Scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceScope {
    #[default]
    Local,
    Global,
}

/// `MeshConfig.CA`: an external CA that istiod talks to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ca {
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<ClientTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub istiod_side: bool,
}

/// `MeshConfig.DefaultProviders`: provider names used when a Telemetry resource names none.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultProviders {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<String>,
}

/// `MeshConfig.ProxyPathNormalization`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyPathNormalization {
    #[serde(default, skip_serializing_if = "is_default")]
    pub normalization: NormalizationType,
}

/// `MeshConfig.ProxyPathNormalization.NormalizationType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NormalizationType {
    #[default]
    Default,
    None,
    Base,
    MergeSlashes,
    DecodeAndMergeSlashes,
}

/// `MeshConfig.TLSConfig`, used by `meshMTLS` and `tlsDefaults`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_protocol_version: TlsProtocol,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// `MeshConfig.TLSConfig.TLSProtocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsProtocol {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

/// `MeshConfig.DefaultTrafficPolicy`: the mesh-wide baseline under every DestinationRule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

/// `istio.mesh.v1alpha1.ServiceEntryVisibility`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntryVisibility {
    #[serde(default, skip_serializing_if = "is_default")]
    pub default_visibility: Visibility,
    #[serde(default, skip_serializing_if = "is_default")]
    pub apply_to_sidecars: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<VisibilityPolicy>,
}

/// `ServiceEntryVisibility.Visibility`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Visibility {
    #[default]
    VisibilityUnspecified,
    None,
    Namespace,
    Public,
}

/// `ServiceEntryVisibility.Policy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VisibilityPolicy {
    #[serde(default, skip_serializing_if = "is_default")]
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matching_rules: Vec<VisibilityMatchRule>,
}

/// `ServiceEntryVisibility.MatchRule` (a oneof with a single member today).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VisibilityMatchRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// `istio.mesh.v1alpha1.LabelSelector`: Kubernetes' label selector, as MeshConfig spells it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `istio.mesh.v1alpha1.LabelSelectorRequirement`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    #[serde(default, skip_serializing_if = "is_default")]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `istio.mesh.v1alpha1.ConfigSource`: an MCP/xDS config server istiod reads from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigSource {
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<ClientTlsSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribed_resources: Vec<ConfigResource>,
}

/// `istio.mesh.v1alpha1.Resource`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigResource {
    #[default]
    ServiceRegistry,
}

/// `istio.mesh.v1alpha1.Certificate` (deprecated): a DNS certificate istiod provisions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Certificate {
    #[serde(default, skip_serializing_if = "is_default")]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

#[cfg(test)]
mod tests;
