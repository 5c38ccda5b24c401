//! Reading YAML and JSON text into documents that remember where every field came from.
//!
//! A stream is split into documents at `---` lines first, so that a syntax error in one document
//! costs only that document. Each document is parsed with an event parser (iteratively, with depth,
//! node and size budgets, so hostile input cannot blow the stack or the heap) into a
//! `serde_json::Value` plus a [`Positions`] table from field path to line. Kubernetes semantics
//! apply while building the value: duplicate keys are errors, `null` map entries are dropped (the
//! API server prunes them), and integral floats become integers so that `port: 80.0` reads as 80.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Largest input accepted for one file, in bytes. etcd refuses objects over 1.5 MiB, so anything
/// much larger than that is a mistake, not a config.
pub const MAX_FILE_BYTES: usize = 8 << 20;
/// Deepest nesting accepted. Istio's deepest real resources nest about 15 levels.
pub const MAX_DEPTH: usize = 128;
/// Most nodes (after alias expansion) in one document: stops "billion laughs" alias bombs.
pub const MAX_NODES: usize = 1_000_000;

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    /// 1-based line of the document's first line in the file.
    pub line: usize,
    /// 0-based position of the document in its file.
    pub index: usize,
}

/// Field path (`spec.http[0].route`) to the 1-based line where that field's value starts.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    lines: HashMap<String, usize>,
    first: usize,
}

impl Positions {
    /// The positions below `prefix` (e.g. `items[2]`), re-rooted so that `prefix.x` becomes `x`:
    /// for the objects inside a `kind: List`.
    pub fn subtree(&self, prefix: &str) -> Positions {
        let mut lines = HashMap::new();
        for (k, v) in &self.lines {
            if k == prefix {
                lines.insert(String::new(), *v);
            } else if let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
                lines.insert(rest.to_string(), *v);
            }
        }
        let first = self.lines.get(prefix).copied().unwrap_or(self.first);
        Positions { lines, first }
    }

    /// Only the document's own line: what is left to know once the document is validated.
    pub fn root_only(&self) -> Positions {
        Positions {
            lines: self
                .lines
                .get("")
                .map(|l| HashMap::from([(String::new(), *l)]))
                .unwrap_or_default(),
            first: self.first,
        }
    }

    /// Line of `path`, or of its nearest ancestor that has one (missing fields point at their parent).
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return *l;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.lines.get("").copied().unwrap_or(self.first),
            }
        }
    }
}

/// One parsed document: its value, where it came from and where each field is.
#[derive(Debug, Clone)]
pub struct RawDocument {
    pub origin: Origin,
    pub value: Value,
    pub positions: Positions,
}

/// A document that could not be read as YAML at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SyntaxError {
    pub file: Arc<str>,
    pub line: usize,
    pub index: usize,
    pub message: String,
}

/// Split `text` into documents and parse each. Empty documents (only comments or `---`) are
/// skipped; each entry is either a document or the reason it could not be read.
pub fn parse_stream(file: &str, text: &str) -> Vec<Result<RawDocument, SyntaxError>> {
    let file: Arc<str> = Arc::from(file);
    if text.len() > MAX_FILE_BYTES {
        return vec![Err(SyntaxError {
            file,
            line: 1,
            index: 0,
            message: format!(
                "input is {} bytes, over the limit of {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
        })];
    }
    // YAML allows only printable characters; the scanner would stop silently at a NUL and lose
    // the rest of the file, so refuse such input whole.
    if let Some((pos, c)) = text.char_indices().find(|(_, c)| !is_yaml_printable(*c)) {
        let line = 1 + text[..pos].matches('\n').count();
        return vec![Err(SyntaxError {
            file,
            line,
            index: 0,
            message: format!(
                "control character U+{:04X} is not allowed in YAML",
                c as u32
            ),
        })];
    }
    let mut out = Vec::new();
    for (index, (line, chunk)) in split_documents(text).into_iter().enumerate() {
        let origin = Origin {
            file: file.clone(),
            line,
            index,
        };
        match parse_document(chunk, line) {
            Ok(Some((value, positions))) => out.push(Ok(RawDocument {
                origin,
                value,
                positions,
            })),
            Ok(None) => {}
            Err((l, message)) => out.push(Err(SyntaxError {
                file: file.clone(),
                line: l,
                index,
                message,
            })),
        }
    }
    out
}

fn is_yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Cut the stream at document markers. Returns (first line, text) per document, lines 1-based.
/// A `---` line inside a block scalar would need indentation, so column-0 markers are safe cuts.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---"
            || bare.starts_with("--- ")
            || bare.starts_with("---\t")
            || bare == "..."
            || bare.starts_with("... ");
        if is_marker {
            docs.push((start_line, &text[start..offset]));
            // Content after `--- ` on the same line belongs to the next document; keep the
            // marker itself so the parser sees it and line numbers stay true.
            start = offset;
            start_line = n + 1;
            if bare.starts_with("...") {
                start = offset + line.len();
                start_line = n + 2;
            }
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs
}

enum Frame {
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
        line: usize,
    },
    Map {
        map: Map<String, Value>,
        key: Option<(String, usize)>,
        path: String,
        anchor: usize,
        line: usize,
        merges: Vec<Value>,
    },
}

struct Builder {
    base_line: usize,
    positions: HashMap<String, usize>,
    anchors: HashMap<usize, Value>,
    nodes: usize,
}

type Fail = (usize, String);

fn parse_document(chunk: &str, base_line: usize) -> Result<Option<(Value, Positions)>, Fail> {
    let mut parser = Parser::new_from_str(chunk);
    let mut b = Builder {
        base_line,
        positions: HashMap::new(),
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    let mut docs_seen = 0;
    loop {
        let (ev, mark) = parser
            .next_token()
            .map_err(|e| (b.line(e.marker()), e.info().to_string()))?;
        let line = b.line(&mark);
        match ev {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                docs_seen += 1;
                if docs_seen > 1 {
                    return Err((line, "unexpected second document in one chunk".into()));
                }
            }
            Event::DocumentEnd => {}
            Event::Alias(id) => {
                let v = b
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or((line, "alias to an unknown anchor".to_string()))?;
                b.nodes += count_nodes(&v);
                b.check_budget(line)?;
                b.attach(&mut stack, &mut root, v, line, 0)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                b.nodes += 1;
                b.check_budget(line)?;
                let tag = tag.map(|t| t.suffix);
                let v = resolve_scalar(&text, style, tag.as_deref()).map_err(|m| (line, m))?;
                // A scalar in key position becomes the pending key of its map.
                if let Some(Frame::Map { key, map, .. }) = stack.last_mut() {
                    if key.is_none() {
                        let k = match v {
                            Value::String(s) => s,
                            Value::Null => "null".to_string(),
                            other => other.to_string(),
                        };
                        if map.contains_key(&k) {
                            return Err((line, format!("duplicate key \"{k}\"")));
                        }
                        *key = Some((k, line));
                        continue;
                    }
                }
                b.attach(&mut stack, &mut root, v, line, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                b.nodes += 1;
                b.check_budget(line)?;
                let path = b.child_path(&stack).map_err(|m| (line, m))?;
                if stack.len() >= MAX_DEPTH {
                    return Err((line, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                    line,
                });
            }
            Event::MappingStart(anchor, _) => {
                b.nodes += 1;
                b.check_budget(line)?;
                let path = b.child_path(&stack).map_err(|m| (line, m))?;
                if stack.len() >= MAX_DEPTH {
                    return Err((line, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    path,
                    anchor,
                    line,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    path,
                    anchor,
                    line,
                }) => {
                    b.positions.entry(path).or_insert(line);
                    b.attach(&mut stack, &mut root, Value::Array(items), line, anchor)?;
                }
                _ => return Err((line, "unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    mut map,
                    path,
                    anchor,
                    line,
                    merges,
                    ..
                }) => {
                    for m in merges {
                        merge_into(&mut map, m);
                    }
                    b.positions.entry(path).or_insert(line);
                    b.attach(&mut stack, &mut root, Value::Object(map), line, anchor)?;
                }
                _ => return Err((line, "unbalanced mapping".into())),
            },
        }
    }
    Ok(root.filter(|v| !v.is_null()).map(|v| {
        (
            v,
            Positions {
                lines: b.positions,
                first: base_line,
            },
        )
    }))
}

impl Builder {
    fn line(&self, m: &Marker) -> usize {
        self.base_line + m.line().max(1) - 1
    }

    fn check_budget(&self, line: usize) -> Result<(), Fail> {
        if self.nodes > MAX_NODES {
            return Err((
                line,
                format!("document has more than {MAX_NODES} nodes (alias expansion?)"),
            ));
        }
        Ok(())
    }

    /// The path of the value that the next event will produce.
    fn child_path(&self, stack: &[Frame]) -> Result<String, String> {
        Ok(match stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, path, .. }) => format!("{path}[{}]", items.len()),
            Some(Frame::Map {
                key: Some((k, _)),
                path,
                ..
            }) => join(path, k),
            Some(Frame::Map { key: None, .. }) => {
                return Err("a mapping or sequence cannot be used as a key".into())
            }
        })
    }

    fn attach(
        &mut self,
        stack: &mut [Frame],
        root: &mut Option<Value>,
        v: Value,
        line: usize,
        anchor: usize,
    ) -> Result<(), Fail> {
        if anchor != 0 {
            self.anchors.insert(anchor, v.clone());
        }
        match stack.last_mut() {
            None => *root = Some(v),
            Some(Frame::Seq { items, path, .. }) => {
                self.positions
                    .entry(format!("{path}[{}]", items.len()))
                    .or_insert(line);
                items.push(v);
            }
            Some(Frame::Map {
                map,
                key,
                path,
                merges,
                ..
            }) => {
                let Some((k, kline)) = key.take() else {
                    return Err((line, "a mapping or sequence cannot be used as a key".into()));
                };
                if k == "<<" {
                    merges.push(v);
                    return Ok(());
                }
                self.positions.insert(join(path, &k), kline);
                // The API server prunes nulls from objects; an absent field and `field: ~` agree.
                if !v.is_null() {
                    map.insert(k, v);
                }
            }
        }
        Ok(())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_into(map: &mut Map<String, Value>, m: Value) {
    match m {
        Value::Object(o) => {
            for (k, v) in o {
                map.entry(k).or_insert(v);
            }
        }
        Value::Array(items) => {
            for i in items {
                merge_into(map, i);
            }
        }
        _ => {}
    }
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core-schema resolution of a scalar, as Kubernetes tooling reads it.
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    if let Some(tag) = tag {
        return match tag {
            "str" => Ok(Value::String(text.to_string())),
            "int" => parse_int(text).ok_or_else(|| format!("{text:?} is not an integer")),
            "float" => parse_float(text).ok_or_else(|| format!("{text:?} is not a number")),
            "bool" => parse_bool(text)
                .map(Value::Bool)
                .ok_or_else(|| format!("{text:?} is not a boolean")),
            "null" => Ok(Value::Null),
            "binary" | "timestamp" => Ok(Value::String(text.to_string())),
            other => Err(format!("unsupported tag !{other}")),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(v) = parse_int(text) {
        return Ok(v);
    }
    if let Some(v) = parse_float(text) {
        return Ok(v);
    }
    Ok(Value::String(text.to_string()))
}

fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(t: &str) -> Option<Value> {
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = body.strip_prefix("0o") {
        (8, o)
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        let v = i64::try_from(mag)
            .ok()
            .map(|m| -m)
            .or_else(|| (mag == 1u128 << 63).then_some(i64::MIN))?;
        Some(Value::Number(v.into()))
    } else if let Ok(v) = u64::try_from(mag) {
        Some(Value::Number(v.into()))
    } else {
        Number::from_f64(mag as f64).map(Value::Number)
    }
}

fn parse_float(t: &str) -> Option<Value> {
    let special = match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => None,
    };
    if let Some(f) = special {
        // JSON has no infinities; keep the text so a numeric field reports a type error.
        let _ = f;
        return Some(Value::String(t.to_string()));
    }
    let looks_numeric = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        && t.chars().any(|c| c.is_ascii_digit());
    if !looks_numeric {
        return None;
    }
    let f: f64 = t.parse().ok()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Some(Value::Number((f as i64).into()));
    }
    Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> RawDocument {
        let mut docs = parse_stream("t.yaml", text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).expect("parses")
    }

    #[test]
    fn positions_follow_fields_across_documents() {
        let text = "a: 1\n---\nkind: X\nspec:\n  http:\n  - route:\n    - weight: 5\n";
        let docs = parse_stream("f.yaml", text);
        assert_eq!(docs.len(), 2);
        let d = docs[1].as_ref().unwrap();
        assert_eq!(d.origin.line, 2);
        assert_eq!(d.positions.line_of("kind"), 3);
        assert_eq!(d.positions.line_of("spec.http[0].route[0].weight"), 7);
        assert_eq!(d.positions.line_of("spec.http[0].route[0].missing"), 7);
    }

    #[test]
    fn duplicate_keys_are_errors_with_line() {
        let docs = parse_stream("f.yaml", "a: 1\nb:\n  c: 1\n  c: 2\n");
        let e = docs[0].as_ref().unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.message.contains("duplicate key \"c\""), "{e}");
    }

    #[test]
    fn syntax_error_costs_one_document_only() {
        let docs = parse_stream("f.yaml", "a: [1\n---\nb: 2\n");
        assert!(docs[0].is_err());
        assert_eq!(docs[1].as_ref().unwrap().value["b"], 2);
    }

    #[test]
    fn scalars_resolve_like_kubernetes() {
        let d = one("a: 80\nb: \"80\"\nc: 1.5\nd: 2.0\ne: true\nf: ~\ng: 0x1F\nh: 1e3\ni: yes\n");
        assert_eq!(d.value["a"], 80);
        assert_eq!(d.value["b"], "80");
        assert_eq!(d.value["c"], 1.5);
        assert_eq!(d.value["d"], 2);
        assert_eq!(d.value["e"], true);
        assert!(d.value.get("f").is_none());
        assert_eq!(d.value["g"], 31);
        assert_eq!(d.value["h"], 1000);
        assert_eq!(d.value["i"], "yes");
    }

    #[test]
    fn json_is_read_too() {
        let d =
            one("{\"kind\": \"Gateway\", \"spec\": {\"servers\": [{\"port\": {\"number\": 80}}]}}");
        assert_eq!(d.value["spec"]["servers"][0]["port"]["number"], 80);
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let docs = parse_stream("f.yaml", &bomb);
        assert!(docs[0].as_ref().unwrap_err().message.contains("nodes"));
        let deep = "[".repeat(10_000);
        let docs = parse_stream("f.yaml", &deep);
        assert!(docs[0].is_err());
    }

    #[test]
    fn merge_keys_apply() {
        let d = one("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n");
        assert_eq!(d.value["m"]["x"], 1);
        assert_eq!(d.value["m"]["y"], 3);
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_stream("f.yaml", "---\n# only a comment\n---\na: 1\n---\n");
        assert_eq!(docs.len(), 1);
    }
}
