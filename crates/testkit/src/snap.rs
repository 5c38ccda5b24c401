//! Terse snapshot builders for tests and the benchmark.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use model::*;

/// A cluster of healthy, weight-1 HTTP/1 endpoints.
pub fn cluster(name: &str, endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        name: name.to_string(),
        protocol: UpstreamProtocol::Http1,
        lb_policy: LbPolicy::RoundRobin,
        connect_timeout_ms: 1000,
        endpoints: endpoints
            .iter()
            .map(|a| Endpoint {
                address: a.ip(),
                port: a.port(),
                labels: BTreeMap::new(),
                weight: 1,
                health: HealthStatus::Healthy,
            })
            .collect(),
    }
}

pub fn listener(name: &str, kind: ListenerKind) -> Listener {
    Listener {
        name: name.to_string(),
        address: "127.0.0.1".parse().expect("ip"),
        port: 0,
        kind,
    }
}

pub fn http_listener(name: &str, table: &str) -> Listener {
    listener(
        name,
        ListenerKind::Http {
            route_table: table.to_string(),
        },
    )
}

pub fn weighted(pairs: &[(&str, u32)]) -> Vec<WeightedCluster> {
    pairs
        .iter()
        .map(|(c, w)| WeightedCluster {
            cluster: c.to_string(),
            weight: *w,
        })
        .collect()
}

pub fn forward_to(cluster: &str) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        clusters: weighted(&[(cluster, 1)]),
        rewrite: None,
        timeout_ms: None,
        retry: None,
        ..Default::default()
    })
}

/// A route matching `matches` (any of them; none = everything).
pub fn route(name: &str, matches: Vec<RouteMatch>, action: RouteAction) -> Route {
    Route {
        name: name.to_string(),
        matches,
        action,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        cors: None,
    }
}

pub fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path: Some(StringMatch::Prefix(p.to_string())),
        ..Default::default()
    }
}

pub fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.to_string(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
    }
}

pub fn table(name: &str, vhosts: Vec<VirtualHost>) -> RouteTable {
    RouteTable {
        name: name.to_string(),
        virtual_hosts: vhosts,
    }
}

/// One HTTP listener `http` on table `rt` with `vhosts`, and `clusters`.
pub fn http_snapshot(vhosts: Vec<VirtualHost>, clusters: Vec<Cluster>) -> ProxySnapshot {
    ProxySnapshot {
        version: "test".to_string(),
        listeners: vec![http_listener("http", "rt")],
        route_tables: vec![table("rt", vhosts)],
        clusters,
        ..Default::default()
    }
}
