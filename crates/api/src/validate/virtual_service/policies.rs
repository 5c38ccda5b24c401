//! The per-rule policies of an HTTP rule: CORS, fault injection, mirrors, redirect, direct
//! response, retries and rewrite, with Istio's rules and the CRD's oneOf and duration rules.

use super::headers;
use super::http::string_match_one_of;
use super::regex;
use super::{one_of, percentage, validate_destination};
use crate::types::virtual_service::*;
use crate::validate::fields;
use crate::validate::{at, idx, Report};

/// Body sizes (bytes) past which a direct response draws a warning, and an error.
const DIRECT_RESPONSE_WARN: usize = 100 * 1024;
const DIRECT_RESPONSE_MAX: usize = 1024 * 1024;

/// Methods a CORS policy may allow (Go's `net/http` method names, and `*`).
const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// Retry conditions Envoy understands in `x-envoy-retry-on` and `x-envoy-retry-grpc-on`.
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names a fault may abort with.
const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

pub(super) fn cors_policy(r: &mut Report, path: &str, c: &CorsPolicy) {
    let origins = at(path, "allowOrigins");
    for (i, o) in c.allow_origins.iter().enumerate() {
        let p = idx(&origins, i);
        string_match_one_of(r, &p, o);
        let value = o
            .exact
            .as_deref()
            .or(o.prefix.as_deref())
            .or(o.regex.as_deref())
            .unwrap_or("");
        if value.is_empty() {
            r.error(
                &p,
                format!("'{value}' is not a valid match type for CORS allow origins"),
            );
            continue;
        }
        if let Some(re) = &o.regex {
            r.check(
                at(&p, "regex"),
                regex::check_field(re, "corsPolicy.allowOrigins"),
            );
        }
    }
    let methods = at(path, "allowMethods");
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            r.error(
                idx(&methods, i),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for field in ["allowHeaders", "exposeHeaders"] {
        let list = if field == "allowHeaders" {
            &c.allow_headers
        } else {
            &c.expose_headers
        };
        let p = at(path, field);
        for (i, h) in list.iter().enumerate() {
            r.check(idx(&p, i), headers::cors_header_name(h));
        }
    }
    if let Some(max_age) = &c.max_age {
        let p = at(path, "maxAge");
        duration(r, &p, max_age);
        if max_age.as_nanos() % 1_000_000_000 != 0 {
            r.error(&p, "max_age duration is accurate only to seconds precision");
        }
    }
}

pub(super) fn fault(r: &mut Report, path: &str, f: &HttpFaultInjection) {
    if f.abort.is_none() && f.delay.is_none() {
        r.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(a) = &f.abort {
        let p = at(path, "abort");
        one_of(
            r,
            &p,
            &[
                ("httpStatus", a.http_status.is_some()),
                ("grpcStatus", a.grpc_status.is_some()),
                ("http2Error", a.http2_error.is_some()),
            ],
        );
        if let Some(pc) = &a.percentage {
            r.check(at(&p, "percentage.value"), percentage(pc.value));
        }
        if let Some(s) = &a.grpc_status {
            if !GRPC_STATUSES.contains(&s.as_str()) {
                r.error(
                    at(&p, "grpcStatus"),
                    format!(
                        "gRPC status {s:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md \
                         for a list of supported codes, for example 'NOT_FOUND'"
                    ),
                );
            }
        } else if a.http2_error.is_some() {
            r.error(
                at(&p, "http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else if let Some(s) = a.http_status {
            r.check(at(&p, "httpStatus"), http_status(i64::from(s)));
        } else {
            r.warning(&p, "abort configured, but error type not set");
        }
    }
    if let Some(d) = &f.delay {
        let p = at(path, "delay");
        one_of(
            r,
            &p,
            &[
                ("fixedDelay", d.fixed_delay.is_some()),
                ("exponentialDelay", d.exponential_delay.is_some()),
            ],
        );
        if let Some(pc) = &d.percentage {
            r.check(at(&p, "percentage.value"), percentage(pc.value));
        }
        if let Some(fd) = &d.fixed_delay {
            duration(r, &at(&p, "fixedDelay"), fd);
        } else if let Some(ed) = &d.exponential_delay {
            let ep = at(&p, "exponentialDelay");
            duration(r, &ep, ed);
            r.error(&ep, "exponentialDelay not supported yet");
        }
    }
}

/// Status codes Istio lets a fault or direct response return.
fn http_status(status: i64) -> Result<(), String> {
    if (200..=600).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status} is not in range 200-599"))
    }
}

/// Istio's duration rule (at least 1ms, whole milliseconds), plus the CRD's CEL rule.
pub(super) fn duration(r: &mut Report, path: &str, d: &crate::types::common::Duration) {
    if d.as_nanos() < 1_000_000 {
        r.error(path, "must be a valid duration greater than 1ms");
        return;
    }
    r.check(path, fields::duration(d));
}

pub(super) fn mirrors(r: &mut Report, path: &str, list: &[HttpMirrorPolicy]) {
    for (i, m) in list.iter().enumerate() {
        let p = idx(path, i);
        let Some(d) = &m.destination else {
            r.error(at(&p, "destination"), "destination is required for mirrors");
            continue;
        };
        validate_destination(r, &at(&p, "destination"), d);
        if let Some(pc) = &m.percentage {
            let pp = at(&p, "percentage.value");
            if pc.value > 100.0 {
                r.error(
                    &pp,
                    format!(
                        "mirror percentage must have a max value of 100 (it has {:.6})",
                        pc.value
                    ),
                );
            }
            if pc.value < 0.0 {
                r.error(
                    &pp,
                    format!(
                        "mirror percentage must have a min value of 0 (it has {:.6})",
                        pc.value
                    ),
                );
            }
        }
    }
}

/// Istio stops at the first problem of a redirect; so do we.
pub(super) fn http_redirect(
    r: &mut Report,
    path: &str,
    rd: &HttpRedirect,
    matches: &[HttpMatchRequest],
) {
    one_of(
        r,
        path,
        &[
            ("port", rd.port.is_some()),
            ("derivePort", rd.derive_port.is_some()),
        ],
    );
    let result = (|| {
        if !rd.uri.is_empty() && !rd.prefix_rewrite.is_empty() {
            return Err((
                "prefixRewrite",
                "redirect may only specify one of uri or prefix_rewrite".to_string(),
            ));
        }
        if !rd.prefix_rewrite.is_empty()
            && matches
                .iter()
                .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()))
        {
            return Err((
                "prefixRewrite",
                "redirect prefix_rewrite requires all URI matches to use prefix match type"
                    .to_string(),
            ));
        }
        let has_port = rd.port.is_some() || rd.derive_port.is_some();
        if rd.uri.is_empty()
            && rd.prefix_rewrite.is_empty()
            && rd.authority.is_empty()
            && !has_port
            && rd.scheme.is_empty()
        {
            return Err((
                "",
                "redirect must specify URI, authority, scheme, or port".to_string(),
            ));
        }
        if rd.redirect_code != 0 && !(300..=399).contains(&rd.redirect_code) {
            return Err((
                "redirectCode",
                format!(
                    "{} is not a valid redirect code, must be 3xx",
                    rd.redirect_code
                ),
            ));
        }
        if !rd.scheme.is_empty() && rd.scheme != "http" && rd.scheme != "https" {
            return Err((
                "scheme",
                "invalid redirect scheme, must be \"http\" or \"https\"".to_string(),
            ));
        }
        if let Some(port) = rd.port.filter(|p| *p > 0) {
            fields::port(i64::from(port)).map_err(|e| ("port", e))?;
        }
        Ok(())
    })();
    if let Err((field, msg)) = result {
        let p = if field.is_empty() {
            path.to_string()
        } else {
            at(path, field)
        };
        r.error(p, msg);
    }
}

pub(super) fn direct_response(r: &mut Report, path: &str, d: &HttpDirectResponse) {
    if let Some(body) = &d.body {
        let bp = at(path, "body");
        one_of(
            r,
            &bp,
            &[
                ("string", body.string.is_some()),
                ("bytes", body.bytes.is_some()),
            ],
        );
        let size = if let Some(s) = &body.string {
            Some(s.len())
        } else if let Some(b) = &body.bytes {
            match base64_len(b) {
                Some(n) => Some(n),
                None => {
                    r.error(
                        at(&bp, "bytes"),
                        "bytes must be base64 encoded (standard alphabet, padded)",
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some(size) = size {
            if size > DIRECT_RESPONSE_MAX {
                r.error(
                    &bp,
                    "large direct_responses may impact control plane performance, must be less than 1MB",
                );
            } else if size > DIRECT_RESPONSE_WARN {
                r.warning(
                    &bp,
                    "large direct_responses may impact control plane performance",
                );
            }
        }
    }
    r.check(at(path, "status"), http_status(i64::from(d.status)));
}

/// Decoded length of standard, padded base64 (what the CRD's `format: byte` accepts), or `None`
/// when it is not valid base64.
fn base64_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() / 4 * 4 != b.len() {
        return None;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &b[..b.len() - pad];
    if !body
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
    {
        return None;
    }
    Some(b.len() / 4 * 3 - pad)
}

/// A VirtualService's retry policy: Istio's `ValidateHTTPRetry` plus the CRD's duration rule.
pub fn validate_http_retry(r: &mut Report, path: &str, retry: &HttpRetry) {
    http_retry(r, path, retry, true);
}

/// Istio's `ValidateHTTPRetry`, shared with the mesh config's default retry policies. `crd` adds
/// the CRD's CEL duration rule (VirtualService); the mesh config is no CRD and gets only Istio's.
pub fn http_retry(r: &mut Report, path: &str, retry: &HttpRetry, crd: bool) {
    let duration = |r: &mut Report, p: &str, d: &crate::types::common::Duration| {
        if crd {
            duration(r, p, d);
        } else {
            r.check(p, fields::duration(d));
        }
    };
    if retry.attempts < 0 {
        r.error(at(path, "attempts"), "attempts cannot be negative");
    }
    if retry.attempts == 0
        && (retry.per_try_timeout.is_some()
            || !retry.retry_on.is_empty()
            || retry.retry_remote_localities.is_some())
    {
        r.error(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(t) = &retry.per_try_timeout {
        duration(r, &at(path, "perTryTimeout"), t);
    }
    if !retry.retry_on.is_empty() {
        for policy in retry.retry_on.split(',') {
            if !RETRY_ON.contains(&policy) && !is_http_status_code(policy) {
                r.error(
                    at(path, "retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    if let Some(b) = &retry.backoff {
        duration(r, &at(path, "backoff"), b);
    }
}

/// A status code Go's `net/http` has a name for, written as Go's `strconv.Atoi` reads it.
fn is_http_status_code(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Ok(n) = s.parse::<i64>() else {
        return false;
    };
    matches!(n,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

pub(super) fn rewrite(r: &mut Report, path: &str, rw: &HttpRewrite) {
    if !rw.uri.is_empty() && rw.uri_regex_rewrite.is_some() {
        r.error(
            path,
            "rewrite may only contain one of URI or UriRegexRewrite",
        );
        return;
    }
    if rw.uri.is_empty() && rw.uri_regex_rewrite.is_none() && rw.authority.is_empty() {
        r.error(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
        return;
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        let p = at(path, "uriRegexRewrite");
        if rr.pattern.is_empty() || rr.rewrite.is_empty() {
            r.error(
                &p,
                "UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        } else if let Err(e) = regex::check_field(&rr.pattern, "HTTPRewrite.UriRegexRewrite.Match")
        {
            r.error(at(&p, "match"), format!("UriRegexRewrite has errors: {e}"));
        }
    }
}
