//! The immutable view of the configuration that everything downstream reads: accepted resources
//! indexed by kind and `namespace/name`, the mesh config in effect, and what was rejected and why.
//! A snapshot is never changed after it is published; the next one replaces it whole.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use api::types::mesh::MeshConfig;
use api::{Kind, Problem, Resource, Severity};
use serde_json::{json, Value};

/// Identity of a resource: two documents with the same key describe the same object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds (Namespace).
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    /// The index key within a kind: `namespace/name`, or `name` for cluster-scoped kinds.
    pub fn path(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    /// `virtualservice.networking.istio.io/reviews`, as kubectl names an object in its output.
    pub fn kubectl_name(&self) -> String {
        let kind = self.kind.name().to_ascii_lowercase();
        match self.kind.group() {
            "" => format!("{kind}/{}", self.name),
            g => format!("{kind}.{g}/{}", self.name),
        }
    }

    pub(crate) fn is_cluster_scoped(kind: Kind) -> bool {
        kind == Kind::Namespace
    }

    /// The key a parsed document claims, read loosely (before, and whatever the outcome of,
    /// strict decoding) so that a rejected document can still be matched with the last good
    /// version of the resource it meant to change.
    pub fn of_document(value: &Value) -> Option<ResourceKey> {
        let api_version = value.get("apiVersion")?.as_str()?;
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let kind = Kind::lookup(group, value.get("kind")?.as_str()?)?;
        let meta = value.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        if name.is_empty() {
            return None;
        }
        let namespace = if Self::is_cluster_scoped(kind) {
            String::new()
        } else {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() => ns.to_string(),
                _ => "default".to_string(),
            }
        };
        Some(ResourceKey {
            kind,
            namespace,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.path())
    }
}

/// One accepted resource.
///
/// Kept small: ten thousand ServiceEntries are the control plane's largest standing cost. The
/// document is held as its JSON text rather than a parsed tree (a tenth of the size), and the
/// resource keeps only its own line of the field-position table, which validation needed whole.
#[derive(Debug)]
pub struct Entry {
    pub key: ResourceKey,
    pub resource: Resource,
    /// The document as parsed, in JSON text with its keys in document order.
    document: Box<str>,
    /// Validation warnings: reported, not blocking.
    pub warnings: Vec<Problem>,
}

impl Entry {
    /// `document` is the parsed document written back as JSON by serde_json.
    pub fn new(
        key: ResourceKey,
        mut resource: Resource,
        document: String,
        warnings: Vec<Problem>,
    ) -> Entry {
        resource.positions = resource.positions.root_only();
        Entry {
            key,
            resource,
            document: document.into_boxed_str(),
            warnings,
        }
    }

    /// The document as parsed: what `get` shows and what a write is compared with.
    pub fn value(&self) -> Value {
        // Written by serde_json from a Value just before: it reads back.
        serde_json::from_str(&self.document).unwrap_or(Value::Null)
    }

    pub fn file(&self) -> &str {
        &self.resource.origin.file
    }
    /// The document's first line of content (its origin line is the `---` before it).
    pub fn line(&self) -> usize {
        self.resource.positions.line_of("")
    }
    /// Same content from the same place: what decides whether a rebuild changed anything.
    fn same_as(&self, other: &Entry) -> bool {
        // Text equality: a document whose keys were only reordered counts as changed, which
        // costs one needless push and never a missed one.
        self.document == other.document
            && self.file() == other.file()
            && self.line() == other.line()
            && self.warnings == other.warnings
    }
}

/// A document that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub file: String,
    pub line: usize,
    /// The resource the document claims, when it got far enough to say.
    pub key: Option<ResourceKey>,
    /// Why: the errors first, then any warnings the same document had.
    pub reasons: Vec<Problem>,
    /// The previous accepted version of this resource is still in force.
    pub kept_last_good: bool,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: rejected", self.file, self.line)?;
        if let Some(k) = &self.key {
            write!(f, " {k}")?;
        }
        let errors: Vec<String> = self
            .reasons
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        write!(f, ": {}", errors.join("; "))?;
        if self.kept_last_good {
            f.write_str(" (last good version kept)")?;
        }
        Ok(())
    }
}

/// Where the mesh config in force came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshSource {
    /// `None` when there is no mesh file: Istio's defaults alone.
    pub file: Option<String>,
    /// The config as written, before defaults.
    pub written: MeshConfig,
}

/// Everything the control plane knows about configuration at one version.
#[derive(Debug)]
pub struct ConfigSnapshot {
    /// Goes up by one for every published change; never for a rescan that found nothing new.
    pub version: u64,
    pub resources: BTreeMap<Kind, BTreeMap<String, Arc<Entry>>>,
    /// The mesh config in effect, Istio's defaults applied.
    pub mesh: Arc<MeshConfig>,
    pub mesh_source: MeshSource,
    /// Rejected documents, in file order.
    pub rejected: Vec<Rejection>,
    /// Warnings of accepted documents and the mesh config, in file order.
    pub warnings: Vec<Problem>,
    /// Every file read, with how many documents it holds (the writer refuses to rewrite files
    /// holding more than one).
    pub files: BTreeMap<String, usize>,
}

impl ConfigSnapshot {
    /// What the store holds before the first load: no resources, Istio's default mesh.
    pub fn empty() -> ConfigSnapshot {
        ConfigSnapshot {
            version: 0,
            resources: BTreeMap::new(),
            mesh: Arc::new(MeshConfig::default().with_defaults()),
            mesh_source: MeshSource {
                file: None,
                written: MeshConfig::default(),
            },
            rejected: Vec::new(),
            warnings: Vec::new(),
            files: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &ResourceKey) -> Option<&Arc<Entry>> {
        self.resources.get(&key.kind)?.get(&key.path())
    }

    /// Accepted resources of one kind, by `namespace/name`.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Arc<Entry>> {
        self.resources
            .get(&kind)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub fn len(&self) -> usize {
        self.resources.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Same content as `other`, whatever the versions: an unchanged rescan compares equal.
    pub fn same_content(&self, other: &ConfigSnapshot) -> bool {
        self.mesh == other.mesh
            && self.mesh_source == other.mesh_source
            && self.rejected == other.rejected
            && self.warnings == other.warnings
            && self.files == other.files
            && self.resources.len() == other.resources.len()
            && self.resources.iter().zip(&other.resources).all(|(a, b)| {
                a.0 == b.0
                    && a.1.len() == b.1.len()
                    && a.1
                        .iter()
                        .zip(b.1)
                        .all(|(x, y)| x.0 == y.0 && (Arc::ptr_eq(x.1, y.1) || x.1.same_as(y.1)))
            })
    }

    /// The JSON behind `/debug/configz`: resources per kind with their origin, the mesh config
    /// in effect, rejected documents with their reasons, and warnings.
    pub fn configz(&self) -> Value {
        let resources: serde_json::Map<String, Value> = self
            .resources
            .iter()
            .map(|(kind, entries)| {
                let list: Vec<Value> = entries
                    .values()
                    .map(|e| {
                        json!({
                            "namespace": e.key.namespace,
                            "name": e.key.name,
                            "origin": format!("{}:{}", e.file(), e.line()),
                            "warnings": e.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                (kind.name().to_string(), Value::Array(list))
            })
            .collect();
        let rejected: Vec<Value> = self
            .rejected
            .iter()
            .map(|r| {
                json!({
                    "file": r.file,
                    "line": r.line,
                    "resource": r.key.as_ref().map(ToString::to_string),
                    "reasons": r.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "keptLastGood": r.kept_last_good,
                })
            })
            .collect();
        json!({
            "version": self.version,
            "resources": resources,
            "meshConfig": {
                "file": self.mesh_source.file,
                "effective": serde_json::to_value(&*self.mesh).unwrap_or(Value::Null),
            },
            "rejected": rejected,
            "warnings": self.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}
