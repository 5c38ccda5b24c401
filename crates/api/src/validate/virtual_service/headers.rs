//! Header names and values in VirtualService rules, with Istio's rules: match keys may be
//! pseudo-headers or JWT claims, manipulation may not touch `:`-prefixed headers (authority
//! aside), and values must be valid Envoy header formatter strings (`%VAR%`, `%%`).

/// Prefix of match keys that route on JWT claims (`@request.auth.claims.sub`).
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// RFC 7230 token characters besides letters and digits.
const TCHARS: &[u8] = b"!#$%&'*+-.^_`|~";

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || TCHARS.contains(&c))
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

/// A header value Envoy will accept: no control characters except tab, and well-formed
/// `%VARIABLE%` / `%VARIABLE(args)%` formatter syntax with `%%` for a literal percent.
pub fn header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'))
    {
        return Err(format!("header value configuration {value} is invalid"));
    }
    formatter(value).map_err(|e| format!("header value configuration: {e}"))
}

#[derive(PartialEq)]
enum State {
    Literal,
    VariableName,
    ExpectArray,
    ExpectString,
    InString,
    ExpectDelimiterOrEnd,
    ExpectArgsEnd,
    ExpectVariableEnd,
}

/// The state machine of Envoy's header formatter parser.
fn formatter(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let mut state = State::Literal;
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        let has_next = i + 1 < b.len();
        match state {
            State::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("invalid header configuration. Un-escaped %".into());
                    }
                    if b[i + 1] == b'%' {
                        i += 1;
                    } else {
                        state = State::VariableName;
                    }
                }
            }
            State::VariableName => {
                if ch == b'%' {
                    state = State::Literal;
                } else if ch == b'(' {
                    state = State::ExpectArray;
                }
            }
            State::ExpectArray => {
                if ch == b'[' {
                    state = State::ExpectString;
                } else if ch != b' ' {
                    state = State::InString;
                }
            }
            State::ExpectDelimiterOrEnd => {
                if ch == b',' {
                    state = State::ExpectString;
                } else if ch == b']' {
                    state = State::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ',', ']', or whitespace".into(),
                    );
                }
            }
            State::ExpectString => {
                if ch == b'"' {
                    state = State::InString;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '\"'".into());
                }
            }
            State::InString => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(
                            "invalid header configuration. Un-terminated backslash in JSON string"
                                .into(),
                        );
                    }
                    i += 1;
                } else if ch == b')' {
                    state = State::ExpectVariableEnd;
                } else if ch == b'"' {
                    state = State::ExpectDelimiterOrEnd;
                }
            }
            State::ExpectArgsEnd => {
                if ch == b')' {
                    state = State::ExpectVariableEnd;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting ')' or whitespace".into());
                }
            }
            State::ExpectVariableEnd => {
                if ch == b'%' {
                    state = State::Literal;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting '%' or whitespace after".into(),
                    );
                }
            }
        }
        i += 1;
    }
    if state != State::Literal {
        return Err(format!(
            "invalid header configuration. Un-terminated variable expression '{value}'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatter_values() {
        for ok in [
            "",
            "foo",
            "%HOSTNAME%",
            "100%%",
            "prefix %HOSTNAME% suffix",
            "%REQ(x-foo)%",
            "%FOO([\"a\", \"b\"])%",
            "tab\there",
        ] {
            assert!(header_value(ok).is_ok(), "{ok}");
        }
        for bad in [
            "abc%123",
            "%START_TIME%%",
            "%",
            "%FOO([x])%",
            "a\nb",
            "%FOO(a) x%",
        ] {
            assert!(header_value(bad).is_err(), "{bad}");
        }
    }

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
