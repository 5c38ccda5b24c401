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

mod lex;
#[cfg(test)]
mod tests;

use lex::{lex, Tok};

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
