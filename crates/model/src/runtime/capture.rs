//! Capture listeners and mesh mTLS in compiled form: the chains of the virtual outbound and
//! inbound listeners with their dispatch by original destination, listener kinds built
//! recursively for those chains, and each cluster's mesh mTLS resolved per endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::{BuildError, RuntimeListenerKind, RuntimeSniRoute, WeightedSet};
use crate::cluster::HealthStatus;
use crate::snapshot::{CaptureChain, ListenerKind, PeerMtls, ProxySnapshot, TLS_MODE_LABEL};

/// A cluster's mesh mTLS: which endpoints get it and whom the server may be.
#[derive(Debug, Clone)]
pub struct RuntimeMeshTls {
    /// Per endpoint of the runtime cluster: originate mTLS to it.
    pub endpoints: Vec<bool>,
    /// For connections to addresses outside the endpoint list (never, today): DR ISTIO_MUTUAL.
    pub all_endpoints: bool,
    pub subject_alt_names: Vec<String>,
    pub sni: String,
}

/// One chain of a capture listener.
#[derive(Debug)]
pub struct RuntimeChain {
    pub address: Option<IpAddr>,
    pub port: u16,
    pub mtls: PeerMtls,
    pub kind: RuntimeListenerKind,
}

impl RuntimeListenerKind {
    /// The chain a captured connection to `dst` belongs to: exact address and port, then any
    /// address on the port. `None` means the fallback.
    pub fn chain_for(&self, dst: SocketAddr) -> Option<&RuntimeChain> {
        let RuntimeListenerKind::Capture { chains, .. } = self else {
            return None;
        };
        chains
            .iter()
            .find(|c| c.port == dst.port() && c.address == Some(dst.ip()))
            .or_else(|| {
                chains
                    .iter()
                    .find(|c| c.port == dst.port() && c.address.is_none())
            })
    }

    /// The route table HTTP on this listener is served from; for a capture listener, the one of
    /// the chain `dst` selects.
    pub fn http_table(&self, dst: Option<SocketAddr>) -> Option<usize> {
        match self {
            RuntimeListenerKind::Http { table, .. }
            | RuntimeListenerKind::AutoSniff { table, .. } => Some(*table),
            RuntimeListenerKind::Capture { .. } => self.chain_for(dst?)?.kind.http_table(None),
            _ => None,
        }
    }
}

pub(super) fn build_kind(
    kind: &ListenerKind,
    at: &str,
    table_index: &HashMap<String, usize>,
    cluster_index: &HashMap<String, usize>,
    top: bool,
) -> Result<RuntimeListenerKind, BuildError> {
    let table = |name: &str| {
        table_index
            .get(name)
            .copied()
            .ok_or_else(|| BuildError::UnknownRef {
                at: format!("{at}.kind.route_table"),
                what: "route table",
                name: name.to_string(),
            })
    };
    let capture = |inbound, chains: &[CaptureChain], fallback, fallback_mtls| {
        if !top {
            return Err(BuildError::Invalid {
                at: at.to_string(),
                reason: "capture listeners do not nest".into(),
            });
        }
        let chains = chains
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(RuntimeChain {
                    address: c.address,
                    port: c.port,
                    mtls: c.mtls,
                    kind: build_kind(
                        &c.kind,
                        &format!("{at}.kind.chains[{i}]"),
                        table_index,
                        cluster_index,
                        false,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        for (i, c) in chains.iter().enumerate() {
            if chains[..i]
                .iter()
                .any(|o| o.address == c.address && o.port == c.port)
            {
                return Err(BuildError::Invalid {
                    at: format!("{at}.kind.chains[{i}]"),
                    reason: format!(
                        "another chain already matches {}:{}",
                        c.address.map_or("*".to_string(), |a| a.to_string()),
                        c.port
                    ),
                });
            }
        }
        Ok(RuntimeListenerKind::Capture {
            inbound,
            chains,
            fallback: WeightedSet::build(fallback, cluster_index, &format!("{at}.kind.fallback"))?,
            fallback_mtls,
        })
    };
    Ok(match kind {
        ListenerKind::Http { route_table } => RuntimeListenerKind::Http {
            table: table(route_table)?,
            h2_only: false,
        },
        ListenerKind::Http2 { route_table } => RuntimeListenerKind::Http {
            table: table(route_table)?,
            h2_only: true,
        },
        ListenerKind::Tcp { clusters } => RuntimeListenerKind::Tcp {
            clusters: WeightedSet::build(clusters, cluster_index, &format!("{at}.kind.clusters"))?,
        },
        ListenerKind::AutoSniff {
            route_table,
            tcp_clusters,
        } => RuntimeListenerKind::AutoSniff {
            table: table(route_table)?,
            tcp: WeightedSet::build(
                tcp_clusters,
                cluster_index,
                &format!("{at}.kind.tcp_clusters"),
            )?,
        },
        ListenerKind::TlsPassthrough { routes } => RuntimeListenerKind::TlsPassthrough {
            routes: routes
                .iter()
                .enumerate()
                .map(|(r, route)| {
                    Ok(RuntimeSniRoute {
                        sni_hosts: route
                            .sni_hosts
                            .iter()
                            .map(|h| h.to_ascii_lowercase())
                            .collect(),
                        clusters: WeightedSet::build(
                            &route.clusters,
                            cluster_index,
                            &format!("{at}.kind.routes[{r}].clusters"),
                        )?,
                    })
                })
                .collect::<Result<_, BuildError>>()?,
        },
        ListenerKind::OutboundCapture { chains, fallback } => {
            capture(false, chains, fallback, PeerMtls::Disable)?
        }
        ListenerKind::InboundCapture {
            chains,
            fallback,
            fallback_mtls,
        } => capture(true, chains, fallback, *fallback_mtls)?,
    })
}

/// Resolves the snapshot's mesh mTLS entries against its clusters, endpoint by endpoint.
pub(super) fn mesh_tls(
    snapshot: &ProxySnapshot,
    cluster_index: &HashMap<String, usize>,
) -> Result<Vec<Option<RuntimeMeshTls>>, BuildError> {
    let mut out = vec![None; snapshot.clusters.len()];
    for (i, m) in snapshot.mesh_tls.iter().enumerate() {
        let at = format!("mesh_tls[{i}]");
        let ci = *cluster_index
            .get(&m.cluster)
            .ok_or_else(|| BuildError::UnknownRef {
                at: format!("{at}.cluster"),
                what: "cluster",
                name: m.cluster.clone(),
            })?;
        if out[ci].is_some() {
            return Err(BuildError::DuplicateName {
                at,
                name: m.cluster.clone(),
            });
        }
        // The same filter as RuntimeCluster::build, so indexes line up.
        let endpoints = snapshot.clusters[ci]
            .endpoints
            .iter()
            .filter(|e| e.health == HealthStatus::Healthy && e.weight > 0)
            .map(|e| {
                m.all_endpoints || e.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")
            })
            .collect();
        out[ci] = Some(RuntimeMeshTls {
            endpoints,
            all_endpoints: m.all_endpoints,
            subject_alt_names: m.subject_alt_names.clone(),
            sni: m.sni.clone(),
        });
    }
    Ok(out)
}
