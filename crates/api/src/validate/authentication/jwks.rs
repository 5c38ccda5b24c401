//! Reading an inline JSON Web Key Set the way Istio does (lestrrat-go/jwx v1's `jwk.Parse`):
//! a `{"keys": [...]}` set or a single key object, each key of a known type (`RSA`, `EC`, `oct`,
//! `OKP`) with its required members, binary members in base64 (any of the four alphabets), and
//! `x5c` certificates that at least look like DER. A key with `d` (or any `oct` key) is private.

use serde_json::Value;

/// What kind of key an entry is, as far as Istio's private-key warning cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Public,
    /// Carries private material (`d`, or a symmetric `k`): the proxy needs none of it.
    Private,
}

/// Parse a key set; the kinds of its keys, in order, or why it is not a key set.
pub fn parse(text: &str) -> Result<Vec<KeyKind>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("failed to unmarshal JWK set: {e}"))?;
    let Value::Object(obj) = &value else {
        return Err("failed to unmarshal JWK set: expected a JSON object".into());
    };
    match obj.get("keys") {
        None => key(&value)
            .map(|k| vec![k])
            .map_err(|e| format!("failed to parse sole key in key set: {e}")),
        Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(keys)) => keys
            .iter()
            .enumerate()
            .map(|(i, k)| key(k).map_err(|e| format!("failed to decode key #{i} in \"keys\": {e}")))
            .collect(),
        Some(_) => Err("failed to decode \"keys\": expected a list".into()),
    }
}

/// How each member of a key is read.
#[derive(Clone, Copy)]
enum Member {
    Text,
    Bytes,
    TextList,
    CertChain,
}

fn key(value: &Value) -> Result<KeyKind, String> {
    let obj = match value {
        Value::Object(o) => o,
        Value::Null => return Err("invalid key type from JSON ()".into()),
        _ => return Err("failed to unmarshal JSON into key hint: expected an object".into()),
    };
    let kty = match obj.get("kty") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err("failed to unmarshal JSON into key hint: kty must be a string".into())
        }
    };
    let private = obj.contains_key("d");
    let required: &[&str] = match (kty, private) {
        ("RSA", false) => &["e", "n"],
        ("RSA", true) => &["d", "e", "n"],
        ("EC", false) => &["crv", "x", "y"],
        ("EC", true) => &["crv", "d", "x", "y"],
        ("OKP", false) => &["crv", "x"],
        ("OKP", true) => &["crv", "d", "x"],
        ("oct", _) => &["k"],
        _ => return Err(format!("invalid key type from JSON ({kty})")),
    };
    for (name, v) in obj {
        let Some(kind) = member(kty, name) else {
            // Any other member is kept as opaque JSON.
            continue;
        };
        member_value(kind, v).map_err(|e| format!("failed to decode value for key {name}: {e}"))?;
    }
    for name in required {
        if !obj.contains_key(*name) {
            return Err(format!("required field {name} is missing"));
        }
    }
    Ok(if private || kty == "oct" {
        KeyKind::Private
    } else {
        KeyKind::Public
    })
}

/// The members jwx reads for a key type (others are opaque). jwx v1 spells the `x5u` constant
/// `x58`, so a real `x5u` is opaque too.
fn member(kty: &str, name: &str) -> Option<Member> {
    let common = match name {
        "alg" | "kid" | "use" | "x5t" | "x5t#S256" | "x58" => Some(Member::Text),
        "key_ops" => Some(Member::TextList),
        "x5c" => Some(Member::CertChain),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    let bytes = match kty {
        "RSA" => ["d", "dp", "dq", "e", "n", "p", "q", "qi"].contains(&name),
        "EC" => ["d", "x", "y"].contains(&name),
        "OKP" => ["d", "x"].contains(&name),
        "oct" => name == "k",
        _ => false,
    };
    if bytes {
        Some(Member::Bytes)
    } else if name == "crv" && matches!(kty, "EC" | "OKP") {
        Some(Member::Text)
    } else {
        None
    }
}

fn member_value(kind: Member, v: &Value) -> Result<(), String> {
    match (kind, v) {
        (_, Value::Null) => Ok(()),
        (Member::Text, Value::String(_)) => Ok(()),
        (Member::Bytes, Value::String(s)) => base64(s)
            .map(|_| ())
            .ok_or_else(|| "expected base64 encoded []byte".to_string()),
        (Member::TextList, Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        (Member::CertChain, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Value::String(s) = item else {
                    return Err(format!("certificate {i} must be a string"));
                };
                let der = base64(s).ok_or("failed to base64 decode list element")?;
                if !looks_like_certificate(&der) {
                    return Err("failed to parse certificate".into());
                }
            }
            Ok(())
        }
        (Member::Text | Member::Bytes, _) => Err("expected a string".into()),
        (Member::TextList | Member::CertChain, _) => Err("expected a list of strings".into()),
    }
}

/// Base64 as jwx decodes it: the URL alphabet unless `+` or `/` appear, padded when the text
/// ends with `=`; line breaks ignored.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    let padded = text.ends_with('=');
    let url = !text.contains(['+', '/']);
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    let (body, pad) = if padded {
        if !clean.len().is_multiple_of(4) {
            return None;
        }
        let body_len = clean.iter().rposition(|b| *b != b'=').map_or(0, |p| p + 1);
        (&clean[..body_len], clean.len() - body_len)
    } else {
        (&clean[..], 0)
    };
    if pad > 2 || body.len() % 4 == 1 || (padded && (body.len() + pad) % 4 != 0) {
        return None;
    }
    let sextet = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' if url => 62,
            b'_' if url => 63,
            b'+' if !url => 62,
            b'/' if !url => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= sextet(*b)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// A DER `Certificate`: a SEQUENCE spanning the whole input whose first element is itself a
/// SEQUENCE (the to-be-signed part). Full X.509 parsing is out of scope for validation.
fn looks_like_certificate(der: &[u8]) -> bool {
    fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        if first < 0x80 {
            return Some((tag, 2, first));
        }
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        Some((tag, 2 + n, len))
    }
    let Some((tag, hdr, len)) = header(der) else {
        return false;
    };
    if tag != 0x30 || hdr + len != der.len() {
        return false;
    }
    matches!(header(&der[hdr..]), Some((0x30, h, l)) if h + l <= len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ";

    #[test]
    fn sets_and_single_keys() {
        let set = format!(r#"{{"keys":[{{"kty":"RSA","e":"AQAB","n":"{RSA_N}"}}]}}"#);
        assert_eq!(parse(&set), Ok(vec![KeyKind::Public]));
        let single = format!(r#"{{"kty":"RSA","e":"AQAB","n":"{RSA_N}","d":"AQAB"}}"#);
        assert_eq!(parse(&single), Ok(vec![KeyKind::Private]));
        assert_eq!(parse(r#"{"keys":[]}"#), Ok(vec![]));
        assert_eq!(parse(r#"{"keys":null}"#), Ok(vec![]));
        assert_eq!(
            parse(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#),
            Ok(vec![KeyKind::Private])
        );
        let ec = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        assert_eq!(parse(ec), Ok(vec![KeyKind::Public]));
    }

    #[test]
    fn bad_sets() {
        for bad in [
            "foo",
            "[]",
            "{}",
            r#"{"keys":{}}"#,
            r#"{"keys":[{"kty":"XYZ"}]}"#,
            r#"{"keys":[{"kty":"RSA","e":"AQAB"}]}"#,
            r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"!!"}]}"#,
            r#"{"keys":[{"kty":"RSA","e":7,"n":"AQAB"}]}"#,
            r#"{"keys":[{"kty":"EC","x":"AQAB","y":"AQAB"}]}"#,
            r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"AQAB","x5c":["AQAB"]}]}"#,
            r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"AQAB","key_ops":[1]}]}"#,
            r#"{"keys":[null]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_alphabets() {
        assert_eq!(base64("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(base64("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(base64("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(base64(""), Some(vec![]));
        assert!(base64("A").is_none());
        assert!(base64("aGk==").is_none());
        assert!(base64("-/8=").is_none());
        assert!(base64("a=Gk").is_none());
    }
}
