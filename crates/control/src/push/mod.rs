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
//! - The registry is built once per epoch, off the runtime, and shared by every shape's compile.
//! - [`change`]: when an epoch only moves endpoints, a shape that was compiled at the epoch
//!   before patches the clusters of the moved hosts into that result instead of compiling.
//! - A shape's sections that did not change keep the previous epoch's `Arc`, so streams skip
//!   them without comparing resources; a changed section carries its delta from the previous
//!   one, computed once per shape, so streams send it without comparing every resource.
//! - [`autoreg`]: WorkloadEntries for proxies that join a WorkloadGroup.

pub mod autoreg;
pub mod change;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use model::{ClusterName, ProxyIdentity, SharedRegistry};
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
use change::Change;

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
    /// The auto-registered WorkloadEntries, compiled with the config's resources, and the
    /// auto-registry's version they were read at.
    registered: Vec<api::Resource>,
    registered_version: u64,
    registry: Arc<SharedRegistry>,
    /// Since epoch `number - 1`.
    change: Change,
    triggered: Instant,
    /// One compile per shape at this epoch.
    cache: Mutex<HashMap<String, Cell>>,
}

#[derive(Clone)]
struct PushMetrics {
    compile_seconds: Histogram,
    triggers: Counter,
    patches: Counter,
}

/// The control plane's [`xds::Provider`].
pub struct Pusher {
    store: StoreHandle,
    autoreg: AutoRegistry,
    options: PushOptions,
    current: ArcSwap<Epoch>,
    pushes: watch::Sender<u64>,
    /// The last result per shape with its epoch, so unchanged sections are shared with it and
    /// an endpoint-only epoch right after it can patch it.
    previous: Mutex<HashMap<String, (u64, Arc<Generated>)>>,
    compiles: Semaphore,
    metrics: PushMetrics,
}

impl Pusher {
    pub fn new(store: StoreHandle, options: PushOptions) -> Arc<Pusher> {
        let autoreg = AutoRegistry::new(options.workload_entry_grace);
        let registered = (autoreg.version(), autoreg.resources());
        let first = epoch(1, store.load(), registered, Instant::now(), None);
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
                patches: Counter::default(),
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
        r.register(
            "bowline_endpoint_patches",
            "Proxy shape configs patched for an endpoint-only change instead of compiled",
            self.metrics.patches.clone(),
        );
    }

    /// Shape configs built by patching an endpoint-only change so far.
    pub fn endpoint_patches(&self) -> u64 {
        self.metrics.patches.get()
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
            let before = self.current.load_full();
            let number = before.number + 1;
            let registered = (self.autoreg.version(), self.autoreg.resources());
            let config = self.store.load();
            // Building the registry is CPU work proportional to the mesh: off the runtime.
            let next = tokio::task::spawn_blocking(move || {
                epoch(number, config, registered, first, Some(&before))
            })
            .await;
            let Ok(next) = next else { return };
            info!(
                epoch = number,
                config_version = next.config.version,
                events,
                endpoints_only = matches!(next.change, Change::Endpoints { .. }),
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
        let SharedRegistry { registry, warnings } = &*epoch.registry;
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
            if let Some((number, prev)) = &previous {
                if *number + 1 == e.number {
                    if let Some(patched) = patch(&e, prev, &identity) {
                        return patched.map(|g| (g, true));
                    }
                }
            }
            let compiled =
                model::compile_with(&e.resources(), &e.registry, &e.config.mesh, &identity)
                    .map_err(|err| err.to_string())?;
            for w in &compiled.warnings {
                debug!(epoch = e.number, "{w}");
            }
            Generated::new(
                &compiled.snapshot,
                e.number.to_string(),
                e.triggered,
                previous.as_ref().map(|(_, g)| &**g),
            )
            .map(|g| (g, false))
            .map_err(|err| err.to_string())
        });
        let (generated, patched) = match job.await {
            Ok(Ok((g, patched))) => (Arc::new(g), patched),
            Ok(Err(e)) => {
                warn!(epoch = epoch.number, error = %e, "compile failed");
                return Err(e);
            }
            Err(e) => return Err(format!("the compile job stopped: {e}")),
        };
        let seconds = started.elapsed().as_secs_f64();
        debug!(
            epoch = epoch.number,
            patched, seconds, "compiled a proxy shape"
        );
        self.metrics.compile_seconds.observe(seconds);
        if patched {
            self.metrics.patches.inc();
        }
        self.previous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(shape.key, (epoch.number, generated.clone()));
        Ok(generated)
    }
}

/// The endpoint-only path: `previous` (this shape at the epoch before) with the clusters of the
/// moved hosts rebuilt. `None` when the epoch is not endpoint-only or the proxy needs a full
/// compile anyway.
fn patch(
    e: &Epoch,
    previous: &Generated,
    identity: &ProxyIdentity,
) -> Option<Result<Generated, String>> {
    let Change::Endpoints { hosts, before } = &e.change else {
        return None;
    };
    let cds = xds::resources::section(xds::resources::CLUSTER)?.0;
    // Cluster names end with their host (`outbound|port|subset|host`).
    let names: Vec<String> = previous.sections[cds]
        .keys()
        .filter(|n| n.rsplit_once('|').is_some_and(|(_, h)| hosts.contains(h)))
        .cloned()
        .collect();
    let parsed: Vec<ClusterName> = names.iter().filter_map(|n| n.parse().ok()).collect();
    if parsed.len() != names.len() {
        return None;
    }
    let rebuilt = model::recompile_clusters(
        &e.resources(),
        &e.registry,
        &before.registry,
        &e.config.mesh,
        identity,
        &parsed,
    )?;
    Some(
        Generated::patch_clusters(
            previous,
            &names,
            rebuilt.clusters,
            rebuilt.mesh_tls,
            e.number.to_string(),
            e.triggered,
        )
        .map_err(|err| err.to_string()),
    )
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

/// The epoch after `before` (none for the first): the config, the registry built once for all
/// shapes, and what changed.
fn epoch(
    number: u64,
    config: Arc<ConfigSnapshot>,
    (registered_version, registered): (u64, Vec<api::Resource>),
    triggered: Instant,
    before: Option<&Epoch>,
) -> Epoch {
    let started = Instant::now();
    let patched = before
        .and_then(|b| change::patched_registry(b.registry_inputs(), &config, registered_version));
    let incremental = patched.is_some();
    let (registry, moved) = match patched {
        Some((registry, moved)) => (registry, Some(moved)),
        None => (
            model::build_registry(&all_resources(&config, &registered), &config.mesh),
            None,
        ),
    };
    let change = match before {
        Some(b) => change::classify(&b.config, &b.registry, &config, &registry, moved),
        None => Change::Full,
    };
    debug!(
        epoch = number,
        incremental,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "registry built"
    );
    Epoch {
        number,
        config,
        registered,
        registered_version,
        registry: Arc::new(registry),
        change,
        triggered,
        cache: Mutex::default(),
    }
}

/// Every resource a compile reads, borrowed: copying ten thousand resources per push would cost
/// more than the endpoint-only push itself.
fn all_resources<'a>(
    config: &'a ConfigSnapshot,
    registered: &'a [api::Resource],
) -> Vec<&'a api::Resource> {
    config
        .resources
        .values()
        .flat_map(|by_name| by_name.values())
        .map(|entry| &entry.resource)
        .chain(registered)
        .collect()
}

impl Epoch {
    fn resources(&self) -> Vec<&api::Resource> {
        all_resources(&self.config, &self.registered)
    }

    fn registry_inputs(&self) -> change::RegistryInputs<'_> {
        change::RegistryInputs {
            config: &self.config,
            registered_version: self.registered_version,
            registry: &self.registry,
        }
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
