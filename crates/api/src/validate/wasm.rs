//! Validation of WasmPlugin (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::wasm::*;

pub fn validate(_meta: &ObjectMeta, _spec: &WasmPlugin, _r: &mut Report) {}
