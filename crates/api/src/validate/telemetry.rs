//! Validation of Telemetry (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::telemetry::*;

pub fn validate(_meta: &ObjectMeta, _spec: &Telemetry, _r: &mut Report) {}
