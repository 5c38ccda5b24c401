//! Validation of EnvoyFilter (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::envoy_filter::*;

pub fn validate(_meta: &ObjectMeta, _spec: &EnvoyFilter, _r: &mut Report) {}
