//! HTTP rules of a VirtualService: what a rule may combine (route, redirect, direct response,
//! delegate), its matches and string matches, header manipulation, the authority-rewrite rule and
//! weighted destinations. The rule's policies (CORS, faults, retries...) are in `policies`.

use super::headers;
use super::policies::{
    cors_policy, direct_response, duration, fault, http_redirect, mirrors, rewrite,
    validate_http_retry,
};
use super::regex;
use super::{one_of, validate_destination, validate_gateway_names};
use crate::types::virtual_service::*;
use crate::validate::fields;
use crate::validate::{at, idx, Report};

/// How a rule relates to delegation: a root rule hands off to a delegate VirtualService, a
/// delegate rule lives in one (a VirtualService without hosts).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Independent,
    Root,
    Delegate,
}

/// One HTTP rule at `path` (`spec.http[i]`). `in_delegate`: the VirtualService has no hosts.
pub fn validate_http_route(
    r: &mut Report,
    path: &str,
    route: &HttpRoute,
    in_delegate: bool,
    gateway_semantics: bool,
) {
    let kind = if in_delegate {
        Kind::Delegate
    } else if route.delegate.is_some() {
        Kind::Root
    } else {
        Kind::Independent
    };
    conflicts(r, path, route, kind);
    for (i, m) in route.matches.iter().enumerate() {
        match_request(r, &idx(&at(path, "match"), i), m);
    }
    if let Some(h) = &route.headers {
        header_operations(r, &at(path, "headers"), h);
    }
    if let Some(c) = &route.cors_policy {
        cors_policy(r, &at(path, "corsPolicy"), c);
    }
    if let Some(f) = &route.fault {
        fault(r, &at(path, "fault"), f);
    }
    if let Some(p) = route.mirror_percent {
        // The CRD spells this field two ways; either way it lands here.
        let mp = at(path, "mirrorPercent");
        if p > 100 {
            r.error(
                &mp,
                format!("mirror_percent must have a max value of 100 (it has {p})"),
            );
        }
        r.warning(
            &mp,
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = &route.mirror_percentage {
        let mp = at(path, "mirrorPercentage.value");
        if p.value > 100.0 {
            r.error(
                &mp,
                format!(
                    "mirror_percentage must have a max value of 100 (it has {:.6})",
                    p.value
                ),
            );
        }
        if p.value < 0.0 {
            r.error(
                &mp,
                format!(
                    "mirror_percentage must have a min value of 0 (it has {:.6})",
                    p.value
                ),
            );
        }
    }
    if let Some(m) = &route.mirror {
        validate_destination(r, &at(path, "mirror"), m);
    }
    mirrors(r, &at(path, "mirrors"), &route.mirrors);
    if let Some(redirect) = &route.redirect {
        http_redirect(r, &at(path, "redirect"), redirect, &route.matches);
    }
    if let Some(d) = &route.direct_response {
        direct_response(r, &at(path, "directResponse"), d);
    }
    if let Some(retry) = &route.retries {
        validate_http_retry(r, &at(path, "retries"), retry);
    }
    if let Some(rw) = &route.rewrite {
        rewrite(r, &at(path, "rewrite"), rw);
    }
    authority_rewrite(r, path, route);
    http_route_destinations(r, &at(path, "route"), &route.route, gateway_semantics);
    if let Some(t) = &route.timeout {
        duration(r, &at(path, "timeout"), t);
    }
}

/// What one rule may combine.
fn conflicts(r: &mut Report, path: &str, route: &HttpRoute, kind: Kind) {
    if kind == Kind::Root {
        let name = if route.name.is_empty() {
            String::new()
        } else {
            format!(" {}", route.name)
        };
        if route.redirect.is_some() {
            r.error(
                at(path, "redirect"),
                format!("root HTTP route{name} must not specify redirect"),
            );
        }
        if !route.route.is_empty() {
            r.error(
                at(path, "route"),
                format!("root HTTP route{name} must not specify route"),
            );
        }
        return;
    }
    if kind == Kind::Delegate && route.delegate.is_some() {
        r.error(
            at(path, "delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    if route.redirect.is_some() || route.direct_response.is_some() {
        let (this, field) = if route.redirect.is_some() {
            ("redirect", "redirect")
        } else {
            ("direct_response", "directResponse")
        };
        let here = at(path, field);
        if !route.route.is_empty() {
            r.error(
                &here,
                format!("HTTP route cannot contain both route and {this}"),
            );
        }
        if route.fault.is_some() {
            r.error(
                &here,
                format!("HTTP route cannot contain both fault and {this}"),
            );
        }
        if route.rewrite.is_some() {
            r.error(
                &here,
                format!("HTTP route rule cannot contain both rewrite and {this}"),
            );
        }
        if route.redirect.is_some() && route.direct_response.is_some() {
            r.error(
                &here,
                "HTTP route rule cannot contain both direct_response and redirect",
            );
        }
    } else if route.route.is_empty() {
        r.error(path, "HTTP route, redirect or direct_response is required");
    }
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        r.error(
            at(path, "mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

fn match_request(r: &mut Report, path: &str, m: &HttpMatchRequest) {
    let headers_path = at(path, "headers");
    for (name, sm) in &m.headers {
        let p = at(&headers_path, name);
        r.check(&p, headers::match_header_name(name));
        string_match(r, &p, sm, "headers", false);
    }
    let without_path = at(path, "withoutHeaders");
    for (name, sm) in &m.without_headers {
        let p = at(&without_path, name);
        r.check(&p, headers::match_header_name(name));
        // A regex of `*` means "present" here, not a regular expression.
        if sm.regex.as_deref() == Some("*") {
            string_match_one_of(r, &p, sm);
        } else {
            string_match(r, &p, sm, "withoutHeaders", false);
        }
    }
    // Envoy allows an empty URI prefix but no empty prefix for the other fields.
    if let Some(sm) = &m.uri {
        string_match(r, &at(path, "uri"), sm, "uri", true);
    }
    for (field, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            string_match(r, &at(path, field), sm, field, false);
        }
    }
    let qp_path = at(path, "queryParams");
    for (name, sm) in &m.query_params {
        string_match(r, &at(&qp_path, name), sm, "queryParams", false);
    }
    if m.port != 0 {
        r.check(at(path, "port"), fields::port(i64::from(m.port)));
    }
    fields::labels(r, &at(path, "sourceLabels"), &m.source_labels);
    validate_gateway_names(r, &at(path, "gateways"), &m.gateways, false);
    if !m.source_namespace.is_empty() && !fields::is_dns1123_label(&m.source_namespace) {
        r.error(
            at(path, "sourceNamespace"),
            format!("sourceNamespace match {} is invalid", m.source_namespace),
        );
    }
}

/// A `StringMatch`: at most one kind (CRD `oneOf`), no empty prefix (unless `empty_prefix_ok`,
/// for URIs), and a valid, non-empty regex.
pub fn string_match(
    r: &mut Report,
    path: &str,
    sm: &StringMatch,
    place: &str,
    empty_prefix_ok: bool,
) {
    string_match_one_of(r, path, sm);
    if let Some(p) = &sm.prefix {
        if p.is_empty() && !empty_prefix_ok {
            r.error(
                at(path, "prefix"),
                format!("{place:?}: prefix string match should not be empty"),
            );
        }
    }
    if let Some(re) = &sm.regex {
        string_match_regex(r, &at(path, "regex"), re, place);
    }
}

pub(super) fn string_match_one_of(r: &mut Report, path: &str, sm: &StringMatch) {
    one_of(
        r,
        path,
        &[
            ("exact", sm.exact.is_some()),
            ("prefix", sm.prefix.is_some()),
            ("regex", sm.regex.is_some()),
        ],
    );
}

fn string_match_regex(r: &mut Report, path: &str, re: &str, place: &str) {
    if re.is_empty() {
        r.error(
            path,
            format!("{place:?}: regex string match should not be empty"),
        );
    } else {
        r.check(path, regex::check_field(re, place));
    }
}

fn header_operations(r: &mut Report, path: &str, h: &Headers) {
    if let Some(req) = &h.request {
        let p = at(path, "request");
        header_ops(r, &p, req, true);
    }
    if let Some(resp) = &h.response {
        let p = at(path, "response");
        header_ops(r, &p, resp, false);
    }
}

/// `set`/`add`/`remove` of one direction. Requests may set the authority; responses may not
/// touch `Host` or `:` headers at all.
fn header_ops(r: &mut Report, path: &str, ops: &HeaderOperations, request: bool) {
    let settable = |name: &str| {
        if request {
            headers::settable_request_header(name)
        } else {
            headers::operable_header(name)
        }
    };
    for (field, map) in [("add", &ops.add), ("set", &ops.set)] {
        let p = at(path, field);
        for (name, value) in map {
            let hp = at(&p, name);
            r.check(&hp, settable(name));
            r.check(&hp, headers::header_value(value));
        }
    }
    let p = at(path, "remove");
    for (i, name) in ops.remove.iter().enumerate() {
        r.check(idx(&p, i), headers::operable_header(name));
    }
}

/// The authority may be rewritten in one place only: `rewrite.authority` or one
/// `headers.request` set/add of `:authority`/`Host`.
fn authority_rewrite(r: &mut Report, path: &str, route: &HttpRoute) {
    let mut current = route
        .rewrite
        .as_ref()
        .map(|rw| rw.authority.clone())
        .unwrap_or_default();
    let Some(req) = route.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (field, map) in [("set", &req.set), ("add", &req.add)] {
        for (k, v) in map {
            if !headers::is_authority(k) {
                continue;
            }
            if !current.is_empty() {
                r.error(
                    at(&at(&at(path, "headers.request"), field), k),
                    format!(
                        "authority header cannot be set multiple times: have {current:?}, attempting to set {v:?}"
                    ),
                );
                return;
            }
            current = v.clone();
        }
    }
}

/// Destinations of an HTTP rule: each with its header manipulation, valid host (unless the
/// VirtualService was converted from a Kubernetes Gateway route), non-negative weight, and not all
/// weights zero when there are several.
fn http_route_destinations(
    r: &mut Report,
    path: &str,
    list: &[HttpRouteDestination],
    gateway_semantics: bool,
) {
    let mut total: i32 = 0;
    for (i, d) in list.iter().enumerate() {
        let p = idx(path, i);
        if let Some(h) = &d.headers {
            header_operations(r, &at(&p, "headers"), h);
        }
        destination_and_weight(r, &p, d.destination.as_ref(), d.weight, gateway_semantics);
        // Istio sums in int32 and so wraps around; keep the same arithmetic.
        total = total.wrapping_add(d.weight);
    }
    if list.len() > 1 && total == 0 {
        r.error(path, "total destination weight = 0");
    }
}

/// The part shared by HTTP, TCP and TLS destinations.
pub(super) fn destination_and_weight(
    r: &mut Report,
    path: &str,
    dest: Option<&Destination>,
    weight: i32,
    gateway_semantics: bool,
) {
    match dest {
        None => r.error(at(path, "destination"), "destination is required"),
        Some(d) if !gateway_semantics => validate_destination(r, &at(path, "destination"), d),
        Some(_) => {}
    }
    if weight < 0 {
        r.error(at(path, "weight"), format!("weight {weight} < 0"));
    }
}
