//! ratings v1: stars per reviewer, held in memory. `POST /ratings/{id}` replaces a product's
//! ratings, as the sample's does, so a demo can change what reviews v2/v3 show.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::server::{self, Request, Response, Service};

#[derive(Debug, Default)]
pub struct Ratings {
    /// Ratings posted per product; products without an entry have the default ratings.
    posted: Mutex<HashMap<i64, Map<String, Value>>>,
}

impl Ratings {
    pub fn new() -> Ratings {
        Ratings::default()
    }

    fn get(&self, id: i64) -> Value {
        let posted = self.posted.lock().ok().and_then(|m| m.get(&id).cloned());
        let ratings = posted.map(Value::Object).unwrap_or_else(default_ratings);
        json!({"id": id, "ratings": ratings})
    }

    fn post(&self, id: i64, body: &[u8]) -> Result<Value, &'static str> {
        let ratings = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) if m.values().all(valid_stars) => m,
            _ => return Err("please provide valid ratings JSON"),
        };
        if let Ok(mut m) = self.posted.lock() {
            m.insert(id, ratings);
        }
        Ok(self.get(id))
    }
}

fn default_ratings() -> Value {
    json!({"Reviewer1": 5, "Reviewer2": 4})
}

fn valid_stars(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| (1..=5).contains(&n))
}

impl Service for Ratings {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        let path = req.path();
        if path == "/health" {
            return server::json_compact(StatusCode::OK, &json!({"status": "Ratings is healthy"}));
        }
        let Some(id) = path.strip_prefix("/ratings/") else {
            return server::not_found();
        };
        let Some(id) = super::product_id(id) else {
            return server::json_compact(
                StatusCode::BAD_REQUEST,
                &json!({"error": "please provide numeric product ID"}),
            );
        };
        match req.head.method {
            Method::GET | Method::HEAD => server::json_compact(StatusCode::OK, &self.get(id)),
            Method::POST => match self.post(id, &req.body) {
                Ok(v) => server::json_compact(StatusCode::OK, &v),
                Err(e) => server::json_compact(StatusCode::BAD_REQUEST, &json!({"error": e})),
            },
            _ => server::method_not_allowed(),
        }
    }
}
