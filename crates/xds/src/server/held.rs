//! What one stream's proxy holds of one type, and what it is missing of a section: the names
//! to send and to remove, found without a per-stream list of every name. A thousand proxies
//! connecting at once each walk a ten-thousand-name section while their responses drain at the
//! proxies' pace; a list per stream held through that wait was a quarter of a gigabyte.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::resources::{Delta, Res, TypeResources};

/// One type's subscription and what the proxy holds of it.
///
/// What a proxy holds is kept as the section last sent (shared with every stream of its shape)
/// plus the few names where it differs, never as a per-stream copy of every name and version:
/// a thousand sidecars that each see ten thousand services would otherwise hold gigabytes.
pub(super) struct TypeState {
    pub section: usize,
    pub wildcard: bool,
    pub names: BTreeSet<String>,
    /// The proxy holds this section's version of every name it wants...
    pub base: Option<Arc<TypeResources>>,
    /// ...except these: the version it holds, `None` for nothing (the versions a reconnecting
    /// proxy says it has, names subscribed since the last response).
    pub overlay: HashMap<String, Option<String>>,
    /// Whether anything was sent yet: the first response goes out even when empty, so the
    /// proxy knows it is in sync.
    pub responded: bool,
}

impl TypeState {
    pub fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The version of `name` the proxy holds.
    pub fn held(&self, name: &str) -> Option<&str> {
        if !self.wants(name) {
            return None;
        }
        match self.overlay.get(name) {
            Some(held) => held.as_deref(),
            None => self
                .base
                .as_ref()
                .and_then(|b| b.get(name))
                .map(|r| r.version.as_str()),
        }
    }

    /// Whether the proxy holds exactly `current`.
    pub fn holds(&self, current: &Arc<TypeResources>) -> bool {
        self.responded
            && self.overlay.is_empty()
            && self.base.as_ref().is_some_and(|b| Arc::ptr_eq(b, current))
    }

    /// How `current` differs from what the proxy holds.
    pub fn diff<'a>(&'a self, current: &'a TypeResources, delta: Option<&'a Delta>) -> Diff<'a> {
        let mut narrow = None;
        match (&self.base, delta) {
            (Some(base), Some(d)) if Arc::ptr_eq(base, &d.from) => {
                narrow = Some(
                    d.changed
                        .iter()
                        .chain(&d.removed)
                        .map(String::as_str)
                        .collect::<BTreeSet<_>>(),
                );
            }
            (Some(base), _) if std::ptr::eq(&**base, current) => narrow = Some(BTreeSet::new()),
            _ => {}
        }
        if let Some(n) = &mut narrow {
            n.extend(self.overlay.keys().map(String::as_str));
        }
        Diff {
            ts: self,
            current,
            narrow,
        }
    }
}

/// The difference between a section and what a proxy holds, walked on demand (twice per
/// response: once to size it, once to send it) rather than collected.
pub(super) struct Diff<'a> {
    ts: &'a TypeState,
    current: &'a TypeResources,
    /// The only names that may differ, when the shape's delta or the overlay says so; `None`
    /// means every name of the section and of what the proxy holds.
    narrow: Option<BTreeSet<&'a str>>,
}

impl<'a> Diff<'a> {
    /// The resources to send, in name order.
    pub fn sends(&self) -> Box<dyn Iterator<Item = (&'a String, &'a Res)> + Send + '_> {
        let ts = self.ts;
        let differs = move |(name, res): &(&'a String, &'a Res)| {
            ts.wants(name) && ts.held(name) != Some(res.version.as_str())
        };
        match &self.narrow {
            Some(names) => Box::new(
                names
                    .iter()
                    .filter_map(|n| self.current.get_key_value(*n))
                    .filter(differs),
            ),
            None => Box::new(self.current.iter().filter(differs)),
        }
    }

    /// The names the proxy holds that the section no longer has.
    pub fn removed(&self) -> Vec<String> {
        let gone = |n: &&str| !self.current.contains_key(*n) && self.ts.held(n).is_some();
        let names: BTreeSet<&str> = match &self.narrow {
            Some(names) => names.iter().copied().filter(gone).collect(),
            None => self
                .ts
                .base
                .iter()
                .flat_map(|b| b.keys())
                .chain(self.ts.overlay.keys())
                .map(String::as_str)
                .filter(gone)
                .collect(),
        };
        names.into_iter().map(str::to_string).collect()
    }
}

/// Encoded resource bytes per response, beyond which a type's changes go out as several
/// responses (each with its own nonce, applied as it arrives, as Envoy applies a delta). A
/// stream's encode buffer stays at the size of the largest message it carried (see
/// [`crate::codec`]); the rest of a response (nonce, versions, type) fits in the margin.
pub(super) const MAX_RESPONSE_BYTES: usize = crate::codec::MAX_MESSAGE_BYTES - 1024;

/// What one resource adds to an encoded response: its body, name and version, and protobuf's
/// field tags and lengths.
fn encoded_len<T: AsRef<str>>(name: &T, res: &Res) -> usize {
    res.body.len() + name.as_ref().len() + res.version.len() + 16
}

/// The next run of `items` of at most [`MAX_RESPONSE_BYTES`] encoded (a larger resource goes
/// alone); empty only when `items` is.
pub(super) fn next_chunk<'a, T: AsRef<str>>(
    items: &mut std::iter::Peekable<impl Iterator<Item = (T, &'a Res)>>,
) -> Vec<(T, &'a Res)> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some((name, res)) = items.peek() {
        let len = encoded_len(name, res);
        if !out.is_empty() && bytes + len > MAX_RESPONSE_BYTES {
            break;
        }
        bytes += len;
        out.extend(items.next());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(version: &str, n: usize) -> Res {
        Res {
            version: version.to_string(),
            body: bytes::Bytes::from(vec![b'x'; n]),
        }
    }

    fn chunks<T: Copy + AsRef<str>>(items: &[(T, &Res)]) -> Vec<Vec<T>> {
        let mut it = items.iter().copied().peekable();
        let mut out = Vec::new();
        loop {
            let c = next_chunk(&mut it);
            if c.is_empty() {
                return out;
            }
            out.push(c.into_iter().map(|(t, _)| t).collect());
        }
    }

    #[test]
    fn large_changes_are_cut_into_responses_of_bounded_size() {
        let (small, big) = (res("", 20 * 1024), res("", 200 * 1024));
        let sending = [("a", &small), ("b", &small), ("c", &big), ("d", &small)];
        assert_eq!(chunks(&sending), [["a"], ["b"], ["c"], ["d"]]);
        let tiny = res("v1", 10);
        let names: Vec<String> = (0..20_000).map(|i| format!("cluster-{i}")).collect();
        let many: Vec<(&str, &Res)> = names.iter().map(|n| (n.as_str(), &tiny)).collect();
        let cut = chunks(&many);
        assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 20_000);
        assert!(cut.len() > 1);
        // Each response, encoded as sent, fits the codec's buffer.
        for (i, c) in cut.iter().enumerate() {
            let response = crate::pb::DeltaDiscoveryResponse {
                system_version_info: "123".into(),
                type_url: crate::resources::CLUSTER.into(),
                resources: c
                    .iter()
                    .map(|n| crate::pb::Resource {
                        name: n.to_string(),
                        version: tiny.version.clone(),
                        body: tiny.body.clone(),
                    })
                    .collect(),
                removed_resources: Vec::new(),
                nonce: "12-345".into(),
                control_plane: "control-host-1".into(),
            };
            let len = prost::Message::encoded_len(&response);
            assert!(len <= crate::codec::MAX_MESSAGE_BYTES, "{len}");
            assert!(i + 1 == cut.len() || len > MAX_RESPONSE_BYTES / 2, "{len}");
        }
        assert!(chunks::<&str>(&[]).is_empty());
    }

    fn section(items: &[(&str, &str)]) -> Arc<TypeResources> {
        Arc::new(
            items
                .iter()
                .map(|(n, v)| (n.to_string(), res(v, 1)))
                .collect(),
        )
    }

    fn state(base: Option<Arc<TypeResources>>, overlay: &[(&str, Option<&str>)]) -> TypeState {
        TypeState {
            section: 0,
            wildcard: true,
            names: BTreeSet::new(),
            base,
            overlay: overlay
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
            responded: true,
        }
    }

    fn plan(d: &Diff) -> (Vec<String>, Vec<String>) {
        (d.sends().map(|(n, _)| n.clone()).collect(), d.removed())
    }

    #[test]
    fn a_proxy_gets_what_differs_whether_or_not_a_delta_narrows_it() {
        let old = section(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let new = section(&[("a", "1"), ("b", "2"), ("d", "1")]);
        let delta = Delta {
            from: old.clone(),
            changed: vec!["b".into(), "d".into()],
            removed: vec!["c".into()],
        };
        let want = (vec!["b".to_string(), "d".into()], vec!["c".to_string()]);
        // Narrowed by the shape's delta, and by comparing every name: the same answer.
        let ts = state(Some(old.clone()), &[]);
        assert_eq!(plan(&ts.diff(&new, Some(&delta))), want);
        assert_eq!(plan(&ts.diff(&new, None)), want);
        // A reconnecting proxy that says it holds `a` at another version and `e`.
        let ts = state(None, &[("a", Some("0")), ("e", Some("1"))]);
        assert_eq!(
            plan(&ts.diff(&new, Some(&delta))),
            (
                vec!["a".to_string(), "b".into(), "d".into()],
                vec!["e".to_string()]
            )
        );
        // Holding the section itself, plus a name subscribed since.
        let ts = state(Some(new.clone()), &[("d", None)]);
        assert_eq!(plan(&ts.diff(&new, None)), (vec!["d".to_string()], vec![]));
        // Names not wanted are neither sent nor removed.
        let mut ts = state(Some(old), &[]);
        ts.wildcard = false;
        ts.names = ["b".to_string(), "c".into()].into();
        assert_eq!(
            plan(&ts.diff(&new, Some(&delta))),
            (vec!["b".to_string()], vec!["c".to_string()])
        );
    }
}
