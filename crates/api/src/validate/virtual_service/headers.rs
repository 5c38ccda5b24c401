//! Header names and values in VirtualService rules, with Istio's rules: match keys may be
//! pseudo-headers or JWT claims, manipulation may not touch `:`-prefixed headers (authority
//! aside), and values must be valid Envoy header formatter strings (`%VAR%`, `%%`): the shared
//! [`header_value`] of `fields`, re-exported here.

/// Prefix of match keys that route on JWT claims (`@request.auth.claims.sub`).
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

fn is_token(name: &str) -> bool {
    crate::validate::fields::header_name(name).is_ok()
}

/// Whether a match key routes on a JWT claim: `@request.auth.claims.a.b` or
/// `@request.auth.claims[a][b]` (prefix compared case-insensitively, as Istio does).
pub fn is_jwt_claim(name: &str) -> bool {
    let Some(head) = name.get(..JWT_CLAIM_PREFIX.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(JWT_CLAIM_PREFIX) {
        return false;
    }
    let rest = &name[JWT_CLAIM_PREFIX.len()..];
    rest.starts_with('.') || (rest.starts_with('[') && rest.ends_with(']'))
}

/// A header name in `match.headers`/`withoutHeaders`: a token, an HTTP/2 pseudo-header, or a JWT
/// claim.
pub fn match_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_jwt_claim(name)
        || matches!(
            name,
            ":method" | ":scheme" | ":authority" | ":path" | ":status"
        )
        || is_token(name)
    {
        return Ok(());
    }
    Err(format!("header name {name} is not a valid header name"))
}

/// A header name in CORS `allowHeaders`/`exposeHeaders`: a token or `*`.
pub fn cors_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name == "*" || is_token(name) {
        return Ok(());
    }
    Err(format!("header name {name} is not a valid header name"))
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// `:authority` or `Host`, in any case.
pub fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// A request header to `set` or `add`: the authority may be set (checked elsewhere for
/// conflicts), other `:` headers not.
pub fn settable_request_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_internal(name) && !is_authority(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// A request header to remove, or any response header operation: neither `Host` nor a `:`
/// header.
pub fn operable_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if is_internal(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

pub use crate::validate::fields::header_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(match_header_name(":authority").is_ok());
        assert!(match_header_name(":foo").is_err());
        assert!(match_header_name("@request.auth.claims.sub").is_ok());
        assert!(match_header_name("@request.auth.claims[a][b]").is_ok());
        assert!(match_header_name("@request.auth.claimsX").is_err());
        assert!(settable_request_header("Host").is_ok());
        assert!(settable_request_header(":path").is_err());
        assert!(operable_header("host").is_err());
        assert!(operable_header(":authority").is_err());
        assert!(cors_header_name("*").is_ok());
        assert!(cors_header_name("a b").is_err());
    }
}
