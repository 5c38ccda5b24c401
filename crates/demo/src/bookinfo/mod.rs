//! Bookinfo: Istio's four-service sample (productpage, details, reviews, ratings).
//!
//! Each service keeps the HTTP contract of Istio's: the same paths, JSON shapes, timeouts, retry,
//! error texts and header propagation, because Istio's tasks (traffic shifting, fault injection,
//! header-based routing on `end-user`) observe exactly those. Where services find each other is
//! read from the same environment variables Istio's apps read ([`Upstreams`]).

pub mod details;
pub mod page;
pub mod productpage;
pub mod ratings;
pub mod reviews;

use std::fmt;
use std::str::FromStr;

/// The port every Bookinfo service listens on and calls the others on.
pub const PORT: u16 = 9080;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{service} has no version {version:?} (known: {known})")]
    UnknownVersion {
        service: &'static str,
        version: String,
        known: &'static str,
    },
}

/// Where productpage and reviews send their calls: `host:port` authorities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub details: String,
    pub reviews: String,
    pub ratings: String,
}

impl Upstreams {
    /// From the process environment.
    pub fn from_env() -> Upstreams {
        Upstreams::from_lookup(|k| std::env::var(k).ok())
    }

    /// From `DETAILS_HOSTNAME`, `REVIEWS_HOSTNAME`, `RATINGS_HOSTNAME` (default: the service
    /// name) and `SERVICES_DOMAIN` (appended after a dot), as Istio's apps read them. Port 9080
    /// unless the hostname carries one (`127.0.0.1:19080`, handy without a mesh) or
    /// `<SERVICE>_SERVICE_PORT` is set. A leading `http://`, which some deployments put in the
    /// hostname variable, is dropped.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Upstreams {
        let domain = env("SERVICES_DOMAIN").filter(|d| !d.is_empty());
        let one = |service: &str| {
            let upper = service.to_ascii_uppercase();
            let host = env(&format!("{upper}_HOSTNAME")).filter(|h| !h.is_empty());
            let port = env(&format!("{upper}_SERVICE_PORT")).and_then(|p| p.parse::<u16>().ok());
            authority(host.as_deref().unwrap_or(service), port, domain.as_deref())
        };
        Upstreams {
            details: one("details"),
            reviews: one("reviews"),
            ratings: one("ratings"),
        }
    }
}

fn authority(host: &str, port: Option<u16>, domain: Option<&str>) -> String {
    let host = host
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (name, explicit_port) = split_port(host);
    let port = explicit_port.or(port).unwrap_or(PORT);
    let is_ip = name
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    match domain {
        Some(d) if !is_ip => format!("{name}.{d}:{port}"),
        _ => format!("{name}:{port}"),
    }
}

/// `host:port` or `[v6]:port` to its parts; a bare host (or bare IPv6 address) has no port.
fn split_port(host: &str) -> (&str, Option<u16>) {
    if let Some((name, port)) = host.rsplit_once(':') {
        let bracketed_or_plain = name.ends_with(']') || !name.contains(':');
        if bracketed_or_plain {
            if let Ok(p) = port.parse::<u16>() {
                return (name, Some(p));
            }
        }
    }
    (host, None)
}

/// The versions of reviews: v1 shows no ratings, v2 black stars, v3 red stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewsVersion {
    V1,
    V2,
    V3,
}

impl FromStr for ReviewsVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "v1" => Ok(ReviewsVersion::V1),
            "v2" => Ok(ReviewsVersion::V2),
            "v3" => Ok(ReviewsVersion::V3),
            _ => Err(Error::UnknownVersion {
                service: "reviews",
                version: s.to_owned(),
                known: "v1, v2, v3",
            }),
        }
    }
}

impl fmt::Display for ReviewsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReviewsVersion::V1 => "v1",
            ReviewsVersion::V2 => "v2",
            ReviewsVersion::V3 => "v3",
        })
    }
}

/// Product ids are integers in details, reviews and ratings; anything else is refused.
fn product_id(segment: &str) -> Option<i64> {
    segment.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_service_names_on_9080() {
        let u = Upstreams::from_lookup(lookup(&[]));
        assert_eq!(u.details, "details:9080");
        assert_eq!(u.reviews, "reviews:9080");
        assert_eq!(u.ratings, "ratings:9080");
    }

    #[test]
    fn domain_hostnames_and_ports() {
        let u = Upstreams::from_lookup(lookup(&[
            ("SERVICES_DOMAIN", "bookinfo.svc.cluster.local"),
            ("DETAILS_HOSTNAME", "http://details-v2/"),
            ("REVIEWS_HOSTNAME", "127.0.0.1:19080"),
            ("RATINGS_SERVICE_PORT", "8080"),
        ]));
        assert_eq!(u.details, "details-v2.bookinfo.svc.cluster.local:9080");
        assert_eq!(u.reviews, "127.0.0.1:19080");
        assert_eq!(u.ratings, "ratings.bookinfo.svc.cluster.local:8080");
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert_eq!(authority("[::1]:7000", None, None), "[::1]:7000");
        assert_eq!(authority("[::1]", Some(1), Some("d")), "[::1]:1");
    }

    #[test]
    fn reviews_versions() {
        assert_eq!(
            "v3".parse::<ReviewsVersion>().ok(),
            Some(ReviewsVersion::V3)
        );
        assert!("v4".parse::<ReviewsVersion>().is_err());
    }
}
