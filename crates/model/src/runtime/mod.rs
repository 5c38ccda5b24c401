//! [`Runtime`]: a [`ProxySnapshot`] validated and compiled for the data path.
//!
//! Built once per snapshot, off the data path: regexes are compiled, domains indexed, header
//! names parsed, and every cluster and route-table reference resolved to an index, so per-request
//! work is lookups and comparisons. A snapshot that fails to build is rejected whole with the
//! path of the first problem; the proxy keeps serving the last good one.

mod actions;
mod capture;
mod domains;
mod matching;
mod resilience;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

pub use actions::{
    redirect_location, CompiledCors, CompiledHeaderOps, CompiledRewrite, MatchedPath,
};
use capture::{build_kind, mesh_tls};
pub use capture::{RuntimeChain, RuntimeMeshTls};
pub use matching::{CompiledMatch, CompiledRouteMatch, RequestView};
pub use resilience::{
    in_share, shadow_host, AttemptFailure, RetryOn, RuntimeFault, RuntimeMirror, RuntimeRetry,
    DEFAULT_BACKOFF_BASE,
};

use crate::cluster::{Cluster, HealthStatus, LbPolicy, UpstreamProtocol};
use crate::route::{Redirect, Route, RouteAction, RouteTable, WeightedCluster};
use crate::snapshot::{PeerMtls, ProxySnapshot};
use domains::{DomainError, DomainIndex};

/// Why a snapshot cannot be served. `at` is a path into the snapshot, e.g.
/// `route_tables[0].virtual_hosts[1].routes[2].action`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("{at}: duplicate name `{name}`")]
    DuplicateName { at: String, name: String },
    #[error("{at}: unknown {what} `{name}`")]
    UnknownRef {
        at: String,
        what: &'static str,
        name: String,
    },
    #[error("{at}: domain `{domain}` {reason}")]
    Domain {
        at: String,
        domain: String,
        reason: String,
    },
    #[error("{at}: regex `{pattern}` does not compile: {reason}")]
    Regex {
        at: String,
        pattern: String,
        reason: String,
    },
    #[error("{at}: `{name}` is not a valid header name")]
    HeaderName { at: String, name: String },
    #[error("{at}: the value of `{name}` is not a valid header value")]
    HeaderValue { at: String, name: String },
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

/// A compiled snapshot. Immutable; shared by every connection that loaded it.
#[derive(Debug)]
pub struct Runtime {
    /// The snapshot's version label.
    pub version: String,
    /// The snapshot this was built from, as compact JSON, for `/config_dump`: a sidecar's
    /// snapshot is large (every visible service, endpoint labels) and only the admin API reads
    /// it again, so it is kept in its smallest form rather than as structs.
    source_json: Vec<u8>,
    pub listeners: Vec<RuntimeListener>,
    pub tables: Vec<RuntimeTable>,
    pub clusters: Vec<RuntimeCluster>,
    /// Mesh mTLS origination per cluster (same index as `clusters`).
    pub mesh_tls: Vec<Option<RuntimeMeshTls>>,
    /// The DNS proxy's name table, sorted by name (as compiled) for binary search.
    pub dns: Vec<crate::DnsName>,
    cluster_index: HashMap<String, usize>,
    /// Listener name → index: looked up once per request.
    listener_index: HashMap<String, usize>,
}

#[derive(Debug)]
pub struct RuntimeListener {
    pub name: String,
    pub addr: SocketAddr,
    pub kind: RuntimeListenerKind,
    /// The listener's server-side TLS, as the snapshot has it.
    pub tls: Option<crate::snapshot::ServerTls>,
}

#[derive(Debug)]
pub enum RuntimeListenerKind {
    Http {
        table: usize,
        h2_only: bool,
    },
    Tcp {
        clusters: WeightedSet,
    },
    TlsPassthrough {
        routes: Vec<RuntimeSniRoute>,
    },
    AutoSniff {
        table: usize,
        tcp: WeightedSet,
    },
    /// 15001 (`inbound: false`) or 15006: dispatch by original destination.
    Capture {
        inbound: bool,
        chains: Vec<RuntimeChain>,
        fallback: WeightedSet,
        fallback_mtls: PeerMtls,
    },
}

#[derive(Debug)]
pub struct RuntimeSniRoute {
    /// Lowercase; `*.suffix` entries kept with their `*`.
    pub sni_hosts: Vec<String>,
    pub clusters: WeightedSet,
}

impl RuntimeSniRoute {
    pub fn matches(&self, sni: Option<&str>) -> bool {
        if self.sni_hosts.is_empty() {
            return true;
        }
        let Some(sni) = sni else { return false };
        let sni = sni.to_ascii_lowercase();
        self.sni_hosts.iter().any(|h| match h.strip_prefix('*') {
            Some(suffix) => sni.len() > suffix.len() && sni.ends_with(suffix),
            None => *h == sni,
        })
    }
}

#[derive(Debug)]
pub struct RuntimeTable {
    pub name: String,
    domains: DomainIndex,
    pub vhosts: Vec<RuntimeVhost>,
}

#[derive(Debug)]
pub struct RuntimeVhost {
    pub name: String,
    pub routes: Vec<RuntimeRoute>,
}

#[derive(Debug)]
pub struct RuntimeRoute {
    pub name: String,
    matches: Vec<CompiledRouteMatch>,
    pub action: RuntimeAction,
    pub request_headers: CompiledHeaderOps,
    pub response_headers: CompiledHeaderOps,
    pub cors: Option<CompiledCors>,
}

#[derive(Debug)]
pub enum RuntimeAction {
    Forward(RuntimeForward),
    Redirect(Redirect),
    Direct { status: StatusCode, body: Bytes },
}

#[derive(Debug)]
pub struct RuntimeForward {
    pub clusters: WeightedSet,
    pub rewrite: Option<CompiledRewrite>,
    pub timeout: Option<Duration>,
    pub retry: Option<Box<RuntimeRetry>>,
    pub fault: Option<Box<RuntimeFault>>,
    pub mirrors: Vec<RuntimeMirror>,
}

/// Clusters with cumulative weights: pick with a uniform number below [`WeightedSet::total`].
#[derive(Debug, Clone)]
pub struct WeightedSet {
    /// (cluster index, cumulative weight up to and including this entry).
    entries: Vec<(usize, u64)>,
    total: u64,
    /// Destination-level header operations, by entry; empty when no destination has any.
    headers: Vec<Option<std::sync::Arc<DestinationOps>>>,
}

/// A destination's own header operations, compiled.
#[derive(Debug, Default)]
pub struct DestinationOps {
    pub request: CompiledHeaderOps,
    pub response: CompiledHeaderOps,
}

impl WeightedSet {
    fn build(
        clusters: &[WeightedCluster],
        index: &HashMap<String, usize>,
        at: &str,
    ) -> Result<Self, BuildError> {
        let mut entries = Vec::with_capacity(clusters.len());
        let mut headers = Vec::new();
        let mut total = 0u64;
        let any_headers = clusters.iter().any(|c| c.headers.is_some());
        for (i, wc) in clusters.iter().enumerate() {
            let idx = *index
                .get(&wc.cluster)
                .ok_or_else(|| BuildError::UnknownRef {
                    at: format!("{at}[{i}]"),
                    what: "cluster",
                    name: wc.cluster.clone(),
                })?;
            if wc.weight > 0 {
                total += u64::from(wc.weight);
                entries.push((idx, total));
                if any_headers {
                    let at = format!("{at}[{i}].headers");
                    headers.push(
                        wc.headers
                            .as_ref()
                            .map(|h| {
                                Ok::<_, BuildError>(std::sync::Arc::new(DestinationOps {
                                    request: CompiledHeaderOps::compile(&h.request, &at)?,
                                    response: CompiledHeaderOps::compile(&h.response, &at)?,
                                }))
                            })
                            .transpose()?,
                    );
                }
            }
        }
        if total == 0 {
            return Err(BuildError::Invalid {
                at: at.to_string(),
                reason: "needs at least one cluster with a weight above 0".into(),
            });
        }
        Ok(WeightedSet {
            entries,
            total,
            headers,
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The cluster index for `r` in `0..total()` (larger values are taken modulo the total).
    pub fn pick(&self, r: u64) -> usize {
        self.pick_with_headers(r).0
    }

    /// [`Self::pick`] with the picked destination's own header operations.
    pub fn pick_with_headers(&self, r: u64) -> (usize, Option<&DestinationOps>) {
        let i = if self.entries.len() == 1 {
            0
        } else {
            let r = r % self.total;
            self.entries.partition_point(|(_, cum)| *cum <= r)
        };
        (
            self.entries[i].0,
            self.headers.get(i).and_then(|h| h.as_deref()),
        )
    }
}

/// A cluster with only the endpoints that may receive traffic.
#[derive(Debug)]
pub struct RuntimeCluster {
    pub name: String,
    pub protocol: UpstreamProtocol,
    pub lb_policy: LbPolicy,
    pub connect_timeout: Duration,
    /// Healthy endpoints with a weight above 0.
    pub endpoints: Vec<RuntimeEndpoint>,
    /// Round-robin order over `endpoints`, interleaved by weight; empty when there are none.
    pub schedule: Vec<u32>,
    /// Cumulative endpoint weights, for weighted random picks.
    cumulative: Vec<u64>,
    /// The DestinationRule's compiled traffic policy.
    pub policy: crate::policy::ClusterPolicy,
    /// Whether any endpoint has a priority above 0 (locality failover in force).
    pub prioritized: bool,
}

#[derive(Debug, Clone)]
pub struct RuntimeEndpoint {
    pub addr: SocketAddr,
    pub weight: u32,
    pub priority: u32,
    pub locality: String,
}

impl RuntimeCluster {
    fn build(c: &Cluster) -> Self {
        let endpoints: Vec<RuntimeEndpoint> = c
            .endpoints
            .iter()
            .filter(|e| e.health == HealthStatus::Healthy && e.weight > 0)
            .map(|e| RuntimeEndpoint {
                addr: SocketAddr::new(e.address, e.port),
                weight: e.weight,
                priority: e.priority,
                locality: e.locality.clone(),
            })
            .collect();
        let mut acc = 0u64;
        let cumulative = endpoints
            .iter()
            .map(|e| {
                acc += u64::from(e.weight);
                acc
            })
            .collect();
        RuntimeCluster {
            name: c.name.clone(),
            protocol: c.protocol,
            lb_policy: c.lb_policy,
            connect_timeout: Duration::from_millis(c.connect_timeout_ms),
            schedule: round_robin_schedule(&endpoints),
            cumulative,
            policy: c.policy.clone(),
            prioritized: endpoints.iter().any(|e| e.priority > 0),
            endpoints,
        }
    }

    /// Endpoint index for a weighted random pick; `r` is any uniform u64.
    pub fn pick_weighted(&self, r: u64) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let r = r % total;
        Some(self.cumulative.partition_point(|cum| *cum <= r))
    }
}

/// Longest round-robin schedule kept per cluster; heavier weight ratios are scaled down to fit.
const MAX_SCHEDULE: u64 = 4096;

/// Smooth weighted round robin (nginx's): each endpoint appears in proportion to its weight,
/// spread out rather than in runs, computed once so a pick is one atomic increment.
fn round_robin_schedule(endpoints: &[RuntimeEndpoint]) -> Vec<u32> {
    if endpoints.is_empty() {
        return Vec::new();
    }
    let g = endpoints
        .iter()
        .fold(0u64, |g, e| gcd(g, u64::from(e.weight)));
    let mut weights: Vec<u64> = endpoints.iter().map(|e| u64::from(e.weight) / g).collect();
    let sum: u64 = weights.iter().sum();
    if sum > MAX_SCHEDULE {
        for w in &mut weights {
            *w = (*w * MAX_SCHEDULE / sum).max(1);
        }
    }
    let total: i64 = weights.iter().map(|w| *w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A routing decision: the matched route and what its match consumed of the path.
#[derive(Debug, Clone, Copy)]
pub struct RouteHit<'a> {
    pub vhost: &'a RuntimeVhost,
    pub route: &'a RuntimeRoute,
    pub matched: MatchedPath,
}

impl Runtime {
    /// Validates and compiles `snapshot`. Every name must be unique in its kind and every
    /// reference must resolve.
    pub fn build(mut snapshot: ProxySnapshot) -> Result<Runtime, BuildError> {
        // Serializing a snapshot of plain data cannot fail; an empty dump would be the symptom.
        let source_json = serde_json::to_vec(&snapshot).unwrap_or_default();
        let cluster_index = index_clusters(&snapshot)?;
        let clusters = snapshot
            .clusters
            .iter()
            .map(RuntimeCluster::build)
            .collect();
        let mesh_tls = mesh_tls(&snapshot, &cluster_index)?;
        // Each part of the snapshot is freed once compiled, so the next part's compiled form
        // reuses its memory: a sidecar's snapshot is large and peak memory is what it keeps.
        drop(std::mem::take(&mut snapshot.clusters));
        let mut tables = Vec::with_capacity(snapshot.route_tables.len());
        let table_index = build_tables(&snapshot, &cluster_index, |t| tables.push(t))?;
        drop(std::mem::take(&mut snapshot.route_tables));
        let (listeners, names) = build_listeners(&snapshot, &table_index, &cluster_index)?;
        Ok(Runtime {
            version: snapshot.version,
            source_json,
            listeners,
            tables,
            clusters,
            mesh_tls,
            dns: std::mem::take(&mut snapshot.dns),
            cluster_index,
            listener_index: names,
        })
    }

    /// Whether [`Runtime::build`] accepts `snapshot`, found without a copy of the snapshot or
    /// of its compiled form: each route table is compiled and dropped. The control plane
    /// checks every compile this way; a ten-thousand-service sidecar's compiled form and JSON
    /// dump are tens of megabytes that only a proxy needs to keep.
    pub fn check(snapshot: &ProxySnapshot) -> Result<(), BuildError> {
        let cluster_index = index_clusters(snapshot)?;
        mesh_tls(snapshot, &cluster_index)?;
        let table_index = build_tables(snapshot, &cluster_index, drop)?;
        build_listeners(snapshot, &table_index, &cluster_index)?;
        Ok(())
    }

    /// The snapshot this runtime was built from, as JSON.
    pub fn source_json(&self) -> &[u8] {
        &self.source_json
    }

    /// The snapshot this runtime was built from (decoded again from [`Self::source_json`]).
    pub fn snapshot(&self) -> ProxySnapshot {
        serde_json::from_slice(&self.source_json).unwrap_or_default()
    }

    pub fn cluster(&self, name: &str) -> Option<&RuntimeCluster> {
        self.cluster_index.get(name).map(|i| &self.clusters[*i])
    }

    pub fn listener(&self, name: &str) -> Option<&RuntimeListener> {
        self.listener_index.get(name).map(|i| &self.listeners[*i])
    }

    /// The first route of `table` that accepts `req`, or `None` (Envoy's NR).
    pub fn route<'a>(&'a self, table: usize, req: &RequestView<'_>) -> Option<RouteHit<'a>> {
        let t = self.tables.get(table)?;
        let vhost = &t.vhosts[t.domains.find(req.authority)?];
        vhost.routes.iter().find_map(|route| {
            if route.matches.is_empty() {
                return Some(RouteHit {
                    vhost,
                    route,
                    matched: MatchedPath::Whole,
                });
            }
            route
                .matches
                .iter()
                .find(|m| m.matches(req))
                .map(|m| RouteHit {
                    vhost,
                    route,
                    matched: match &m.path {
                        Some(CompiledMatch::Prefix(p)) => MatchedPath::Prefix(p.len()),
                        _ => MatchedPath::Whole,
                    },
                })
        })
    }
}

/// Cluster names to their position; each name unique and, when it is a service's, well formed.
fn index_clusters(snapshot: &ProxySnapshot) -> Result<HashMap<String, usize>, BuildError> {
    let mut cluster_index = HashMap::new();
    for (i, c) in snapshot.clusters.iter().enumerate() {
        let at = format!("clusters[{i}]");
        if cluster_index.insert(c.name.clone(), i).is_some() {
            return Err(BuildError::DuplicateName {
                at,
                name: c.name.clone(),
            });
        }
        if c.name.contains('|') {
            c.name
                .parse::<crate::ClusterName>()
                .map_err(|e| BuildError::Invalid {
                    at: format!("{at}.name"),
                    reason: format!("`{}`: {e}", c.name),
                })?;
        }
    }
    Ok(cluster_index)
}

/// Compiles every route table, handing each to `each`; returns table names to positions.
fn build_tables(
    snapshot: &ProxySnapshot,
    cluster_index: &HashMap<String, usize>,
    mut each: impl FnMut(RuntimeTable),
) -> Result<HashMap<String, usize>, BuildError> {
    let mut table_index = HashMap::new();
    for (i, t) in snapshot.route_tables.iter().enumerate() {
        let at = format!("route_tables[{i}]");
        if table_index.insert(t.name.clone(), i).is_some() {
            return Err(BuildError::DuplicateName {
                at,
                name: t.name.clone(),
            });
        }
        each(build_table(t, cluster_index, &at)?);
    }
    Ok(table_index)
}

/// The listeners, each name and address unique, and listener names to positions.
fn build_listeners(
    snapshot: &ProxySnapshot,
    table_index: &HashMap<String, usize>,
    cluster_index: &HashMap<String, usize>,
) -> Result<(Vec<RuntimeListener>, HashMap<String, usize>), BuildError> {
    let mut names = HashMap::new();
    let mut listeners = Vec::with_capacity(snapshot.listeners.len());
    for (i, l) in snapshot.listeners.iter().enumerate() {
        let at = format!("listeners[{i}]");
        if names.insert(l.name.clone(), i).is_some() {
            return Err(BuildError::DuplicateName {
                at,
                name: l.name.clone(),
            });
        }
        let addr = SocketAddr::new(l.address, l.port);
        if l.port != 0 && listeners.iter().any(|o: &RuntimeListener| o.addr == addr) {
            return Err(BuildError::Invalid {
                at,
                reason: format!("address {addr} is used by another listener"),
            });
        }
        let kind = build_kind(&l.kind, &at, table_index, cluster_index, true)?;
        listeners.push(RuntimeListener {
            name: l.name.clone(),
            addr,
            kind,
            tls: l.tls.clone(),
        });
    }
    Ok((listeners, names))
}

fn build_table(
    t: &RouteTable,
    clusters: &HashMap<String, usize>,
    at: &str,
) -> Result<RuntimeTable, BuildError> {
    let mut domains = DomainIndex::default();
    let mut vhosts = Vec::with_capacity(t.virtual_hosts.len());
    for (v, vh) in t.virtual_hosts.iter().enumerate() {
        let at = format!("{at}.virtual_hosts[{v}]");
        if vh.domains.is_empty() {
            return Err(BuildError::Invalid {
                at,
                reason: "a virtual host needs at least one domain".into(),
            });
        }
        for d in &vh.domains {
            domains.insert(d, v).map_err(|e| BuildError::Domain {
                at: format!("{at}.domains"),
                domain: d.clone(),
                reason: match e {
                    DomainError::Empty => "is empty".into(),
                    DomainError::Wildcard => {
                        "may have `*` only as the whole name or its first or last character".into()
                    }
                    DomainError::Duplicate(prev) => {
                        format!("is already served by virtual_hosts[{prev}]")
                    }
                },
            })?;
        }
        let routes = vh
            .routes
            .iter()
            .enumerate()
            .map(|(r, route)| build_route(route, clusters, &format!("{at}.routes[{r}]")))
            .collect::<Result<_, _>>()?;
        vhosts.push(RuntimeVhost {
            name: vh.name.clone(),
            routes,
        });
    }
    Ok(RuntimeTable {
        name: t.name.clone(),
        domains,
        vhosts,
    })
}

fn build_route(
    r: &Route,
    clusters: &HashMap<String, usize>,
    at: &str,
) -> Result<RuntimeRoute, BuildError> {
    let matches = r
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| CompiledRouteMatch::compile(m, &format!("{at}.matches[{i}]")))
        .collect::<Result<_, _>>()?;
    let action = match &r.action {
        RouteAction::Forward(f) => RuntimeAction::Forward(RuntimeForward {
            clusters: WeightedSet::build(&f.clusters, clusters, &format!("{at}.action.clusters"))?,
            rewrite: f
                .rewrite
                .as_ref()
                .map(|rw| CompiledRewrite::compile(rw, &format!("{at}.action.rewrite")))
                .transpose()?,
            timeout: f.timeout_ms.filter(|ms| *ms > 0).map(Duration::from_millis),
            retry: f
                .retry
                .as_ref()
                .map(|p| RuntimeRetry::compile(p, &format!("{at}.action.retry")).map(Box::new))
                .transpose()?,
            fault: f
                .fault
                .as_ref()
                .map(|p| RuntimeFault::compile(p, &format!("{at}.action.fault")).map(Box::new))
                .transpose()?,
            mirrors: f
                .mirrors
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    RuntimeMirror::compile(m, clusters, &format!("{at}.action.mirrors[{i}]"))
                })
                .collect::<Result<_, _>>()?,
        }),
        RouteAction::Redirect(rd) => {
            if ![301, 302, 303, 307, 308].contains(&rd.status) {
                return Err(BuildError::Invalid {
                    at: format!("{at}.action.status"),
                    reason: format!("{} is not a redirect status", rd.status),
                });
            }
            RuntimeAction::Redirect(rd.clone())
        }
        RouteAction::DirectResponse(d) => RuntimeAction::Direct {
            status: StatusCode::from_u16(d.status)
                .ok()
                .filter(|s| s.as_u16() >= 200)
                .ok_or_else(|| BuildError::Invalid {
                    at: format!("{at}.action.status"),
                    reason: format!("{} is not a final HTTP status", d.status),
                })?,
            body: match (&d.body, &d.body_base64) {
                (Some(text), _) => Bytes::from(text.clone()),
                (None, Some(b64)) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map(Bytes::from)
                        .map_err(|e| BuildError::Invalid {
                            at: format!("{at}.action.body_base64"),
                            reason: format!("not base64: {e}"),
                        })?
                }
                (None, None) => Bytes::new(),
            },
        },
    };
    Ok(RuntimeRoute {
        name: r.name.clone(),
        matches,
        action,
        request_headers: CompiledHeaderOps::compile(
            &r.request_headers,
            &format!("{at}.request_headers"),
        )?,
        response_headers: CompiledHeaderOps::compile(
            &r.response_headers,
            &format!("{at}.response_headers"),
        )?,
        cors: r
            .cors
            .as_ref()
            .map(|c| CompiledCors::compile(c, &format!("{at}.cors")))
            .transpose()?,
    })
}
