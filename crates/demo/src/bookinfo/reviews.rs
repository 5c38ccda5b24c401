//! reviews v1, v2 and v3: two reviews of the book; v2 and v3 add each reviewer's stars from
//! ratings, black or red.
//!
//! The ratings timeouts differ on purpose: v2 waits 10 s and v3 2.5 s, which is what Istio's
//! fault-injection task relies on to show a timeout bug in one version and not the other.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use tracing::warn;

use super::ReviewsVersion;
use crate::client::Client;
use crate::propagate::{self, Forwarder};
use crate::server::{self, Request, Response, Service};

/// Shown in place of stars when ratings cannot be had.
pub const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

const REVIEWS: [(&str, &str); 2] = [
    (
        "Reviewer1",
        "A farce that never stops to catch its breath: two pairs of twins, one bewildered town, and jokes that still land.",
    ),
    (
        "Reviewer2",
        "Light and quick, though the mistaken identities wear thin by the fourth act. Worth an evening.",
    ),
];

pub struct Reviews {
    version: ReviewsVersion,
    ratings: String,
    client: Client,
    podname: String,
    clustername: String,
}

impl Reviews {
    /// `ratings` is the `host:port` of the ratings service (unused by v1).
    pub fn new(version: ReviewsVersion, ratings: String) -> Reviews {
        Reviews {
            version,
            ratings,
            client: Client::new(),
            podname: crate::hostname(),
            // The sample prints "null" when CLUSTER_NAME is unset, and productpage hides that.
            clustername: std::env::var("CLUSTER_NAME").unwrap_or_else(|_| "null".to_owned()),
        }
    }

    /// Star colour and ratings timeout, for the versions that show ratings.
    fn stars(&self) -> Option<(&'static str, Duration)> {
        match self.version {
            ReviewsVersion::V1 => None,
            ReviewsVersion::V2 => Some(("black", Duration::from_secs(10))),
            ReviewsVersion::V3 => Some(("red", Duration::from_millis(2500))),
        }
    }

    async fn reviews(&self, id: i64, req: &Request) -> Value {
        let ratings = match self.stars() {
            Some((color, timeout)) => Some((color, self.fetch_ratings(id, req, timeout).await)),
            None => None,
        };
        let reviews: Vec<Value> = REVIEWS
            .iter()
            .map(|(reviewer, text)| {
                let mut r = json!({"reviewer": reviewer, "text": text});
                if let Some((color, ratings)) = &ratings {
                    let stars = ratings
                        .as_ref()
                        .and_then(|m| m.get(*reviewer))
                        .and_then(Value::as_u64);
                    r["rating"] = match stars {
                        Some(stars) => json!({"stars": stars, "color": color}),
                        None => json!({"error": RATINGS_UNAVAILABLE}),
                    };
                }
                r
            })
            .collect();
        json!({
            "id": id.to_string(),
            "podname": self.podname,
            "clustername": self.clustername,
            "reviews": reviews,
        })
    }

    /// The reviewer-to-stars map, or None when ratings failed in any way.
    async fn fetch_ratings(&self, id: i64, req: &Request, timeout: Duration) -> Option<Value> {
        let url = format!("http://{}/ratings/{id}", self.ratings);
        let headers = propagate::forward(&req.head.headers, Forwarder::Backend);
        match self.client.get(&url, &headers, timeout).await {
            Ok(reply) if reply.status == StatusCode::OK => {
                let ratings = reply.json().and_then(|v| v.get("ratings").cloned());
                if ratings.is_none() {
                    warn!(%url, "ratings answered without a ratings object");
                }
                ratings
            }
            Ok(reply) => {
                warn!(%url, status = reply.status.as_u16(), "ratings failed");
                None
            }
            Err(e) => {
                warn!("ratings failed: {e}");
                None
            }
        }
    }
}

impl Service for Reviews {
    async fn call(self: Arc<Self>, req: Request) -> Response {
        if req.head.method != Method::GET && req.head.method != Method::HEAD {
            return server::method_not_allowed();
        }
        let path = req.path();
        if path == "/health" {
            return server::json_compact(StatusCode::OK, &json!({"status": "Reviews is healthy"}));
        }
        // Like the sample's typed path parameter, a non-numeric id matches no route.
        let Some(id) = path.strip_prefix("/reviews/").and_then(super::product_id) else {
            return server::not_found();
        };
        let body = self.reviews(id, &req).await;
        server::json_compact(StatusCode::OK, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_timeouts_per_version() {
        let stars = |v| Reviews::new(v, "ratings:9080".into()).stars();
        assert_eq!(stars(ReviewsVersion::V1), None);
        assert_eq!(
            stars(ReviewsVersion::V2),
            Some(("black", Duration::from_secs(10)))
        );
        assert_eq!(
            stars(ReviewsVersion::V3),
            Some(("red", Duration::from_millis(2500)))
        );
    }
}
