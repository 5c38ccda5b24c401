//! Sidecar (`networking.istio.io`): the listeners and reachable hosts of the proxies it selects.
//! Also owns networking's label-map `WorkloadSelector` ([`SidecarWorkloadSelector`]), which
//! ServiceEntry and EnvoyFilter use too. Ingress TLS settings are Gateway's `ServerTlsSettings`
//! and the egress proxy is VirtualService's `Destination`, re-exported under Sidecar's names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::destination_rule::ConnectionPoolSettings;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sidecar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<SidecarWorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Default pool for inbound connections, overridden per ingress listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// `istio.networking.v1alpha3.WorkloadSelector`: plain labels (not `matchLabels`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarWorkloadSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A listener for traffic to the workload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioIngressListener {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    #[serde(default)]
    pub bind: String,
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Where the traffic goes: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`,
    /// `:PORT` or `unix://PATH`.
    #[serde(default)]
    pub default_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressServerTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// A listener for traffic from the workload, and the hosts it may reach.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// Absent for the catch-all listener, which must come last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// An IP, or `unix://PATH` when the port number is 0.
    #[serde(default)]
    pub bind: String,
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// `namespace/dnsName` entries; namespace may be `*`, `.` or `~`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    #[default]
    Default,
    Iptables,
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarPort {
    #[serde(default)]
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// Deprecated, and refused on Sidecars.
    #[serde(default)]
    pub target_port: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    #[serde(default)]
    pub mode: OutboundMode,
    /// Where `ALLOW_ANY` traffic to unknown hosts is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<EgressProxyDestination>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    #[default]
    RegistryOnly,
    AllowAny,
}

/// `istio.networking.v1alpha3.Destination` (`egressProxy`): the VirtualService type.
pub use super::virtual_service::Destination as EgressProxyDestination;

/// `istio.networking.v1alpha3.ServerTLSSettings` on a Sidecar ingress listener: Gateway's types,
/// under the names Sidecar code has used.
pub use super::gateway::{
    ServerTlsCertificate as IngressTlsCertificate, ServerTlsMode as IngressTlsMode,
    ServerTlsProtocol as IngressTlsProtocol, ServerTlsSettings as IngressServerTlsSettings,
};
