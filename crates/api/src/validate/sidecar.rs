//! Validation of Sidecar (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::sidecar::*;

pub fn validate(_meta: &ObjectMeta, _spec: &Sidecar, _r: &mut Report) {}
