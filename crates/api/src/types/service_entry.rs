//! ServiceEntry (`networking.istio.io`): adds a service to the mesh's registry, usually one
//! outside the cluster, with its hosts, ports, resolution and endpoints.

use serde::{Deserialize, Serialize};

use super::sidecar::SidecarWorkloadSelector;
use super::workload::WorkloadEntry;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntry {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub location: ServiceEntryLocation,
    #[serde(default)]
    pub resolution: ServiceEntryResolution,
    /// Endpoints of a STATIC or DNS service; an empty list counts as absent (Istio's own tests
    /// accept `endpoints: []` with resolution NONE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects the Pods and WorkloadEntries that back the service (instead of `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<SidecarWorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP`, `TLS`...; empty means sniffed.
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// Port on the endpoints, when it differs from `number`. `Option` because the CRD checks
    /// the range of any value written, 0 included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryLocation {
    #[default]
    MeshExternal,
    MeshInternal,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryResolution {
    /// Traffic goes to the address the client asked for.
    #[default]
    None,
    Static,
    Dns,
    DnsRoundRobin,
    /// Resolved per request from the host (Envoy's dynamic forward proxy).
    DynamicDns,
}

impl ServiceEntryResolution {
    pub fn name(self) -> &'static str {
        match self {
            ServiceEntryResolution::None => "NONE",
            ServiceEntryResolution::Static => "STATIC",
            ServiceEntryResolution::Dns => "DNS",
            ServiceEntryResolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            ServiceEntryResolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}
