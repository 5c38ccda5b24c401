//! Upstream clusters: named sets of endpoints and how to pick one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A set of upstream endpoints reached the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Usually Istio's form (see [`ClusterName`]); other names (`BlackHoleCluster`) are allowed.
    pub name: String,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

fn default_connect_timeout_ms() -> u64 {
    // Istio's default connectTimeout.
    10_000
}

/// How requests are carried to this cluster's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with a keep-alive pool per endpoint.
    #[default]
    Http1,
    /// h2c prior knowledge: one multiplexed connection per endpoint.
    Http2,
}

/// Endpoint selection within a cluster (Istio's `loadBalancer.simple`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Weighted round robin; Istio's default.
    #[default]
    RoundRobin,
    /// Weighted random.
    Random,
    /// Power of two choices on in-flight requests.
    LeastRequest,
    /// Istio's `PASSTHROUGH`: the address the client dialed (original destination), not an
    /// endpoint of the cluster.
    Passthrough,
}

/// One upstream address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Relative load-balancing weight; 0 takes the endpoint out of rotation.
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub health: HealthStatus,
}

fn one() -> u32 {
    1
}

/// Health as reported by the control plane; only `Healthy` endpoints receive traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    #[default]
    Healthy,
    Unhealthy,
    Draining,
}

/// Traffic direction in an Istio cluster name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// Istio's cluster name `direction|port|subset|host`, e.g.
/// `outbound|9080|v1|reviews.default.svc.cluster.local` (subset may be empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterName {
    pub direction: Direction,
    pub port: u16,
    pub subset: String,
    pub host: String,
}

/// Why a string is not an Istio cluster name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterNameError {
    #[error("expected 4 `|`-separated parts (direction|port|subset|host), found {0}")]
    Parts(usize),
    #[error("direction `{0}` is neither `outbound` nor `inbound`")]
    Direction(String),
    #[error("port `{0}` is not a number from 0 to 65535")]
    Port(String),
    #[error("host is empty")]
    EmptyHost,
}

impl FromStr for ClusterName {
    type Err = ClusterNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('|').collect();
        let [direction, port, subset, host] = parts[..] else {
            return Err(ClusterNameError::Parts(parts.len()));
        };
        let direction = match direction {
            "outbound" => Direction::Outbound,
            "inbound" => Direction::Inbound,
            other => return Err(ClusterNameError::Direction(other.to_string())),
        };
        let port = port
            .parse()
            .map_err(|_| ClusterNameError::Port(port.to_string()))?;
        // Inbound clusters are `inbound|port||`: the workload itself, no host.
        if host.is_empty() && direction == Direction::Outbound {
            return Err(ClusterNameError::EmptyHost);
        }
        Ok(ClusterName {
            direction,
            port,
            subset: subset.to_string(),
            host: host.to_string(),
        })
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        write!(f, "{direction}|{}|{}|{}", self.port, self.subset, self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_name_round_trips() {
        let s = "outbound|9080|v1|reviews.default.svc.cluster.local";
        let n: ClusterName = s.parse().unwrap();
        assert_eq!(n.direction, Direction::Outbound);
        assert_eq!(n.port, 9080);
        assert_eq!(n.subset, "v1");
        assert_eq!(n.host, "reviews.default.svc.cluster.local");
        assert_eq!(n.to_string(), s);
        let no_subset: ClusterName = "inbound|8080||x".parse().unwrap();
        assert_eq!(no_subset.subset, "");
        assert_eq!("inbound|8080||".parse::<ClusterName>().unwrap().host, "");
        assert_eq!(
            "outbound|8080||".parse::<ClusterName>(),
            Err(ClusterNameError::EmptyHost)
        );
    }

    #[test]
    fn cluster_name_rejects_bad_forms() {
        assert_eq!(
            "outbound|9080|reviews".parse::<ClusterName>(),
            Err(ClusterNameError::Parts(3))
        );
        assert_eq!(
            "sideways|1||h".parse::<ClusterName>(),
            Err(ClusterNameError::Direction("sideways".into()))
        );
        assert_eq!(
            "outbound|99999||h".parse::<ClusterName>(),
            Err(ClusterNameError::Port("99999".into()))
        );
    }
}
