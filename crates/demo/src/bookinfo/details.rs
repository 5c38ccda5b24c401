//! details v1: the book's bibliographic record, the same for every product id.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::json;

use crate::server::{self, Request, Response, Service};

#[derive(Debug, Default)]
pub struct Details;

impl Service for Details {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        if req.head.method != Method::GET && req.head.method != Method::HEAD {
            return server::method_not_allowed();
        }
        let path = req.path();
        if path == "/health" {
            return server::json_compact(StatusCode::OK, &json!({"status": "Details is healthy"}));
        }
        match path.strip_prefix("/details/") {
            Some(id) => match super::product_id(id) {
                Some(id) => server::json_compact(StatusCode::OK, &book(id)),
                None => server::json_compact(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "please provide numeric product id"}),
                ),
            },
            None => server::not_found(),
        }
    }
}

/// The record Istio's details v1 serves for every id.
pub fn book(id: i64) -> serde_json::Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}
