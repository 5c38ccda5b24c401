//! The live configuration: one immutable [`State`] per snapshot behind an `ArcSwap`.
//!
//! [`Store::apply`] builds the next state completely off the data path (compile, resolve
//! clusters, fetch metric handles) and publishes it with one atomic swap; a `watch` channel tells
//! the listener manager to reconcile sockets. Requests load the state once and keep it, so
//! in-flight work finishes on the configuration it started with.
//!
//! Per cluster it also owns endpoint choice ([`ClusterState::choose`]: outlier ejections,
//! locality priorities, consistent hashing, slow start, the simple policies) and the API the
//! data path reports outcomes through ([`ClusterState::observe`]); what must survive a snapshot
//! swap (breakers, ejections, pools) sits in [`ClusterShared`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use model::runtime::RuntimeCluster;
use model::{LbPolicy, ProxySnapshot, Runtime, UpstreamProtocol};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use crate::error::{ProxyError, RequestError, ResponseFlag};
use crate::lb::{choose_priority, request_hash, warmup_factor, HashTable, LbRequest};
use crate::metrics::{ClusterLabels, Metrics, ResultLabels, UpdateResult};
use crate::outlier::{Outcome, Outliers};
use crate::pool::{Breakers, Pool, Proto, Slot};
use crate::upstream::{H1Client, H2Pool, Upstreams};

/// Where random numbers for traffic splits and load balancing come from.
pub enum Random {
    /// A per-thread generator: no shared state on the data path.
    Thread,
    /// One seeded generator, so tests get the same sequence every run.
    Seeded(std::sync::Mutex<fastrand::Rng>),
}

impl Random {
    pub fn seeded(seed: u64) -> Random {
        Random::Seeded(std::sync::Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    pub fn u64(&self) -> u64 {
        match self {
            Random::Thread => fastrand::u64(..),
            Random::Seeded(rng) => rng.lock().unwrap_or_else(|p| p.into_inner()).u64(..),
        }
    }
}

/// How a cluster's requests reach its endpoints.
#[derive(Clone)]
pub enum Upstream {
    H1(Box<H1Client>),
    H2(Arc<H2Pool>),
    /// Connection limits or TLS from a DestinationRule: our own pool (see [`crate::pool`]).
    Pooled(Arc<Pool>),
}

/// Per-snapshot runtime state of one cluster.
pub struct ClusterState {
    next: AtomicUsize,
    /// In-flight requests per endpoint, for least-request.
    active: Vec<AtomicU32>,
    /// Each endpoint's address as a URI authority, made once per snapshot.
    pub authorities: Vec<http::uri::Authority>,
    /// Request counters by [`crate::metrics::CodeClass`] index.
    pub counters: [Counter; 5],
    pub bytes: crate::metrics::ClusterBytes,
    pub upstream: Upstream,
    /// TLS origination for the TCP proxy (DestinationRule `tls` on a TCP port), no ALPN.
    pub tcp_tls: Result<Option<crate::upstream_tls::Connector>, String>,
    /// `useClientProtocol`: HTTP/2 requests go upstream as HTTP/2 on this instead.
    client_h2: Option<Upstream>,
    /// What outlives the snapshot: breakers, ejections, warm-up clocks.
    pub shared: Arc<ClusterShared>,
    hash: Option<HashTable>,
    overflow: Counter,
    ejections: Counter,
}

/// One endpoint chosen for one request, holding its in-flight and breaker slots.
pub struct Pick<'a> {
    /// Index into the cluster's endpoints; `None` for a passthrough destination.
    pub index: Option<usize>,
    pub addr: SocketAddr,
    pub authority: http::uri::Authority,
    /// A generated hash cookie to set on the response (`Set-Cookie` value).
    pub set_cookie: Option<http::HeaderValue>,
    _in_flight: Option<InFlight<'a>>,
    _request: Option<Slot>,
}

impl ClusterState {
    /// How a request of this downstream `version` goes upstream.
    pub fn upstream_for(&self, version: http::Version) -> &Upstream {
        match &self.client_h2 {
            Some(h2) if version == http::Version::HTTP_2 => h2,
            _ => &self.upstream,
        }
    }

    /// Picks an endpoint index per the cluster's policy; `None` when none is healthy (UH).
    pub fn pick(&self, c: &RuntimeCluster, random: &Random) -> Option<usize> {
        self.select(c, random, &LbRequest::tcp(None, None))
            .ok()
            .flatten()
            .map(|(i, _)| i)
    }

    /// Chooses the endpoint for a request and takes its breaker slot: `UH` when no endpoint is
    /// usable, `UO` when `http2MaxRequests` requests are already in flight.
    pub fn choose(
        &self,
        c: &RuntimeCluster,
        random: &Random,
        req: &LbRequest<'_>,
    ) -> Result<Pick<'_>, RequestError> {
        let request = Slot::acquire(
            &self.shared.breakers,
            |b| &b.requests,
            c.policy.connection_pool.max_requests,
        );
        if request.is_none() {
            self.overflow.inc();
            return Err(RequestError::new(
                ResponseFlag::UO,
                format!("{}: too many requests", c.name),
            ));
        }
        if c.lb_policy == LbPolicy::Passthrough {
            let addr = req.original_dst.ok_or_else(|| {
                RequestError::new(
                    ResponseFlag::UH,
                    format!("{}: no original destination to pass through to", c.name),
                )
            })?;
            return Ok(Pick {
                index: None,
                addr,
                authority: authority(addr),
                set_cookie: None,
                _in_flight: None,
                _request: request,
            });
        }
        let no_host = || {
            RequestError::new(
                ResponseFlag::UH,
                format!("cluster {} has no healthy endpoint", c.name),
            )
        };
        let (i, set_cookie) = self.select(c, random, req)?.ok_or_else(no_host)?;
        Ok(Pick {
            index: Some(i),
            addr: c.endpoints[i].addr,
            authority: self.authorities[i].clone(),
            set_cookie: set_cookie.and_then(|v| http::HeaderValue::from_str(&v).ok()),
            _in_flight: Some(self.in_flight(i)),
            _request: request,
        })
    }

    /// Tells outlier detection how a request to `pick` ended. Only failures the upstream
    /// caused count; the downstream going away or our own refusals do not.
    pub fn observe<B>(
        &self,
        c: &RuntimeCluster,
        pick: &Pick<'_>,
        result: &Result<http::Response<B>, RequestError>,
    ) {
        let outcome = match result {
            Ok(r) => Outcome::Status(r.status().as_u16()),
            Err(e)
                if matches!(
                    e.flag,
                    ResponseFlag::UF | ResponseFlag::UC | ResponseFlag::UT
                ) =>
            {
                Outcome::LocalFailure
            }
            Err(_) => return,
        };
        self.report(c, pick.addr, outcome);
    }

    /// Records one outcome for `addr` (also used by the TCP path for connect failures).
    pub fn report(&self, c: &RuntimeCluster, addr: SocketAddr, outcome: Outcome) {
        if let Some(cfg) = &c.policy.outlier_detection {
            let ejected =
                self.shared
                    .outliers
                    .report(cfg, addr, c.endpoints.len(), outcome, Instant::now());
            if ejected {
                self.ejections.inc();
            }
        }
    }

    /// A slot for one retry under `maxRetries`, or `None` when the retry budget is spent (the
    /// retry is then skipped, as Envoy's `upstream_rq_retry_overflow`).
    pub fn retry_slot(&self, c: &RuntimeCluster) -> Option<Slot> {
        Slot::acquire(
            &self.shared.breakers,
            |b| &b.retries,
            c.policy.connection_pool.max_retries,
        )
    }

    /// The endpoint for a request and the cookie to set, `Ok(None)` when none is usable.
    #[allow(clippy::type_complexity)]
    fn select(
        &self,
        c: &RuntimeCluster,
        random: &Random,
        req: &LbRequest<'_>,
    ) -> Result<Option<(usize, Option<String>)>, RequestError> {
        if c.endpoints.is_empty() {
            return Ok(None);
        }
        let now = Instant::now();
        // Endpoints outlier detection lets through; all of them in panic mode (below
        // minHealthPercent healthy), as Envoy's healthy panic threshold does.
        let mut usable: Option<Vec<bool>> = None;
        if let Some(cfg) = &c.policy.outlier_detection {
            if self.shared.outliers.any(now) {
                let ejected = self
                    .shared
                    .outliers
                    .ejected(c.endpoints.iter().map(|e| e.addr), now);
                let healthy = ejected.iter().filter(|e| !**e).count();
                let panic = healthy * 100 < cfg.min_health_percent as usize * c.endpoints.len();
                if !panic {
                    usable = Some(ejected.into_iter().map(|e| !e).collect());
                }
            }
        }
        if c.prioritized {
            let levels = c.endpoints.iter().map(|e| e.priority).max().unwrap_or(0) as usize + 1;
            let mut healthy = vec![0u64; levels];
            let mut total = vec![0u64; levels];
            for (i, e) in c.endpoints.iter().enumerate() {
                total[e.priority as usize] += 1;
                if usable.as_ref().is_none_or(|u| u[i]) {
                    healthy[e.priority as usize] += 1;
                }
            }
            let Some(p) = choose_priority(&healthy, &total, random.u64() % 100) else {
                return Ok(None);
            };
            let mask = c
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| e.priority as usize == p && usable.as_ref().is_none_or(|u| u[i]))
                .collect();
            usable = Some(mask);
        }
        let ok = |i: usize| usable.as_ref().is_none_or(|u| u[i]);
        if let (Some(ch), Some(table)) = (&c.policy.consistent_hash, &self.hash) {
            if let Some(key) = request_hash(ch, req, || random.u64()) {
                return Ok(table.lookup(key.hash, ok).map(|i| (i, key.set_cookie)));
            }
        }
        let warming = self.warmup_weights(c, now);
        if usable.is_none() && warming.is_none() {
            return Ok(self.pick_all(c, random).map(|i| (i, None)));
        }
        if usable.as_ref().is_some_and(|u| !u.iter().any(|x| *x)) {
            return Ok(None);
        }
        let weights: Vec<f64> = (0..c.endpoints.len())
            .map(|i| {
                if !ok(i) {
                    0.0
                } else {
                    f64::from(c.endpoints[i].weight) * warming.as_ref().map_or(1.0, |w| w[i])
                }
            })
            .collect();
        let weighted = |r: u64| weighted_pick(&weights, r);
        Ok(match c.lb_policy {
            LbPolicy::RoundRobin if warming.is_none() => {
                // Walk the weighted schedule from the next slot to the first usable endpoint.
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let len = c.schedule.len();
                (0..len)
                    .map(|k| c.schedule[(n + k) % len] as usize)
                    .find(|i| ok(*i))
            }
            LbPolicy::LeastRequest => {
                let a = weighted(random.u64());
                let b = weighted(random.u64());
                match (a, b) {
                    (Some(a), Some(b)) => Some(if self.active(b) < self.active(a) {
                        b
                    } else {
                        a
                    }),
                    (a, b) => a.or(b),
                }
            }
            _ => weighted(random.u64()),
        }
        .map(|i| (i, None)))
    }

    fn pick_all(&self, c: &RuntimeCluster, random: &Random) -> Option<usize> {
        match c.lb_policy {
            LbPolicy::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                Some(c.schedule[n % c.schedule.len()] as usize)
            }
            LbPolicy::Random => c.pick_weighted(random.u64()),
            LbPolicy::LeastRequest => {
                let a = c.pick_weighted(random.u64())?;
                let b = c.pick_weighted(random.u64())?;
                Some(if self.active(b) < self.active(a) {
                    b
                } else {
                    a
                })
            }
            // The original destination, not an endpoint: the caller has it.
            LbPolicy::Passthrough => None,
        }
    }

    /// Slow-start factors per endpoint, `None` when no endpoint is warming.
    fn warmup_weights(&self, c: &RuntimeCluster, now: Instant) -> Option<Vec<f64>> {
        let w = c.policy.warmup.as_ref()?;
        let seen = self
            .shared
            .first_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let factors: Vec<f64> = c
            .endpoints
            .iter()
            .map(|e| match seen.get(&e.addr).copied().flatten() {
                Some(t) => {
                    let age = u64::try_from(now.saturating_duration_since(t).as_millis())
                        .unwrap_or(u64::MAX);
                    warmup_factor(w, age)
                }
                None => 1.0,
            })
            .collect();
        factors.iter().any(|f| *f < 1.0).then_some(factors)
    }

    /// Counts a request in flight to endpoint `i` until the guard drops.
    pub fn in_flight(&self, i: usize) -> InFlight<'_> {
        self.active[i].fetch_add(1, Ordering::Relaxed);
        InFlight(&self.active[i])
    }

    pub fn active(&self, i: usize) -> u32 {
        self.active[i].load(Ordering::Relaxed)
    }
}

fn weighted_pick(weights: &[f64], r: u64) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut x = (r >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 && x < *w {
            return Some(i);
        }
        x -= w;
    }
    weights.iter().rposition(|w| *w > 0.0)
}

fn authority(addr: SocketAddr) -> http::uri::Authority {
    http::uri::Authority::try_from(addr.to_string()).expect("a socket address is a valid authority")
}

pub struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one cluster keeps across snapshots: circuit-breaker counts, outlier ejections, when
/// each endpoint appeared (slow start), and its pool while the pool settings stay the same.
pub struct ClusterShared {
    pub breakers: Arc<Breakers>,
    pub outliers: Outliers,
    /// `None`: present since the cluster appeared, so never warming.
    first_seen: Mutex<HashMap<SocketAddr, Option<Instant>>>,
    pool: Mutex<Option<(PoolKey, Arc<Pool>)>>,
}

type PoolKey = (
    UpstreamProtocol,
    model::ConnectionPool,
    Duration,
    model::UpstreamTls,
);

impl ClusterShared {
    fn new() -> ClusterShared {
        ClusterShared {
            breakers: Arc::default(),
            outliers: Outliers::default(),
            first_seen: Mutex::default(),
            pool: Mutex::default(),
        }
    }

    /// Notes endpoints that are new since the last snapshot.
    fn saw(&self, c: &RuntimeCluster, fresh_cluster: bool) {
        let now = Instant::now();
        let mut seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|a, _| c.endpoints.iter().any(|e| e.addr == *a));
        for e in &c.endpoints {
            seen.entry(e.addr)
                .or_insert((!fresh_cluster).then_some(now));
        }
    }

    /// The cluster's pool for these settings, reused while they stay the same.
    fn pool(&self, c: &RuntimeCluster) -> Arc<Pool> {
        let key: PoolKey = (
            c.protocol,
            c.policy.connection_pool.clone(),
            c.connect_timeout,
            c.policy.tls.clone(),
        );
        let mut slot = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, p)) = slot.as_ref() {
            if *k == key {
                return p.clone();
            }
        }
        let (proto, alpn): (Proto, &[&[u8]]) = match c.protocol {
            UpstreamProtocol::Http1 => (Proto::H1, &[b"http/1.1"]),
            UpstreamProtocol::Http2 => (Proto::H2, &[b"h2"]),
        };
        let tls = crate::upstream_tls::connector(&c.policy.tls, alpn).map_err(|e| {
            tracing::warn!(cluster = %c.name, error = %e, "upstream TLS settings unusable");
            e.to_string()
        });
        let pool = Pool::new(
            proto,
            c.policy.connection_pool.clone(),
            c.connect_timeout,
            tls,
            self.breakers.clone(),
        );
        *slot = Some((key, pool.clone()));
        pool
    }
}

/// Whether a cluster needs our own pool rather than the shared keep-alive clients.
fn needs_pool(c: &RuntimeCluster) -> bool {
    let p = &c.policy.connection_pool;
    p.max_connections.is_some()
        || p.max_pending_requests.is_some()
        || p.max_requests_per_connection.is_some()
        || p.max_connection_duration_ms.is_some()
        || p.idle_timeout_ms.is_some()
        || p.tcp_keepalive.is_some()
        || matches!(
            c.policy.tls,
            model::UpstreamTls::Simple(_) | model::UpstreamTls::Mutual(_)
        )
}

/// One snapshot, compiled, with the state its clusters need.
pub struct State {
    pub runtime: Runtime,
    pub clusters: Vec<ClusterState>,
}

/// The current [`State`] and the channel that announces a new one.
pub struct Store {
    current: ArcSwap<State>,
    version: watch::Sender<u64>,
    metrics: Metrics,
    upstreams: Upstreams,
    shared: Shared,
}

/// Per-cluster state that survives snapshots, by cluster name.
type Shared = Mutex<HashMap<String, Arc<ClusterShared>>>;

impl Store {
    pub fn new(snapshot: ProxySnapshot, metrics: Metrics) -> Result<Store, ProxyError> {
        let upstreams = Upstreams::default();
        let shared = Shared::default();
        let state = build(snapshot, &metrics, &upstreams, &shared)?;
        Ok(Store {
            current: ArcSwap::from_pointee(state),
            version: watch::Sender::new(0),
            metrics,
            upstreams,
            shared,
        })
    }

    /// The state to use for one request or connection.
    pub fn load(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// Validates and publishes `snapshot`, returning its version number; on error the current
    /// state stays.
    pub fn apply(&self, snapshot: ProxySnapshot) -> Result<u64, ProxyError> {
        let result = build(snapshot, &self.metrics, &self.upstreams, &self.shared);
        let label = ResultLabels {
            result: if result.is_ok() {
                UpdateResult::Accepted
            } else {
                UpdateResult::Rejected
            },
        };
        self.metrics.snapshot_updates.get_or_create(&label).inc();
        self.current.store(Arc::new(result?));
        let mut version = 0;
        self.version.send_modify(|v| {
            *v += 1;
            version = *v;
        });
        Ok(version)
    }

    /// Wakes on every published snapshot (the listener manager follows it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn h2_pool(&self) -> Arc<H2Pool> {
        self.upstreams.h2()
    }
}

fn build(
    snapshot: ProxySnapshot,
    metrics: &Metrics,
    upstreams: &Upstreams,
    shared: &Shared,
) -> Result<State, ProxyError> {
    let runtime = Runtime::build(snapshot)?;
    let mut all = shared.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|name, _| runtime.cluster(name).is_some());
    let mut clusters = Vec::with_capacity(runtime.clusters.len());
    for c in &runtime.clusters {
        let fresh = !all.contains_key(&c.name);
        let cluster_shared = all
            .entry(c.name.clone())
            .or_insert_with(|| Arc::new(ClusterShared::new()))
            .clone();
        cluster_shared.saw(c, fresh);
        let upstream = if needs_pool(c) {
            Upstream::Pooled(cluster_shared.pool(c))
        } else {
            match c.protocol {
                UpstreamProtocol::Http1 => Upstream::H1(Box::new(upstreams.h1(c.connect_timeout))),
                UpstreamProtocol::Http2 => Upstream::H2(upstreams.h2()),
            }
        };
        // Unusable TLS settings fail this cluster's connections (UF), not the whole snapshot.
        let tcp_tls = crate::upstream_tls::connector(&c.policy.tls, &[]).map_err(|e| {
            tracing::warn!(cluster = %c.name, error = %e, "upstream TLS settings unusable");
            e.to_string()
        });
        let labels = ClusterLabels {
            cluster: c.name.clone(),
        };
        clusters.push(ClusterState {
            next: AtomicUsize::new(0),
            active: c.endpoints.iter().map(|_| AtomicU32::new(0)).collect(),
            authorities: c.endpoints.iter().map(|e| authority(e.addr)).collect(),
            counters: metrics.cluster_counters(&c.name),
            bytes: metrics.cluster_bytes(&c.name),
            upstream,
            tcp_tls,
            client_h2: (c.policy.connection_pool.use_client_protocol
                && c.protocol == UpstreamProtocol::Http1
                && !needs_pool(c))
            .then(|| Upstream::H2(upstreams.h2())),
            hash: c
                .policy
                .consistent_hash
                .as_ref()
                .and_then(|ch| HashTable::build(c, ch.algorithm)),
            shared: cluster_shared,
            overflow: metrics.pending_overflow.get_or_create(&labels).clone(),
            ejections: metrics.ejections.get_or_create(&labels).clone(),
        });
    }
    drop(all);
    Ok(State { runtime, clusters })
}

impl ClusterState {
    /// Counts a request refused by the pool's pending limit (`upstream_rq_pending_overflow`).
    pub fn overflowed(&self) {
        self.overflow.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Cluster, Endpoint, HealthStatus};

    fn state(policy: LbPolicy, weights: &[u32]) -> (Store, Arc<State>) {
        let cluster = Cluster {
            name: "c".into(),
            protocol: UpstreamProtocol::Http1,
            lb_policy: policy,
            connect_timeout_ms: 100,
            endpoints: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Endpoint {
                    address: "127.0.0.1".parse().unwrap(),
                    port: 1000 + i as u16,
                    labels: Default::default(),
                    weight: *w,
                    health: HealthStatus::Healthy,
                    locality: String::new(),
                    priority: 0,
                })
                .collect(),
            policy: Default::default(),
        };
        let snapshot = ProxySnapshot {
            clusters: vec![cluster],
            ..Default::default()
        };
        let store = Store::new(snapshot, Metrics::new().0).unwrap();
        let s = store.load();
        (store, s)
    }

    fn counts(policy: LbPolicy, weights: &[u32], n: usize) -> Vec<usize> {
        let (_store, s) = state(policy, weights);
        let random = Random::seeded(1);
        let mut counts = vec![0; weights.len()];
        for _ in 0..n {
            counts[s.clusters[0].pick(&s.runtime.clusters[0], &random).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_and_random_follow_weights() {
        assert_eq!(counts(LbPolicy::RoundRobin, &[3, 1], 400), [300, 100]);
        let r = counts(LbPolicy::Random, &[3, 1], 4000);
        assert!((2800..3200).contains(&r[0]), "{r:?}");
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let (_store, s) = state(LbPolicy::LeastRequest, &[1, 1]);
        let random = Random::seeded(3);
        let cs = &s.clusters[0];
        let busy: Vec<_> = (0..10).map(|_| cs.in_flight(0)).collect();
        // Endpoint 0 wins only when both random picks land on it: about one time in four.
        let picks: usize = (0..200)
            .filter(|_| cs.pick(&s.runtime.clusters[0], &random) == Some(1))
            .count();
        assert!(picks > 120, "endpoint 1 picked {picks}/200");
        drop(busy);
        assert_eq!(cs.active(0), 0, "in-flight guards release on drop");
    }

    #[test]
    fn warmup_gives_a_new_endpoint_a_small_share_at_first() {
        let (store, _) = state(LbPolicy::Random, &[1, 1]);
        let mut snapshot = store.load().runtime.snapshot();
        let c = &mut snapshot.clusters[0];
        c.policy.warmup = Some(model::Warmup {
            duration_ms: 600_000,
            minimum_percent: 10.0,
            aggression: 1.0,
        });
        store.apply(snapshot.clone()).unwrap();
        let mut newcomer = snapshot.clusters[0].endpoints[0].clone();
        newcomer.port = 2000;
        snapshot.clusters[0].endpoints.push(newcomer);
        store.apply(snapshot).unwrap();
        let s = store.load();
        let random = Random::seeded(5);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[s.clusters[0].pick(&s.runtime.clusters[0], &random).unwrap()] += 1;
        }
        // Weights 1 : 1 : 0.1 at the start of a 10 minute ramp: about 5 % for the newcomer.
        assert!((60..250).contains(&counts[2]), "{counts:?}");
        assert!(counts[0] > 1200 && counts[1] > 1200, "{counts:?}");
    }

    #[test]
    fn max_retries_and_max_requests_are_cluster_wide_budgets() {
        let (store, _) = state(LbPolicy::RoundRobin, &[1, 1]);
        let mut snapshot = store.load().runtime.snapshot();
        let pool = &mut snapshot.clusters[0].policy.connection_pool;
        pool.max_retries = Some(1);
        pool.max_requests = Some(2);
        store.apply(snapshot).unwrap();
        let s = store.load();
        let (c, cs) = (&s.runtime.clusters[0], &s.clusters[0]);
        let first = cs.retry_slot(c).expect("one retry allowed");
        assert!(
            cs.retry_slot(c).is_none(),
            "budget spent while the retry is in flight"
        );
        drop(first);
        assert!(cs.retry_slot(c).is_some(), "and back once it ends");
        let random = Random::seeded(1);
        let req = LbRequest::tcp(None, None);
        let a = cs.choose(c, &random, &req).unwrap();
        let _b = cs.choose(c, &random, &req).unwrap();
        let third = cs.choose(c, &random, &req);
        assert_eq!(third.err().map(|e| e.flag), Some(ResponseFlag::UO));
        drop(a);
        assert!(cs.choose(c, &random, &req).is_ok());
    }

    #[test]
    fn passthrough_goes_where_the_client_was_going() {
        let (_store, s) = state(LbPolicy::Passthrough, &[1]);
        let (c, cs) = (&s.runtime.clusters[0], &s.clusters[0]);
        let random = Random::seeded(1);
        let dialed: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        let pick = cs
            .choose(c, &random, &LbRequest::tcp(None, Some(dialed)))
            .unwrap();
        assert_eq!((pick.addr, pick.index), (dialed, None));
        assert_eq!(pick.authority.as_str(), "10.1.2.3:8080");
        let none = cs.choose(c, &random, &LbRequest::tcp(None, None));
        assert_eq!(
            none.err().map(|e| e.flag),
            Some(ResponseFlag::UH),
            "not redirected: UH"
        );
    }
}
