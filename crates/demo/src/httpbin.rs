//! httpbin: the request-echo service Istio's tasks aim traffic at (fault injection, mirroring,
//! authorization, egress). Endpoints and JSON shapes follow httpbin.org: keys sorted, headers
//! title-cased with repeated values joined by commas, `args`/`form` values a string, or a list
//! when repeated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::form;
use crate::server::{self, Request, Response, Service};

/// The port Istio's httpbin sample listens on.
pub const PORT: u16 = 8000;

/// `/delay/{n}` waits at most this long, as httpbin.org does.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// `/bytes/{n}` returns at most this many bytes, as httpbin.org does.
pub const MAX_BYTES: usize = 100 * 1024;

#[derive(Debug, Default)]
pub struct Httpbin;

impl Service for Httpbin {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        let mut resp = route(&req).await;
        // httpbin.org answers every origin, so browser-based demos can call it.
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        resp
    }
}

/// Which parts of the request an echo endpoint reports.
#[derive(Clone, Copy)]
enum Echo {
    /// args, headers, origin, url
    Get,
    /// plus data, files, form, json
    Body,
    /// plus method
    Anything,
    /// data, files, form but no json: what `/delay` reports
    Delay,
}

async fn route(req: &Request) -> Response {
    let m = &req.head.method;
    let get = *m == Method::GET || *m == Method::HEAD;
    let path = req.path();
    match path {
        "/" => server::text(StatusCode::OK, INDEX),
        "/get" if get => echo(req, Echo::Get),
        "/post" if *m == Method::POST => echo(req, Echo::Body),
        "/put" if *m == Method::PUT => echo(req, Echo::Body),
        "/patch" if *m == Method::PATCH => echo(req, Echo::Body),
        "/delete" if *m == Method::DELETE => echo(req, Echo::Body),
        "/get" | "/post" | "/put" | "/patch" | "/delete" => server::method_not_allowed(),
        "/headers" => json_ok(json!({"headers": headers(req)})),
        "/ip" => json_ok(json!({"origin": origin(req)})),
        "/user-agent" => json_ok(json!({"user-agent": req.header("user-agent")})),
        "/uuid" => json_ok(json!({"uuid": uuid4(&mut fastrand::Rng::new())})),
        "/response-headers" if get || *m == Method::POST => response_headers(req),
        _ if path == "/anything" || path.starts_with("/anything/") => echo(req, Echo::Anything),
        _ => match path
            .split_once('/')
            .map(|(_, p)| p)
            .and_then(|p| p.split_once('/'))
        {
            Some(("status", codes)) => status(codes),
            Some(("delay", secs)) => delay(req, secs).await,
            Some(("bytes", n)) if get => bytes(req, n),
            _ => server::not_found(),
        },
    }
}

const INDEX: &str = "httpbin (Bowline's demo): /get /post /put /patch /delete /anything \
/headers /ip /user-agent /uuid /status/{codes} /delay/{seconds} /response-headers?k=v /bytes/{n}\n";

fn json_ok(v: Value) -> Response {
    server::json(StatusCode::OK, &v)
}

fn echo(req: &Request, what: Echo) -> Response {
    let mut out = BTreeMap::new();
    out.insert("args", grouped(&form::parse_urlencoded(req.query())));
    out.insert("headers", headers(req));
    out.insert("origin", Value::String(origin(req)));
    out.insert("url", Value::String(url(req)));
    if matches!(what, Echo::Body | Echo::Anything | Echo::Delay) {
        let body = body_fields(req);
        out.insert("data", body.data);
        out.insert("files", Value::Object(Map::new()));
        out.insert("form", body.form);
        if !matches!(what, Echo::Delay) {
            out.insert("json", body.json);
        }
    }
    if matches!(what, Echo::Anything) {
        out.insert("method", Value::String(req.head.method.to_string()));
    }
    json_ok(Value::Object(
        out.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    ))
}

struct BodyFields {
    data: Value,
    form: Value,
    json: Value,
}

fn body_fields(req: &Request) -> BodyFields {
    let content_type = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&req.body);
        return BodyFields {
            data: Value::String(String::new()),
            form: grouped(&form::parse_urlencoded(&text)),
            json: Value::Null,
        };
    }
    let data = match std::str::from_utf8(&req.body) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("data:application/octet-stream;base64,{}", base64(&req.body)),
    };
    // httpbin.org parses the body as JSON whatever the content type says.
    let json = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    BodyFields {
        data: Value::String(data),
        form: Value::Object(Map::new()),
        json,
    }
}

/// Pairs to an object, sorted by key: one value stays a string, repeated keys become a list.
fn grouped(pairs: &[(String, String)]) -> Value {
    let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in pairs {
        m.entry(k).or_default().push(v);
    }
    Value::Object(
        m.into_iter()
            .map(|(k, mut vs)| {
                let v = if vs.len() == 1 {
                    Value::String(vs.remove(0).to_owned())
                } else {
                    Value::Array(
                        vs.into_iter()
                            .map(|v| Value::String(v.to_owned()))
                            .collect(),
                    )
                };
                (k.to_owned(), v)
            })
            .collect(),
    )
}

/// Request headers as httpbin.org shows them: `User-Agent` casing, sorted, repeats joined.
fn headers(req: &Request) -> Value {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &req.head.headers {
        m.entry(title_case(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    if !m.contains_key("Host") {
        if let Some(authority) = req.head.uri.authority() {
            m.insert("Host".to_owned(), vec![authority.to_string()]);
        }
    }
    Value::Object(
        m.into_iter()
            .map(|(k, v)| (k, Value::String(v.join(","))))
            .collect(),
    )
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The client as httpbin.org reports it: the proxy chain when there is one.
fn origin(req: &Request) -> String {
    match req.header("x-forwarded-for") {
        Some(xff) if !xff.trim().is_empty() => xff.to_owned(),
        _ => req.peer.ip().to_string(),
    }
}

fn url(req: &Request) -> String {
    let scheme = req.header("x-forwarded-proto").unwrap_or("http");
    let host = req
        .header("host")
        .map(str::to_owned)
        .or_else(|| req.head.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| req.peer.to_string());
    let pq = req
        .head
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    format!("{scheme}://{host}{pq}")
}

/// `/status/418`, `/status/200,503` (one at random) or `/status/200:0.9,503:0.1` (weighted).
fn status(codes: &str) -> Response {
    let code = match pick_status(codes, &mut fastrand::Rng::new()) {
        Some(c) => c,
        None => return server::text(StatusCode::BAD_REQUEST, "Invalid status code"),
    };
    status_response(code)
}

fn pick_status(codes: &str, rng: &mut fastrand::Rng) -> Option<StatusCode> {
    let mut choices = Vec::new();
    for item in codes.split(',') {
        let (code, weight) = match item.split_once(':') {
            Some((c, w)) => (c, w.trim().parse::<f64>().ok()?),
            None => (item, 1.0),
        };
        if !(weight.is_finite() && weight >= 0.0) {
            return None;
        }
        let code = StatusCode::from_u16(code.trim().parse().ok()?).ok()?;
        // A 1xx cannot be a final response.
        if code.is_informational() {
            return None;
        }
        choices.push((code, weight));
    }
    let total: f64 = choices.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return choices.first().map(|(c, _)| *c);
    }
    let mut x = rng.f64() * total;
    for (code, weight) in &choices {
        if x < *weight {
            return Some(*code);
        }
        x -= weight;
    }
    choices.last().map(|(c, _)| *c)
}

fn status_response(code: StatusCode) -> Response {
    let mut resp = server::with_type(code, "text/html; charset=utf-8", Bytes::new());
    let h = resp.headers_mut();
    match code.as_u16() {
        301 | 302 | 303 | 305 | 307 => {
            h.insert(header::LOCATION, HeaderValue::from_static("/redirect/1"));
        }
        401 => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Fake Realm\""),
            );
        }
        407 => {
            h.insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Fake Realm\""),
            );
        }
        418 => {
            h.insert(
                "x-more-info",
                HeaderValue::from_static("http://tools.ietf.org/html/rfc2324"),
            );
            *resp.body_mut() = http_body_util::Full::new(Bytes::from_static(TEAPOT));
        }
        _ => {}
    }
    resp
}

const TEAPOT: &[u8] = b"\n    -=[ teapot ]=-\n\n       _...._\n     .'  _ _ `.\n    | .\"` ^ `\". _,\n    \\_;`\"---\"`|//\n      |       ;/\n      \\_     _/\n        `\"\"\"`\n";

async fn delay(req: &Request, secs: &str) -> Response {
    let Some(secs) = secs.parse::<f64>().ok().filter(|s| s.is_finite()) else {
        return server::text(StatusCode::BAD_REQUEST, "Invalid delay");
    };
    tokio::time::sleep(delay_for(secs)).await;
    echo(req, Echo::Delay)
}

/// Negative delays are no delay; long ones are capped.
fn delay_for(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.clamp(0.0, MAX_DELAY.as_secs_f64()))
}

/// `/bytes/{n}`: n random bytes (capped); `?seed=` makes them reproducible.
fn bytes(req: &Request, n: &str) -> Response {
    let Ok(n) = n.parse::<usize>() else {
        return server::text(StatusCode::BAD_REQUEST, "Invalid byte count");
    };
    let n = n.min(MAX_BYTES);
    let seed = form::first(&form::parse_urlencoded(req.query()), "seed")
        .and_then(|s| s.parse::<u64>().ok());
    let mut rng = match seed {
        Some(s) => fastrand::Rng::with_seed(s),
        None => fastrand::Rng::new(),
    };
    let data: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(n).collect();
    server::with_type(StatusCode::OK, "application/octet-stream", data.into())
}

/// `/response-headers?k=v...`: sets each pair as a response header and reports the response's
/// headers as JSON, `Content-Length` included (computed until it is stable, as httpbin does).
fn response_headers(req: &Request) -> Response {
    let pairs = form::parse_urlencoded(req.query());
    let mut parsed = Vec::with_capacity(pairs.len());
    for (k, v) in &pairs {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(value)) => parsed.push((name, value)),
            _ => {
                return server::text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid header {k:?}: {v:?}"),
                )
            }
        }
    }
    let mut fields = match grouped(&pairs) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    fields.insert("Content-Type".to_owned(), json!("application/json"));
    let mut len = 0usize;
    let body = loop {
        fields.insert("Content-Length".to_owned(), json!(len.to_string()));
        let mut body =
            serde_json::to_vec_pretty(&Value::Object(fields.clone())).unwrap_or_default();
        body.push(b'\n');
        if body.len() == len {
            break body;
        }
        len = body.len();
    };
    let mut resp = server::with_type(StatusCode::OK, "application/json", body.into());
    for (name, value) in parsed {
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue;
        }
        resp.headers_mut().append(name, value);
    }
    resp
}

/// A random (version 4) UUID.
fn uuid4(rng: &mut fastrand::Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn uuid4_has_version_and_variant() {
        let u = uuid4(&mut fastrand::Rng::with_seed(7));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn status_lists_and_weights() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(pick_status("418", &mut rng), Some(StatusCode::IM_A_TEAPOT));
        for _ in 0..50 {
            let c = pick_status("200,503", &mut rng).map(|c| c.as_u16());
            assert!(matches!(c, Some(200 | 503)));
            let w = pick_status("200:0,500:1", &mut rng).map(|c| c.as_u16());
            assert_eq!(w, Some(500), "zero weight is never picked");
        }
        for bad in ["", "abc", "99", "1000", "100", "200:x", "200:-1", "200,"] {
            assert_eq!(pick_status(bad, &mut rng), None, "{bad:?}");
        }
    }

    #[test]
    fn both_codes_of_a_list_come_up() {
        let mut rng = fastrand::Rng::with_seed(3);
        let seen: std::collections::HashSet<u16> = (0..200)
            .filter_map(|_| pick_status("200,503", &mut rng))
            .map(|c| c.as_u16())
            .collect();
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn delays_are_capped_at_ten_seconds() {
        assert_eq!(delay_for(100.0), MAX_DELAY);
        assert_eq!(delay_for(1e300), MAX_DELAY);
        assert_eq!(delay_for(-3.0), Duration::ZERO);
        assert_eq!(delay_for(0.5), Duration::from_millis(500));
    }

    #[test]
    fn title_cases_header_names() {
        assert_eq!(title_case("user-agent"), "User-Agent");
        assert_eq!(title_case("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(title_case("te"), "Te");
    }
}
