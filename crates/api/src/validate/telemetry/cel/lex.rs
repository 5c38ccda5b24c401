//! The CEL lexer: cel-go's token rules (ANTLR longest match), with string and bytes literals
//! checked for cel-go's escapes as they are read.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    /// An integer literal's digits (`0x` kept), for the range check with an optional sign.
    Int(String),
    Uint,
    Float,
    Str,
    True,
    False,
    Null,
    In,
    /// Backquoted identifier, allowed as a field name.
    EscIdent,
    Op(&'static str),
    Eof,
}

impl Tok {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(s) => format!("'{s}'"),
            Tok::Uint | Tok::Float => "number".into(),
            Tok::Str => "string literal".into(),
            Tok::True => "'true'".into(),
            Tok::False => "'false'".into(),
            Tok::Null => "'null'".into(),
            Tok::In => "'in'".into(),
            Tok::EscIdent => "escaped identifier".into(),
            Tok::Op(o) => format!("'{o}'"),
            Tok::Eof => "<EOF>".into(),
        }
    }
}

const OPS: [&str; 27] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "[", "]", "{", "}", "(", ")", ".", ",", "-", "!",
    "?", ":", "+", "*", "/", "%", "=", "&", "|",
];

pub(super) fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0x0c) {
            i += 1;
            continue;
        }
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        // Strings, raw strings, bytes.
        let (is_bytes, is_raw, q) = string_prefix(&b[i..]);
        if let Some(q) = q {
            let start = i + usize::from(is_bytes) + usize::from(is_raw);
            let end = string_end(b, start, q, is_raw).ok_or_else(|| {
                format!("Syntax error: token recognition error at: '{}'", &src[i..])
            })?;
            unescape(&src[start..end], is_raw, is_bytes)?;
            out.push(Tok::Str);
            i = end;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(match &src[s..i] {
                "true" => Tok::True,
                "false" => Tok::False,
                "null" => Tok::Null,
                "in" => Tok::In,
                w => Tok::Ident(w.to_string()),
            });
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, len) = number(&b[i..]);
            out.push(tok);
            i += len;
            continue;
        }
        if c == b'`' {
            let s = i + 1;
            let mut j = s;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b"_.-/ ".contains(&b[j])) {
                j += 1;
            }
            if j == s || b.get(j) != Some(&b'`') {
                return Err("Syntax error: token recognition error at: '`'".into());
            }
            out.push(Tok::EscIdent);
            i = j + 1;
            continue;
        }
        match OPS.iter().find(|op| b[i..].starts_with(op.as_bytes())) {
            Some(op) if !matches!(*op, "=" | "&" | "|") => {
                out.push(Tok::Op(op));
                i += op.len();
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(format!("Syntax error: token recognition error at: '{ch}'"));
            }
        }
    }
    out.push(Tok::Eof);
    Ok(out)
}

/// `(bytes, raw, quote)` when a string literal starts here; the quote is `"`, `'`, `"""` or `'''`.
fn string_prefix(b: &[u8]) -> (bool, bool, Option<&'static str>) {
    let mut k = 0;
    let bytes = matches!(b.first(), Some(b'b' | b'B'));
    if bytes {
        k += 1;
    }
    let raw = matches!(b.get(k), Some(b'r' | b'R'));
    if raw {
        k += 1;
    }
    let rest = &b[k.min(b.len())..];
    let q = if rest.starts_with(b"\"\"\"") {
        Some("\"\"\"")
    } else if rest.starts_with(b"'''") {
        Some("'''")
    } else if rest.starts_with(b"\"") {
        Some("\"")
    } else if rest.starts_with(b"'") {
        Some("'")
    } else {
        None
    };
    (bytes, raw, q)
}

/// Index just past the closing quote of the literal starting at `start` (at its opening quote).
fn string_end(b: &[u8], start: usize, q: &str, raw: bool) -> Option<usize> {
    let triple = q.len() == 3;
    let mut j = start + q.len();
    while j < b.len() {
        if b[j..].starts_with(q.as_bytes()) {
            return Some(j + q.len());
        }
        if !triple && (b[j] == b'\n' || b[j] == b'\r') {
            return None;
        }
        if b[j] == b'\\' && !raw {
            // Any escape skips the next byte here; `unescape` judges it.
            j += 2;
            continue;
        }
        j += 1;
    }
    None
}

/// The literal's escapes, as cel-go's `unescape` reads them.
fn unescape(lit: &str, raw: bool, bytes: bool) -> Result<(), String> {
    if raw || !lit.contains('\\') {
        return Ok(());
    }
    let q = if lit.starts_with("\"\"\"") || lit.starts_with("'''") {
        3
    } else {
        1
    };
    let body = &lit.as_bytes()[q..lit.len() - q];
    let bad = || Err::<(), String>("Syntax error: unable to unescape string".into());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(&c) = body.get(i + 1) else {
            return bad();
        };
        i += 2;
        match c {
            b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' | b'\'' | b'"' | b'`' | b'?' => {
            }
            b'x' | b'X' | b'u' | b'U' => {
                let n = match c {
                    b'x' | b'X' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                if bytes && n > 2 {
                    return bad();
                }
                let digits = body
                    .get(i..i + n)
                    .ok_or("Syntax error: unable to unescape string")?;
                if !digits.iter().all(u8::is_ascii_hexdigit) {
                    return bad();
                }
                let v = u32::from_str_radix(std::str::from_utf8(digits).unwrap_or("0"), 16)
                    .unwrap_or(u32::MAX);
                if !bytes && char::from_u32(v).is_none() {
                    return Err("Syntax error: invalid unicode code point".into());
                }
                i += n;
            }
            b'0'..=b'3' => {
                let digits = body
                    .get(i..i + 2)
                    .ok_or("Syntax error: unable to unescape octal sequence in string")?;
                if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    return Err("Syntax error: unable to unescape octal sequence in string".into());
                }
                i += 2;
            }
            _ => return bad(),
        }
    }
    Ok(())
}

/// The longest number token at the start of `b`, and its length.
fn number(b: &[u8]) -> (Tok, usize) {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let exponent = |at: usize| -> usize {
        if !matches!(b.get(at), Some(b'e' | b'E')) {
            return 0;
        }
        let sign = usize::from(matches!(b.get(at + 1), Some(b'+' | b'-')));
        let d = digits((at + 1 + sign).min(b.len()));
        if d == 0 {
            0
        } else {
            1 + sign + d
        }
    };
    if b[0] == b'.' {
        let d = digits(1);
        let len = 1 + d;
        return (Tok::Float, len + exponent(len));
    }
    if b.starts_with(b"0x") {
        let h = b[2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if h > 0 {
            let len = 2 + h;
            if matches!(b.get(len), Some(b'u' | b'U')) {
                return (Tok::Uint, len + 1);
            }
            let text = String::from_utf8_lossy(&b[..len]).into_owned();
            return (Tok::Int(text), len);
        }
    }
    let int_len = digits(0);
    if b.get(int_len) == Some(&b'.') && b.get(int_len + 1).is_some_and(u8::is_ascii_digit) {
        let len = int_len + 1 + digits(int_len + 1);
        return (Tok::Float, len + exponent(len));
    }
    let e = exponent(int_len);
    if e > 0 {
        return (Tok::Float, int_len + e);
    }
    if matches!(b.get(int_len), Some(b'u' | b'U')) {
        let text = String::from_utf8_lossy(&b[..int_len]).into_owned();
        return if text.parse::<u64>().is_ok() {
            (Tok::Uint, int_len + 1)
        } else {
            // Out of range: reported by the parser.
            (Tok::Int("uint".into()), int_len + 1)
        };
    }
    let text = String::from_utf8_lossy(&b[..int_len]).into_owned();
    (Tok::Int(text), int_len)
}
