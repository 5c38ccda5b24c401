//! WorkloadGroup auto-registration, as istiod does it for VMs: a proxy that connects naming a
//! WorkloadGroup of its namespace gets a WorkloadEntry made from the group's template with the
//! proxy's address and labels, kept in memory while the proxy is connected and removed a grace
//! period after it disconnects (a quick reconnect keeps the same entry).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::resource::{load_str, Decoded};
use api::{Resource, Spec};
use model::ProxyIdentity;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::store::ConfigSnapshot;

/// Istio's annotation naming the group an entry was registered from.
pub const GROUP_ANNOTATION: &str = "istio.io/autoRegistrationGroup";

struct Registered {
    resource: Arc<Resource>,
    /// Connected proxies holding it; removal is scheduled when this reaches zero.
    holders: usize,
    /// Bumped on every connect, so a removal scheduled before a reconnect does nothing.
    generation: u64,
}

/// The auto-registered entries, by `namespace/name`.
#[derive(Clone)]
pub struct AutoRegistry {
    entries: Arc<Mutex<BTreeMap<String, Registered>>>,
    changes: watch::Sender<u64>,
    grace: Duration,
}

impl AutoRegistry {
    pub fn new(grace: Duration) -> Self {
        AutoRegistry {
            entries: Arc::default(),
            changes: watch::Sender::new(0),
            grace,
        }
    }

    /// Marked changed when an entry is added or removed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Goes up with every change: read it before [`Self::resources`], so a change in between
    /// shows as a new version next time.
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    /// The entries now, as resources to compile with.
    pub fn resources(&self) -> Vec<Resource> {
        self.lock()
            .values()
            .map(|r| (*r.resource).clone())
            .collect()
    }

    /// Registers `proxy` if it names a group; the returned guard unregisters on drop.
    pub fn connect(&self, proxy: &ProxyIdentity, config: &ConfigSnapshot) -> Option<Guard> {
        if proxy.workload_group.is_empty() {
            return None;
        }
        let Some(ip) = proxy.ips.first() else {
            warn!(node = %proxy.id, group = %proxy.workload_group, "a proxy joining a WorkloadGroup sent no address; not registered");
            return None;
        };
        let group = config
            .resources
            .get(&api::Kind::WorkloadGroup)
            .and_then(|m| m.get(&format!("{}/{}", proxy.namespace, proxy.workload_group)))
            .and_then(|e| match &e.resource.spec {
                Spec::WorkloadGroup(g) => Some(g.as_ref().clone()),
                _ => None,
            });
        let Some(group) = group else {
            warn!(node = %proxy.id, group = %proxy.workload_group, namespace = %proxy.namespace,
                "the proxy names a WorkloadGroup that does not exist; not registered");
            return None;
        };
        // Istio names entries `<group>-<address>`; dots and colons are not DNS-label safe.
        let name = format!(
            "{}-{}",
            proxy.workload_group,
            ip.to_string().replace(['.', ':'], "-")
        );
        let key = format!("{}/{name}", proxy.namespace);
        let mut spec = group.template.clone().unwrap_or_default();
        spec.address = Some(ip.to_string());
        spec.labels.extend(proxy.labels.clone());
        if spec.service_account.is_empty() {
            spec.service_account = proxy.service_account.clone();
        }
        if spec.locality.is_empty() {
            spec.locality = proxy.locality.clone();
        }
        let meta = group.metadata.clone().unwrap_or_default();
        let mut annotations = meta.annotations.clone();
        annotations.insert(GROUP_ANNOTATION.into(), proxy.workload_group.clone());
        let doc = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "WorkloadEntry",
            "metadata": {
                "name": name,
                "namespace": proxy.namespace,
                "labels": meta.labels,
                "annotations": annotations,
            },
            "spec": spec,
        });
        let resource = match load_str("<auto-registration>", &doc.to_string()).pop() {
            Some(Decoded::Resource(r)) => Arc::new(*r),
            _ => {
                warn!(%key, "the auto-registered WorkloadEntry does not decode; not registered");
                return None;
            }
        };
        let generation = {
            let mut entries = self.lock();
            let e = entries.entry(key.clone()).or_insert_with(|| Registered {
                resource: resource.clone(),
                holders: 0,
                generation: 0,
            });
            e.resource = resource;
            e.holders += 1;
            e.generation += 1;
            e.generation
        };
        info!(%key, node = %proxy.id, "auto-registered a WorkloadEntry");
        self.changes.send_modify(|v| *v += 1);
        Some(Guard {
            registry: self.clone(),
            key,
            generation,
        })
    }

    fn release(&self, key: String, generation: u64) {
        let last = {
            let mut entries = self.lock();
            match entries.get_mut(&key) {
                Some(e) => {
                    e.holders = e.holders.saturating_sub(1);
                    e.holders == 0
                }
                None => false,
            }
        };
        if !last {
            return;
        }
        let registry = self.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(registry.grace).await;
            let removed = {
                let mut entries = registry.lock();
                let stale = entries
                    .get(&key)
                    .is_some_and(|e| e.holders == 0 && e.generation == generation);
                stale && entries.remove(&key).is_some()
            };
            if removed {
                info!(%key, "removed an auto-registered WorkloadEntry after its grace period");
                registry.changes.send_modify(|v| *v += 1);
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Registered>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Held while the proxy is connected.
pub struct Guard {
    registry: AutoRegistry,
    key: String,
    generation: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.registry
            .release(std::mem::take(&mut self.key), self.generation);
    }
}
