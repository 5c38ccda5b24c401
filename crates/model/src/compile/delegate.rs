//! VirtualService delegation: a root rule with `delegate: {name, namespace}` hands its requests
//! to the HTTP rules of another VirtualService (one without hosts), merged as Istio merges them.
//!
//! For each delegate rule the root rule's match conditions are combined with the delegate's: a
//! delegate match must narrow a root match (a prefix inside the root's prefix, the same exact
//! value, no regex against anything else, no conflicting header, port, namespace or gateway),
//! else that delegate rule is dropped. Fields the delegate rule leaves unset (rewrite, timeout,
//! retries, fault, mirror, CORS, headers) come from the root rule. Delegation is one level deep,
//! as in Istio: a delegate's own `delegate` rules are skipped.

use std::collections::BTreeMap;

use api::analyze::hosts::MESH_GATEWAY;
use api::types::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};
use api::{Resource, Spec};

use super::routes::qualify_gateway;
use super::{exported_to, Cx};

/// One HTTP rule to compile, with the resource it is written in (destinations resolve short
/// names in that resource's namespace) and where it came from, for messages.
pub(super) struct Rule<'a> {
    pub resource: &'a Resource,
    pub route: std::borrow::Cow<'a, HttpRoute>,
    pub at: String,
}

/// The HTTP rules of `vs` with every delegating rule replaced by its delegate's merged rules.
pub(super) fn expand<'a, 'c: 'a>(
    cx: &mut Cx<'c>,
    r: &'a Resource,
    vs: &'a VirtualService,
) -> Vec<Rule<'a>> {
    let mut out = Vec::new();
    for (i, h) in vs.http.iter().enumerate() {
        let Some(d) = &h.delegate else {
            out.push(Rule {
                resource: r,
                route: std::borrow::Cow::Borrowed(h),
                at: format!("http[{i}]"),
            });
            continue;
        };
        let ns = if d.namespace.is_empty() {
            r.namespace()
        } else {
            d.namespace.as_str()
        };
        let Some((dr, dvs)) = find(cx, &d.name, ns) else {
            cx.warn(
                r,
                format!(
                    "http[{i}]: delegate VirtualService {ns}/{} not found; rule skipped",
                    d.name
                ),
            );
            continue;
        };
        if !exported_to(&dvs.export_to, dr.namespace(), r.namespace()) {
            cx.warn(
                r,
                format!(
                    "http[{i}]: delegate {ns}/{} is not exported to namespace {}; rule skipped",
                    d.name,
                    r.namespace()
                ),
            );
            continue;
        }
        if !dvs.hosts.is_empty() {
            cx.warn(
                r,
                format!(
                    "http[{i}]: delegate {ns}/{} has hosts; a delegate must not; rule skipped",
                    d.name
                ),
            );
            continue;
        }
        let root = qualified(r.namespace(), h);
        for (j, leaf) in dvs.http.iter().enumerate() {
            if leaf.delegate.is_some() {
                cx.warn(
                    dr,
                    format!("http[{j}]: delegation is one level deep; rule skipped"),
                );
                continue;
            }
            match merge_route(&root, leaf.clone()) {
                Some(merged) => out.push(Rule {
                    resource: dr,
                    route: std::borrow::Cow::Owned(merged),
                    at: format!("http[{i}] -> {}/{} http[{j}]", dr.namespace(), dr.name()),
                }),
                None => cx.warn(
                    dr,
                    format!(
                        "http[{j}]: its matches are not within root {} http[{i}]'s; rule skipped",
                        r.id()
                    ),
                ),
            }
        }
    }
    out
}

fn find<'a>(cx: &Cx<'a>, name: &str, ns: &str) -> Option<(&'a Resource, &'a VirtualService)> {
    cx.resources.iter().find_map(|r| match &r.spec {
        Spec::VirtualService(vs) if r.name() == name && r.namespace() == ns => {
            Some((*r, vs.as_ref()))
        }
        _ => None,
    })
}

/// The root rule with its match gateways as `ns/name`, so they keep their meaning inside a
/// delegate written in another namespace.
fn qualified(ns: &str, h: &HttpRoute) -> HttpRoute {
    let mut h = h.clone();
    for m in &mut h.matches {
        for g in &mut m.gateways {
            if g != MESH_GATEWAY {
                *g = qualify_gateway(ns, g);
            }
        }
    }
    h
}

/// Istio's merge of a root rule into one delegate rule; `None` on a match conflict.
fn merge_route(root: &HttpRoute, mut leaf: HttpRoute) -> Option<HttpRoute> {
    leaf.matches = merge_matches(&root.matches, &leaf.matches)?;
    if leaf.name.is_empty() {
        leaf.name = root.name.clone();
    } else if !root.name.is_empty() {
        leaf.name = format!("{}-{}", root.name, leaf.name);
    }
    macro_rules! inherit {
        ($($f:ident),*) => {$( if leaf.$f.is_none() { leaf.$f = root.$f.clone(); } )*};
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percentage,
        cors_policy,
        headers
    );
    if leaf.mirrors.is_empty() {
        leaf.mirrors = root.mirrors.clone();
    }
    Some(leaf)
}

/// Every delegate match must narrow at least one root match; the result has one match per
/// compatible (root, delegate) pair.
fn merge_matches(
    root: &[HttpMatchRequest],
    leaf: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(leaf.to_vec());
    }
    if leaf.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for l in leaf {
        let before = out.len();
        for r in root {
            if !conflicts(r, l) {
                out.push(merge_match(r, l));
            }
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = leaf.clone();
    if out.name.is_empty() {
        out.name = root.name.clone();
    } else if !root.name.is_empty() {
        out.name = format!("{}-{}", root.name, out.name);
    }
    macro_rules! inherit {
        ($($f:ident),*) => {$( if out.$f.is_none() { out.$f = root.$f.clone(); } )*};
    }
    inherit!(uri, scheme, method, authority);
    fn union<V: Clone>(a: &BTreeMap<String, V>, b: &BTreeMap<String, V>) -> BTreeMap<String, V> {
        let mut m = a.clone();
        m.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }
    out.headers = union(&root.headers, &leaf.headers);
    out.without_headers = union(&root.without_headers, &leaf.without_headers);
    out.query_params = union(&root.query_params, &leaf.query_params);
    out.source_labels = union(&root.source_labels, &leaf.source_labels);
    if out.port == 0 {
        out.port = root.port;
    }
    if out.source_namespace.is_empty() {
        out.source_namespace = root.source_namespace.clone();
    }
    if out.gateways.is_empty() {
        out.gateways = root.gateways.clone();
    }
    out
}

fn conflicts(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let map_conflict = |r: &BTreeMap<String, StringMatch>, l: &BTreeMap<String, StringMatch>| {
        l.iter().any(|(k, lv)| string_conflict(r.get(k), Some(lv)))
    };
    if map_conflict(&root.headers, &leaf.headers)
        || map_conflict(&root.without_headers, &leaf.without_headers)
        || map_conflict(&root.query_params, &leaf.query_params)
    {
        return true;
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if root.port > 0 && leaf.port > 0 && root.port != leaf.port {
        return true;
    }
    if !root.source_namespace.is_empty() && leaf.source_namespace != root.source_namespace {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    !root.gateways.is_empty()
        && !leaf.gateways.is_empty()
        && leaf.gateways.iter().any(|g| !root.gateways.contains(g))
}

fn is_set(m: &StringMatch) -> bool {
    m.exact.as_deref().is_some_and(|s| !s.is_empty())
        || m.prefix.as_deref().is_some_and(|s| !s.is_empty())
        || m.regex.as_deref().is_some_and(|s| !s.is_empty())
}

/// Whether `leaf` fails to narrow `root` (Istio's stringMatchConflict).
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let get = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
    let (r_exact, r_prefix, r_regex) = (get(&root.exact), get(&root.prefix), get(&root.regex));
    let (l_exact, l_prefix, l_regex) = (get(&leaf.exact), get(&leaf.prefix), get(&leaf.regex));
    if r_regex.is_some() && is_set(leaf) {
        return true;
    }
    if l_regex.is_some() && is_set(root) {
        return true;
    }
    if let Some(exact) = r_exact {
        return l_prefix.is_some() || l_exact.as_deref() != Some(exact.as_str());
    }
    if let Some(prefix) = r_prefix {
        if let Some(lp) = l_prefix {
            return !lp.starts_with(&prefix);
        }
        if let Some(le) = l_exact {
            return !le.starts_with(&prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> Option<StringMatch> {
        Some(StringMatch {
            prefix: Some(p.into()),
            ..Default::default()
        })
    }

    #[test]
    fn delegate_prefixes_must_stay_inside_the_root_prefix() {
        let root = HttpMatchRequest {
            uri: prefix("/api"),
            ..Default::default()
        };
        let inside = HttpMatchRequest {
            uri: prefix("/api/v1"),
            ..Default::default()
        };
        let outside = HttpMatchRequest {
            uri: prefix("/other"),
            ..Default::default()
        };
        assert!(!conflicts(&root, &inside));
        assert!(conflicts(&root, &outside));
        let merged = merge_matches(std::slice::from_ref(&root), &[inside]).unwrap();
        assert_eq!(merged[0].uri, prefix("/api/v1"));
        assert!(merge_matches(&[root], &[outside]).is_none());
    }
}
