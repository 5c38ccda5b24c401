//! Validation of ServiceEntry (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::service_entry::*;

pub fn validate(_meta: &ObjectMeta, _spec: &ServiceEntry, _r: &mut Report) {}
