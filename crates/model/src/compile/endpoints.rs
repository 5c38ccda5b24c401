//! Endpoint-only recompiles. When a config change moves endpoints and nothing else (every other
//! resource is the same and the registry's services differ only in their endpoints, see
//! [`Registry::endpoint_changes`]), a proxy's new config differs from its last one only in the
//! clusters of the changed hosts: their endpoints, and the mesh mTLS origination that depends on
//! which endpoints run a sidecar and under which service accounts. Rebuilding just those
//! clusters, instead of every listener, route and cluster, is what keeps an endpoint change's
//! push in milliseconds with ten thousand services.

use api::types::mesh::MeshConfig;
use api::Resource;

use super::{capture, Cx, ProxyIdentity, Role, SharedRegistry};
use crate::cluster::{Cluster, ClusterName, Direction};
use crate::registry::Registry;
use crate::snapshot::MeshTlsOrigination;

/// The rebuilt clusters of an endpoint-only change.
#[derive(Clone, Debug, PartialEq)]
pub struct Recompiled {
    /// One per cluster asked for, in name order.
    pub clusters: Vec<Cluster>,
    /// The mesh mTLS origination of those clusters that have one now (the others have none).
    pub mesh_tls: Vec<MeshTlsOrigination>,
}

/// Rebuilds the outbound clusters named `clusters` (from the proxy's last compile, against the
/// registry `before`) against `registry`, as [`super::compile_with`] would build them.
///
/// `None` when patching those clusters would not give what a full compile gives: a capture
/// sidecar recognises its own inbound ports from the endpoints that select it, so when those
/// changed its listeners change too; and inbound clusters are not rebuilt here.
pub fn recompile_clusters(
    resources: &[&Resource],
    registry: &SharedRegistry,
    before: &Registry,
    mesh: &MeshConfig,
    proxy: &ProxyIdentity,
    clusters: &[ClusterName],
) -> Option<Recompiled> {
    if clusters.iter().any(|c| c.direction != Direction::Outbound) {
        return None;
    }
    if proxy.role == Role::Sidecar && proxy.capture {
        let was = Cx::new(resources, before, Vec::new(), mesh, proxy);
        let now = Cx::new(resources, &registry.registry, Vec::new(), mesh, proxy);
        if capture::workload_ports(&was) != capture::workload_ports(&now) {
            return None;
        }
    }
    let mut cx = Cx::new(resources, &registry.registry, Vec::new(), mesh, proxy);
    cx.clusters = clusters
        .iter()
        .map(|c| (c.host.clone(), c.port, c.subset.clone()))
        .collect();
    let clusters = cx.build_clusters();
    let mut mesh_tls = std::mem::take(&mut cx.mesh_tls);
    mesh_tls.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    Some(Recompiled { clusters, mesh_tls })
}
