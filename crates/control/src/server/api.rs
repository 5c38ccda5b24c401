//! The `/apis/...` calls: apply and delete hand a YAML body to the [`ConfigWriter`] and answer
//! with its kubectl-style lines; get answers the accepted resources that match, as JSON.
//!
//! Request shapes (all answers JSON):
//! - `POST /apis/apply?input=NAME`, `POST /apis/delete?input=NAME`: body is YAML text; `NAME`
//!   is what messages call the input (a file name), so rejections read `file:line`. Answer:
//!   `{"status": "Success"|"Failure", "results": [{"message", "outcome", "resource", "input"}]}`.
//! - `GET /apis/get?kind=KIND[&name=NAME][&namespace=NS]`: `KIND` is the kind's name
//!   (`VirtualService`); no namespace means all namespaces. Answer: `{"kind", "items":
//!   [{"object", "origin", "ageSeconds"}]}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use api::source::parse_stream;
use api::Kind;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tracing::warn;

use super::metrics::WriteOp;
use super::{json, text, Body, ControlPlane};
use crate::store::{ConfigSnapshot, Outcome, ResourceKey, WriteResult};

/// Larger than any sane set of Istio resources, small enough that a stray upload cannot exhaust
/// memory.
const MAX_BODY: usize = 8 * 1024 * 1024;

pub(super) async fn write(
    state: &Arc<ControlPlane>,
    req: Request<Incoming>,
    op: WriteOp,
) -> Response<Body> {
    let input =
        param(req.uri().query().unwrap_or(""), "input").unwrap_or_else(|| "<request>".to_string());
    let body: Bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("reading the request body (at most {MAX_BODY} bytes): {e}\n"),
            )
        }
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "the body is not UTF-8 text\n");
    };
    let writer = state.writer.clone();
    // The writer reads and writes files: keep that off the async threads.
    let results = tokio::task::spawn_blocking(move || match op {
        WriteOp::Apply => writer.apply(&input, &body),
        WriteOp::Delete => writer.delete(&input, &body),
    })
    .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the write failed: {e}\n"),
            )
        }
    };
    state.metrics.observe_writes(op, &results);
    // kubectl's contract: once apply returns, get shows the change. The store picks files up
    // after its debounce, so wait (bounded) until the snapshot serves what was written.
    wait_until_served(state, &results).await;
    for r in &results {
        if let Outcome::Rejected(reason) = &r.outcome {
            warn!(op = ?op, input = %r.input, resource = ?r.key.as_ref().map(ToString::to_string),
                %reason, "document rejected");
        }
    }
    json(StatusCode::OK, &write_answer(&results))
}

/// What the store must serve for a write to be visible: the written file's document, or no
/// longer the removed file's.
enum Expect {
    Serves(ResourceKey, PathBuf, Value),
    Gone(ResourceKey, PathBuf),
}

impl Expect {
    fn met(&self, snap: &ConfigSnapshot) -> bool {
        match self {
            Expect::Serves(key, file, value) => snap
                .get(key)
                .is_some_and(|e| Path::new(e.file()) == file && e.value() == *value),
            Expect::Gone(key, file) => snap.get(key).is_none_or(|e| Path::new(e.file()) != file),
        }
    }
}

async fn wait_until_served(state: &ControlPlane, results: &[WriteResult]) {
    let written: Vec<(ResourceKey, PathBuf, bool)> = results
        .iter()
        .filter_map(|r| {
            let gone = match r.outcome {
                Outcome::Created | Outcome::Configured | Outcome::Unchanged => false,
                Outcome::Deleted => true,
                Outcome::NotFound | Outcome::Rejected(_) => return None,
            };
            Some((r.key.clone()?, r.file.clone()?, gone))
        })
        .collect();
    if written.is_empty() {
        return;
    }
    // Read back what was written (a concurrent edit may since have changed it; then that edit
    // is what the store will serve, and what is waited for).
    let expected = tokio::task::spawn_blocking(move || {
        written
            .into_iter()
            .filter_map(|(key, file, gone)| {
                if gone {
                    return Some(Expect::Gone(key, file));
                }
                let text = std::fs::read_to_string(&file).ok()?;
                let name = file.display().to_string();
                let value = parse_stream(&name, &text).into_iter().next()?.ok()?.value;
                Some(Expect::Serves(key, file, value))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut versions = state.store.subscribe();
    let deadline = tokio::time::Instant::now() + state.write_visible_within;
    loop {
        let snap = state.store.load();
        if expected.iter().all(|e| e.met(&snap)) {
            return;
        }
        match tokio::time::timeout_at(deadline, versions.changed()).await {
            Ok(Ok(())) => {}
            // The store stopped, or took too long: the files are written either way.
            Ok(Err(_)) | Err(_) => {
                warn!(
                    version = snap.version,
                    "written config not yet served; answering anyway"
                );
                return;
            }
        }
    }
}

fn write_answer(results: &[WriteResult]) -> Value {
    // kubectl exits 1 for a delete of something absent, as for a rejected document.
    let failed = results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Rejected(_) | Outcome::NotFound));
    let results: Vec<Value> = results
        .iter()
        .map(|r| {
            let outcome = match r.outcome {
                Outcome::Created => "created",
                Outcome::Configured => "configured",
                Outcome::Unchanged => "unchanged",
                Outcome::Deleted => "deleted",
                Outcome::NotFound => "notFound",
                Outcome::Rejected(_) => "rejected",
            };
            json!({
                "message": r.to_string(),
                "outcome": outcome,
                "resource": r.key.as_ref().map(ToString::to_string),
                "input": r.input,
            })
        })
        .collect();
    json!({
        "status": if failed { "Failure" } else { "Success" },
        "results": results,
    })
}

pub(super) async fn get(state: &Arc<ControlPlane>, query: &str) -> Response<Body> {
    let Some(kind_name) = param(query, "kind") else {
        return text(StatusCode::BAD_REQUEST, "missing kind\n");
    };
    let Some(kind) = Kind::ALL
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(&kind_name))
    else {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("unknown kind {kind_name:?}\n"),
        );
    };
    let name = param(query, "name").filter(|n| !n.is_empty());
    let namespace = param(query, "namespace").filter(|n| !n.is_empty());
    let snap = state.store.load();
    // Ages come from the files' modification times: a stat per resource, off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let items: Vec<Value> = snap
            .of_kind(kind)
            .filter(|e| name.as_ref().is_none_or(|n| *n == e.key.name))
            // Cluster-scoped kinds match whatever namespace was asked for, as in kubectl.
            .filter(|e| {
                e.key.namespace.is_empty()
                    || namespace.as_ref().is_none_or(|ns| *ns == e.key.namespace)
            })
            .map(|e| {
                let mut object = e.value();
                if !e.key.namespace.is_empty() {
                    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("namespace".into(), Value::String(e.key.namespace.clone()));
                    }
                }
                let age = std::fs::metadata(e.file())
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| d.as_secs());
                json!({
                    "object": object,
                    "origin": format!("{}:{}", e.file(), e.line()),
                    "ageSeconds": age,
                })
            })
            .collect();
        json!({"kind": kind.name(), "items": items})
    })
    .await;
    match answer {
        Ok(a) => json(StatusCode::OK, &a),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("listing failed: {e}\n"),
        ),
    }
}

/// The first value of `key` in a query string, percent-decoded (`+` is a space, as in forms).
pub(super) fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode a query value: everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_round_trip() {
        let name = "dir with space/ünï+code%.yaml";
        let q = format!("kind=vs&input={}", percent_encode(name));
        assert_eq!(param(&q, "input").as_deref(), Some(name));
        assert_eq!(param(&q, "kind").as_deref(), Some("vs"));
        assert_eq!(param(&q, "name"), None);
        assert_eq!(param("a=%zz%4", "a").as_deref(), Some("%zz%4"));
    }
}
