//! `MeshConfig.extensionProviders`: the named tracing, access logging, metrics, external
//! authorization and SDS providers that Telemetry and AuthorizationPolicy (`CUSTOM`) refer to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::is_default;
use super::proxy::Struct;
use crate::types::common::Duration;

/// `MeshConfig.ExtensionProvider`. The provider fields are the proto's oneof `provider`: exactly
/// one should be set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// Unique name, as Telemetry and AuthorizationPolicy refer to it.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_http: Option<EnvoyExternalAuthorizationHttpProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_grpc: Option<EnvoyExternalAuthorizationGrpcProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<ZipkinTracingProvider>,
    /// Deprecated upstream (Lightstep moved to OpenTelemetry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightstep: Option<LightstepTracingProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<DatadogTracingProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stackdriver: Option<StackdriverProvider>,
    /// Deprecated upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opencensus: Option<OpenCensusAgentTracingProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skywalking: Option<SkyWalkingTracingProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opentelemetry: Option<OpenTelemetryTracingProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetricsProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_file_access_log: Option<EnvoyFileAccessLogProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_http_als: Option<EnvoyHttpGrpcV3LogProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_tcp_als: Option<EnvoyTcpGrpcV3LogProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_otel_als: Option<EnvoyOpenTelemetryLogProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sds: Option<SdsProvider>,
}

/// Which member of `ExtensionProvider`'s oneof is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    EnvoyExtAuthzHttp,
    EnvoyExtAuthzGrpc,
    Zipkin,
    Lightstep,
    Datadog,
    Stackdriver,
    Opencensus,
    Skywalking,
    Opentelemetry,
    Prometheus,
    EnvoyFileAccessLog,
    EnvoyHttpAls,
    EnvoyTcpAls,
    EnvoyOtelAls,
    Sds,
}

impl ProviderKind {
    /// The field name, as written in YAML.
    pub fn field(self) -> &'static str {
        match self {
            ProviderKind::EnvoyExtAuthzHttp => "envoyExtAuthzHttp",
            ProviderKind::EnvoyExtAuthzGrpc => "envoyExtAuthzGrpc",
            ProviderKind::Zipkin => "zipkin",
            ProviderKind::Lightstep => "lightstep",
            ProviderKind::Datadog => "datadog",
            ProviderKind::Stackdriver => "stackdriver",
            ProviderKind::Opencensus => "opencensus",
            ProviderKind::Skywalking => "skywalking",
            ProviderKind::Opentelemetry => "opentelemetry",
            ProviderKind::Prometheus => "prometheus",
            ProviderKind::EnvoyFileAccessLog => "envoyFileAccessLog",
            ProviderKind::EnvoyHttpAls => "envoyHttpAls",
            ProviderKind::EnvoyTcpAls => "envoyTcpAls",
            ProviderKind::EnvoyOtelAls => "envoyOtelAls",
            ProviderKind::Sds => "sds",
        }
    }

    pub fn is_tracing(self) -> bool {
        matches!(
            self,
            ProviderKind::Zipkin
                | ProviderKind::Lightstep
                | ProviderKind::Datadog
                | ProviderKind::Stackdriver
                | ProviderKind::Opencensus
                | ProviderKind::Skywalking
                | ProviderKind::Opentelemetry
        )
    }

    pub fn is_access_logging(self) -> bool {
        matches!(
            self,
            ProviderKind::EnvoyFileAccessLog
                | ProviderKind::EnvoyHttpAls
                | ProviderKind::EnvoyTcpAls
                | ProviderKind::EnvoyOtelAls
                | ProviderKind::Stackdriver
        )
    }

    pub fn is_metrics(self) -> bool {
        matches!(self, ProviderKind::Prometheus | ProviderKind::Stackdriver)
    }

    pub fn is_ext_authz(self) -> bool {
        matches!(
            self,
            ProviderKind::EnvoyExtAuthzHttp | ProviderKind::EnvoyExtAuthzGrpc
        )
    }
}

impl ExtensionProvider {
    /// Every provider field that is set, in the proto's declaration order. When several are set,
    /// Go's jsonpb keeps the last one; see [`ExtensionProvider::kind`].
    pub fn kinds(&self) -> Vec<ProviderKind> {
        let mut k = Vec::new();
        let mut add = |set: bool, kind| {
            if set {
                k.push(kind)
            }
        };
        add(
            self.envoy_ext_authz_http.is_some(),
            ProviderKind::EnvoyExtAuthzHttp,
        );
        add(
            self.envoy_ext_authz_grpc.is_some(),
            ProviderKind::EnvoyExtAuthzGrpc,
        );
        add(self.zipkin.is_some(), ProviderKind::Zipkin);
        add(self.lightstep.is_some(), ProviderKind::Lightstep);
        add(self.datadog.is_some(), ProviderKind::Datadog);
        add(self.stackdriver.is_some(), ProviderKind::Stackdriver);
        add(self.opencensus.is_some(), ProviderKind::Opencensus);
        add(self.skywalking.is_some(), ProviderKind::Skywalking);
        add(self.opentelemetry.is_some(), ProviderKind::Opentelemetry);
        add(self.prometheus.is_some(), ProviderKind::Prometheus);
        add(
            self.envoy_file_access_log.is_some(),
            ProviderKind::EnvoyFileAccessLog,
        );
        add(self.envoy_http_als.is_some(), ProviderKind::EnvoyHttpAls);
        add(self.envoy_tcp_als.is_some(), ProviderKind::EnvoyTcpAls);
        add(self.envoy_otel_als.is_some(), ProviderKind::EnvoyOtelAls);
        add(self.sds.is_some(), ProviderKind::Sds);
        k
    }

    /// The provider in effect: the one set, or when several are, the one Go's jsonpb would keep
    /// (the last in the proto's declaration order). `None` when no provider is set.
    pub fn kind(&self) -> Option<ProviderKind> {
        self.kinds().last().copied()
    }
}

/// `ExtensionProvider.EnvoyExternalAuthorizationRequestBody`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyExternalAuthorizationRequestBody {
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_request_bytes: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub allow_partial_message: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pack_as_bytes: bool,
}

/// `ExtensionProvider.EnvoyExternalAuthorizationHttpProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyExternalAuthorizationHttpProvider {
    /// FQDN (optionally `namespace/host`) of the authorization service.
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    /// 600s when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub path_prefix: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub fail_open: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub clear_route_cache: bool,
    /// HTTP status returned on authorization errors; "403" when empty.
    #[serde(default, skip_serializing_if = "is_default")]
    pub status_on_error: String,
    /// Deprecated: use `includeRequestHeadersInCheck`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_headers_in_check: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_request_headers_in_check: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<EnvoyExternalAuthorizationRequestBody>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_upstream_on_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_deny: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_allow: Vec<String>,
}

/// `ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyExternalAuthorizationGrpcProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub fail_open: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub clear_route_cache: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status_on_error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<EnvoyExternalAuthorizationRequestBody>,
}

/// `ExtensionProvider.ZipkinTracingProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZipkinTracingProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    /// 0 means 256.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_tag_length: u32,
    #[serde(
        default,
        rename = "enable64bitTraceId",
        skip_serializing_if = "is_default"
    )]
    pub enable_64bit_trace_id: bool,
    /// Collector endpoint; `/api/v2/spans` when empty.
    #[serde(default, skip_serializing_if = "is_default")]
    pub path: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub trace_context_option: TraceContextOption,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// `ZipkinTracingProvider.TraceContextOption`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TraceContextOption {
    #[default]
    #[serde(rename = "USE_B3")]
    UseB3,
    #[serde(rename = "USE_B3_WITH_W3C_PROPAGATION")]
    UseB3WithW3cPropagation,
}

/// `ExtensionProvider.LightstepTracingProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LightstepTracingProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub access_token: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_tag_length: u32,
}

/// `ExtensionProvider.DatadogTracingProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatadogTracingProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_tag_length: u32,
}

/// `ExtensionProvider.SkyWalkingTracingProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SkyWalkingTracingProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub access_token: String,
}

/// `ExtensionProvider.StackdriverProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackdriverProvider {
    /// Deprecated.
    #[serde(default, skip_serializing_if = "is_default")]
    pub debug: bool,
    /// Deprecated.
    #[serde(
        default,
        deserialize_with = "super::proxy::int64_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_attributes: Option<i64>,
    /// Deprecated.
    #[serde(
        default,
        deserialize_with = "super::proxy::int64_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_annotations: Option<i64>,
    /// Deprecated.
    #[serde(
        default,
        deserialize_with = "super::proxy::int64_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_message_events: Option<i64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_tag_length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<StackdriverLogging>,
}

/// `StackdriverProvider.Logging`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackdriverLogging {
    /// Label name to a CEL expression or `%COMMAND%` format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `ExtensionProvider.OpenCensusAgentTracingProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenCensusAgentTracingProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<super::proxy::TraceContext>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_tag_length: u32,
}

/// `ExtensionProvider.PrometheusMetricsProvider`: no fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusMetricsProvider {}

/// `ExtensionProvider.EnvoyFileAccessLogProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyFileAccessLogProvider {
    /// `/dev/stdout` for standard output.
    #[serde(default, skip_serializing_if = "is_default")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<FileAccessLogFormat>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub omit_empty_values: bool,
}

/// `EnvoyFileAccessLogProvider.LogFormat`: `text` and `labels` are a oneof.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileAccessLogFormat {
    /// Envoy format string (`%START_TIME% %REQ(:METHOD)%...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// JSON log: key to format string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Struct>,
}

/// `ExtensionProvider.EnvoyHttpGrpcV3LogProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyHttpGrpcV3LogProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub log_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_state_objects_to_log: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_request_headers_to_log: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_response_headers_to_log: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_response_trailers_to_log: Vec<String>,
}

/// `ExtensionProvider.EnvoyTcpGrpcV3LogProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyTcpGrpcV3LogProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub log_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_state_objects_to_log: Vec<String>,
}

/// `ExtensionProvider.EnvoyOpenTelemetryLogProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoyOpenTelemetryLogProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub log_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<OtelLogFormat>,
}

/// `EnvoyOpenTelemetryLogProvider.LogFormat`: unlike the file provider's, both may be set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtelLogFormat {
    #[serde(default, skip_serializing_if = "is_default")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Struct>,
}

/// `ExtensionProvider.ServiceAttributeEnrichment`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceAttributeEnrichment {
    #[default]
    IstioCanonical,
    OtelSemanticConventions,
}

/// `ExtensionProvider.OpenTelemetryTracingProvider`. `http` and `grpc` pick the export protocol
/// (gRPC when neither is set); `dynatraceSampler` is the oneof `sampling`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenTelemetryTracingProvider {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_tag_length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_detectors: Option<ResourceDetectors>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub service_attribute_enrichment: ServiceAttributeEnrichment,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynatrace_sampler: Option<DynatraceSampler>,
}

/// `OpenTelemetryTracingProvider.DynatraceSampler`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynatraceSampler {
    #[serde(default, skip_serializing_if = "is_default")]
    pub tenant: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cluster_id: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub root_spans_per_minute: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_service: Option<DynatraceApi>,
}

/// `DynatraceSampler.DynatraceApi`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynatraceApi {
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpService>,
}

/// `ExtensionProvider.SDSProvider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SdsProvider {
    /// SDS resource name requested from the server.
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
}

/// `ExtensionProvider.HttpService`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpService {
    #[serde(default, skip_serializing_if = "is_default")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// `ExtensionProvider.HttpHeader`: `value` and `envName` are a oneof.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHeader {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Name of an environment variable of istiod holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_name: Option<String>,
}

/// `ExtensionProvider.ResourceDetectors`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceDetectors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EmptyDetector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynatrace: Option<EmptyDetector>,
}

/// `ResourceDetectors.EnvironmentResourceDetector` / `DynatraceResourceDetector`: no fields;
/// presence turns the detector on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyDetector {}

/// `ExtensionProvider.GrpcService`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrpcService {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial_metadata: Vec<HttpHeader>,
}
