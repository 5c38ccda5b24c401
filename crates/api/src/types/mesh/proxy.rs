//! The mesh `ProxyConfig` (`istio.mesh.v1alpha1.ProxyConfig`): MeshConfig's `defaultConfig`, the
//! `proxy.istio.io/config` pod annotation, and the tracing, topology, headers and connection
//! settings inside it.
//!
//! Every top-level field is an `Option`: Istio merges a proxy config over its defaults field by
//! field, so "absent" and "set to the zero value" differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::is_default;
use crate::types::common::Duration;
use crate::types::destination_rule::{ClientTlsSettings, TcpKeepalive};
use crate::types::workload::ReadinessProbe;

/// `istio.mesh.v1alpha1.ProxyConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_path: Option<String>,
    /// Oneof `cluster_name` with `tracingServiceName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cluster: Option<String>,
    /// Oneof `cluster_name` with `serviceCluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_service_name: Option<TracingServiceName>,
    /// Whole seconds, at least 1s; 45s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<Duration>,
    /// `host:port` of istiod's xDS (mTLS); `istiod.istio-system.svc:15012` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_address: Option<String>,
    /// Deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_refresh_delay: Option<Duration>,
    /// Deprecated: use `tracing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statsd_udp_address: Option<String>,
    /// Deprecated: use `envoyMetricsService`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_metrics_service_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_admin_port: Option<i32>,
    /// Deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_auth_policy: Option<AuthenticationPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_name_length: Option<i32>,
    /// Worker threads; unset derives them from CPU limits, 0 uses every core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_bootstrap_template_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interception_mode: Option<InboundInterceptionMode>,
    /// Replaces the default tracing block as a whole, never merged into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// Deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sds: Option<Sds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_access_log_service: Option<RemoteService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_metrics_service: Option<RemoteService>,
    /// Environment variables for the proxy agent; merged key by key over the defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime_values: BTreeMap<String, String>,
    /// Agent health/metrics port; 15020 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_port: Option<i32>,
    /// Deprecated: `istio.stats` is a native filter now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_stat_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_topology: Option<Topology>,
    /// 5s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_drain_duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<ReadinessProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_stats_matcher: Option<ProxyStatsMatcher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates_pem: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ProxyImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_provider: Option<PrivateKeyProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_headers: Option<ProxyHeaders>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_flush_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_flush_min_size_kb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_compression: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_settings: Option<ConnectionSettings>,
}

/// `ProxyConfig.TracingServiceName`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TracingServiceName {
    #[default]
    AppLabelAndNamespace,
    CanonicalNameOnly,
    CanonicalNameAndNamespace,
}

/// `ProxyConfig.InboundInterceptionMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InboundInterceptionMode {
    #[default]
    Redirect,
    Tproxy,
    None,
}

/// `istio.mesh.v1alpha1.AuthenticationPolicy`. Istio accepts only `NONE` and `MUTUAL_TLS` here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthenticationPolicy {
    #[default]
    None,
    MutualTls,
    Inherit,
}

/// `istio.networking.v1beta1.ProxyImage`: the same message as the ProxyConfig kind's.
pub use crate::types::proxy_config::ProxyImage;

/// `istio.mesh.v1alpha1.Tracing`. `zipkin`, `lightstep`, `datadog`, `stackdriver` and
/// `openCensusAgent` are a oneof.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tracing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<TracingZipkin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightstep: Option<TracingLightstep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<TracingDatadog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stackdriver: Option<TracingStackdriver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_census_agent: Option<TracingOpenCensusAgent>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// 0 means Envoy's default of 256.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_path_tag_length: u32,
    /// Percent of requests sampled, 0.0 to 100.0; 0 means "not set" (1.0 then applies).
    #[serde(default, skip_serializing_if = "is_default")]
    pub sampling: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<ClientTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
}

/// `Tracing.Zipkin`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingZipkin {
    /// `host:port`; `$(HOST_IP)` stands for the node's address.
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
}

/// `Tracing.Lightstep` (deprecated upstream).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingLightstep {
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub access_token: String,
}

/// `Tracing.Datadog`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingDatadog {
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
}

/// `Tracing.Stackdriver`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingStackdriver {
    #[serde(default, skip_serializing_if = "is_default")]
    pub debug: bool,
    #[serde(
        default,
        deserialize_with = "int64_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_attributes: Option<i64>,
    #[serde(
        default,
        deserialize_with = "int64_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_annotations: Option<i64>,
    #[serde(
        default,
        deserialize_with = "int64_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_message_events: Option<i64>,
}

/// `Tracing.OpenCensusAgent`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TracingOpenCensusAgent {
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<TraceContext>,
}

/// OpenCensus trace context propagation formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TraceContext {
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "W3C_TRACE_CONTEXT")]
    W3cTraceContext,
    #[serde(rename = "GRPC_BIN")]
    GrpcBin,
    #[serde(rename = "CLOUD_TRACE_CONTEXT")]
    CloudTraceContext,
    #[serde(rename = "B3")]
    B3,
}

/// `Tracing.CustomTag`: `literal`, `environment` and `header` are a oneof.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomTag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<TagLiteral>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<TagEnvironment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<TagRequestHeader>,
}

/// `Tracing.Literal`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagLiteral {
    #[serde(default, skip_serializing_if = "is_default")]
    pub value: String,
}

/// `Tracing.Environment`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagEnvironment {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub default_value: String,
}

/// `Tracing.RequestHeader`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagRequestHeader {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub default_value: String,
}

/// `istio.mesh.v1alpha1.SDS` (deprecated).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sds {
    #[serde(default, skip_serializing_if = "is_default")]
    pub enabled: bool,
    #[serde(default, rename = "k8sSaJwtPath", skip_serializing_if = "is_default")]
    pub k8s_sa_jwt_path: String,
}

/// `istio.mesh.v1alpha1.Topology`: where a gateway sits behind other proxies.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Topology {
    #[serde(default, skip_serializing_if = "is_default")]
    pub num_trusted_proxies: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub forward_client_cert_details: ForwardClientCertDetails,
    /// Present (even empty) enables the PROXY protocol on the gateway's listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocolConfiguration>,
}

/// `Topology.ProxyProtocolConfiguration`: no fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyProtocolConfiguration {}

/// `istio.mesh.v1alpha1.ForwardClientCertDetails`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    #[default]
    Undefined,
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// `istio.mesh.v1alpha1.PrivateKeyProvider`: `cryptomb` and `qat` are a oneof.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrivateKeyProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cryptomb: Option<PrivateKeyPoller>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qat: Option<PrivateKeyPoller>,
}

/// `PrivateKeyProvider.CryptoMb` and `PrivateKeyProvider.QAT` (same fields).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrivateKeyPoller {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<bool>,
}

/// `istio.mesh.v1alpha1.RemoteService`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteService {
    #[serde(default, skip_serializing_if = "is_default")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<ClientTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
}

/// `ProxyConfig.ProxyStatsMatcher`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyStatsMatcher {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_suffixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_regexps: Vec<String>,
}

/// `ProxyConfig.ProxyHeaders`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyHeaders {
    #[serde(default, skip_serializing_if = "is_default")]
    pub forwarded_client_cert: ForwardClientCertDetails,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_current_client_cert_details: Option<SetCurrentClientCertDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<HeaderDisabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<HeaderDisabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_debug_headers: Option<HeaderDisabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_exchange_headers: Option<MetadataExchangeHeaders>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_http1_header_case: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_host: Option<HeaderEnabled>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_port: Option<HeaderEnabled>,
}

/// `ProxyHeaders.Server`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `istio-envoy` when empty.
    #[serde(default, skip_serializing_if = "is_default")]
    pub value: String,
}

/// `ProxyHeaders.RequestId`, `AttemptCount` and `EnvoyDebugHeaders` (same shape).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderDisabled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `ProxyHeaders.XForwardedHost` and `XForwardedPort` (same shape).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderEnabled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `ProxyHeaders.MetadataExchangeHeaders`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataExchangeHeaders {
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: MetadataExchangeMode,
}

/// `ProxyHeaders.MetadataExchangeMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MetadataExchangeMode {
    #[default]
    Undefined,
    InMesh,
}

/// `ProxyHeaders.SetCurrentClientCertDetails`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetCurrentClientCertDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<bool>,
}

/// `ProxyConfig.ConnectionSettings`: listener and HTTP connection manager limits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionSettings {
    #[serde(default, skip_serializing_if = "is_default")]
    pub profile: ConnectionProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_per_connection_buffer_limit_bytes: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_per_connection_buffer_limit_bytes: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_idle_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_connection_duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_drain_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request_headers_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_stream_idle_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_stream_duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_concurrent_streams: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_initial_stream_window_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_initial_connection_window_size: Option<i32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub http_headers_with_underscores_action: HeadersWithUnderscoresAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_merge_slashes: Option<bool>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub http_path_with_escaped_slashes_action: PathWithEscapedSlashesAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_connection_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_downstream_connection_limit: Option<i32>,
}

/// `ConnectionSettings.Profile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionProfile {
    #[default]
    Sidecar,
    Edge,
}

/// `ConnectionSettings.HeadersWithUnderscoresAction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeadersWithUnderscoresAction {
    #[default]
    HeadersWithUnderscoresUnspecified,
    HeadersWithUnderscoresAllow,
    HeadersWithUnderscoresRejectRequest,
    HeadersWithUnderscoresDropHeader,
}

/// `ConnectionSettings.PathWithEscapedSlashesAction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathWithEscapedSlashesAction {
    #[default]
    PathWithEscapedSlashesUnspecified,
    KeepUnchanged,
    RejectRequest,
    UnescapeAndRedirect,
    UnescapeAndForward,
}

/// A `google.protobuf.Int64Value`: proto3 JSON writes 64-bit integers as strings, and jsonpb reads
/// both forms.
pub(crate) fn int64_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Num(i64),
        Text(String),
    }
    match Option::<Int64>::deserialize(d)? {
        None => Ok(None),
        Some(Int64::Num(n)) => Ok(Some(n)),
        Some(Int64::Text(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("invalid value {s:?}: expected an integer (int64)"))
        }),
    }
}

/// A `google.protobuf.Struct`: any JSON object.
pub type Struct = Map<String, Value>;
