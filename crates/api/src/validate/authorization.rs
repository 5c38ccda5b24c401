//! Validation of AuthorizationPolicy (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::authorization::*;

pub fn validate(_meta: &ObjectMeta, _spec: &AuthorizationPolicy, _r: &mut Report) {}
