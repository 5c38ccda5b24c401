//! HTTP header names and values: RFC 7230 tokens, and values Envoy accepts (no control
//! characters but tab, well-formed `%VARIABLE%` formatter syntax).

/// An HTTP header name (RFC 7230 token).
pub fn header_name(name: &str) -> Result<(), String> {
    const EXTRA: &[u8] = b"!#$%&'*+-.^_`|~";
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(&c))
    {
        Ok(())
    } else {
        Err(format!(
            "header name {name:?} is not a valid HTTP header name"
        ))
    }
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
}
