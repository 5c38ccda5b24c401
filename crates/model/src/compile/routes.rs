//! A VirtualService's HTTP rules to [`Route`]s, for one listener port and one binding (a set of
//! gateways, or the mesh).
//!
//! Conditions Istio resolves at compile time rather than per request (`sourceLabels`,
//! `sourceNamespace`, `gateways` and `port` of a match) are resolved here: a match that cannot
//! apply to this proxy is dropped, and a rule whose matches all drop is left out, as pilot does.

use api::analyze::hosts::MESH_GATEWAY;
use api::types::{self as t, HttpRoute, VirtualService};
use api::Resource;
use base64::Engine as _;

use super::resilience::{fault, mirrors, retry_policy};
use super::{labels_match, Cx};
use crate::route::{
    CorsPolicy, DirectResponse, ForwardAction, HeaderMatch, HeaderOps, QueryParamMatch, Redirect,
    RegexRewrite, Rewrite, Route, RouteAction, RouteMatch, StringMatch, WeightedCluster,
};
use crate::runtime::{
    BuildError, CompiledCors, CompiledHeaderOps, CompiledRewrite, CompiledRouteMatch, RuntimeFault,
    RuntimeRetry,
};

/// What a route table is being built for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Binding<'b> {
    /// The gateways (`namespace/name`) serving the listener.
    Gateways(&'b [String]),
    Mesh,
}

impl Binding<'_> {
    /// Whether a `gateways` list (as written in `vs_ns`) includes this binding; an empty list
    /// means the VirtualService's own.
    fn admits(&self, vs_ns: &str, gateways: &[String]) -> bool {
        match self {
            Binding::Mesh => gateways.iter().any(|g| g == MESH_GATEWAY),
            Binding::Gateways(ours) => gateways
                .iter()
                .filter(|g| *g != MESH_GATEWAY)
                .any(|g| ours.contains(&qualify_gateway(vs_ns, g))),
        }
    }
}

/// `name` → `vs_ns/name`; `ns/name` as is.
pub(super) fn qualify_gateway(vs_ns: &str, g: &str) -> String {
    if g.contains('/') {
        g.to_string()
    } else {
        format!("{vs_ns}/{g}")
    }
}

/// The routes of `vs` for requests arriving on `port`.
pub(super) fn http_routes(
    cx: &mut Cx<'_>,
    r: &Resource,
    vs: &VirtualService,
    binding: Binding<'_>,
    port: u16,
) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, h) in vs.http.iter().enumerate() {
        let mut matches = Vec::new();
        for m in &h.matches {
            if let Some(m) = route_match(cx, r, m, binding, port) {
                matches.push(m);
            }
        }
        if !h.matches.is_empty() && matches.is_empty() {
            continue;
        }
        let Some(action) = action(cx, r, h, i) else {
            continue;
        };
        let (request_headers, response_headers) = header_ops(cx, r, h);
        let name = if h.name.is_empty() {
            format!("{}.{}.{i}", r.name(), r.namespace())
        } else {
            h.name.clone()
        };
        let route = Route {
            name,
            matches,
            action,
            request_headers,
            response_headers,
            cors: h.cors_policy.as_ref().map(cors),
        };
        match check(&route, &format!("http[{i}]")) {
            Ok(()) => out.push(route),
            Err(e) => cx.warn(r, format!("{e}; rule skipped")),
        }
    }
    out
}

/// What the runtime would refuse in this rule (a regex RE2 takes but the regex crate does not,
/// a header name HTTP does not allow, weights that add up to 0): caught per rule, so that one
/// bad rule costs that rule, not the whole snapshot.
fn check(route: &Route, at: &str) -> Result<(), BuildError> {
    for m in &route.matches {
        CompiledRouteMatch::compile(m, at)?;
    }
    CompiledHeaderOps::compile(&route.request_headers, at)?;
    CompiledHeaderOps::compile(&route.response_headers, at)?;
    if let Some(c) = &route.cors {
        CompiledCors::compile(c, at)?;
    }
    if let RouteAction::Forward(f) = &route.action {
        if let Some(rw) = &f.rewrite {
            CompiledRewrite::compile(rw, at)?;
        }
        if let Some(rt) = &f.retry {
            RuntimeRetry::compile(rt, at)?;
        }
        if let Some(fault) = &f.fault {
            RuntimeFault::compile(fault, at)?;
        }
        if f.clusters.iter().all(|c| c.weight == 0) {
            return Err(BuildError::Invalid {
                at: at.to_string(),
                reason: "destination weights add up to 0".into(),
            });
        }
    }
    Ok(())
}

fn route_match(
    cx: &mut Cx<'_>,
    r: &Resource,
    m: &t::HttpMatchRequest,
    binding: Binding<'_>,
    port: u16,
) -> Option<RouteMatch> {
    if !m.gateways.is_empty() && !binding.admits(r.namespace(), &m.gateways) {
        return None;
    }
    if m.port != 0 && m.port != u32::from(port) {
        return None;
    }
    if !labels_match(&m.source_labels, &cx.proxy.labels) {
        return None;
    }
    if !m.source_namespace.is_empty() && m.source_namespace != cx.proxy.namespace {
        return None;
    }
    let mut headers = Vec::new();
    for (name, v) in &m.headers {
        if name.starts_with("@request.auth.claims") {
            cx.warn(
                r,
                format!("header match on `{name}` needs JWT claims, not supported yet; the match is dropped"),
            );
            return None;
        }
        headers.push(HeaderMatch {
            name: name.to_ascii_lowercase(),
            value: string_match(v),
        });
    }
    Some(RouteMatch {
        path: m.uri.as_ref().and_then(string_match),
        ignore_path_case: m.ignore_uri_case,
        headers,
        without_headers: m
            .without_headers
            .iter()
            .map(|(name, v)| HeaderMatch {
                name: name.to_ascii_lowercase(),
                value: string_match(v),
            })
            .collect(),
        query_params: m
            .query_params
            .iter()
            .map(|(name, v)| QueryParamMatch {
                name: name.clone(),
                value: string_match(v),
            })
            .collect(),
        method: m.method.as_ref().and_then(string_match),
        scheme: m.scheme.as_ref().and_then(string_match),
        authority: m.authority.as_ref().and_then(string_match),
        port: None,
        source_labels: Default::default(),
        source_namespace: None,
    })
}

/// Istio's StringMatch oneof; an empty one matches anything (`None`).
fn string_match(m: &t::StringMatch) -> Option<StringMatch> {
    if let Some(e) = &m.exact {
        Some(StringMatch::Exact(e.clone()))
    } else if let Some(p) = &m.prefix {
        Some(StringMatch::Prefix(p.clone()))
    } else {
        m.regex.as_ref().map(|r| StringMatch::Regex(r.clone()))
    }
}

fn action(cx: &mut Cx<'_>, r: &Resource, h: &HttpRoute, i: usize) -> Option<RouteAction> {
    if h.delegate.is_some() {
        cx.warn(
            r,
            format!("http[{i}]: delegate is not supported yet; rule skipped"),
        );
        return None;
    }
    if let Some(rd) = &h.redirect {
        if !rd.prefix_rewrite.is_empty() {
            cx.warn(
                r,
                format!("http[{i}]: redirect prefixRewrite is not supported yet; ignored"),
            );
        }
        if rd.derive_port == Some(t::RedirectPortSelection::FromRequestPort) {
            cx.warn(r, format!("http[{i}]: redirect derivePort FROM_REQUEST_PORT is not supported yet; ignored"));
        }
        let non_empty = |s: &String| (!s.is_empty()).then(|| s.clone());
        return Some(RouteAction::Redirect(Redirect {
            scheme: non_empty(&rd.scheme),
            authority: non_empty(&rd.authority),
            port: rd.port.and_then(|p| u16::try_from(p).ok()),
            path: non_empty(&rd.uri),
            status: u16::try_from(rd.redirect_code)
                .ok()
                .filter(|c| *c != 0)
                .unwrap_or(301),
        }));
    }
    if let Some(dr) = &h.direct_response {
        let body = match dr.body.as_ref() {
            None => None,
            Some(b) => match (&b.string, &b.bytes) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(bytes)) => {
                    match base64::engine::general_purpose::STANDARD
                        .decode(bytes)
                        .ok()
                        .and_then(|v| String::from_utf8(v).ok())
                    {
                        Some(s) => Some(s),
                        None => {
                            cx.warn(r, format!("http[{i}]: directResponse body bytes are not UTF-8 text; body dropped"));
                            None
                        }
                    }
                }
                (None, None) => None,
            },
        };
        return Some(RouteAction::DirectResponse(DirectResponse {
            status: u16::try_from(dr.status).unwrap_or(500),
            body,
        }));
    }
    let mut clusters = Vec::new();
    for d in &h.route {
        let Some(dest) = &d.destination else { continue };
        let cluster = cx.destination(r, dest)?;
        let weight = if h.route.len() == 1 {
            100
        } else {
            u32::try_from(d.weight).unwrap_or(0)
        };
        clusters.push(WeightedCluster { cluster, weight });
    }
    if clusters.is_empty() {
        cx.warn(r, format!("http[{i}]: no destination; rule skipped"));
        return None;
    }
    let rewrite = h.rewrite.as_ref().map(|rw| Rewrite {
        uri_prefix: (!rw.uri.is_empty()).then(|| rw.uri.clone()),
        uri_regex: rw.uri_regex_rewrite.as_ref().map(|rr| RegexRewrite {
            pattern: rr.pattern.clone(),
            substitution: re2_substitution(&rr.rewrite),
        }),
        authority: (!rw.authority.is_empty()).then(|| rw.authority.clone()),
    });
    let fault = h.fault.as_ref().and_then(|f| fault(cx, r, f, i));
    let mirrors = mirrors(cx, r, h);
    Some(RouteAction::Forward(ForwardAction {
        clusters,
        rewrite,
        timeout_ms: h
            .timeout
            .as_ref()
            .and_then(|d| d.to_std())
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            // Istio: a zero timeout disables it.
            .filter(|ms| *ms != 0),
        retry: retry_policy(cx.mesh, h.retries.as_ref()).map(Box::new),
        fault: fault.map(Box::new),
        mirrors,
    }))
}

/// RE2/Envoy `\1` group references to the regex crate's `${1}`.
fn re2_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                out.push(*d);
                out.push('}');
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

/// Route-level header operations, with a single destination's own merged in: the model carries
/// header operations per route, not per weighted cluster.
fn header_ops(cx: &mut Cx<'_>, r: &Resource, h: &HttpRoute) -> (HeaderOps, HeaderOps) {
    let mut req = HeaderOps::default();
    let mut resp = HeaderOps::default();
    let mut apply = |headers: &t::Headers| {
        if let Some(ops) = &headers.request {
            merge(&mut req, ops);
        }
        if let Some(ops) = &headers.response {
            merge(&mut resp, ops);
        }
    };
    if let Some(headers) = &h.headers {
        apply(headers);
    }
    let per_dest: Vec<&t::Headers> = h.route.iter().filter_map(|d| d.headers.as_ref()).collect();
    if h.route.len() == 1 {
        per_dest.into_iter().for_each(&mut apply);
    } else if !per_dest.is_empty() {
        cx.warn(
            r,
            "headers on one of several weighted destinations are not supported yet; ignored",
        );
    }
    (req, resp)
}

fn merge(into: &mut HeaderOps, ops: &t::HeaderOperations) {
    for (k, v) in &ops.set {
        into.set.insert(k.to_ascii_lowercase(), v.clone());
    }
    for (k, v) in &ops.add {
        into.add.insert(k.to_ascii_lowercase(), v.clone());
    }
    for k in &ops.remove {
        let k = k.to_ascii_lowercase();
        if !into.remove.contains(&k) {
            into.remove.push(k);
        }
    }
}

fn cors(c: &t::CorsPolicy) -> CorsPolicy {
    let mut allow_origins: Vec<StringMatch> = c
        .allow_origin
        .iter()
        .map(|o| StringMatch::Exact(o.clone()))
        .collect();
    allow_origins.extend(c.allow_origins.iter().filter_map(string_match));
    CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age_secs: c
            .max_age
            .as_ref()
            .and_then(|d| d.to_std())
            .map(|d| d.as_secs()),
        allow_credentials: c.allow_credentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_the_runtime_would_refuse_are_caught_one_by_one() {
        let bad_regex = Route {
            name: "r".into(),
            matches: vec![RouteMatch {
                path: Some(StringMatch::Regex("(".into())),
                ..Default::default()
            }],
            action: RouteAction::DirectResponse(DirectResponse {
                status: 200,
                body: None,
            }),
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            cors: None,
        };
        assert!(check(&bad_regex, "http[0]").is_err());
        let mut zero = bad_regex.clone();
        zero.matches.clear();
        assert!(check(&zero, "http[0]").is_ok());
        zero.action = RouteAction::Forward(ForwardAction {
            clusters: vec![WeightedCluster {
                cluster: "c".into(),
                weight: 0,
            }],
            rewrite: None,
            timeout_ms: None,
            retry: None,
            ..Default::default()
        });
        let e = check(&zero, "http[0]").unwrap_err().to_string();
        assert!(e.contains("add up to 0"), "{e}");
    }

    #[test]
    fn re2_groups_become_regex_crate_groups() {
        assert_eq!(re2_substitution(r"/v2/\1/x"), "/v2/${1}/x");
        assert_eq!(re2_substitution("/cost$"), "/cost$$");
        assert_eq!(re2_substitution(r"\\n"), r"\\n");
    }
}
