//! Validation of VirtualService (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::virtual_service::*;

pub fn validate(_meta: &ObjectMeta, _spec: &VirtualService, _r: &mut Report) {}
