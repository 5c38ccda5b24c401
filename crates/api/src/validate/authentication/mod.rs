//! Validation of PeerAuthentication and RequestAuthentication: Istio's
//! `ValidatePeerAuthentication`, `ValidateRequestAuthentication` (with `validateJwtRule` and
//! the private-JWKS warning), and the CRD schema limits and CEL rules of both kinds.

pub mod jwks;
pub mod uri;

#[cfg(test)]
mod tests;

use super::fields::policy_scope;
use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::authentication::*;

/// CRD `maxItems` of `jwtRules`.
const MAX_JWT_RULES: usize = 4096;
/// CRD `maxItems` of `spaceDelimitedClaims`.
const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;
/// CRD `maxLength` of `jwksUri`.
const MAX_JWKS_URI_LEN: usize = 2048;

pub fn validate_peer(_meta: &ObjectMeta, spec: &PeerAuthentication, r: &mut Report) {
    let selects = spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    if let Some(ports) = &spec.port_level_mtls {
        let path = "spec.portLevelMtls";
        if ports.is_empty() {
            r.error(
                path,
                "port level mTLS, if defined, must have at least one element",
            );
        } else if !selects {
            r.error(
                path,
                "mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires a selector with labels)",
            );
        }
        for port in ports.keys() {
            if *port == 0 || *port > 65535 {
                r.error(
                    at(path, &port.to_string()),
                    "port must be in range 1..65535",
                );
            }
        }
    }
    fields::workload_selector(r, "spec.selector", spec.selector.as_ref());
}

pub fn validate_request(_meta: &ObjectMeta, spec: &RequestAuthentication, r: &mut Report) {
    policy_scope(
        r,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    if spec.jwt_rules.len() > MAX_JWT_RULES {
        r.error(
            "spec.jwtRules",
            format!("must have at most {MAX_JWT_RULES} items"),
        );
    }
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        let path = idx("spec.jwtRules", i);
        validate_jwt_rule(&path, rule, r);
        warn_private_jwks_keys(&path, rule, r);
    }
}

/// Istio's `validateJwtRule`, plus the CRD's constraints on the same fields.
pub fn validate_jwt_rule(path: &str, rule: &JwtRule, r: &mut Report) {
    for (i, aud) in rule.audiences.iter().enumerate() {
        if aud.is_empty() {
            r.error(
                idx(&at(path, "audiences"), i),
                "audience must be non-empty string",
            );
        }
    }
    // Istio treats an empty issuer as unset (its own tests write `issuer: ""` and expect it to
    // pass when jwksUri is set), so the CRD's minLength is not applied to it here.
    let issuer = rule.issuer.as_deref().unwrap_or("");
    let jwks_uri = rule.jwks_uri.as_deref();
    if issuer.is_empty() && jwks_uri.unwrap_or("").is_empty() {
        r.error(path, "issuer or jwksUri must be non-empty string");
    }
    if let Some(u) = jwks_uri {
        let p = at(path, "jwksUri");
        if u.is_empty() {
            r.error(&p, "jwksUri must not be empty when set");
        } else {
            if u.len() > MAX_JWKS_URI_LEN {
                r.error(&p, format!("must be at most {MAX_JWKS_URI_LEN} characters"));
            }
            r.check(&p, uri::jwks_uri(u));
        }
    }
    if let Some(text) = rule.jwks.as_deref().filter(|t| !t.is_empty()) {
        if let Err(e) = jwks::parse(text) {
            r.error(at(path, "jwks"), format!("jwks parse error: {e}"));
        }
    }
    let set = [rule.jwks_uri.is_some(), rule.jwks.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        r.error(path, "only one of jwks or jwksUri can be set");
    }
    for (i, h) in rule.from_headers.iter().enumerate() {
        if h.name.is_empty() {
            r.error(
                at(&idx(&at(path, "fromHeaders"), i), "name"),
                "location header name must be non-empty string",
            );
        }
    }
    for (field, what, list) in [
        ("fromParams", "location query", &rule.from_params),
        ("fromCookies", "cookie name", &rule.from_cookies),
        (
            "spaceDelimitedClaims",
            "space delimited claim",
            &rule.space_delimited_claims,
        ),
    ] {
        for (i, v) in list.iter().enumerate() {
            if v.is_empty() {
                r.error(
                    idx(&at(path, field), i),
                    format!("{what} must be non-empty string"),
                );
            }
        }
    }
    if rule.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
        r.error(
            at(path, "spaceDelimitedClaims"),
            format!("must have at most {MAX_SPACE_DELIMITED_CLAIMS} items"),
        );
    }
    for (i, c) in rule.output_claim_to_headers.iter().enumerate() {
        let p = idx(&at(path, "outputClaimToHeaders"), i);
        if c.claim.is_empty() || c.header.is_empty() {
            let field = if c.header.is_empty() {
                "header"
            } else {
                "claim"
            };
            r.error(
                at(&p, field),
                "outputClaimToHeaders header and claim value must be non-empty string",
            );
        } else {
            r.check(at(&p, "header"), strict_header_name(&c.header));
        }
    }
    if let Some(t) = &rule.timeout {
        r.check(at(path, "timeout"), fields::duration(t));
    }
}

/// Header names Istio lets a claim be copied to: letters, digits, `-` and `_`.
fn strict_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!("header name {name} is not a valid header name"))
    }
}

/// The proxy only verifies signatures: private key material in an inline JWKS is a leak waiting
/// to happen, so Istio warns about each such key.
pub fn warn_private_jwks_keys(path: &str, rule: &JwtRule, r: &mut Report) {
    let Some(text) = rule.jwks.as_deref().filter(|t| !t.is_empty()) else {
        return;
    };
    let Ok(keys) = jwks::parse(text) else { return };
    for (i, k) in keys.iter().enumerate() {
        if *k == jwks::KeyKind::Private {
            r.warning(
                at(path, "jwks"),
                format!("jwks key at index {i} contains private key material; only public keys are used for verification"),
            );
        }
    }
}
