//! The names the DNS relay on the pod bridge answers for pods without a sidecar (Istio's
//! un-injected "legacy" workloads), in place of a cluster's kube-dns plus kube-proxy.
//!
//! Such a pod has no sidecar to catch a service VIP, so the relay answers each Kubernetes
//! service name (`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>`) and each
//! ServiceEntry host with the addresses of its endpoints, as a headless Service would: the pod
//! then connects to a pod address, where that pod's sidecar (if any) captures it inbound, so
//! PeerAuthentication applies exactly as it does to plain-text callers in Istio. Names under
//! `cluster.local` that the mesh does not know are answered NXDOMAIN at once (so a search list
//! walks on without waiting for an upstream); other names are relayed.
//!
//! The table follows the config directory through the control crate's store, as a proxy does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use control::store::{ConfigSnapshot, DirSource, Store, DEFAULT_DEBOUNCE};
use model::Registry;

use crate::Error;

const MESH_DOMAIN: &str = "cluster.local";

/// Mesh-wide names to endpoint addresses, swapped whole on every config version.
#[derive(Default)]
pub struct EndpointNames {
    table: RwLock<Arc<BTreeMap<String, Vec<IpAddr>>>>,
}

impl proxy::dns::Names for EndpointNames {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner()).clone();
        table.get(name).cloned()
    }

    fn authoritative_for(&self, name: &str) -> bool {
        name == MESH_DOMAIN || name.ends_with(&format!(".{MESH_DOMAIN}"))
    }
}

impl EndpointNames {
    fn set(&self, table: BTreeMap<String, Vec<IpAddr>>) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }

    /// Follows `config_dir` until the returned store is dropped.
    pub async fn follow(self: &Arc<Self>, config_dir: &Path) -> Result<Store, Error> {
        let source = DirSource::new(config_dir, DEFAULT_DEBOUNCE)
            .map_err(|e| Error::Invalid(format!("watching {}: {e}", config_dir.display())))?;
        let store = Store::start(source)
            .await
            .map_err(|e| Error::Invalid(format!("loading {}: {e}", config_dir.display())))?;
        let handle = store.handle();
        let mut versions = handle.subscribe();
        self.set(table(&handle.load()));
        let me = self.clone();
        tokio::spawn(async move {
            while versions.changed().await.is_ok() {
                me.set(table(&handle.load()));
            }
        });
        Ok(store)
    }
}

fn table(config: &ConfigSnapshot) -> BTreeMap<String, Vec<IpAddr>> {
    let resources: Vec<&api::Resource> = config
        .resources
        .values()
        .flat_map(|by_name| by_name.values())
        .map(|e| &e.resource)
        .collect();
    names_of(&resources, config.mesh.trust_domain())
}

/// Service names to endpoint addresses for `resources`.
fn names_of(resources: &[&api::Resource], trust_domain: &str) -> BTreeMap<String, Vec<IpAddr>> {
    let mut warnings = Vec::new();
    let registry = Registry::build(resources, trust_domain, &mut warnings);
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for s in &registry.services {
        if s.hostname.starts_with('*') {
            continue;
        }
        let mut addrs: Vec<IpAddr> = s.endpoints.iter().map(|e| e.address).collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            continue;
        }
        let mut names = vec![s.hostname.to_ascii_lowercase()];
        if let Some(name) = &s.kube_name {
            names.push(format!("{name}.{}.svc", s.namespace));
            names.push(format!("{name}.{}", s.namespace));
        }
        for n in names {
            out.entry(n).or_insert_with(|| addrs.clone());
        }
    }
    out
}

/// The resolv.conf of a pod without a sidecar: the relay, and Kubernetes' search list and ndots.
pub fn legacy_resolv_conf(relay: IpAddr, namespace: &str) -> String {
    format!(
        "# Written by bowline for a pod without a sidecar.\nnameserver {relay}\nsearch {namespace}.svc.{MESH_DOMAIN} svc.{MESH_DOMAIN} {MESH_DOMAIN}\noptions ndots:5\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy::dns::Names as _;

    #[test]
    fn kubernetes_names_resolve_to_pod_addresses_and_unknown_mesh_names_are_ours() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Pod
metadata:
  name: httpbin
  namespace: foo
  labels: {app: httpbin}
  annotations: {bowline.io/address: 10.88.0.7}
spec: {containers: [{name: app}]}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: foo}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
"#;
        let resources: Vec<api::Resource> = api::load_str("t.yaml", yaml)
            .into_iter()
            .filter_map(|d| match d {
                api::Decoded::Resource(r) => Some(*r),
                _ => None,
            })
            .collect();
        let refs: Vec<&api::Resource> = resources.iter().collect();
        let names = EndpointNames::default();
        names.set(names_of(&refs, "cluster.local"));
        let pod: Vec<IpAddr> = vec!["10.88.0.7".parse().unwrap()];
        for n in [
            "httpbin.foo",
            "httpbin.foo.svc",
            "httpbin.foo.svc.cluster.local",
        ] {
            assert_eq!(names.lookup(n), Some(pod.clone()), "{n}");
        }
        // No endpoints, no answer; the domain is still ours, so NXDOMAIN rather than relayed.
        assert_eq!(names.lookup("empty.foo.svc.cluster.local"), None);
        assert!(names.authoritative_for("empty.foo.svc.cluster.local"));
        assert!(!names.authoritative_for("example.com"));
        assert!(legacy_resolv_conf("10.88.0.1".parse().unwrap(), "legacy")
            .contains("search legacy.svc.cluster.local svc.cluster.local cluster.local"));
    }
}
