//! Validation of PeerAuthentication, RequestAuthentication (placeholder).

use super::Report;
use crate::meta::ObjectMeta;
use crate::types::authentication::*;

pub fn validate_peer(_meta: &ObjectMeta, _spec: &PeerAuthentication, _r: &mut Report) {}

pub fn validate_request(_meta: &ObjectMeta, _spec: &RequestAuthentication, _r: &mut Report) {}
