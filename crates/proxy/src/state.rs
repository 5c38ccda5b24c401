//! The live configuration: one immutable [`State`] per snapshot behind an `ArcSwap`.
//!
//! [`Store::apply`] builds the next state completely off the data path (compile, resolve
//! clusters, fetch metric handles) and publishes it with one atomic swap; a `watch` channel tells
//! the listener manager to reconcile sockets. Requests load the state once and keep it, so
//! in-flight work finishes on the configuration it started with.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use model::runtime::RuntimeCluster;
use model::{LbPolicy, ProxySnapshot, Runtime, UpstreamProtocol};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use crate::error::ProxyError;
use crate::metrics::{Metrics, ResultLabels, UpdateResult};
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
    pub upstream: Upstream,
}

impl ClusterState {
    /// Picks an endpoint index per the cluster's policy; `None` when none is healthy (UH).
    pub fn pick(&self, c: &RuntimeCluster, random: &Random) -> Option<usize> {
        if c.endpoints.is_empty() {
            return None;
        }
        match c.lb_policy {
            LbPolicy::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                Some(c.schedule[n % c.schedule.len()] as usize)
            }
            LbPolicy::Random => c.pick_weighted(random.u64()),
            LbPolicy::LeastRequest => {
                let a = c.pick_weighted(random.u64())?;
                let b = c.pick_weighted(random.u64())?;
                let load = |i: usize| self.active[i].load(Ordering::Relaxed);
                Some(if load(b) < load(a) { b } else { a })
            }
            // The original destination, not an endpoint: the caller has it.
            LbPolicy::Passthrough => None,
        }
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

pub struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
}

impl Store {
    pub fn new(snapshot: ProxySnapshot, metrics: Metrics) -> Result<Store, ProxyError> {
        let upstreams = Upstreams::default();
        let state = build(snapshot, &metrics, &upstreams)?;
        Ok(Store {
            current: ArcSwap::from_pointee(state),
            version: watch::Sender::new(0),
            metrics,
            upstreams,
        })
    }

    /// The state to use for one request or connection.
    pub fn load(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// Validates and publishes `snapshot`, returning its version number; on error the current
    /// state stays.
    pub fn apply(&self, snapshot: ProxySnapshot) -> Result<u64, ProxyError> {
        let result = build(snapshot, &self.metrics, &self.upstreams);
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
) -> Result<State, ProxyError> {
    let runtime = Runtime::build(snapshot)?;
    let clusters = runtime
        .clusters
        .iter()
        .map(|c| ClusterState {
            next: AtomicUsize::new(0),
            active: c.endpoints.iter().map(|_| AtomicU32::new(0)).collect(),
            authorities: c
                .endpoints
                .iter()
                .map(|e| {
                    http::uri::Authority::try_from(e.addr.to_string())
                        .expect("a socket address is a valid authority")
                })
                .collect(),
            counters: metrics.cluster_counters(&c.name),
            upstream: match c.protocol {
                UpstreamProtocol::Http1 => Upstream::H1(Box::new(upstreams.h1(c.connect_timeout))),
                UpstreamProtocol::Http2 => Upstream::H2(upstreams.h2()),
            },
        })
        .collect();
    Ok(State { runtime, clusters })
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
                })
                .collect(),
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
}
