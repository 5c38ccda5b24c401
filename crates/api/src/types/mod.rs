//! Typed Istio and Kubernetes resources in the proto3 JSON shape Istio's CRDs accept:
//! camelCase fields, durations as strings, enums as their names, wrappers as plain values.
//! Every struct refuses unknown fields, so a typo is an error with its path.

pub mod authentication;
pub mod authorization;
pub mod common;
pub mod destination_rule;
pub mod envoy_filter;
pub mod gateway;
pub mod k8s;
pub mod mesh;
pub mod proxy_config;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;
pub mod wasm;
pub mod workload;

pub use authentication::*;
pub use authorization::*;
pub use destination_rule::*;
pub use envoy_filter::*;
pub use gateway::*;
pub use proxy_config::*;
pub use service_entry::*;
pub use sidecar::*;
pub use telemetry::*;
pub use virtual_service::*;
pub use wasm::*;
pub use workload::*;
