//! Validation of `ProxyConfig`: Istio's `ValidateProxyConfig` (selector, non-negative
//! concurrency) and the CRD schema's bounds on the selector and environment variables.

use super::{at, fields, Report};
use crate::meta::ObjectMeta;
use crate::types::proxy_config::*;

pub fn validate(_meta: &ObjectMeta, spec: &ProxyConfig, r: &mut Report) {
    fields::workload_selector(r, "spec.selector", spec.selector.as_ref());
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

#[cfg(test)]
mod tests {
    use crate::{load_str, Decoded, Report};

    fn check(spec: &str) -> Report {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1beta1\nkind: ProxyConfig\nmetadata:\n  name: pc\n  namespace: ns\nspec:\n{spec}\n"
        );
        match load_str("t.yaml", &yaml).into_iter().next() {
            Some(Decoded::Resource(r)) => r.validate(),
            other => panic!("not decoded: {other:?}"),
        }
    }

    #[test]
    fn concurrency_is_not_negative() {
        assert!(!check("  concurrency: 0").has_errors());
        assert!(check("  concurrency: -2").has_errors());
    }

    #[test]
    fn selector_has_no_wildcards() {
        assert!(check("  selector:\n    matchLabels: {app: 'w*'}").has_errors());
        assert!(check("  selector:\n    matchLabels: {'a*': w}").has_errors());
        assert!(!check("  selector:\n    matchLabels: {app: web}").has_errors());
    }

    #[test]
    fn environment_values_are_bounded() {
        let long = "x".repeat(2049);
        let r = check(&format!("  environmentVariables: {{A: {long}}}"));
        assert!(r.errors().any(|f| f.path == "spec.environmentVariables.A"));
        assert!(
            !check("  environmentVariables: {A: b}\n  image: {imageType: distroless}").has_errors()
        );
    }
}
