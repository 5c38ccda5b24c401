//! Types of `ProxyConfig` (networking.istio.io/v1beta1): per-workload overrides of a few proxy
//! settings (worker threads, environment, image flavour), as `networking/v1beta1/proxy_config.proto`
//! defines them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::WorkloadSelector;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyConfig {
    /// Which workloads; none means the whole namespace (or the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Worker threads; 0 means one per CPU core. Unset keeps the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    /// Extra environment variables of the proxy container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ProxyImage>,
}

/// The proxy image flavour.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyImage {
    /// `default`, `debug` or `distroless` (a tag suffix of the proxy image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
}
