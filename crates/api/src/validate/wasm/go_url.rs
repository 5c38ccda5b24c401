//! URL parsing with the exact acceptance of Go's `net/url` (`Parse` and `ParseRequestURI`),
//! which both Istio's webhook and the Kubernetes CEL functions `isURL`/`url` use. Only what
//! decides acceptance and the scheme is kept; the parsed parts are not needed.

/// Which part of a URL is being unescaped; the rules differ per part.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Path,
    Host,
    Zone,
    UserPassword,
    Fragment,
}

/// `url.ParseRequestURI`: an absolute URI or an absolute path, no fragment split. Returns the
/// lower-cased scheme (empty for a bare path).
pub fn parse_request_uri(raw: &str) -> Result<String, String> {
    parse_with(raw, true).map_err(|e| format!("parse {raw:?}: {e}"))
}

/// `url.Parse`: any URL reference, with a `#fragment`. Returns the lower-cased scheme.
pub fn parse(raw_with_fragment: &str) -> Result<String, String> {
    let (raw, fragment) = raw_with_fragment
        .split_once('#')
        .unwrap_or((raw_with_fragment, ""));
    let scheme = parse_with(raw, false)
        .and_then(|s| unescape(fragment, Part::Fragment).map(|_| s))
        .map_err(|e| format!("parse {raw_with_fragment:?}: {e}"))?;
    Ok(scheme)
}

fn parse_with(raw: &str, via_request: bool) -> Result<String, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".into());
    }
    if raw == "*" {
        return Ok(String::new());
    }
    let (scheme, rest) = split_scheme(raw)?;
    let scheme = scheme.to_ascii_lowercase();
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split_once('?').map_or(rest, |(r, _)| r)
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // A rootless path after a scheme is opaque (`mailto:x`): accepted as is.
            return Ok(scheme);
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        let segment = rest.split_once('/').map_or(rest, |(s, _)| s);
        if segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    let mut path = rest;
    if (!scheme.is_empty() || !via_request && !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, p) = match after.find('/') {
            Some(i) => after.split_at(i),
            None => (after, ""),
        };
        parse_authority(authority)?;
        path = p;
    }
    unescape(path, Part::Path)?;
    Ok(scheme)
}

/// Splits off `scheme:` when the text before the first `:` is a valid scheme.
fn split_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            b':' => {
                if i == 0 {
                    return Err("missing protocol scheme".into());
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<(), String> {
    match authority.rfind('@') {
        None => parse_host(authority),
        Some(i) => {
            parse_host(&authority[i + 1..])?;
            let userinfo = &authority[..i];
            if !valid_userinfo(userinfo) {
                return Err("net/url: invalid userinfo".into());
            }
            unescape(userinfo, Part::UserPassword)
        }
    }
}

fn parse_host(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let colon_port = &host[i + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
        if let Some(zone) = host[..i].find("%25") {
            unescape(&host[..zone], Part::Host)?;
            unescape(&host[zone..i], Part::Zone)?;
            return unescape(&host[i..], Part::Host);
        }
    } else if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    }
    unescape(host, Part::Host)
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        _ if port.is_empty() => true,
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

fn valid_userinfo(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | ':'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | '%'
                    | '@'
            )
    })
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Checks `%XX` escapes (and, in hosts, the characters allowed there) the way Go's `unescape`
/// does; the unescaped text itself is not needed.
fn unescape(s: &str, part: Part) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                let end = (i + 3).min(b.len());
                return Err(format!(
                    "invalid URL escape {:?}",
                    String::from_utf8_lossy(&b[i..end])
                ));
            }
            let escape = &s[i..i + 3];
            // In hosts, escapes are only for non-ASCII bytes (and `%25`, a literal `%`).
            if part == Part::Host && unhex(b[i + 1]) < 8 && escape != "%25" {
                return Err(format!("invalid URL escape {escape:?}"));
            }
            if part == Part::Zone {
                let v = (unhex(b[i + 1]) << 4) | unhex(b[i + 2]);
                if escape != "%25" && v != b' ' && should_escape_in_host(v) {
                    return Err(format!("invalid URL escape {escape:?}"));
                }
            }
            i += 3;
        } else {
            if matches!(part, Part::Host | Part::Zone) && b[i] < 0x80 && should_escape_in_host(b[i])
            {
                return Err(format!(
                    "invalid character {:?} in host name",
                    (b[i] as char).to_string()
                ));
            }
            i += 1;
        }
    }
    Ok(())
}

/// Go's `shouldEscape` for host names (and IPv6 zones).
fn should_escape_in_host(c: u8) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    !matches!(
        c,
        b'!' | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'['
            | b']'
            | b'<'
            | b'>'
            | b'"'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris() {
        assert_eq!(parse_request_uri("http://test").as_deref(), Ok("http"));
        assert_eq!(parse_request_uri("OCI://x/y:1").as_deref(), Ok("oci"));
        assert_eq!(parse_request_uri("/abs/path").as_deref(), Ok(""));
        assert_eq!(parse_request_uri("mailto:x").as_deref(), Ok("mailto"));
        assert!(parse_request_uri("test").is_err());
        assert!(parse_request_uri("").is_err());
        assert!(parse_request_uri("#%blah$#@").is_err());
        assert!(parse_request_uri("http://#%blah$#@").is_err());
        assert!(parse_request_uri("http://a b").is_err());
        assert!(parse_request_uri("http://host:port").is_err());
        assert!(parse_request_uri("http://[::1").is_err());
        assert!(parse_request_uri("http://[::1]:80/x").is_ok());
        assert!(parse_request_uri("http://u:p@host/x%2").is_err());
        assert!(parse_request_uri("http://h/\u{1}").is_err());
        assert!(parse_request_uri(":x").is_err());
    }

    #[test]
    fn references() {
        assert_eq!(parse("http://x/y#frag").as_deref(), Ok("http"));
        assert!(parse("http://x/y#%zz").is_err());
        assert!(parse("a:b/c").is_ok());
        assert!(parse("ab/c:d").is_ok());
        assert!(parse("a/b:c").is_ok());
        assert!(parse("ab:c").is_ok());
        assert!(parse("1a:b").is_err());
    }
}
