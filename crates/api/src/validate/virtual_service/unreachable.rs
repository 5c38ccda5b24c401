//! Warnings about rules and matches that can never apply: rules after a catch-all rule, a
//! second catch-all, matches repeated from an earlier rule, and (HTTP) URI prefix matches
//! shadowed by a shorter prefix earlier on with compatible method, authority, headers and query
//! parameters. Istio reports these as warnings; the resource stays valid.

use std::collections::BTreeMap;

use crate::types::virtual_service::*;
use crate::validate::{at, idx, Report};

fn unused(r: &mut Report, path: &str, rule: &str, reason: &str) {
    r.warning_coded(
        "IST0130",
        path,
        format!("virtualService rule {rule} not used ({reason})"),
    );
}

fn ineffective(r: &mut Report, path: &str, rule: &str, matchn: &str, dup: &str) {
    r.warning_coded(
        "IST0131",
        path,
        format!(
            "virtualService rule {rule} match {matchn} is not used (duplicate/overlapping match in rule {dup})"
        ),
    );
}

/// `"name"` for named HTTP rules, `#n` otherwise.
fn http_rule_name(route: &HttpRoute, n: usize) -> String {
    if route.name.is_empty() {
        format!("#{n}")
    } else {
        format!("{:?}", route.name)
    }
}

fn http_match_name(m: &HttpMatchRequest, n: usize) -> String {
    if m.name.is_empty() {
        format!("#{n}")
    } else {
        format!("{:?}", m.name)
    }
}

/// What the overlap check compares for a URI prefix match: each part as `exact:v`, `prefix:v`
/// or empty (regex or unset).
struct PrefixMatch {
    rule: String,
    rule_index: usize,
    name: String,
    match_index: usize,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(sm: Option<&StringMatch>) -> String {
    let Some(sm) = sm else {
        return String::new();
    };
    match (sm.exact.as_deref(), sm.prefix.as_deref()) {
        (Some(e), _) if !e.is_empty() => format!("exact:{e}"),
        (_, Some(p)) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn exact_or_prefix_map(m: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

fn prefix_match(
    route: &HttpRoute,
    rn: usize,
    m: &HttpMatchRequest,
    mn: usize,
) -> Option<PrefixMatch> {
    let prefix = m
        .uri
        .as_ref()?
        .prefix
        .as_deref()
        .filter(|p| !p.is_empty())?;
    let mut method = exact_or_prefix(m.method.as_ref());
    if method.is_empty() {
        // Istio's check assumes an unrestricted method means GET.
        method = "exact:GET".into();
    }
    Some(PrefixMatch {
        rule: http_rule_name(route, rn),
        rule_index: rn,
        name: http_match_name(m, mn),
        match_index: mn,
        prefix: prefix.to_string(),
        port: m.port,
        method,
        authority: exact_or_prefix(m.authority.as_ref()),
        headers: exact_or_prefix_map(&m.headers),
        query_params: exact_or_prefix_map(&m.query_params),
        without_headers: exact_or_prefix_map(&m.without_headers),
    })
}

/// Each entry of `a` equals or starts with `b`'s entry for the same key, and the key sets match.
fn map_covered(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, va)| b.get(k).is_some_and(|vb| va.starts_with(vb.as_str())))
}

/// Whether the earlier match `a` takes all traffic the later match `b` would get. Istio's
/// comparison, including its quirks (it compares the `exact:`/`prefix:` strings as prefixes).
fn covers(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && a.method.starts_with(&b.method)
        && a.authority.starts_with(&b.authority)
        && map_covered(&a.headers, &b.headers)
        && map_covered(&a.query_params, &b.query_params)
        && map_covered(&a.without_headers, &b.without_headers)
}

fn match_path(kind: &str, rn: usize, mn: usize) -> String {
    idx(&at(&idx(&format!("spec.{kind}"), rn), "match"), mn)
}

pub(super) fn http_rules(r: &mut Report, routes: &[HttpRoute]) {
    let mut seen: Vec<(HttpMatchRequest, usize)> = Vec::new();
    let mut catch_all: Option<usize> = None;
    let mut prefixes: Vec<PrefixMatch> = Vec::new();
    for (rn, route) in routes.iter().enumerate() {
        let rule = http_rule_name(route, rn);
        let rp = idx("spec.http", rn);
        if route.matches.is_empty() {
            if catch_all.is_some() {
                unused(r, &rp, &rule, "only the last rule can have no matches");
            }
            catch_all = Some(rn);
            continue;
        }
        let mut duplicates = 0;
        for (mn, m) in route.matches.iter().enumerate() {
            if catch_all.is_some() {
                unused(r, &rp, &rule, "route without matches defined before");
                continue;
            }
            // The match name does not change what traffic it selects.
            let mut key = m.clone();
            key.name.clear();
            if let Some((_, dn)) = seen.iter().find(|(k, _)| *k == key) {
                ineffective(
                    r,
                    &match_path("http", rn, mn),
                    &rule,
                    &http_match_name(m, mn),
                    &http_rule_name(&routes[*dn], *dn),
                );
                duplicates += 1;
                continue;
            }
            seen.push((key, rn));
            if let Some(p) = prefix_match(route, rn, m, mn) {
                prefixes.push(p);
            }
        }
        if duplicates == route.matches.len() {
            unused(r, &rp, &rule, "all matches used by prior rules");
        }
    }
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if a.prefix == b.prefix || !covers(a, b) {
                continue;
            }
            ineffective(
                r,
                &match_path("http", b.rule_index, b.match_index),
                &b.rule,
                &format!("{} of prefix {}", b.name, b.prefix),
                &format!("{} of prefix {} on {}", a.name, a.prefix, a.rule),
            );
        }
    }
}

/// TCP and TLS rules: catch-alls and repeated matches only (their matches have no names).
fn l4_rules<M: PartialEq>(r: &mut Report, kind: &str, matches: &[&[M]]) {
    let mut seen: Vec<(&M, usize)> = Vec::new();
    let mut catch_all: Option<usize> = None;
    for (rn, ms) in matches.iter().enumerate() {
        let rule = format!("#{rn}");
        let rp = idx(&format!("spec.{kind}"), rn);
        if ms.is_empty() {
            if catch_all.is_some() {
                unused(r, &rp, &rule, "only the last rule can have no matches");
            }
            catch_all = Some(rn);
            continue;
        }
        let mut duplicates = 0;
        for (mn, m) in ms.iter().enumerate() {
            if catch_all.is_some() {
                unused(r, &rp, &rule, "route without matches defined before");
                continue;
            }
            if let Some((_, dn)) = seen.iter().find(|(k, _)| *k == m) {
                ineffective(
                    r,
                    &match_path(kind, rn, mn),
                    &rule,
                    &format!("#{mn}"),
                    &format!("#{dn}"),
                );
                duplicates += 1;
            } else {
                seen.push((m, rn));
            }
        }
        if duplicates == ms.len() {
            unused(r, &rp, &rule, "all matches used by prior rules");
        }
    }
}

pub(super) fn tcp_rules(r: &mut Report, routes: &[TcpRoute]) {
    let matches: Vec<&[L4MatchAttributes]> = routes.iter().map(|t| t.matches.as_slice()).collect();
    l4_rules(r, "tcp", &matches);
}

pub(super) fn tls_rules(r: &mut Report, routes: &[TlsRoute]) {
    let matches: Vec<&[TlsMatchAttributes]> = routes.iter().map(|t| t.matches.as_slice()).collect();
    l4_rules(r, "tls", &matches);
}
