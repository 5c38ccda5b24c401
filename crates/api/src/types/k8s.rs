//! The Kubernetes kinds that describe workloads, read only for what a mesh needs: Service ports
//! and selectors, Pod and Deployment labels, containers and service accounts, TLS Secrets and
//! ConfigMaps. Unknown fields are ignored here (these specs are large and not ours to police).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Service's `spec`, from the object's `spec` field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ServiceSpec {
    #[serde(default)]
    pub spec: ServiceSpecBody,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpecBody {
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default)]
    pub external_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: i64,
    #[serde(default)]
    pub target_port: Option<IntOrString>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub app_protocol: Option<String>,
    #[serde(default)]
    pub node_port: Option<i64>,
}

/// Kubernetes' IntOrString (`targetPort: 9080` or `targetPort: http`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

/// A Pod's `spec`, from the object's `spec` field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PodSpec {
    #[serde(default)]
    pub spec: PodSpecBody,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecBody {
    #[serde(default)]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
    #[serde(default)]
    pub security_context: Option<Value>,
    /// The node the pod is scheduled on; its topology labels become the pod's locality.
    #[serde(default)]
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub security_context: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    pub container_port: i64,
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A Deployment: its pod template is what becomes workloads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DeploymentSpec {
    #[serde(default)]
    pub spec: DeploymentSpecBody,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpecBody {
    #[serde(default)]
    pub replicas: Option<i64>,
    #[serde(default)]
    pub selector: Option<Value>,
    #[serde(default)]
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: TemplateMeta,
    #[serde(default)]
    pub spec: PodSpecBody,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TemplateMeta {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A Secret's type and data (base64 values, as Kubernetes stores them).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretData {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapData {
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}
