//! Kubernetes object metadata, as every resource carries it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `metadata` of a Kubernetes object. Fields the API server manages are accepted and ignored, so
/// that YAML exported from a live cluster (`kubectl get -o yaml`) reads without errors.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing)]
    pub uid: Option<String>,
    #[serde(default, skip_serializing)]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing)]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing)]
    pub creation_timestamp: Option<Value>,
    #[serde(default, skip_serializing)]
    pub deletion_timestamp: Option<Value>,
    #[serde(default, skip_serializing)]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing)]
    pub self_link: Option<String>,
    #[serde(default, skip_serializing)]
    pub managed_fields: Option<Value>,
    #[serde(default, skip_serializing)]
    pub owner_references: Option<Value>,
    #[serde(default, skip_serializing)]
    pub finalizers: Option<Vec<String>>,
}

impl ObjectMeta {
    /// The namespace, with Kubernetes' default for objects that name none.
    pub fn namespace_or_default(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }
}
