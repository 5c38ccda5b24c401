//! The `jwksUri` rule: Go's `net/url` must read it, with an `http` or `https` scheme and a
//! numeric port. That is both what Istio's `ParseJwksURI` and the CRD's CEL rule
//! (`url(self).getScheme() in ["http", "https"]`) require.

/// Check a JWKS URI; the reason it is refused.
pub fn jwks_uri(uri: &str) -> Result<(), String> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!(
            "parse {uri:?}: net/url: invalid control character in URL"
        ));
    }
    let (before_fragment, fragment) = uri.split_once('#').unwrap_or((uri, ""));
    let scheme = scheme(before_fragment).map_err(|e| format!("parse {uri:?}: {e}"))?;
    let Some((scheme, rest)) = scheme else {
        return Err("URI scheme \"\" is not supported".into());
    };
    let lower = scheme.to_ascii_lowercase();
    if lower != "http" && lower != "https" {
        return Err(format!("URI scheme {lower:?} is not supported"));
    }
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    if let Some(after) = rest.strip_prefix("//") {
        let (authority, path) = match after.find('/') {
            Some(i) => after.split_at(i),
            None => (after, ""),
        };
        self::authority(authority).map_err(|e| format!("parse {uri:?}: {e}"))?;
        unescape(path, Mode::Other).map_err(|e| format!("parse {uri:?}: {e}"))?;
    } else if rest.starts_with('/') {
        unescape(rest, Mode::Other).map_err(|e| format!("parse {uri:?}: {e}"))?;
    }
    // Without a leading slash the rest is opaque, which Go does not look into.
    unescape(fragment, Mode::Other).map_err(|e| format!("parse {uri:?}: {e}"))
}

/// `scheme:rest` when the text starts with a scheme (`[A-Za-z][A-Za-z0-9+.-]*:`).
fn scheme(text: &str) -> Result<Option<(&str, &str)>, String> {
    for (i, c) in text.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok(Some((&text[..i], &text[i + 1..]))),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

fn authority(authority: &str) -> Result<(), String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    self::host(host)?;
    if let Some(u) = userinfo {
        const EXTRA: &[u8] = b"-._:~!$&'()*+,;=%@";
        if !u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b))
        {
            return Err("net/url: invalid userinfo".into());
        }
        unescape(u, Mode::Other)?;
    }
    Ok(())
}

fn host(host: &str) -> Result<(), String> {
    let port_part = if host.starts_with('[') {
        let close = host.rfind(']').ok_or("missing ']' in host")?;
        &host[close + 1..]
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    let port_ok = port_part.is_empty()
        || port_part
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !port_ok {
        return Err(format!("invalid port {port_part:?} after host"));
    }
    // Istio reads the port as a Go int.
    if let Some(p) = port_part.strip_prefix(':') {
        if !p.is_empty() && p.parse::<i64>().is_err() {
            return Err(format!("strconv.Atoi: parsing {p:?}: value out of range"));
        }
    }
    let name = &host[..host.len() - port_part.len()];
    unescape(name, Mode::Host)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Host,
    Other,
}

/// Go's `unescape` checks: every `%` starts a two-digit hex escape; in a host, escapes only
/// for non-ASCII bytes (or `%25`) and only host characters unescaped.
fn unescape(s: &str, mode: Mode) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                let end = (i + 3).min(b.len());
                return Err(format!(
                    "invalid URL escape {:?}",
                    String::from_utf8_lossy(&b[i..end])
                ));
            }
            if mode == Mode::Host && b[i + 1] < b'8' && &b[i..i + 3] != b"%25" {
                return Err(format!(
                    "invalid URL escape {:?}",
                    String::from_utf8_lossy(&b[i..i + 3])
                ));
            }
            i += 3;
            continue;
        }
        if mode == Mode::Host && b[i] < 0x80 && !host_char(b[i]) {
            return Err(format!(
                "invalid character {:?} in host name",
                char::from(b[i])
            ));
        }
        i += 1;
    }
    Ok(())
}

fn host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for ok in [
            "https://foo.com/cert",
            "http://foo.com",
            "HTTPS://example.com:8443/.well-known/jwks.json?x=1#frag",
            "https://[::1]:443/keys",
            "https://user:pw@foo.com/",
            "https:opaque",
            "https://foo.com:",
        ] {
            assert!(jwks_uri(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "foo.com",
            "ftp://foo.com",
            "https://foo.com:not-a-number",
            "hTPp\\\u{8}lah",
            ":foo",
            "https://foo bar.com/",
            "https://foo.com/%zz",
            "https://[::1/keys",
            "https://foo%41.com/",
            "1http://foo.com",
            "https://foo.com:99999999999999999999",
        ] {
            assert!(jwks_uri(bad).is_err(), "{bad}");
        }
    }
}
