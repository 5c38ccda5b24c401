//! Validation of `ProxyConfig`: Istio's `ValidateProxyConfig` (selector, non-negative
//! concurrency) and the CRD schema's bounds on the selector and environment variables.

use super::wasm::match_labels_selector;
use super::{at, Report};
use crate::meta::ObjectMeta;
use crate::types::proxy_config::*;

pub fn validate(_meta: &ObjectMeta, spec: &ProxyConfig, r: &mut Report) {
    match_labels_selector(r, "spec.selector", spec.selector.as_ref());
    if let Some(c) = spec.concurrency.filter(|c| *c < 0) {
        r.error(
            "spec.concurrency",
            format!(
                "Invalid value: {c}: spec.concurrency in body should be greater than or equal to 0"
            ),
        );
    }
    for (k, v) in &spec.environment_variables {
        if v.chars().count() > 2048 {
            r.error(
                at("spec.environmentVariables", k),
                "Too long: may not be longer than 2048",
            );
        }
    }
}
