//! helloworld: Istio's smallest HTTP sample, used for canary and multicluster demos. It says
//! which version and which instance answered.

use std::sync::Arc;

use http::{Method, StatusCode};

use crate::server::{self, Request, Response, Service};

/// The port Istio's helloworld sample listens on.
pub const PORT: u16 = 5000;

pub struct Helloworld {
    version: String,
    instance: String,
}

impl Helloworld {
    pub fn new(version: &str) -> Helloworld {
        Helloworld {
            version: version.to_owned(),
            instance: crate::hostname(),
        }
    }
}

impl Service for Helloworld {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        if req.head.method != Method::GET && req.head.method != Method::HEAD {
            return server::method_not_allowed();
        }
        match req.path() {
            "/hello" => server::text(
                StatusCode::OK,
                format!(
                    "Hello version: {}, instance: {}\n",
                    self.version, self.instance
                ),
            ),
            "/health" => server::text(StatusCode::OK, "Helloworld is healthy"),
            _ => server::not_found(),
        }
    }
}
