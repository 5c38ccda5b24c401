//! Validation of Gateway (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::gateway::*;

pub fn validate(_meta: &ObjectMeta, _spec: &Gateway, _r: &mut Report) {}
