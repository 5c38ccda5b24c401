//! Validation of `WasmPlugin`: Istio's `ValidateWasmPlugin` (selector or target references,
//! URL scheme, sha256, name lengths, VM environment, traffic match ports) and the CRD schema's
//! constraints and CEL rules on the same fields.
//!
//! The selector and target references are checked by [`fields::policy_scope`].

pub mod go_url;

use std::collections::BTreeSet;

use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::wasm::*;

/// Schemes a plugin may be fetched with; no scheme means OCI.
pub const WASM_URL_SCHEMES: [&str; 5] = ["", "http", "https", "oci", "file"];

pub fn validate(_meta: &ObjectMeta, spec: &WasmPlugin, r: &mut Report) {
    fields::policy_scope(
        r,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    match &spec.url {
        None => r.error("spec.url", "Required value: url field needs to be set"),
        Some(url) => r.check("spec.url", wasm_url(url)),
    }
    if let Some(sha) = &spec.sha256 {
        r.check("spec.sha256", sha256(sha));
    }
    if let Some(secret) = &spec.image_pull_secret {
        if secret.is_empty() {
            r.error(
                "spec.imagePullSecret",
                "spec.imagePullSecret in body should be at least 1 chars long",
            );
        } else if secret.len() > 253 {
            r.error(
                "spec.imagePullSecret",
                "imagePullSecret field must be less than 253 characters long",
            );
        }
    }
    if let Some(name) = &spec.plugin_name {
        if name.is_empty() {
            r.error(
                "spec.pluginName",
                "spec.pluginName in body should be at least 1 chars long",
            );
        } else if name.len() > 256 {
            r.error(
                "spec.pluginName",
                "pluginName field must be less than 255 characters long",
            );
        }
    }
    if spec.plugin_config.as_ref().is_some_and(|c| !c.is_object()) {
        r.error(
            "spec.pluginConfig",
            "Invalid value: pluginConfig must be a mapping (of type object)",
        );
    }
    if let Some(vm) = &spec.vm_config {
        validate_vm_config(r, "spec.vmConfig", vm);
    }
    validate_match(r, "spec.match", &spec.r#match);
}

/// The plugin URL: parseable the way Go parses request URIs (retried with `http://` in front,
/// since a bare `registry/image:tag` is an OCI reference), with a known scheme.
pub fn wasm_url(url: &str) -> Result<(), String> {
    const WANT: &str = "url must have schema one of [http, https, file, oci]";
    if url.is_empty() {
        return Err(
            "spec.url in body should be at least 1 chars long; url field needs to be set".into(),
        );
    }
    let scheme = match go_url::parse_request_uri(url) {
        Ok(_) => go_url::parse(url),
        Err(original) => {
            let prefixed = format!("http://{url}");
            match go_url::parse_request_uri(&prefixed) {
                Ok(_) => go_url::parse(&prefixed),
                Err(_) => Err(original),
            }
        }
    }
    .map_err(|e| format!("{WANT} (failed to parse url: {e})"))?;
    if WASM_URL_SCHEMES.contains(&scheme.as_str()) {
        Ok(())
    } else {
        Err(format!("{WANT}; url contains unsupported scheme: {scheme}"))
    }
}

/// Empty, or 64 lower-case hex digits.
pub fn sha256(sha: &str) -> Result<(), String> {
    if sha.is_empty() {
        return Ok(());
    }
    if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
        return Err(format!(
            "Invalid value: {sha:?}: spec.sha256 in body should match '(^$|^[a-f0-9]{{64}}$)' (64 lower-case hex digits)"
        ));
    }
    Ok(())
}

/// `vmConfig.env`: named, unique (a list-map keyed by name), bounded, and `value` only for
/// inline variables.
fn validate_vm_config(r: &mut Report, path: &str, vm: &VmConfig) {
    let env_path = at(path, "env");
    if vm.env.len() > 256 {
        r.error(
            &env_path,
            format!("Too many: {}: must have at most 256 items", vm.env.len()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, env) in vm.env.iter().enumerate() {
        let p = idx(&env_path, i);
        match &env.name {
            None => r.error(at(&p, "name"), "Required value: env name must be set"),
            Some(name) if name.is_empty() => r.error(
                at(&p, "name"),
                format!("{p}.name in body should be at least 1 chars long"),
            ),
            Some(name) if name.len() > 256 => r.error(
                at(&p, "name"),
                "env.name field must be less than 255 characters long",
            ),
            Some(name) => {
                if !seen.insert(name.as_str()) {
                    r.error(
                        at(&p, "name"),
                        format!("Duplicate value: duplicate env {name:?}"),
                    );
                }
            }
        }
        if let Some(value) = &env.value {
            if env.value_from == EnvValueSource::Host {
                r.error(
                    at(&p, "value"),
                    "value may only be set when valueFrom is INLINE",
                );
            }
            if value.len() > 2048 {
                r.error(at(&p, "value"), "Too long: may not be longer than 2048");
            }
        }
    }
}

/// `match[].ports`: each a port number, unique within its selector (a list-map keyed by number).
fn validate_match(r: &mut Report, path: &str, selectors: &[WasmTrafficSelector]) {
    for (i, sel) in selectors.iter().enumerate() {
        let ports_path = at(&idx(path, i), "ports");
        let mut seen = BTreeSet::new();
        for (j, port) in sel.ports.iter().enumerate() {
            let p = at(&idx(&ports_path, j), "number");
            match port.number {
                None => r.error(&p, "Required value: port number must be set"),
                Some(n) if !(1..=65535).contains(&n) => r.error(
                    &p,
                    format!("spec.match[{i}].ports[{j}] is out of range: {n}"),
                ),
                Some(n) => {
                    if !seen.insert(n) {
                        r.error(&p, format!("Duplicate value: port {n}"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testutil::{assert_error, assert_valid};

    /// A WasmPlugin with `spec` (YAML, indented by two) after a valid `url`.
    fn plugin(spec: &str) -> String {
        format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: p\n  namespace: ns\nspec:\n  url: oci://ghcr.io/acme/filter:1.0\n{}\n",
            spec.trim_matches('\n')
        )
    }

    #[test]
    fn url_schemes() {
        for (url, ok) in [
            ("oci://ghcr.io/acme/filter:1.0", true),
            ("ghcr.io/acme/filter:1.0", true),
            ("file:///opt/filters/f.wasm", true),
            ("HTTPS://example.com/f.wasm", true),
            ("/opt/filters/f.wasm", true),
            ("ftp://example.com/f.wasm", false),
            ("localhost:5000/filter", false),
            // Go retries with `http://` in front, which turns the bad host into a path.
            ("http://exa mple.com/f.wasm", true),
            ("http://example.com/\u{7f}", false),
            ("#%blah$#@", false),
            ("http://example.com/%zz", false),
        ] {
            assert_eq!(super::wasm_url(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn sha256_is_lower_case_hex() {
        assert!(super::sha256(&"ab".repeat(32)).is_ok());
        assert!(super::sha256(&"AB".repeat(32)).is_err());
        assert!(super::sha256("").is_ok());
    }

    #[test]
    fn one_kind_of_selection() {
        assert_error(
            &plugin("  selector:\n    matchLabels: {app: web}\n  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}"),
            "spec",
            "only one of",
        );
        assert_valid(&plugin(
            "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}",
        ));
        assert_error(
            &plugin("  targetRef: {kind: Deployment, group: apps, name: web}"),
            "spec.targetRef",
            "targetRef must be to one of",
        );
        let many: String = (0..17)
            .map(|i| format!("  - {{kind: Service, name: s{i}}}\n"))
            .collect();
        assert_error(
            &plugin(&format!("  targetRefs:\n{many}")),
            "spec.targetRefs",
            "at most 16",
        );
    }

    #[test]
    fn selector_bounds() {
        let long = "v".repeat(64);
        assert_error(
            &plugin(&format!("  selector:\n    matchLabels: {{app: {long}}}")),
            "spec.selector.matchLabels.app",
            "longer than 63",
        );
    }

    #[test]
    fn plugin_config_is_a_mapping() {
        assert_valid(&plugin("  pluginConfig: {a: [1, 2], b: {c: d}}"));
        assert_error(
            &plugin("  pluginConfig: [a]"),
            "spec.pluginConfig",
            "mapping",
        );
    }

    #[test]
    fn match_ports() {
        assert_valid(&plugin(
            "  match:\n  - mode: SERVER\n    ports: [{number: 80}, {number: 443}]",
        ));
        assert_error(
            &plugin("  match:\n  - ports: [{number: 80}, {number: 80}]"),
            "spec.match[0].ports[1].number",
            "Duplicate value",
        );
        assert_error(
            &plugin("  match:\n  - ports: [{number: 0}]"),
            "spec.match[0].ports[0].number",
            "out of range",
        );
        assert_error(
            &plugin("  match:\n  - ports: [{number: 70000}]"),
            "spec.match[0].ports[0].number",
            "out of range",
        );
    }

    #[test]
    fn env_values_only_inline() {
        // The schema refuses any `value` with HOST, even an empty one.
        assert_error(
            &plugin("  vmConfig:\n    env:\n    - {name: a, valueFrom: HOST, value: ''}"),
            "spec.vmConfig.env[0].value",
            "only be set when valueFrom is INLINE",
        );
        assert_error(
            &plugin("  vmConfig:\n    env:\n    - {valueFrom: HOST}"),
            "spec.vmConfig.env[0].name",
            "Required value",
        );
    }

    #[test]
    fn names_are_bounded() {
        assert_error(
            &plugin(&format!("  imagePullSecret: {}", "s".repeat(254))),
            "spec.imagePullSecret",
            "253",
        );
        assert_error(
            &plugin(&format!("  pluginName: {}", "n".repeat(257))),
            "spec.pluginName",
            "255",
        );
        assert_valid(&plugin(
            "  pluginName: my_root_id\n  imagePullSecret: pull\n  imagePullPolicy: IfNotPresent\n  phase: AUTHZ\n  priority: -10\n  failStrategy: FAIL_OPEN\n  type: NETWORK",
        ));
    }
}
