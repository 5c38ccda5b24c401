//! Writing through the store: what `bowline apply` and `bowline delete` do against a running
//! control plane. Every document is checked exactly as the store will check it before anything
//! is written; an accepted document is written alone into `<kind>-<namespace>-<name>.yaml`
//! (`<kind>-<name>.yaml` for cluster-scoped kinds) in the config directory, atomically (temporary
//! file, then rename), and the store picks it up through its watch like any other edit.
//!
//! A resource that already lives in a file is rewritten (or removed) in that file, but only when
//! that file holds that one document. A resource defined in a hand-written multi-document file is
//! refused with a message naming the file: rewriting it would lose the user's comments, order and
//! formatting, and writing a second copy elsewhere would only make a duplicate.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use api::source::parse_stream;
use api::{Decoded, Severity};
use serde_json::Value;
use tracing::info;
use yaml_rust2::{Yaml, YamlEmitter};

use super::snapshot::{ConfigSnapshot, ResourceKey};
use super::StoreHandle;

/// What happened to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
    Deleted,
    NotFound,
    /// Nothing was written; the reason.
    Rejected(String),
}

/// The result for one document, printed the way kubectl prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// The resource, when the document said which one.
    pub key: Option<ResourceKey>,
    /// Where the document was read in the input (`file:line`).
    pub input: String,
    /// The file written or removed.
    pub file: Option<PathBuf>,
    pub outcome: Outcome,
}

impl fmt::Display for WriteResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .key
            .as_ref()
            .map_or_else(|| self.input.clone(), ResourceKey::kubectl_name);
        match &self.outcome {
            Outcome::Created => write!(f, "{name} created"),
            Outcome::Configured => write!(f, "{name} configured"),
            Outcome::Unchanged => write!(f, "{name} unchanged"),
            Outcome::Deleted => write!(f, "{name} deleted"),
            Outcome::NotFound => match &self.key {
                Some(k) => {
                    let group = match k.kind.group() {
                        "" => String::new(),
                        g => format!(".{g}"),
                    };
                    write!(
                        f,
                        "Error from server (NotFound): {}{group} \"{}\" not found",
                        k.kind.plural(),
                        k.name
                    )
                }
                None => write!(f, "Error from server (NotFound): {name} not found"),
            },
            Outcome::Rejected(reason) => write!(f, "error: {name}: {reason}"),
        }
    }
}

/// Writes validated documents into the config directory.
pub struct ConfigWriter {
    root: PathBuf,
    store: StoreHandle,
    // Two applies of the same resource must not interleave their read-compare-write.
    lock: Mutex<()>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ConfigWriter {
    /// A writer into `root`, the directory `store` watches.
    pub fn new(root: impl Into<PathBuf>, store: StoreHandle) -> ConfigWriter {
        ConfigWriter {
            root: root.into(),
            store,
            lock: Mutex::new(()),
        }
    }

    /// `kubectl apply -f`: validate each document of `text` (named `input` in messages) and write
    /// the valid ones. Blocking file IO: call from a blocking context.
    pub fn apply(&self, input: &str, text: &str) -> Vec<WriteResult> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.each_document(Op::Apply, input, text)
    }

    /// `kubectl delete -f`: remove the resource each document of `text` names.
    pub fn delete(&self, input: &str, text: &str) -> Vec<WriteResult> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.each_document(Op::Delete, input, text)
    }

    fn each_document(&self, op: Op, input: &str, text: &str) -> Vec<WriteResult> {
        let snap = self.store.load();
        let mut out = Vec::new();
        for doc in parse_stream(input, text) {
            let doc = match doc {
                Ok(doc) => doc,
                Err(e) => {
                    out.push(WriteResult {
                        key: None,
                        input: format!("{}:{}", e.file, e.line),
                        file: None,
                        outcome: Outcome::Rejected(format!("invalid YAML: {}", e.message)),
                    });
                    continue;
                }
            };
            let at = format!("{}:{}", doc.origin.file, doc.origin.line);
            let Some(key) = ResourceKey::of_document(&doc.value) else {
                out.push(WriteResult {
                    key: None,
                    input: at,
                    file: None,
                    outcome: Outcome::Rejected(
                        "not a resource Bowline serves: needs a known apiVersion and kind, and \
                         metadata.name"
                            .into(),
                    ),
                });
                continue;
            };
            let (file, outcome) = match op {
                // Deleting needs only the identity; applying needs the document to be valid.
                Op::Delete => self.delete_one(&snap, &key),
                Op::Apply => {
                    let value = doc.value.clone();
                    match check(doc) {
                        Err(reason) => (None, Outcome::Rejected(reason)),
                        Ok(()) => self.apply_one(&snap, &key, value),
                    }
                }
            };
            out.push(WriteResult {
                key: Some(key),
                input: at,
                file,
                outcome,
            });
        }
        out
    }

    fn apply_one(
        &self,
        snap: &ConfigSnapshot,
        key: &ResourceKey,
        value: Value,
    ) -> (Option<PathBuf>, Outcome) {
        if let Err(reason) = safe_name(key) {
            return (None, Outcome::Rejected(reason));
        }
        let value = normalize(key, value);
        let target = self.locate(snap, key);
        let outcome = match single_document(&target, key) {
            Err(reason) => return (None, Outcome::Rejected(reason)),
            Ok(Existing::None) => Outcome::Created,
            Ok(Existing::Same(old)) if normalize(key, old.clone()) == value => {
                return (Some(target), Outcome::Unchanged)
            }
            Ok(Existing::Same(_) | Existing::Unreadable) => Outcome::Configured,
        };
        if let Err(e) = write_atomic(&target, &to_yaml(&value)) {
            return (
                None,
                Outcome::Rejected(format!("writing {}: {e}", target.display())),
            );
        }
        info!(resource = %key, file = %target.display(), outcome = ?outcome, "config applied");
        (Some(target), outcome)
    }

    fn delete_one(&self, snap: &ConfigSnapshot, key: &ResourceKey) -> (Option<PathBuf>, Outcome) {
        if safe_name(key).is_err() {
            return (None, Outcome::NotFound);
        }
        let target = self.locate(snap, key);
        match single_document(&target, key) {
            Err(reason) => (None, Outcome::Rejected(reason)),
            Ok(Existing::None) => (None, Outcome::NotFound),
            Ok(Existing::Same(_) | Existing::Unreadable) => match std::fs::remove_file(&target) {
                Ok(()) => {
                    info!(resource = %key, file = %target.display(), "config deleted");
                    (Some(target), Outcome::Deleted)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, Outcome::NotFound),
                Err(e) => (
                    None,
                    Outcome::Rejected(format!("removing {}: {e}", target.display())),
                ),
            },
        }
    }

    /// The file that holds (or will hold) `key`: where the store found it, accepted or rejected,
    /// else its own file. The snapshot may lag a write by the debounce; the file itself is
    /// re-read before anything is decided.
    fn locate(&self, snap: &ConfigSnapshot, key: &ResourceKey) -> PathBuf {
        if let Some(e) = snap.get(key) {
            return PathBuf::from(e.file());
        }
        if let Some(r) = snap.rejected.iter().find(|r| r.key.as_ref() == Some(key)) {
            return PathBuf::from(&r.file);
        }
        self.root.join(own_file_name(key))
    }
}

#[derive(Clone, Copy)]
enum Op {
    Apply,
    Delete,
}

/// Decode and validate one document as the store will; the reason when it would be rejected.
fn check(doc: api::source::RawDocument) -> Result<(), String> {
    let problems = match api::decode(doc) {
        Decoded::Resource(r) => r.problems(),
        Decoded::Invalid(p) => p,
        Decoded::Other(o) => {
            return Err(format!(
                "kind {} of {} is not served by Bowline",
                o.kind, o.api_version
            ))
        }
    };
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// `<kind>-<namespace>-<name>.yaml`, lower-case kind.
pub fn own_file_name(key: &ResourceKey) -> String {
    let kind = key.kind.name().to_ascii_lowercase();
    if key.namespace.is_empty() {
        format!("{kind}-{}.yaml", key.name)
    } else {
        format!("{kind}-{}-{}.yaml", key.namespace, key.name)
    }
}

/// Names become file names: allow only what Kubernetes allows in names, so that no name can
/// reach outside the directory or hide a file.
fn safe_name(key: &ResourceKey) -> Result<(), String> {
    let ok = |s: &str| {
        !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    if ok(&key.name) && ok(&key.namespace) {
        Ok(())
    } else {
        Err(format!(
            "{key}: names must be lower-case DNS names (a-z, 0-9, '-', '.')"
        ))
    }
}

/// Write the namespace into the document, so that the file says what the key says.
fn normalize(key: &ResourceKey, mut value: Value) -> Value {
    if !key.namespace.is_empty() {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(key.namespace.clone()));
        }
    }
    value
}

enum Existing {
    None,
    /// The file holds exactly this resource, as this value.
    Same(Value),
    /// The file holds one document that cannot be read; it is the resource's own file or the
    /// store located the resource there, so it may be replaced.
    Unreadable,
}

fn single_document(path: &Path, key: &ResourceKey) -> Result<Existing, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let name = path.display().to_string();
    let mut docs = parse_stream(&name, &text);
    match docs.len() {
        0 => Ok(Existing::None),
        1 => match docs.remove(0) {
            Err(_) => Ok(Existing::Unreadable),
            Ok(doc) => match ResourceKey::of_document(&doc.value) {
                Some(k) if k == *key => Ok(Existing::Same(doc.value)),
                Some(other) => Err(format!(
                    "{name} already holds {other}; refusing to overwrite it with {key}"
                )),
                None => Ok(Existing::Unreadable),
            },
        },
        n => Err(format!(
            "{key} is defined in {name}, a file of {n} documents written by hand; Bowline does \
             not rewrite such files: edit {name} instead"
        )),
    }
}

/// Write `contents` to `path` so that a reader (the store's scan) sees the old file or the new
/// one, never half of one: a hidden temporary file in the same directory, flushed, then renamed.
fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("resource.yaml");
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A document as YAML (what the writer writes and `bowline get -o yaml` prints); as JSON (which
/// is YAML too) in the unlikely case the YAML emitter's output would not read back as the same
/// value.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    let emitted = YamlEmitter::new(&mut out).dump(&yaml_of(value)).is_ok();
    if emitted {
        out.push('\n');
        let same = parse_stream("<emitted>", &out)
            .first()
            .and_then(|d| d.as_ref().ok())
            .is_some_and(|d| d.value == *value);
        if same {
            return out;
        }
    }
    let mut json = serde_json::to_string_pretty(value).unwrap_or_default();
    json.push('\n');
    json
}

fn yaml_of(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(yaml_of).collect()),
        Value::Object(m) => {
            let mut h = yaml_rust2::yaml::Hash::new();
            for (k, v) in m {
                h.insert(Yaml::String(k.clone()), yaml_of(v));
            }
            Yaml::Hash(h)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::Kind;
    use serde_json::json;

    #[test]
    fn emitted_yaml_reads_back_as_the_same_value() {
        // Strings that a careless emitter would let YAML read as booleans, numbers or nulls.
        let value = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "tricky", "namespace": "default"},
            "data": {"a": "yes", "b": "1.0", "c": "null", "d": "~", "e": "x: y", "f": "- z",
                     "g": "multi\nline", "h": "", "j": "#not a comment"},
            "n": [1, -2, 2.5, true, null],
        });
        let text = to_yaml(&value);
        assert!(
            !text.trim_start().starts_with('{'),
            "fell back to JSON: {text}"
        );
        let back = parse_stream("t", &text).remove(0).expect("parses");
        assert_eq!(back.value, value, "{text}");

        // The emitter leaves `0o17` unquoted, which YAML 1.2 reads as 15: the read-back check
        // catches it and the document is written as JSON instead, with its value intact.
        let octal = json!({"kind": "ConfigMap", "data": {"i": "0o17"}});
        let text = to_yaml(&octal);
        let back = parse_stream("t", &text).remove(0).expect("parses");
        assert_eq!(back.value, octal, "{text}");
    }

    #[test]
    fn own_file_names() {
        let k = |kind, ns: &str| ResourceKey {
            kind,
            namespace: ns.into(),
            name: "reviews".into(),
        };
        assert_eq!(
            own_file_name(&k(Kind::VirtualService, "bookinfo")),
            "virtualservice-bookinfo-reviews.yaml"
        );
        assert_eq!(
            own_file_name(&k(Kind::Namespace, "")),
            "namespace-reviews.yaml"
        );
        assert!(safe_name(&k(Kind::Service, "default")).is_ok());
        let mut bad = k(Kind::Service, "default");
        bad.name = "../x".into();
        assert!(safe_name(&bad).is_err());
    }
}
