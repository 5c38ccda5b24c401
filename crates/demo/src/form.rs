//! Small decoders for request input: query strings and URL-encoded forms, cookies, and the
//! percent-encoding that cookie values need. All of it is untrusted input and never panics.

use http::HeaderMap;

/// `a=1&b=x%20y&a=2` to `[("a","1"),("b","x y"),("a","2")]`, order kept; `+` is a space.
/// Undecodable escapes are kept literally, as browsers and Python's parser do.
pub fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key` in a URL-encoded string.
pub fn first(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters, so any string is a valid cookie value
/// and header value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The decoded value of cookie `name`, looking through every `Cookie` header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v.trim_matches('"')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn decodes_pairs_plus_and_escapes() {
        let got = parse_urlencoded("a=1&b=x%20y+z&a=2&flag&&bad=%zz%4");
        let want = [
            ("a", "1"),
            ("b", "x y z"),
            ("a", "2"),
            ("flag", ""),
            ("bad", "%zz%4"),
        ];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
        assert_eq!(first(&got, "a").as_deref(), Some("1"));
    }

    #[test]
    fn multibyte_escapes_decode_to_utf8() {
        assert_eq!(parse_urlencoded("n=%C3%A9")[0].1, "é");
    }

    #[test]
    fn encode_round_trips_through_decode() {
        for s in ["jason", "a b;c=d\"é", ""] {
            assert_eq!(decode(&encode(s)), s);
            assert!(HeaderValue::from_str(&encode(s)).is_ok());
        }
    }

    #[test]
    fn finds_cookie_among_several() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1; session=jason%20x"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "session").as_deref(), Some("jason x"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "nope"), None);
    }
}
