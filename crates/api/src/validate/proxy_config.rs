//! Validation of ProxyConfig (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::proxy_config::*;

pub fn validate(_meta: &ObjectMeta, _spec: &ProxyConfig, _r: &mut Report) {}
