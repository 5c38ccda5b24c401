use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::route::*;
use crate::snapshot::{Listener, ListenerKind};
use crate::{Endpoint, HealthStatus};

fn cluster(name: &str, ports: &[(u16, u32)]) -> Cluster {
    Cluster {
        name: name.into(),
        protocol: UpstreamProtocol::Http1,
        lb_policy: LbPolicy::RoundRobin,
        connect_timeout_ms: 1000,
        endpoints: ports
            .iter()
            .map(|(p, w)| Endpoint {
                address: "127.0.0.1".parse().unwrap(),
                port: *p,
                labels: BTreeMap::new(),
                weight: *w,
                health: HealthStatus::Healthy,
                locality: String::new(),
                priority: 0,
            })
            .collect(),
        policy: Default::default(),
    }
}

fn forward(c: &str) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        clusters: vec![WeightedCluster {
            cluster: c.into(),
            weight: 1,
            headers: None,
        }],
        rewrite: None,
        timeout_ms: None,
        retry: None,
        ..Default::default()
    })
}

fn route(name: &str, m: Vec<RouteMatch>, action: RouteAction) -> Route {
    Route {
        name: name.into(),
        matches: m,
        action,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        cors: None,
    }
}

fn snapshot(routes: Vec<Route>) -> ProxySnapshot {
    ProxySnapshot {
        version: "t".into(),
        listeners: vec![Listener {
            name: "http".into(),
            address: "127.0.0.1".parse().unwrap(),
            port: 0,
            kind: ListenerKind::Http {
                route_table: "rt".into(),
            },
            tls: None,
        }],
        route_tables: vec![RouteTable {
            name: "rt".into(),
            virtual_hosts: vec![VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes,
            }],
        }],
        clusters: vec![cluster("a", &[(1, 1)]), cluster("b", &[(2, 1)])],
        ..Default::default()
    }
}

struct Req {
    method: Method,
    path: &'static str,
    query: Option<&'static str>,
    headers: HeaderMap,
    labels: BTreeMap<String, String>,
}

impl Req {
    fn get(path: &'static str) -> Self {
        Req {
            method: Method::GET,
            path,
            query: None,
            headers: HeaderMap::new(),
            labels: BTreeMap::new(),
        }
    }
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            scheme: "http",
            authority: "svc",
            path: self.path,
            query: self.query,
            headers: &self.headers,
            port: 80,
            source_labels: &self.labels,
            source_namespace: None,
        }
    }
}

fn route_name(rt: &Runtime, req: &Req) -> Option<String> {
    rt.route(0, &req.view()).map(|h| h.route.name.clone())
}

#[test]
fn first_matching_route_wins_in_order() {
    let rt = Runtime::build(snapshot(vec![
        route(
            "exact",
            vec![RouteMatch {
                path: Some(StringMatch::Exact("/a".into())),
                ..Default::default()
            }],
            forward("a"),
        ),
        route(
            "regex",
            vec![RouteMatch {
                path: Some(StringMatch::Regex("/r/[0-9]+".into())),
                ..Default::default()
            }],
            forward("a"),
        ),
        route(
            "prefix",
            vec![RouteMatch {
                path: Some(StringMatch::Prefix("/a".into())),
                ..Default::default()
            }],
            forward("b"),
        ),
    ]))
    .unwrap();
    assert_eq!(route_name(&rt, &Req::get("/a")).as_deref(), Some("exact"));
    assert_eq!(route_name(&rt, &Req::get("/ab")).as_deref(), Some("prefix"));
    assert_eq!(
        route_name(&rt, &Req::get("/r/12")).as_deref(),
        Some("regex")
    );
    assert_eq!(
        route_name(&rt, &Req::get("/r/12x")),
        None,
        "regexes match the whole path"
    );
    assert_eq!(route_name(&rt, &Req::get("/zzz")), None);
}

#[test]
fn header_query_and_method_matches() {
    let rt = Runtime::build(snapshot(vec![
        route(
            "canary",
            vec![RouteMatch {
                headers: vec![HeaderMatch {
                    name: "x-user".into(),
                    value: Some(StringMatch::Prefix("jason".into())),
                }],
                without_headers: vec![HeaderMatch {
                    name: "x-skip".into(),
                    value: None,
                }],
                ..Default::default()
            }],
            forward("b"),
        ),
        route(
            "query",
            vec![RouteMatch {
                query_params: vec![QueryParamMatch {
                    name: "v".into(),
                    value: Some(StringMatch::Exact("2".into())),
                }],
                method: Some(StringMatch::Exact("POST".into())),
                ..Default::default()
            }],
            forward("b"),
        ),
        route("default", vec![], forward("a")),
    ]))
    .unwrap();
    let mut r = Req::get("/");
    r.headers
        .insert("x-user", HeaderValue::from_static("jason-1"));
    assert_eq!(route_name(&rt, &r).as_deref(), Some("canary"));
    r.headers.insert("x-skip", HeaderValue::from_static(""));
    assert_eq!(route_name(&rt, &r).as_deref(), Some("default"));

    let mut q = Req::get("/");
    q.query = Some("a=1&v=2");
    assert_eq!(
        route_name(&rt, &q).as_deref(),
        Some("default"),
        "GET, not POST"
    );
    q.method = Method::POST;
    assert_eq!(route_name(&rt, &q).as_deref(), Some("query"));
    q.query = Some("v=20");
    assert_eq!(route_name(&rt, &q).as_deref(), Some("default"));
}

#[test]
fn source_labels_and_ignore_case() {
    let rt = Runtime::build(snapshot(vec![route(
        "from-v2",
        vec![RouteMatch {
            path: Some(StringMatch::Prefix("/API".into())),
            ignore_path_case: true,
            source_labels: [("app".to_string(), "v2".to_string())].into(),
            ..Default::default()
        }],
        forward("a"),
    )]))
    .unwrap();
    let mut r = Req::get("/api/x");
    assert_eq!(route_name(&rt, &r), None);
    r.labels.insert("app".into(), "v2".into());
    assert_eq!(route_name(&rt, &r).as_deref(), Some("from-v2"));
    let hit = rt.route(0, &r.view()).unwrap();
    assert_eq!(hit.matched, MatchedPath::Prefix(4));
}

#[test]
fn weighted_set_picks_by_cumulative_weight() {
    let idx: HashMap<String, usize> = [("a".to_string(), 0), ("b".to_string(), 1)].into();
    let ws = WeightedSet::build(
        &[
            WeightedCluster {
                cluster: "a".into(),
                weight: 90,
                headers: None,
            },
            WeightedCluster {
                cluster: "b".into(),
                weight: 10,
                headers: None,
            },
        ],
        &idx,
        "x",
    )
    .unwrap();
    assert_eq!(ws.total(), 100);
    assert_eq!(ws.pick(0), 0);
    assert_eq!(ws.pick(89), 0);
    assert_eq!(ws.pick(90), 1);
    assert_eq!(ws.pick(99), 1);
    assert_eq!(ws.pick(100), 0, "wraps modulo the total");
}

#[test]
fn round_robin_schedule_interleaves_by_weight() {
    let c = RuntimeCluster::build(&cluster("c", &[(1, 5), (2, 1), (3, 1), (4, 0)]));
    assert_eq!(c.endpoints.len(), 3, "weight 0 is out of rotation");
    assert_eq!(c.schedule, vec![0, 0, 1, 0, 2, 0, 0]);
    let even = RuntimeCluster::build(&cluster("c", &[(1, 3), (2, 3)]));
    assert_eq!(even.schedule, vec![0, 1], "weights reduced by their gcd");
    let mut down = cluster("c", &[(1, 1)]);
    down.endpoints[0].health = HealthStatus::Unhealthy;
    assert!(RuntimeCluster::build(&down).schedule.is_empty());
}

#[test]
fn check_refuses_exactly_what_build_refuses() {
    let good = snapshot(vec![route("r", vec![], forward("a"))]);
    let unknown = snapshot(vec![route("r", vec![], forward("nope"))]);
    let mut dup = snapshot(vec![]);
    dup.clusters.push(cluster("a", &[]));
    let mut no_table = snapshot(vec![]);
    no_table.listeners[0].kind = ListenerKind::Http {
        route_table: "missing".into(),
    };
    for s in [good, unknown, dup, no_table] {
        let checked = Runtime::check(&s).map_err(|e| e.to_string());
        let built = Runtime::build(s).map(drop).map_err(|e| e.to_string());
        assert_eq!(checked, built);
    }
}

#[test]
fn build_rejects_bad_references_with_paths() {
    let err = Runtime::build(snapshot(vec![route("r", vec![], forward("nope"))])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "route_tables[0].virtual_hosts[0].routes[0].action.clusters[0]: unknown cluster `nope`"
    );
    let bad_regex = snapshot(vec![route(
        "r",
        vec![RouteMatch {
            path: Some(StringMatch::Regex("(".into())),
            ..Default::default()
        }],
        forward("a"),
    )]);
    assert!(matches!(
        Runtime::build(bad_regex),
        Err(BuildError::Regex { at, .. }) if at == "route_tables[0].virtual_hosts[0].routes[0].matches[0].path"
    ));
    let mut dup = snapshot(vec![]);
    dup.clusters.push(cluster("a", &[]));
    assert!(matches!(
        Runtime::build(dup),
        Err(BuildError::DuplicateName { name, .. }) if name == "a"
    ));
    let mut bad_name = snapshot(vec![]);
    bad_name.clusters[0].name = "outbound|x||h".into();
    assert!(Runtime::build(bad_name).is_err());
    let mut no_table = snapshot(vec![]);
    no_table.listeners[0].kind = ListenerKind::Http {
        route_table: "missing".into(),
    };
    assert!(matches!(
        Runtime::build(no_table),
        Err(BuildError::UnknownRef {
            what: "route table",
            ..
        })
    ));
}

#[test]
fn rewrites_and_redirects() {
    let rw = CompiledRewrite::compile(
        &Rewrite {
            uri_prefix: Some("/v2".into()),
            ..Default::default()
        },
        "x",
    )
    .unwrap();
    assert_eq!(
        rw.path("/v1/items", MatchedPath::Prefix(3)).unwrap(),
        "/v2/items"
    );
    assert_eq!(rw.path("/exact", MatchedPath::Whole).unwrap(), "/v2");
    let slash = CompiledRewrite::compile(
        &Rewrite {
            uri_prefix: Some("/".into()),
            ..Default::default()
        },
        "x",
    )
    .unwrap();
    assert_eq!(slash.path("/api/x", MatchedPath::Prefix(4)).unwrap(), "/x");
    let re = CompiledRewrite::compile(
        &Rewrite {
            uri_regex: Some(RegexRewrite {
                pattern: "^/service/([^/]+)(/.*)$".into(),
                substitution: "${2}/instance/${1}".into(),
            }),
            ..Default::default()
        },
        "x",
    )
    .unwrap();
    assert_eq!(
        re.path("/service/foo/v1/api", MatchedPath::Whole).unwrap(),
        "/v1/api/instance/foo"
    );

    let req = Req {
        query: Some("q=1"),
        ..Req::get("/old")
    };
    let loc = redirect_location(
        &Redirect {
            scheme: Some("https".into()),
            authority: None,
            port: Some(8443),
            strip_port: false,
            path: Some("/new".into()),
            status: 301,
        },
        &req.view(),
    );
    assert_eq!(loc, "https://svc:8443/new?q=1");
}

#[test]
fn snapshot_json_round_trips() {
    let s = snapshot(vec![route("r", vec![], forward("a"))]);
    let json = serde_json::to_string_pretty(&s).unwrap();
    let back: ProxySnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert!(json.contains("\"protocol\": \"http\""), "{json}");
}
