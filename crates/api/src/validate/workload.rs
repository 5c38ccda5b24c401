//! Validation of WorkloadEntry, WorkloadGroup (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::workload::*;

pub fn validate_entry(_meta: &ObjectMeta, _spec: &WorkloadEntry, _r: &mut Report) {}

pub fn validate_group(_meta: &ObjectMeta, _spec: &WorkloadGroup, _r: &mut Report) {}
