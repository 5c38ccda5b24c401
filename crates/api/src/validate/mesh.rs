//! Validation of MeshConfig (placeholder).

use super::Report;
use crate::types::mesh::MeshConfig;

pub fn validate(_mesh: &MeshConfig, _r: &mut Report) {}
