//! Turning a [`SourceSet`] into the next [`ConfigSnapshot`], off-lock. Every document is decoded
//! and validated on its own; a rejected document costs only itself, and when it names a resource
//! that was accepted before, that last good version stays in force.
//!
//! Decoding is cached per file by text, so a change to one file re-reads only that file; the
//! cross-document steps (duplicates, last good versions) run over the whole set every time,
//! because they depend on every file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use api::source::parse_stream;
use api::types::mesh::{read_mesh_config, MeshConfig};
use api::{Decoded, Problem, Severity};

use super::snapshot::{ConfigSnapshot, Entry, MeshSource, Rejection, ResourceKey};
use super::source::{SourceSet, SourceText};

/// What became of one document of a file, independent of the other files.
#[derive(Debug, Clone)]
enum DocOutcome {
    Accepted(Arc<Entry>),
    Rejected(Rejection),
    /// A kind Bowline does not serve (another project's CRD): neither kept nor an error.
    Ignored,
}

#[derive(Debug, Clone)]
struct CachedFile {
    text: Result<String, String>,
    documents: usize,
    outcomes: Arc<Vec<DocOutcome>>,
}

/// Decoded files from the previous build, reused while their text is unchanged.
#[derive(Debug, Default, Clone)]
pub(crate) struct DecodeCache {
    files: HashMap<String, CachedFile>,
}

impl DecodeCache {
    fn get(&mut self, t: &SourceText) -> (usize, Arc<Vec<DocOutcome>>) {
        if let Some(c) = self.files.get(&t.name) {
            if c.text == t.text {
                return (c.documents, c.outcomes.clone());
            }
        }
        let (documents, outcomes) = decode_file(t);
        let outcomes = Arc::new(outcomes);
        self.files.insert(
            t.name.clone(),
            CachedFile {
                text: t.text.clone(),
                documents,
                outcomes: outcomes.clone(),
            },
        );
        (documents, outcomes)
    }

    fn retain(&mut self, set: &SourceSet) {
        let names: BTreeSet<&str> = set.texts.iter().map(|t| t.name.as_str()).collect();
        self.files.retain(|k, _| names.contains(k.as_str()));
    }
}

/// Decode and validate every document of one file.
fn decode_file(t: &SourceText) -> (usize, Vec<DocOutcome>) {
    let text = match &t.text {
        Ok(text) => text,
        Err(reason) => {
            let p = Problem {
                file: t.name.clone(),
                line: 1,
                resource: None,
                path: String::new(),
                message: reason.clone(),
                severity: Severity::Error,
            };
            return (
                1,
                vec![DocOutcome::Rejected(rejection(&p, None, vec![p.clone()]))],
            );
        }
    };
    let docs = parse_stream(&t.name, text);
    let count = docs.len();
    let outcomes = docs
        .into_iter()
        .map(|d| match d {
            Err(e) => {
                let p = Problem::from(e);
                DocOutcome::Rejected(rejection(&p, None, vec![p.clone()]))
            }
            Ok(doc) => {
                let key = ResourceKey::of_document(&doc.value);
                // The text, not a copy of the tree: decoding consumes the tree.
                let document = doc.value.to_string();
                let line = doc.origin.line;
                match api::decode(doc) {
                    Decoded::Other(_) => DocOutcome::Ignored,
                    Decoded::Invalid(problems) => DocOutcome::Rejected(Rejection {
                        file: t.name.clone(),
                        line: problems.first().map_or(line, |p| p.line),
                        key,
                        reasons: problems,
                        kept_last_good: false,
                    }),
                    Decoded::Resource(r) => {
                        let (errors, warnings): (Vec<Problem>, Vec<Problem>) = r
                            .problems()
                            .into_iter()
                            .partition(|p| p.severity == Severity::Error);
                        let key = key.unwrap_or_else(|| ResourceKey {
                            kind: r.kind,
                            namespace: r.namespace().to_string(),
                            name: r.name().to_string(),
                        });
                        if let Some(first) = errors.first() {
                            let mut reasons = errors.clone();
                            reasons.extend(warnings);
                            return DocOutcome::Rejected(rejection(first, Some(key), reasons));
                        }
                        DocOutcome::Accepted(Arc::new(Entry::new(key, *r, document, warnings)))
                    }
                }
            }
        })
        .collect();
    (count, outcomes)
}

fn rejection(first: &Problem, key: Option<ResourceKey>, reasons: Vec<Problem>) -> Rejection {
    Rejection {
        file: first.file.clone(),
        line: first.line,
        key,
        reasons,
        kept_last_good: false,
    }
}

/// The next snapshot from `set`, with `prev` supplying last good versions. The version is left
/// at `prev`'s: the caller bumps it only when the content differs.
pub(crate) fn build(
    prev: &ConfigSnapshot,
    set: &SourceSet,
    cache: &mut DecodeCache,
) -> ConfigSnapshot {
    cache.retain(set);
    incremental(prev, set, cache).unwrap_or_else(|| full(prev, set, cache))
}

/// Most changes rewrite a file or two of a config that has nothing rejected: then the next
/// snapshot is the previous one with those files' resources swapped, instead of every file's
/// resources indexed again (at ten thousand resources that rebuild was a quarter of an
/// endpoint change's latency). `None` whenever the cross-file rules could apply (files added
/// or removed, a rejection or warning anywhere, a duplicate): [`full`] decides those.
fn incremental(
    prev: &ConfigSnapshot,
    set: &SourceSet,
    cache: &mut DecodeCache,
) -> Option<ConfigSnapshot> {
    const MAX_CHANGED_FILES: usize = 16;
    if !prev.rejected.is_empty()
        || !prev.warnings.is_empty()
        || prev.files.len() != set.texts.len()
        || prev.version == 0
    {
        return None;
    }
    let mut changed = Vec::new();
    for t in &set.texts {
        prev.files.get(&t.name)?;
        let cached = cache.files.get(&t.name)?;
        if cached.text != t.text {
            changed.push((t, cached.outcomes.clone()));
            if changed.len() > MAX_CHANGED_FILES {
                return None;
            }
        }
    }
    let mut rejected = Vec::new();
    let mut warnings = Vec::new();
    let (mesh, mesh_source) = mesh(prev, set.mesh.as_ref(), &mut rejected, &mut warnings);
    if !rejected.is_empty() || !warnings.is_empty() {
        return None;
    }
    let mut resources = prev.resources.clone();
    let mut files = prev.files.clone();
    // Every changed file's old resources out before any new one goes in: a resource may move
    // between two of them.
    for o in changed.iter().flat_map(|(_, before)| before.iter()) {
        if let DocOutcome::Accepted(e) = o {
            let of_kind = resources.get_mut(&e.key.kind)?;
            match of_kind.remove(&e.key.path()) {
                Some(held) if Arc::ptr_eq(&held, e) => {}
                _ => return None,
            }
        }
    }
    for (t, _) in changed {
        let (documents, after) = cache.get(t);
        for o in after.iter() {
            match o {
                DocOutcome::Ignored => {}
                DocOutcome::Rejected(_) => return None,
                DocOutcome::Accepted(e) if !e.warnings.is_empty() => return None,
                DocOutcome::Accepted(e) => {
                    let of_kind = resources.entry(e.key.kind).or_default();
                    if of_kind.insert(e.key.path(), e.clone()).is_some() {
                        return None;
                    }
                }
            }
        }
        files.insert(t.name.clone(), documents);
    }
    resources.retain(|_, of_kind| !of_kind.is_empty());
    Some(ConfigSnapshot {
        version: prev.version,
        resources,
        mesh,
        mesh_source,
        rejected,
        warnings,
        files,
    })
}

/// The next snapshot with every cross-file rule applied: duplicates (the first file in name
/// order wins), last good versions of rejected documents, warnings in file order.
fn full(prev: &ConfigSnapshot, set: &SourceSet, cache: &mut DecodeCache) -> ConfigSnapshot {
    let mut texts: Vec<&SourceText> = set.texts.iter().collect();
    // Sources promise an order, but the winner of a duplicate must not depend on that promise.
    texts.sort_by(|a, b| a.name.cmp(&b.name));

    let mut accepted: BTreeMap<ResourceKey, Arc<Entry>> = BTreeMap::new();
    let mut rejected: Vec<Rejection> = Vec::new();
    let mut files = BTreeMap::new();
    for t in texts {
        let (documents, outcomes) = cache.get(t);
        files.insert(t.name.clone(), documents);
        for o in outcomes.iter() {
            match o {
                DocOutcome::Ignored => {}
                DocOutcome::Rejected(r) => rejected.push(r.clone()),
                DocOutcome::Accepted(e) => match accepted.get(&e.key) {
                    Some(first) => rejected.push(duplicate(e, first)),
                    None => {
                        accepted.insert(e.key.clone(), e.clone());
                    }
                },
            }
        }
    }

    // Last good versions. A rejected document that names its resource keeps that resource's
    // previous version; one that cannot be identified (broken YAML) keeps every previous
    // resource of its file that no document accounts for any more, since it may be any of them.
    let rejected_keys: BTreeSet<&ResourceKey> =
        rejected.iter().filter_map(|r| r.key.as_ref()).collect();
    let unidentified_files: BTreeSet<&str> = rejected
        .iter()
        .filter(|r| r.key.is_none())
        .map(|r| r.file.as_str())
        .collect();
    let mut kept = BTreeSet::new();
    // Nothing to keep without rejections: skip looking up every previous resource.
    let keeps = !rejected_keys.is_empty() || !unidentified_files.is_empty();
    for e in prev
        .resources
        .values()
        .flat_map(|m| m.values())
        .filter(|_| keeps)
    {
        if accepted.contains_key(&e.key) {
            continue;
        }
        if rejected_keys.contains(&e.key) || unidentified_files.contains(e.file()) {
            kept.insert(e.key.clone());
            accepted.insert(e.key.clone(), e.clone());
        }
    }
    let kept_files: BTreeSet<&str> = accepted
        .values()
        .filter(|e| kept.contains(&e.key))
        .map(|e| e.file())
        .collect();
    for r in &mut rejected {
        r.kept_last_good = match &r.key {
            Some(k) => kept.contains(k),
            None => kept_files.contains(r.file.as_str()),
        };
    }
    drop(kept_files);

    let mut warnings: Vec<Problem> = Vec::new();
    let (mesh, mesh_source) = mesh(prev, set.mesh.as_ref(), &mut rejected, &mut warnings);
    // Only entries with warnings: finding an entry's line is not free, and there are few.
    let mut entries: Vec<&Arc<Entry>> = accepted
        .values()
        .filter(|e| !e.warnings.is_empty())
        .collect();
    entries.sort_by(|a, b| (a.file(), a.line()).cmp(&(b.file(), b.line())));
    warnings.extend(entries.iter().flat_map(|e| e.warnings.iter().cloned()));

    let mut resources: BTreeMap<_, BTreeMap<String, Arc<Entry>>> = BTreeMap::new();
    for (key, e) in accepted {
        resources.entry(key.kind).or_default().insert(key.path(), e);
    }
    ConfigSnapshot {
        version: prev.version,
        resources,
        mesh,
        mesh_source,
        rejected,
        warnings,
        files,
    }
}

fn duplicate(e: &Entry, first: &Entry) -> Rejection {
    let p = Problem {
        file: e.file().to_string(),
        line: e.line(),
        resource: Some(e.key.to_string()),
        path: String::new(),
        message: format!(
            "duplicate of {} already defined at {}:{}",
            e.key,
            first.file(),
            first.line()
        ),
        severity: Severity::Error,
    };
    rejection(&p, Some(e.key.clone()), vec![p.clone()])
}

/// The mesh config in effect: the file's with Istio's defaults, or, when the file is rejected,
/// the previous one.
fn mesh(
    prev: &ConfigSnapshot,
    file: Option<&SourceText>,
    rejected: &mut Vec<Rejection>,
    warnings: &mut Vec<Problem>,
) -> (Arc<MeshConfig>, MeshSource) {
    let Some(file) = file else {
        let written = MeshConfig::default();
        return (
            Arc::new(written.with_defaults()),
            MeshSource {
                file: None,
                written,
            },
        );
    };
    let problems = match &file.text {
        Err(reason) => vec![Problem {
            file: file.name.clone(),
            line: 1,
            resource: Some("MeshConfig".into()),
            path: String::new(),
            message: reason.clone(),
            severity: Severity::Error,
        }],
        Ok(text) => match read_mesh_config(&file.name, text) {
            Err(problems) => problems,
            Ok(loaded) => {
                let (errors, warns): (Vec<Problem>, Vec<Problem>) = loaded
                    .problems()
                    .into_iter()
                    .partition(|p| p.severity == Severity::Error);
                if errors.is_empty() {
                    warnings.extend(warns);
                    let mesh = match &prev.mesh_source.file {
                        // Keep the same Arc when nothing changed, so readers can compare cheaply.
                        Some(f) if *f == file.name && prev.mesh_source.written == loaded.config => {
                            prev.mesh.clone()
                        }
                        _ => Arc::new(loaded.config.with_defaults()),
                    };
                    return (
                        mesh,
                        MeshSource {
                            file: Some(file.name.clone()),
                            written: loaded.config,
                        },
                    );
                }
                errors.into_iter().chain(warns).collect()
            }
        },
    };
    let first = problems.first().cloned().unwrap_or_else(|| Problem {
        file: file.name.clone(),
        line: 1,
        resource: Some("MeshConfig".into()),
        path: String::new(),
        message: "invalid mesh config".into(),
        severity: Severity::Error,
    });
    rejected.push(Rejection {
        kept_last_good: prev.mesh_source.file.is_some(),
        ..rejection(&first, None, problems)
    });
    (prev.mesh.clone(), prev.mesh_source.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
";

    fn set(texts: &[(&str, &str)]) -> SourceSet {
        SourceSet {
            texts: texts
                .iter()
                .map(|(n, t)| SourceText {
                    name: n.to_string(),
                    text: Ok(t.to_string()),
                })
                .collect(),
            mesh: None,
        }
    }

    #[test]
    fn unchanged_files_reuse_their_decoded_entries() {
        let mut cache = DecodeCache::default();
        let s = set(&[("a.yaml", VS), ("b.yaml", "")]);
        let first = build(&ConfigSnapshot::empty(), &s, &mut cache);
        let second = build(&first, &s, &mut cache);
        let (a, b) = (
            first.of_kind(api::Kind::VirtualService).next(),
            second.of_kind(api::Kind::VirtualService).next(),
        );
        assert!(Arc::ptr_eq(a.expect("a"), b.expect("b")));
        assert!(second.same_content(&first));
        assert_eq!(first.files.get("b.yaml"), Some(&0));

        // The same content from another file is a change: its origin moved.
        let moved = build(&second, &set(&[("c.yaml", VS)]), &mut cache);
        assert!(!moved.same_content(&second));
        assert_eq!(
            cache.files.len(),
            1,
            "files no longer present leave the cache"
        );
    }

    #[test]
    fn a_removed_document_is_not_kept_when_its_file_has_no_rejections() {
        let mut cache = DecodeCache::default();
        let first = build(
            &ConfigSnapshot::empty(),
            &set(&[("a.yaml", VS)]),
            &mut cache,
        );
        let next = build(&first, &set(&[("a.yaml", "# emptied\n")]), &mut cache);
        assert!(next.is_empty());
        assert!(next.rejected.is_empty());
    }

    #[test]
    fn a_rewritten_file_swaps_its_resources_as_a_full_build_would() {
        let dr = |host: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr\nspec:\n  host: {host}\n"
            )
        };
        let mut cache = DecodeCache::default();
        let v1 = set(&[("a.yaml", VS), ("b.yaml", &dr("reviews"))]);
        let mut first = build(&ConfigSnapshot::empty(), &v1, &mut cache);
        first.version = 1;
        let cases = [
            // A changed document: swapped in place.
            (set(&[("a.yaml", VS), ("b.yaml", &dr("ratings"))]), true),
            // The document moved to another file that existed already.
            (
                set(&[("a.yaml", &format!("{VS}---\n{}", dr("x"))), ("b.yaml", "")]),
                true,
            ),
            // A duplicate, a rejection, a file added: the cross-file rules decide.
            (
                set(&[("a.yaml", &format!("{VS}---\n{VS}")), ("b.yaml", "")]),
                false,
            ),
            (set(&[("a.yaml", VS), ("b.yaml", "kind: [")]), false),
            (
                set(&[("a.yaml", VS), ("b.yaml", ""), ("c.yaml", "")]),
                false,
            ),
        ];
        assert!(first.rejected.is_empty() && first.warnings.is_empty());
        for (next, swapped) in cases {
            let fast = incremental(&first, &next, &mut cache.clone());
            assert_eq!(fast.is_some(), swapped, "{next:?}");
            let slow = full(&first, &next, &mut DecodeCache::default());
            let got = build(&first, &next, &mut cache.clone());
            assert!(got.same_content(&slow), "{next:?}");
            if let Some(fast) = fast {
                assert!(fast.same_content(&slow), "{next:?}");
            }
        }
    }
}
