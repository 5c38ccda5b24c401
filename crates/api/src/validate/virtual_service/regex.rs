//! Go's regular-expression syntax (RE2 as Go's `regexp` package parses it with Perl flags),
//! checked without compiling: Istio validates every regex with `regexp.Compile`, and Envoy runs
//! them with RE2, so a pattern is valid exactly when Go parses it.
//!
//! The `regex` crate is close to this syntax but not equal: it rejects things Go takes as
//! literals (`a{`, `x{,3}`, `[[]`), does not know `\Q...\E`, and accepts extensions Go refuses
//! (`(?x)`, `\<`, set operations in classes, loose Unicode property names). So this module follows
//! Go's parser rules directly: escapes, classes and POSIX/Unicode groups, flags and named groups,
//! repetition (no stacked operators, counts up to 1000, nested counts multiplying to at most 1000),
//! and balanced parentheses.

/// Longest pattern Istio accepts: it stands in for Envoy's RE2 program-size limit.
pub const MAX_REGEX_LEN: usize = 1024;

/// Istio's regex check for a field: length cap, then Go's syntax. `place` names the field in the
/// message, as Istio does.
pub fn check_field(pattern: &str, place: &str) -> Result<(), String> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!(
            "{place:?}: regex is too large, max length allowed is {MAX_REGEX_LEN}"
        ));
    }
    check(pattern).map_err(|e| {
        format!(
            "{place:?}: error parsing regexp: {e}; Istio uses RE2 style regex-based match \
             (https://github.com/google/re2/wiki/Syntax)"
        )
    })
}

/// Whether Go's `regexp.Compile` accepts `pattern`; the error names the offending part.
pub fn check(pattern: &str) -> Result<(), String> {
    Parser {
        whole: pattern,
        frames: vec![Frame::default()],
        last_was_repeat: false,
    }
    .run(pattern)
}

/// Most copies of one sub-expression a counted repetition may produce, nesting included.
const MAX_REPEAT: u64 = 1000;

/// One open group (or the whole pattern): the items of the alternative being read, and the
/// largest repeat requirement of the alternatives already closed.
#[derive(Default)]
struct Frame {
    /// For each item, the smallest budget under which Go's nested-repeat check passes.
    items: Vec<u64>,
    closed_alternatives: u64,
}

impl Frame {
    fn requirement(&self) -> u64 {
        self.items
            .iter()
            .copied()
            .fold(self.closed_alternatives, u64::max)
    }
}

struct Parser<'a> {
    whole: &'a str,
    frames: Vec<Frame>,
    last_was_repeat: bool,
}

const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Unicode general categories as Go's `unicode.Categories` names them.
const CATEGORIES: [&str; 36] = [
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N",
    "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
    "Z", "Zl", "Zp", "Zs",
];

/// Unicode 15.0 script names (Go's `unicode.Scripts`), exact spelling.
const SCRIPTS: [&str; 163] = [
    "Adlam",
    "Ahom",
    "Anatolian_Hieroglyphs",
    "Arabic",
    "Armenian",
    "Avestan",
    "Balinese",
    "Bamum",
    "Bassa_Vah",
    "Batak",
    "Bengali",
    "Bhaiksuki",
    "Bopomofo",
    "Brahmi",
    "Braille",
    "Buginese",
    "Buhid",
    "Canadian_Aboriginal",
    "Carian",
    "Caucasian_Albanian",
    "Chakma",
    "Cham",
    "Cherokee",
    "Chorasmian",
    "Common",
    "Coptic",
    "Cuneiform",
    "Cypriot",
    "Cypro_Minoan",
    "Cyrillic",
    "Deseret",
    "Devanagari",
    "Dives_Akuru",
    "Dogra",
    "Duployan",
    "Egyptian_Hieroglyphs",
    "Elbasan",
    "Elymaic",
    "Ethiopic",
    "Georgian",
    "Glagolitic",
    "Gothic",
    "Grantha",
    "Greek",
    "Gujarati",
    "Gunjala_Gondi",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hanifi_Rohingya",
    "Hanunoo",
    "Hatran",
    "Hebrew",
    "Hiragana",
    "Imperial_Aramaic",
    "Inherited",
    "Inscriptional_Pahlavi",
    "Inscriptional_Parthian",
    "Javanese",
    "Kaithi",
    "Kannada",
    "Katakana",
    "Kawi",
    "Kayah_Li",
    "Kharoshthi",
    "Khitan_Small_Script",
    "Khmer",
    "Khojki",
    "Khudawadi",
    "Lao",
    "Latin",
    "Lepcha",
    "Limbu",
    "Linear_A",
    "Linear_B",
    "Lisu",
    "Lycian",
    "Lydian",
    "Mahajani",
    "Makasar",
    "Malayalam",
    "Mandaic",
    "Manichaean",
    "Marchen",
    "Masaram_Gondi",
    "Medefaidrin",
    "Meetei_Mayek",
    "Mende_Kikakui",
    "Meroitic_Cursive",
    "Meroitic_Hieroglyphs",
    "Miao",
    "Modi",
    "Mongolian",
    "Mro",
    "Multani",
    "Myanmar",
    "Nabataean",
    "Nag_Mundari",
    "Nandinagari",
    "New_Tai_Lue",
    "Newa",
    "Nko",
    "Nushu",
    "Nyiakeng_Puachue_Hmong",
    "Ogham",
    "Ol_Chiki",
    "Old_Hungarian",
    "Old_Italic",
    "Old_North_Arabian",
    "Old_Permic",
    "Old_Persian",
    "Old_Sogdian",
    "Old_South_Arabian",
    "Old_Turkic",
    "Old_Uyghur",
    "Oriya",
    "Osage",
    "Osmanya",
    "Pahawh_Hmong",
    "Palmyrene",
    "Pau_Cin_Hau",
    "Phags_Pa",
    "Phoenician",
    "Psalter_Pahlavi",
    "Rejang",
    "Runic",
    "Samaritan",
    "Saurashtra",
    "Sharada",
    "Shavian",
    "Siddham",
    "SignWriting",
    "Sinhala",
    "Sogdian",
    "Sora_Sompeng",
    "Soyombo",
    "Sundanese",
    "Syloti_Nagri",
    "Syriac",
    "Tagalog",
    "Tagbanwa",
    "Tai_Le",
    "Tai_Tham",
    "Tai_Viet",
    "Takri",
    "Tamil",
    "Tangsa",
    "Tangut",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
    "Tifinagh",
    "Tirhuta",
    "Toto",
    "Ugaritic",
    "Vai",
    "Vithkuqi",
    "Wancho",
    "Warang_Citi",
    "Yezidi",
    "Yi",
    "Zanabazar_Square",
];

fn first_char(s: &str) -> Option<char> {
    s.chars().next()
}

/// `s` without its first character.
fn skip1(s: &str) -> &str {
    let mut c = s.chars();
    c.next();
    c.as_str()
}

fn hex_value(c: char) -> Option<u32> {
    c.to_digit(16)
}

impl<'a> Parser<'a> {
    fn frame(&mut self) -> &mut Frame {
        // The outermost frame is never popped: `)` without an open group is an error first.
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn push_item(&mut self) {
        self.frame().items.push(0);
    }

    fn run(mut self, pattern: &'a str) -> Result<(), String> {
        let mut t = pattern;
        while let Some(c) = first_char(t) {
            let mut repeated = false;
            match c {
                '(' => {
                    t = if t.starts_with("(?") {
                        self.perl_group(t)?
                    } else {
                        self.frames.push(Frame::default());
                        &t[1..]
                    };
                }
                '|' => {
                    let f = self.frame();
                    f.closed_alternatives = f.requirement();
                    f.items.clear();
                    t = &t[1..];
                }
                ')' => {
                    if self.frames.len() < 2 {
                        return Err(format!("unexpected ): `{}`", self.whole));
                    }
                    let group = self.frames.pop().map(|f| f.requirement()).unwrap_or(0);
                    self.frame().items.push(group);
                    t = &t[1..];
                }
                '^' | '$' | '.' => {
                    self.push_item();
                    t = &t[1..];
                }
                '[' => {
                    t = self.class(t)?;
                    self.push_item();
                }
                '*' | '+' | '?' => {
                    let mut after = &t[1..];
                    if after.starts_with('?') {
                        after = &after[1..];
                    }
                    self.repeat(&t[..t.len() - after.len()], None)?;
                    repeated = true;
                    t = after;
                }
                '{' => match parse_counted(t) {
                    None => {
                        // Not a well-formed `{n,m}`: Go takes the brace literally.
                        self.push_item();
                        t = &t[1..];
                    }
                    Some((min, max, rest)) => {
                        let mut after = rest;
                        if after.starts_with('?') {
                            after = &after[1..];
                        }
                        let op = &t[..t.len() - after.len()];
                        if !(0..=1000).contains(&min) || max > 1000 || (max >= 0 && min > max) {
                            return Err(format!("invalid repeat count: `{op}`"));
                        }
                        self.repeat(op, Some((min, max)))?;
                        repeated = true;
                        t = after;
                    }
                },
                '\\' => t = self.top_level_escape(t)?,
                _ => {
                    self.push_item();
                    t = skip1(t);
                }
            }
            self.last_was_repeat = repeated;
        }
        if self.frames.len() != 1 {
            return Err(format!("missing closing ): `{}`", self.whole));
        }
        Ok(())
    }

    /// `op` applies to the last item. Go refuses stacked operators (`a**`), operators with
    /// nothing to repeat, and counted repetitions whose nesting would exceed 1000 copies.
    fn repeat(&mut self, op: &str, counts: Option<(i64, i64)>) -> Result<(), String> {
        if self.last_was_repeat {
            return Err(format!("invalid nested repetition operator: `{op}`"));
        }
        let Some(sub) = self.frame().items.pop() else {
            return Err(format!("missing argument to repetition operator: `{op}`"));
        };
        let req = match counts {
            None => sub,
            Some((min, max)) => {
                let m = if max < 0 { min } else { max };
                if m == 0 {
                    0
                } else {
                    let m = m as u64;
                    let req = m.max(sub.saturating_mul(m));
                    if (min >= 2 || max >= 2) && req > MAX_REPEAT {
                        return Err(format!("invalid repeat count: `{op}`"));
                    }
                    req
                }
            }
        };
        self.frame().items.push(req);
        Ok(())
    }

    /// `(?` groups: named captures and flag groups.
    fn perl_group(&mut self, t: &'a str) -> Result<&'a str, String> {
        let b = t.as_bytes();
        let named = (t.len() > 4 && b[2] == b'P' && b[3] == b'<') || (t.len() > 3 && b[2] == b'<');
        if named {
            let begin = if b[2] == b'<' { 3 } else { 4 };
            let Some(end) = t.find('>') else {
                return Err(format!("invalid named capture: `{t}`"));
            };
            let name = &t[begin..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
            if !valid {
                return Err(format!("invalid named capture: `{}`", &t[..=end]));
            }
            self.frames.push(Frame::default());
            return Ok(&t[end + 1..]);
        }
        let mut rest = &t[2..];
        let mut negated = false;
        let mut saw_flag = false;
        while let Some(c) = first_char(rest) {
            rest = skip1(rest);
            match c {
                'i' | 'm' | 's' | 'U' => saw_flag = true,
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    if c == ':' {
                        self.frames.push(Frame::default());
                    }
                    return Ok(rest);
                }
                _ => break,
            }
        }
        let bad = &t[..t.len() - rest.len()];
        Err(format!("invalid or unsupported Perl syntax: `{bad}`"))
    }

    fn top_level_escape(&mut self, t: &'a str) -> Result<&'a str, String> {
        match t.as_bytes().get(1) {
            Some(b'A' | b'b' | b'B' | b'z') => {
                self.push_item();
                return Ok(&t[2..]);
            }
            Some(b'C') => return Err("invalid escape sequence: `\\C`".into()),
            Some(b'Q') => {
                let body = &t[2..];
                let (lit, rest) = match body.find("\\E") {
                    Some(i) => (&body[..i], &body[i + 2..]),
                    None => (body, ""),
                };
                for _ in lit.chars() {
                    self.push_item();
                }
                return Ok(rest);
            }
            _ => {}
        }
        if let Some(rest) = unicode_class(t)? {
            self.push_item();
            return Ok(rest);
        }
        if let Some(rest) = perl_class(t) {
            self.push_item();
            return Ok(rest);
        }
        let (_, rest) = escape(t)?;
        self.push_item();
        Ok(rest)
    }

    /// A bracketed class, `t` starting at `[`; returns what follows the closing `]`.
    fn class(&self, t: &'a str) -> Result<&'a str, String> {
        let whole = t;
        let mut t = &t[1..];
        if t.starts_with('^') {
            t = &t[1..];
        }
        let mut first = true;
        while t.is_empty() || !t.starts_with(']') || first {
            first = false;
            if t.len() > 2 && t.starts_with("[:") {
                if let Some(rest) = posix_class(t)? {
                    t = rest;
                    continue;
                }
            }
            if let Some(rest) = unicode_class(t)? {
                t = rest;
                continue;
            }
            if let Some(rest) = perl_class(t) {
                t = rest;
                continue;
            }
            let range_start = t;
            let (lo, rest) = class_char(t, whole)?;
            t = rest;
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                let (hi, rest) = class_char(&t[1..], whole)?;
                t = rest;
                if hi < lo {
                    let range = &range_start[..range_start.len() - t.len()];
                    return Err(format!("invalid character class range: `{range}`"));
                }
            }
        }
        Ok(&t[1..])
    }
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `s`: (min, max or -1 for open, rest). Numbers that
/// are too large come back negative, which the caller reports. `None` when the text is not a
/// repetition at all, in which case Go reads the `{` as a literal.
fn parse_counted(s: &str) -> Option<(i64, i64, &str)> {
    let s = s.strip_prefix('{')?;
    let (mut min, s) = parse_int(s)?;
    let (max, s) = if let Some(s) = s.strip_prefix(',') {
        if let Some(rest) = s.strip_prefix('}') {
            return Some((min, -1, rest));
        }
        let (max, s) = parse_int(s)?;
        if max < 0 {
            min = -1;
        }
        (max, s)
    } else {
        (min, s)
    };
    let rest = s.strip_prefix('}')?;
    Some((min, max, rest))
}

/// Decimal digits without a leading zero (except `0` itself); -1 when absurdly large.
fn parse_int(s: &str) -> Option<(i64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits >= 2 && s.starts_with('0')) {
        return None;
    }
    let mut n: i64 = 0;
    for d in s[..digits].bytes() {
        if n >= 100_000_000 {
            n = -1;
            break;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some((n, &s[digits..]))
}

/// `[:name:]` or `[:^name:]` inside a class. Like Go, the name runs to the next `:]`, wherever
/// that is; no `:]` at all means this is not a POSIX class.
fn posix_class(t: &str) -> Result<Option<&str>, String> {
    let Some(i) = t[2..].find(":]") else {
        return Ok(None);
    };
    let name = &t[..i + 4];
    let inner = &t[2..i + 2];
    let inner = inner.strip_prefix('^').unwrap_or(inner);
    if POSIX_CLASSES.contains(&inner) {
        Ok(Some(&t[i + 4..]))
    } else {
        Err(format!("invalid character class range: `{name}`"))
    }
}

/// `\pN`, `\p{Name}`, `\P{^Name}`... `Ok(None)` when `t` is not one.
fn unicode_class(t: &str) -> Result<Option<&str>, String> {
    if !(t.starts_with("\\p") || t.starts_with("\\P")) {
        return Ok(None);
    }
    let after = &t[2..];
    let (seq_len, name) = match first_char(after) {
        Some('{') => {
            let Some(end) = t.find('}') else {
                return Err(format!("invalid character class range: `{t}`"));
            };
            (end + 1, &t[3..end])
        }
        Some(c) => (2 + c.len_utf8(), &after[..c.len_utf8()]),
        None => (2, ""),
    };
    let name = name.strip_prefix('^').unwrap_or(name);
    if name == "Any" || CATEGORIES.contains(&name) || SCRIPTS.contains(&name) {
        Ok(Some(&t[seq_len..]))
    } else {
        Err(format!(
            "invalid character class range: `{}`",
            &t[..seq_len]
        ))
    }
}

/// `\d \D \s \S \w \W`.
fn perl_class(t: &str) -> Option<&str> {
    let b = t.as_bytes();
    (b.len() >= 2 && b[0] == b'\\' && b"dDsSwW".contains(&b[1])).then(|| &t[2..])
}

/// One class member: a character or an escape. `whole` is the class, for the message when it
/// never closes.
fn class_char<'t>(t: &'t str, whole: &str) -> Result<(u32, &'t str), String> {
    match first_char(t) {
        None => Err(format!("missing closing ]: `{whole}`")),
        Some('\\') => escape(t),
        Some(c) => Ok((c as u32, &t[c.len_utf8()..])),
    }
}

/// A single-character escape (`t` starts at the backslash): its code point and the rest.
fn escape(t: &str) -> Result<(u32, &str), String> {
    let body = &t[1..];
    let Some(c) = first_char(body) else {
        return Err("trailing backslash at end of expression".into());
    };
    let mut rest = skip1(body);
    let invalid = |rest: &str| {
        Err(format!(
            "invalid escape sequence: `{}`",
            &t[..t.len() - rest.len()]
        ))
    };
    match c {
        '1'..='7' if !rest.starts_with(|d: char| ('0'..='7').contains(&d)) => invalid(rest),
        '0'..='7' => {
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                match first_char(rest) {
                    Some(d @ '0'..='7') => {
                        r = r * 8 + (d as u32 - '0' as u32);
                        rest = &rest[1..];
                    }
                    _ => break,
                }
            }
            Ok((r, rest))
        }
        'x' => {
            let Some(c) = first_char(rest) else {
                return invalid(rest);
            };
            rest = skip1(rest);
            if c == '{' {
                let mut r: u32 = 0;
                let mut digits = 0;
                loop {
                    let Some(d) = first_char(rest) else {
                        return invalid(rest);
                    };
                    rest = skip1(rest);
                    if d == '}' {
                        break;
                    }
                    let Some(v) = hex_value(d) else {
                        return invalid(rest);
                    };
                    r = r * 16 + v;
                    if r > 0x10FFFF {
                        return invalid(rest);
                    }
                    digits += 1;
                }
                if digits == 0 {
                    return invalid(rest);
                }
                return Ok((r, rest));
            }
            let Some(d) = first_char(rest) else {
                return invalid(rest);
            };
            rest = skip1(rest);
            match (hex_value(c), hex_value(d)) {
                (Some(x), Some(y)) => Ok((x * 16 + y, rest)),
                _ => invalid(rest),
            }
        }
        'a' => Ok((7, rest)),
        'f' => Ok((12, rest)),
        'n' => Ok((10, rest)),
        'r' => Ok((13, rest)),
        't' => Ok((9, rest)),
        'v' => Ok((11, rest)),
        // Escaped ASCII punctuation (and `_`) stands for itself.
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c as u32, rest)),
        _ => invalid(rest),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_go_accepts() {
        for re in [
            "",
            "abc",
            "^/api/v[0-9]+/.*$",
            "a{",
            "a{,5}",
            "x{01}",
            "{",
            "a{2}",
            "a{2,}",
            "a{2,1000}",
            "(a{10}){100}",
            "[[]",
            "[]a]",
            "[^]a]",
            "[a-]",
            "[[:alpha:][:^digit:]]",
            "\\Qa.b*\\E+",
            "\\Q(",
            "(?i)abc",
            "(?i:a)",
            "(?-s:.)",
            "(?)",
            "a(?i)*",
            "(?P<name>x)",
            "(?<name>x)",
            "(?P<a>x)(?P<a>y)",
            "\\pL\\p{Greek}\\P{^Han}\\p{Any}",
            "[\\p{Lu}\\d-]",
            "\\x41\\x{10FFFF}\\101\\0",
            "\\_\\-\\.",
            "^*",
            "\\b+",
            "()*",
            "a*?",
        ] {
            assert!(check(re).is_ok(), "{re}: {:?}", check(re));
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for re in [
            "a**",
            "a|*b",
            "a*+",
            "a+?+",
            "a{2}*",
            "*",
            "(*)",
            "(?i)*",
            "a{1001}",
            "a{2,1}",
            "(a{100}){11}",
            "((a{10}){10}){11}",
            "(",
            ")",
            "a)",
            "[a",
            "[]",
            "[z-a]",
            "[[:foo:]]",
            "\\1",
            "\\8",
            "\\C",
            "\\e",
            "\\",
            "\\x{110000}",
            "\\x{}",
            "\\xZZ",
            "\\p{Foo}",
            "\\p{greek}",
            "\\p{Letter}",
            "\\pX",
            "(?x)a",
            "(?P=a)",
            "(?P<>x)",
            "(?<a-b>x)",
            "(?=a)",
            "(?<=a)",
            "(?-)",
            "(?i",
            "[\\b]",
        ] {
            assert!(check(re).is_err(), "{re} should be rejected");
        }
    }
}
