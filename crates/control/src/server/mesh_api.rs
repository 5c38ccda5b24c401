//! The monitoring endpoint's mesh calls, present when the discovery server runs:
//!
//! - `GET /debug/syncz`: every connected proxy with, per type, the version and nonce last sent,
//!   the last acknowledged, and the last NACK's reason (what `bowline proxy-status` prints).
//! - `GET /debug/registryz`: the service registry of the current push, with the
//!   auto-registered WorkloadEntries.
//! - `POST /apis/token?namespace=NS&serviceAccount=SA`: the bootstrap token file of that
//!   workload identity (issued on first use, 0600 under the state directory) and the root
//!   certificate file a proxy verifies the control plane with. Answer: `{"identity",
//!   "tokenFile", "rootCertFile", "issued"}`. Like apply, this is unauthenticated: loopback only.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::api::param;
use super::{json, text, Body};
use crate::mesh::MeshState;

pub(super) const PATHS: &[&str] = &["/debug/syncz", "/debug/registryz", "/apis/token"];

pub(super) async fn handle(
    mesh: Option<&Arc<MeshState>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(mesh) = mesh else {
        return text(
            StatusCode::NOT_FOUND,
            "the discovery server is not running (start the control plane with --state-dir)\n",
        );
    };
    let query = req.uri().query().unwrap_or("").to_string();
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/debug/syncz") => {
            let rows = mesh.table.snapshot();
            json(
                StatusCode::OK,
                &serde_json::to_value(rows).unwrap_or_default(),
            )
        }
        (Method::GET, "/debug/registryz") => json(StatusCode::OK, &mesh.pusher.registryz()),
        (Method::POST, "/apis/token") => {
            let (Some(ns), Some(sa)) =
                (param(&query, "namespace"), param(&query, "serviceAccount"))
            else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "namespace and serviceAccount parameters are required\n",
                );
            };
            match mesh.token(&ns, &sa).await {
                Ok(grant) => json(
                    StatusCode::OK,
                    &serde_json::to_value(grant).unwrap_or_default(),
                ),
                Err(e) => json(
                    StatusCode::BAD_REQUEST,
                    &json!({ "status": "Failure", "message": e.to_string() }),
                ),
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}
