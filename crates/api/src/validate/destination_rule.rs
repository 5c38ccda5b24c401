//! Validation of DestinationRule (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::destination_rule::*;

pub fn validate(_meta: &ObjectMeta, _spec: &DestinationRule, _r: &mut Report) {}
