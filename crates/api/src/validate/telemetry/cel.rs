//! A syntax check for CEL expressions, as strict as cel-go's parser (which Istio runs on access
//! log filters): the CEL grammar, its lexical rules (numbers, string and bytes literals with
//! their escapes, identifiers, comments), literal ranges, reserved words, the standard macros'
//! argument rules, and the parser's size and nesting limits. No type checking: Istio only parses.

/// Longest expression cel-go parses, in code points.
const MAX_CODE_POINTS: usize = 100_000;
/// cel-go's default recursion limit.
const MAX_DEPTH: usize = 250;

const RESERVED: [&str; 17] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Check that `src` is a syntactically valid CEL expression.
pub fn parse(src: &str) -> Result<(), String> {
    let n = src.chars().count();
    if n > MAX_CODE_POINTS {
        return Err(format!(
            "expression code point size exceeds limit: size: {n}, limit {MAX_CODE_POINTS}"
        ));
    }
    let tokens = lex(src)?;
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        depth: 0,
    };
    p.expr()?;
    match p.peek() {
        Tok::Eof => Ok(()),
        t => Err(format!("Syntax error: extraneous input {}", t.describe())),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
    fn describe(&self) -> String {
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

fn lex(src: &str) -> Result<Vec<Tok>, String> {
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

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// What a parsed expression is, as far as the macros care.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Ident(String),
    Select,
    Other,
}

type PResult = Result<Shape, String>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.pos + k).min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn eat(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(format!(
                "Syntax error: mismatched input {} expecting '{op}'",
                self.peek().describe()
            ))
        }
    }
    fn unexpected<T>(&self) -> Result<T, String> {
        Err(format!(
            "Syntax error: mismatched input {}",
            self.peek().describe()
        ))
    }

    fn expr(&mut self) -> PResult {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression recursion limit exceeded: {MAX_DEPTH}"));
        }
        let mut shape = self.binary(0)?;
        if self.eat("?") {
            self.binary(0)?;
            self.expect(":")?;
            self.expr()?;
            shape = Shape::Other;
        }
        self.depth -= 1;
        Ok(shape)
    }

    /// The precedence of the binary operator at hand: `||` 1, `&&` 2, relations 3, `+ -` 4,
    /// `* / %` 5; 0 when there is none.
    fn binary_level(&self) -> u8 {
        match self.peek() {
            Tok::Op("||") => 1,
            Tok::Op("&&") => 2,
            Tok::Op("<" | "<=" | ">=" | ">" | "==" | "!=") | Tok::In => 3,
            Tok::Op("+" | "-") => 4,
            Tok::Op("*" | "/" | "%") => 5,
            _ => 0,
        }
    }

    /// Binary operators, all left-associative, by precedence climbing: one stack frame per
    /// operand rather than one per precedence level.
    fn binary(&mut self, min_level: u8) -> PResult {
        let mut shape = self.unary()?;
        loop {
            let level = self.binary_level();
            if level == 0 || level < min_level.max(1) {
                return Ok(shape);
            }
            self.bump();
            self.binary(level + 1)?;
            shape = Shape::Other;
        }
    }

    fn unary(&mut self) -> PResult {
        if self.is_op("!") || self.is_op("-") {
            let op = if self.is_op("!") { "!" } else { "-" };
            // `-1` is a literal, not a negation, which matters after `!`.
            if op == "-" && self.number_follows() {
                return self.member();
            }
            while self.eat(op) {}
            if op == "!" && self.is_op("-") && !self.number_follows() {
                return self.unexpected();
            }
            self.member()?;
            return Ok(Shape::Other);
        }
        self.member()
    }

    fn number_follows(&self) -> bool {
        matches!(self.peek_at(1), Tok::Int(_) | Tok::Float)
    }

    fn member(&mut self) -> PResult {
        let mut shape = self.primary()?;
        loop {
            if self.eat(".") {
                if self.is_op("?") {
                    return Err("unsupported syntax '.?'".into());
                }
                match self.bump() {
                    Tok::Ident(name) => {
                        if self.eat("(") {
                            let args = self.expr_list(")")?;
                            self.receiver_macro(&name, &args)?;
                            shape = Shape::Other;
                        } else {
                            shape = Shape::Select;
                        }
                    }
                    Tok::EscIdent => shape = Shape::Select,
                    t => {
                        return Err(format!(
                            "Syntax error: no viable alternative at input '.{}'",
                            t.describe().trim_matches('\'')
                        ))
                    }
                }
            } else if self.eat("[") {
                if self.is_op("?") {
                    return Err("unsupported syntax '[?'".into());
                }
                self.expr()?;
                self.expect("]")?;
                shape = Shape::Other;
            } else {
                return Ok(shape);
            }
        }
    }

    fn primary(&mut self) -> PResult {
        let leading_dot = self.eat(".");
        if let Tok::Ident(name) = self.peek().clone() {
            // `a.b.C{...}` builds a message.
            let mut k = 1;
            while matches!(self.peek_at(k), Tok::Op("."))
                && matches!(self.peek_at(k + 1), Tok::Ident(_))
            {
                k += 2;
            }
            if matches!(self.peek_at(k), Tok::Op("{")) {
                for _ in 0..k {
                    self.bump();
                }
                self.bump();
                self.field_inits()?;
                return Ok(Shape::Other);
            }
            self.bump();
            if RESERVED.contains(&name.as_str()) {
                return Err(format!("reserved identifier: {name}"));
            }
            if self.eat("(") {
                let args = self.expr_list(")")?;
                if !leading_dot && name == "has" && args.len() == 1 && args[0] != Shape::Select {
                    return Err("invalid argument to has() macro".into());
                }
                return Ok(Shape::Other);
            }
            return Ok(if leading_dot {
                Shape::Other
            } else {
                Shape::Ident(name)
            });
        }
        if leading_dot {
            return self.unexpected();
        }
        if self.eat("(") {
            // Parentheses make no node of their own: `has((a.b))` is fine.
            let inner = self.expr()?;
            self.expect(")")?;
            return Ok(inner);
        }
        if self.eat("[") {
            self.list_elems("]", false)?;
            return Ok(Shape::Other);
        }
        if self.eat("{") {
            self.list_elems("}", true)?;
            return Ok(Shape::Other);
        }
        self.literal()
    }

    fn literal(&mut self) -> PResult {
        let negative = self.eat("-");
        let at = self.pos;
        match self.bump() {
            Tok::Int(text) => {
                let ok = if text == "uint" {
                    false
                } else if let Some(hex) = text.strip_prefix("0x") {
                    let v = i128::from_str_radix(hex, 16).unwrap_or(i128::MAX);
                    (if negative { -v } else { v }) >= i64::MIN as i128
                        && v <= i64::MAX as i128 + i128::from(negative)
                } else {
                    format!("{}{text}", if negative { "-" } else { "" })
                        .parse::<i64>()
                        .is_ok()
                };
                if ok {
                    Ok(Shape::Other)
                } else if text == "uint" {
                    Err("invalid uint literal".into())
                } else {
                    Err("invalid int literal".into())
                }
            }
            Tok::Float => Ok(Shape::Other),
            Tok::Uint | Tok::Str | Tok::True | Tok::False | Tok::Null if !negative => {
                Ok(Shape::Other)
            }
            _ => {
                self.pos = at;
                self.unexpected()
            }
        }
    }

    /// Arguments up to `close`.
    fn expr_list(&mut self, close: &str) -> Result<Vec<Shape>, String> {
        let mut args = Vec::new();
        if self.eat(close) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(close) {
                return Ok(args);
            }
            self.expect(",")?;
        }
    }

    /// List elements or map entries, with an optional trailing comma (a lone `,` included).
    fn list_elems(&mut self, close: &str, map: bool) -> Result<(), String> {
        if self.eat(close) {
            return Ok(());
        }
        if self.eat(",") {
            return self.expect(close);
        }
        loop {
            if self.is_op("?") {
                return Err("unsupported syntax '?'".into());
            }
            self.expr()?;
            if map {
                self.expect(":")?;
                self.expr()?;
            }
            if self.eat(close) {
                return Ok(());
            }
            self.expect(",")?;
            if self.eat(close) {
                return Ok(());
            }
        }
    }

    /// `field: value, ...}` of a message literal.
    fn field_inits(&mut self) -> Result<(), String> {
        if self.eat("}") {
            return Ok(());
        }
        if self.eat(",") {
            return self.expect("}");
        }
        loop {
            if self.is_op("?") {
                return Err("unsupported syntax '?'".into());
            }
            if !matches!(self.peek(), Tok::Ident(_) | Tok::EscIdent) {
                return self.unexpected();
            }
            self.bump();
            self.expect(":")?;
            self.expr()?;
            if self.eat("}") {
                return Ok(());
            }
            self.expect(",")?;
            if self.eat("}") {
                return Ok(());
            }
        }
    }

    /// The comprehension macros want a plain variable name first.
    fn receiver_macro(&self, name: &str, args: &[Shape]) -> Result<(), String> {
        let quantifier = matches!(name, "all" | "exists" | "exists_one" | "existsOne");
        let is_macro = (quantifier || name == "filter") && args.len() == 2
            || name == "map" && (args.len() == 2 || args.len() == 3);
        if !is_macro {
            return Ok(());
        }
        match &args[0] {
            Shape::Ident(v) if v == "__result__" => {
                Err("iteration variable overwrites accumulator variable".into())
            }
            Shape::Ident(_) => Ok(()),
            _ if quantifier => Err("argument must be a simple name".into()),
            _ => Err("argument is not an identifier".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, MAX_DEPTH};

    #[test]
    fn valid_expressions() {
        for ok in [
            "true",
            "response.code >= 400",
            "response.code >= 400 && request.url_path.startsWith('/api')",
            "!(a || b) ? 1 : -2.5e3",
            "request.headers['x-user'] == \"bob\"",
            "[1, 2, 3,].exists(x, x > 2)",
            "{'a': 1u, 'b': 0x1F}",
            "has(request.headers.foo)",
            "a.b.C{f: 1, g: [],}",
            ".a.b",
            "size(r'\\d+') in [1]",
            "b'\\x00\\377' != b''",
            "'''multi\nline'''",
            "x // comment",
            "!-1",
            "--1",
            "-9223372036854775808",
            "[,]",
            "m.map(k, v, k)",
            "a.`b-c`",
            "has((a.b))",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
    }

    #[test]
    fn invalid_expressions() {
        for bad in [
            "",
            "1 +",
            "a b",
            "a = b",
            "a & b",
            "(a",
            "'unterminated",
            "\"bad \\q escape\"",
            "'\\uD800'",
            "has(a)",
            "x.all(a.b, true)",
            "x.map(1, 2)",
            "if",
            "a.?b",
            "!-a",
            "9223372036854775808",
            "18446744073709551616u",
            "a.true",
            "{1}",
            "a ? b",
            "1..2",
            "'a\nb'",
            "#",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn noise_never_panics() {
        const ALPHABET: &[u8] = b"ab_1x.0u\"'rRbB\\()[]{}!-+*/%<>=&|?:,` \n\teE";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (seed % 24) as usize;
            let mut s = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
            }
            let text = String::from_utf8(s).unwrap_or_default();
            let _ = parse(&text);
        }
        let _ = parse(&"[".repeat(100_000));
        let _ = parse(&"!".repeat(100_000));
        let _ = parse(&"a.b".repeat(30_000));
    }

    /// Nesting up to the limit fits the default 2 MiB stack of a spawned thread, even unoptimised.
    #[test]
    fn nesting_at_the_limit_fits_a_thread_stack() {
        let run = || {
            let n = MAX_DEPTH - 1;
            let cases = [
                format!("{}1{}", "[".repeat(n), "]".repeat(n)),
                format!("{}1{}", "f(".repeat(n), ")".repeat(n)),
                format!("{}1{}", "{1:".repeat(n), "}".repeat(n)),
                format!("{}1{}", "(".repeat(n), ")".repeat(n)),
                format!("{}1", "a ? b : ".repeat(n)),
                format!("{}1{}", "x.all(v, ".repeat(n), ")".repeat(n)),
                format!("{}1{}", "A{f: ".repeat(n), "}".repeat(n)),
                format!("{}1{}", "a[".repeat(n), "]".repeat(n)),
                format!("{}1{}", "!(".repeat(n), ")".repeat(n)),
                format!("{}1{}", "1 + (".repeat(n), ")".repeat(n)),
            ];
            for c in &cases {
                assert!(parse(c).is_ok(), "{}", &c[..20]);
            }
        };
        let t = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .expect("thread starts");
        assert!(t.join().is_ok());
    }

    #[test]
    fn deep_nesting_is_limited() {
        let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
        assert!(parse(&deep).is_err());
        let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&ok).is_ok());
    }
}
