//! The push side of the control plane: from the store's snapshots to what each connected proxy
//! gets over the discovery stream ([`xds::Provider`]).
//!
//! - Changes are debounced: the store's new versions and auto-registrations open a window that
//!   closes after `debounce` of quiet (at most ten windows), then one push epoch is published:
//!   the config version, its resources plus the auto-registered WorkloadEntries, and when the
//!   first change of the burst was seen.
//! - Each stream asks for its resources at the current epoch. Proxies of the same shape (every
//!   compile input equal: role, namespace, labels, service account, workload group, port offset)
//!   share one compile per epoch; compiles run on the blocking pool, a few at a time.
//! - A shape's sections that did not change keep the previous epoch's `Arc`, so streams skip
//!   them without comparing resources; the rest is diffed per resource version by the stream.
//! - [`autoreg`]: WorkloadEntries for proxies that join a WorkloadGroup.

pub mod autoreg;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use model::{ProxyIdentity, Registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as Metrics;
use serde_json::{json, Value};
use tokio::sync::{watch, OnceCell, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use xds::server::BoxFuture;
use xds::Generated;

use crate::store::{ConfigSnapshot, StoreHandle};
use autoreg::AutoRegistry;

/// Istio's PILOT_DEBOUNCE_AFTER.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD.
pub const DEFAULT_WORKLOAD_ENTRY_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct PushOptions {
    pub debounce: Duration,
    pub workload_entry_grace: Duration,
    /// Compiles running at once (they are CPU work on the blocking pool).
    pub max_concurrent_compiles: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            debounce: DEFAULT_DEBOUNCE,
            workload_entry_grace: DEFAULT_WORKLOAD_ENTRY_GRACE,
            max_concurrent_compiles: 2,
        }
    }
}

type Cell = Arc<OnceCell<Result<Arc<Generated>, String>>>;

/// One published push: what every stream compiles against until the next.
struct Epoch {
    number: u64,
    config: Arc<ConfigSnapshot>,
    resources: Arc<Vec<api::Resource>>,
    triggered: Instant,
    /// One compile per shape at this epoch.
    cache: Mutex<HashMap<String, Cell>>,
}

#[derive(Clone)]
struct PushMetrics {
    compile_seconds: Histogram,
    triggers: Counter,
}

/// The control plane's [`xds::Provider`].
pub struct Pusher {
    store: StoreHandle,
    autoreg: AutoRegistry,
    options: PushOptions,
    current: ArcSwap<Epoch>,
    pushes: watch::Sender<u64>,
    /// The last result per shape, so unchanged sections are shared with it.
    previous: Mutex<HashMap<String, Arc<Generated>>>,
    compiles: Semaphore,
    metrics: PushMetrics,
}

impl Pusher {
    pub fn new(store: StoreHandle, options: PushOptions) -> Arc<Pusher> {
        let autoreg = AutoRegistry::new(options.workload_entry_grace);
        let first = epoch(1, store.load(), &autoreg, Instant::now());
        Arc::new(Pusher {
            store,
            autoreg,
            compiles: Semaphore::new(options.max_concurrent_compiles.max(1)),
            options,
            current: ArcSwap::from_pointee(first),
            pushes: watch::Sender::new(1),
            previous: Mutex::default(),
            metrics: PushMetrics {
                compile_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
                triggers: Counter::default(),
            },
        })
    }

    pub fn register_metrics(&self, r: &mut Metrics) {
        r.register(
            "pilot_xds_compile_seconds",
            "Seconds to compile one proxy shape's config",
            self.metrics.compile_seconds.clone(),
        );
        r.register(
            "pilot_push_triggers",
            "Pushes published after debouncing config changes",
            self.metrics.triggers.clone(),
        );
    }

    /// Follows the store and the auto-registrations, publishing debounced epochs, until the
    /// store stops.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.debounce_loop().await })
    }

    async fn debounce_loop(&self) {
        let mut config = self.store.subscribe();
        let mut registrations = self.autoreg.subscribe();
        registrations.mark_unchanged();
        let debounce = self.options.debounce;
        loop {
            tokio::select! {
                r = config.changed() => if r.is_err() { return },
                r = registrations.changed() => if r.is_err() { return },
            }
            let first = Instant::now();
            let mut last = first;
            let mut events = 1u32;
            loop {
                let deadline = (last + debounce).min(first + debounce * 10);
                tokio::select! {
                    r = config.changed() => { if r.is_err() { return } last = Instant::now(); events += 1; }
                    r = registrations.changed() => { if r.is_err() { return } last = Instant::now(); events += 1; }
                    () = tokio::time::sleep_until(deadline.into()) => break,
                }
            }
            let number = self.current.load().number + 1;
            let next = epoch(number, self.store.load(), &self.autoreg, first);
            info!(
                epoch = number,
                config_version = next.config.version,
                events,
                debounced_ms = first.elapsed().as_millis() as u64,
                "pushing config"
            );
            self.current.store(Arc::new(next));
            self.metrics.triggers.inc();
            self.pushes.send_replace(number);
        }
    }

    /// The registry as the current epoch sees it, for `/debug/registryz`.
    pub fn registryz(&self) -> Value {
        let epoch = self.current.load_full();
        let refs: Vec<&api::Resource> = epoch.resources.iter().collect();
        let mut warnings = Vec::new();
        let registry = Registry::build(&refs, epoch.config.mesh.trust_domain(), &mut warnings);
        let services: Vec<Value> = registry
            .services
            .iter()
            .map(|s| {
                json!({
                    "hostname": s.hostname,
                    "namespace": s.namespace,
                    "addresses": s.addresses,
                    "ports": s.ports.iter().map(|p| json!({
                        "name": p.name, "port": p.number, "protocol": p.protocol.to_string(),
                    })).collect::<Vec<_>>(),
                    "endpoints": s.endpoints.iter().map(|e| json!({
                        "address": e.address.to_string(),
                        "port": e.port,
                        "servicePort": e.service_port,
                        "labels": e.labels,
                        "locality": e.locality,
                        "serviceAccount": e.service_account,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let auto: Vec<String> = self
            .autoreg
            .resources()
            .iter()
            .map(|r| format!("{}/{}", r.namespace(), r.name()))
            .collect();
        json!({
            "epoch": epoch.number,
            "configVersion": epoch.config.version,
            "services": services,
            "autoRegisteredWorkloadEntries": auto,
            "warnings": warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }

    async fn generate_for(&self, proxy: &ProxyIdentity) -> Result<Arc<Generated>, String> {
        let epoch = self.current.load_full();
        let shape = shape_of(proxy);
        let cell = epoch
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(shape.key.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| self.compile(epoch.clone(), shape))
            .await
            .clone()
    }

    async fn compile(&self, epoch: Arc<Epoch>, shape: Shape) -> Result<Arc<Generated>, String> {
        let _permit = self.compiles.acquire().await.map_err(|e| e.to_string())?;
        let previous = self
            .previous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&shape.key)
            .cloned();
        let started = Instant::now();
        let job_epoch = epoch.clone();
        let mut identity = shape.proxy;
        identity.version = epoch.number.to_string();
        let job = tokio::task::spawn_blocking(move || {
            let e = job_epoch;
            let compiled = model::compile(&e.resources, &e.config.mesh, &identity)
                .map_err(|err| err.to_string())?;
            for w in &compiled.warnings {
                debug!(epoch = e.number, "{w}");
            }
            Generated::new(
                &compiled.snapshot,
                e.number.to_string(),
                e.triggered,
                previous.as_deref(),
            )
            .map_err(|err| err.to_string())
        });
        let generated = match job.await {
            Ok(Ok(g)) => Arc::new(g),
            Ok(Err(e)) => {
                warn!(epoch = epoch.number, error = %e, "compile failed");
                return Err(e);
            }
            Err(e) => return Err(format!("the compile job stopped: {e}")),
        };
        self.metrics
            .compile_seconds
            .observe(started.elapsed().as_secs_f64());
        self.previous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shape.key, generated.clone());
        Ok(generated)
    }
}

impl xds::Provider for Pusher {
    fn pushes(&self) -> watch::Receiver<u64> {
        self.pushes.subscribe()
    }

    fn generate<'a>(
        &'a self,
        proxy: &'a ProxyIdentity,
    ) -> BoxFuture<'a, Result<Arc<Generated>, String>> {
        Box::pin(self.generate_for(proxy))
    }

    fn connected(&self, proxy: &ProxyIdentity) -> Box<dyn Send + Sync> {
        let config = self.current.load().config.clone();
        Box::new(self.autoreg.connect(proxy, &config))
    }
}

fn epoch(
    number: u64,
    config: Arc<ConfigSnapshot>,
    autoreg: &AutoRegistry,
    triggered: Instant,
) -> Epoch {
    let mut resources: Vec<api::Resource> = config
        .resources
        .values()
        .flat_map(|by_name| by_name.values())
        .map(|entry| entry.resource.clone())
        .collect();
    resources.extend(autoreg.resources());
    Epoch {
        number,
        config,
        resources: Arc::new(resources),
        triggered,
        cache: Mutex::default(),
    }
}

/// A proxy's compile inputs, and the key proxies sharing them share a compile under.
struct Shape {
    key: String,
    proxy: ProxyIdentity,
}

/// The fields `model::compile` does not read are blanked (see `model::ProxyIdentity`).
fn shape_of(proxy: &ProxyIdentity) -> Shape {
    let proxy = ProxyIdentity {
        id: String::new(),
        ips: Vec::new(),
        version: String::new(),
        ..proxy.clone()
    };
    let key = serde_json::to_string(&proxy).unwrap_or_default();
    Shape { key, proxy }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_differing_only_in_address_share_a_shape() {
        let mut a = ProxyIdentity::new(model::Role::Sidecar, "default");
        a.id = "sidecar~10.0.0.1~a.default~default.svc.cluster.local".into();
        a.ips = vec!["10.0.0.1".parse().unwrap()];
        let mut b = a.clone();
        b.id = "sidecar~10.0.0.2~b.default~default.svc.cluster.local".into();
        b.ips = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(shape_of(&a).key, shape_of(&b).key);
        b.labels.insert("app".into(), "x".into());
        assert_ne!(shape_of(&a).key, shape_of(&b).key);
    }
}
