//! The compile step: Istio resources plus the mesh config, seen from one proxy, to that proxy's
//! [`ProxySnapshot`]. What pilot does per proxy for Envoy, for our own tables.
//!
//! - [`gateway`]: listeners and route tables from the Gateways selecting the proxy and the
//!   VirtualServices bound to them.
//! - [`sidecar`]: outbound listeners, one virtual host per visible service.
//! - [`routes`]: a VirtualService's HTTP rules to [`Route`](crate::Route)s, shared by both.
//! - [`policy`]: which DestinationRule applies, its inheritance, and the compiled cluster policy
//!   with locality priorities.
//! - [`scope`]: the Sidecar resource that applies to a sidecar: visible services, outbound policy.
//! - [`routes`]: a VirtualService's HTTP rules to [`Route`](crate::Route)s, shared by both;
//!   [`resilience`]: their retries, faults and mirrors.
//! - `capture`: with traffic capture, the virtual outbound (15001) and inbound (15006)
//!   listeners; `peerauth`: the workload's inbound mTLS modes from PeerAuthentication.
//! - this module: the entry point, clusters (`outbound|port|subset|host`) with their endpoints
//!   filtered by DestinationRule subsets, and warnings.
//!
//! Output is deterministic (resources are taken in kind/namespace/name order, every table is
//! sorted) so snapshots can be compared as golden files. Features the model cannot express yet
//! are skipped with a [`Warning`], returned to the caller rather than logged: this crate does no IO.

mod capture;
mod delegate;
mod endpoints;
mod gateway;
mod l4;
mod peerauth;
mod policy;
mod resilience;
mod routes;
mod scope;
mod sidecar;

pub use capture::{
    BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND,
    VIRTUAL_OUTBOUND,
};
pub use endpoints::{recompile_clusters, Recompiled};

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use api::analyze::hosts::to_fqdn;
use api::types::mesh::MeshConfig;
use api::types::{ClientTlsMode, Destination, TrafficPolicy};
use api::{Resource, Spec};

use crate::cluster::{Cluster, ClusterName, Direction, Endpoint, HealthStatus, UpstreamProtocol};
use crate::registry::Registry;
use crate::runtime::{BuildError, Runtime};
use crate::snapshot::{Listener, MeshTlsOrigination, ProxySnapshot, TLS_MODE_LABEL};

/// Which kind of proxy a snapshot is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An ingress/egress gateway: listeners come from Gateway resources.
    Gateway,
    /// A workload's sidecar: outbound listeners for every visible service.
    Sidecar,
}

/// The proxy being compiled for, as pilot knows it from the proxy's node metadata. Serialized
/// as that metadata on the control-plane stream, so every field added later needs a serde
/// default (older proxies do not send it).
///
/// The control plane shares one compile between proxies that differ only in `id`, `ips` and
/// `version` (see `control::push`; `locality` decides failover priorities, so it is an input): a compile step that starts reading one of
/// those must also take it out of that list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyIdentity {
    pub role: Role,
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Added to every listener port, so tests can serve a Gateway's port 8080 on a free
    /// unprivileged port. Routing still sees the configured port.
    #[serde(default)]
    pub port_offset: i32,
    /// Listener ports served on another port, before `port_offset` (which then applies to the
    /// rest): the local mesh serves a Gateway's 80 and 443 on 8080 and 8443, as Istio's ingress
    /// Service maps them to its pod's targetPorts.
    pub port_map: BTreeMap<u16, u16>,
    /// Becomes the snapshot's version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Sidecar only: traffic is captured by iptables, so listen on the virtual outbound (15001)
    /// and inbound (15006) listeners instead of one socket per service port.
    #[serde(default)]
    pub capture: bool,
    /// The workload's address: how its own service endpoints are recognised (besides labels).
    #[serde(default)]
    pub pod_ip: Option<IpAddr>,
    /// The workload's service account (its SPIFFE identity's last part); empty when unknown.
    #[serde(default)]
    pub service_account: String,
    /// Istio's node id: `sidecar~10.88.0.5~reviews-v1-1.default~default.svc.cluster.local`,
    /// `router~...` for gateways.
    #[serde(default)]
    pub id: String,
    /// The workload's addresses (Istio's INSTANCE_IPS).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// The WorkloadGroup (in `namespace`) a VM-style proxy joins: the control plane registers a
    /// WorkloadEntry for it while it is connected.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_group: String,
    /// `region/zone/subzone` of the proxy (Envoy's node locality), for locality load
    /// balancing; empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
}

impl ProxyIdentity {
    pub fn new(role: Role, namespace: &str) -> Self {
        ProxyIdentity {
            role,
            namespace: namespace.to_string(),
            labels: BTreeMap::new(),
            port_offset: 0,
            port_map: BTreeMap::new(),
            version: String::new(),
            locality: String::new(),
            capture: false,
            pod_ip: None,
            service_account: String::new(),
            id: String::new(),
            ips: Vec::new(),
            workload_group: String::new(),
        }
    }
}

/// A compiled snapshot and what was left out of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    pub snapshot: ProxySnapshot,
    pub warnings: Vec<Warning>,
}

/// Something in the input the compiler skipped, with the resource it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// `Kind namespace/name`, empty when not tied to one resource.
    pub resource: String,
    pub message: String,
}

impl Warning {
    pub fn new(r: &Resource, message: impl Into<String>) -> Self {
        Warning {
            resource: r.id(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resource.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.resource, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("port {port} with offset {offset} is outside 1-65535")]
    PortOutOfRange { port: u16, offset: i32 },
    /// A bug in the compiler: it produced tables the runtime refuses.
    #[error("compiled snapshot is inconsistent: {0}")]
    Inconsistent(#[from] BuildError),
}

/// The service registry of one set of resources with the warnings building it gave: built once
/// and shared by every compile against those resources (the control plane compiles many proxy
/// shapes per config version, and the registry does not depend on the proxy).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedRegistry {
    pub registry: Registry,
    pub warnings: Vec<Warning>,
}

/// Builds the registry [`compile_with`] takes.
pub fn build_registry(resources: &[&Resource], mesh: &MeshConfig) -> SharedRegistry {
    let mut warnings = Vec::new();
    let registry = Registry::build(&sorted(resources), mesh.trust_domain(), &mut warnings);
    SharedRegistry { registry, warnings }
}

/// Resources in kind/namespace/name order: what makes the output deterministic.
fn sorted<'a>(resources: &[&'a Resource]) -> Vec<&'a Resource> {
    let mut sorted: Vec<&Resource> = resources.to_vec();
    sorted.sort_by(|a, b| {
        (a.kind.name(), a.namespace(), a.name()).cmp(&(b.kind.name(), b.namespace(), b.name()))
    });
    sorted
}

/// Compiles `resources` for `proxy`. Invalid resources should have been filtered out by the
/// caller (api's validation); what remains unsupported becomes warnings.
pub fn compile(
    resources: &[Resource],
    mesh: &MeshConfig,
    proxy: &ProxyIdentity,
) -> Result<Compiled, CompileError> {
    let refs: Vec<&Resource> = resources.iter().collect();
    compile_with(&refs, &build_registry(&refs, mesh), mesh, proxy)
}

/// [`compile`] with the registry of `resources` already built ([`build_registry`]).
pub fn compile_with(
    resources: &[&Resource],
    registry: &SharedRegistry,
    mesh: &MeshConfig,
    proxy: &ProxyIdentity,
) -> Result<Compiled, CompileError> {
    let mut cx = Cx::new(
        resources,
        &registry.registry,
        registry.warnings.clone(),
        mesh,
        proxy,
    );
    let mut extra_clusters = Vec::new();
    let (mut listeners, mut route_tables) = match proxy.role {
        Role::Gateway => gateway::build(&mut cx)?,
        Role::Sidecar if proxy.capture => {
            let (outbound, mut tables) = sidecar::build(&mut cx)?;
            let (virtual_outbound, clusters) = capture::outbound(&mut cx, outbound);
            extra_clusters.extend(clusters);
            let (virtual_inbound, inbound_tables, clusters) = capture::inbound(&mut cx)?;
            tables.extend(inbound_tables);
            extra_clusters.extend(clusters);
            (vec![virtual_outbound, virtual_inbound], tables)
        }
        Role::Sidecar => sidecar::build(&mut cx)?,
    };
    let mut clusters = cx.build_clusters();
    clusters.extend(extra_clusters);
    let mut mesh_tls = std::mem::take(&mut cx.mesh_tls);
    mesh_tls.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    let dns = match proxy.role {
        Role::Sidecar => crate::dns::name_table_of(
            scope::visible_services(&cx, &proxy.namespace)
                .iter()
                .map(|s| &**s),
            &proxy.namespace,
        ),
        Role::Gateway => Vec::new(),
    };
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    route_tables.sort_by(|a, b| a.name.cmp(&b.name));
    let snapshot = ProxySnapshot {
        version: proxy.version.clone(),
        listeners,
        route_tables,
        clusters,
        dns,
        mesh_tls,
    };
    Runtime::check(&snapshot)?;
    let mut warnings = cx.warnings;
    warnings.sort();
    warnings.dedup();
    Ok(Compiled { snapshot, warnings })
}

/// State shared by the role-specific builders.
struct Cx<'a> {
    resources: Vec<&'a Resource>,
    registry: &'a Registry,
    proxy: &'a ProxyIdentity,
    mesh: &'a MeshConfig,
    warnings: Vec<Warning>,
    /// Clusters routes refer to; built last, once every reference is known.
    clusters: BTreeSet<(String, u16, String)>,
    /// Mesh mTLS origination for the clusters built.
    mesh_tls: Vec<MeshTlsOrigination>,
    /// Some route or the capture fallback sends traffic to PassthroughCluster.
    need_passthrough: bool,
    /// Lookup structures built on first use, once per compile: per-cluster and per-service
    /// lookups must not scan every resource.
    rule_index: OnceCell<policy::RuleIndex<'a>>,
    visible_virtual_services: OnceCell<Vec<(&'a Resource, &'a api::types::VirtualService)>>,
}

impl<'a> Cx<'a> {
    fn new(
        resources: &[&'a Resource],
        registry: &'a Registry,
        warnings: Vec<Warning>,
        mesh: &'a MeshConfig,
        proxy: &'a ProxyIdentity,
    ) -> Self {
        Cx {
            resources: sorted(resources),
            registry,
            proxy,
            mesh,
            warnings,
            clusters: BTreeSet::new(),
            mesh_tls: Vec::new(),
            need_passthrough: false,
            rule_index: OnceCell::new(),
            visible_virtual_services: OnceCell::new(),
        }
    }

    fn warn(&mut self, r: &Resource, message: impl Into<String>) {
        self.warnings.push(Warning::new(r, message));
    }

    fn listener_port(&self, port: u16) -> Result<u16, CompileError> {
        if let Some(mapped) = self.proxy.port_map.get(&port) {
            return Ok(*mapped);
        }
        let shifted = i64::from(port) + i64::from(self.proxy.port_offset);
        u16::try_from(shifted)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(CompileError::PortOutOfRange {
                port,
                offset: self.proxy.port_offset,
            })
    }

    /// VirtualServices visible to this proxy, in name order.
    fn virtual_services(&self) -> Vec<(&'a Resource, &'a api::types::VirtualService)> {
        let ns = self.proxy.namespace.as_str();
        self.visible_virtual_services
            .get_or_init(|| {
                self.resources
                    .iter()
                    .filter_map(|r| match &r.spec {
                        Spec::VirtualService(vs) => Some((*r, vs.as_ref())),
                        _ => None,
                    })
                    .filter(|(r, vs)| exported_to(&vs.export_to, r.namespace(), ns))
                    .collect()
            })
            .clone()
    }

    /// The cluster a route destination names, registering it for [`Self::build_clusters`].
    /// `None` (with a warning) when no port can be determined.
    #[allow(dead_code)] // for destinations that are not served on a listener port (mirrors)
    fn destination(&mut self, r: &Resource, d: &Destination) -> Option<String> {
        self.destination_on(r, d, None)
    }

    /// [`Self::destination`] for a route served on `listener_port`: as pilot, a destination
    /// without a port on a service with several goes to the port the request came in on.
    fn destination_on(
        &mut self,
        r: &Resource,
        d: &Destination,
        listener_port: Option<u16>,
    ) -> Option<String> {
        let host = to_fqdn(r.namespace(), &d.host);
        let service = self.registry.lookup(&self.proxy.namespace, &host);
        let port = match (d.port.as_ref().map(|p| p.number), service) {
            (Some(n), _) if n != 0 => u16::try_from(n).ok(),
            (_, Some(s)) if s.ports.len() == 1 => Some(s.ports[0].number),
            _ => listener_port,
        };
        let Some(port) = port else {
            self.warn(
                r,
                format!("destination `{}` names no port and the service does not have exactly one; route skipped", d.host),
            );
            return None;
        };
        let name = ClusterName {
            direction: Direction::Outbound,
            port,
            subset: d.subset.clone(),
            host: host.clone(),
        }
        .to_string();
        self.clusters.insert((host, port, d.subset.clone()));
        Some(name)
    }

    fn build_clusters(&mut self) -> Vec<Cluster> {
        let wanted = std::mem::take(&mut self.clusters);
        let mut out = Vec::new();
        for (host, port, subset) in wanted {
            let name = ClusterName {
                direction: Direction::Outbound,
                port,
                subset: subset.clone(),
                host: host.clone(),
            }
            .to_string();
            let service = self.registry.lookup(&self.proxy.namespace, &host).cloned();
            let rule = self.destination_rule(&host, service.as_ref().map(|s| s.namespace.as_str()));
            let mut subset_labels = None;
            if !subset.is_empty() {
                match rule.as_ref().and_then(|r| r.rule.subsets.iter().find(|s| s.name == subset)) {
                    Some(s) => subset_labels = Some(s.labels.clone()),
                    None => self.warnings.push(Warning {
                        resource: String::new(),
                        message: format!("no DestinationRule defines subset `{subset}` of `{host}`; cluster {name} has no endpoints"),
                    }),
                }
            }
            let tp = rule
                .as_ref()
                .and_then(|r| policy::effective(&r.rule, port, &subset));
            let mut notes = Vec::new();
            let compiled = policy::compile(tp.as_ref(), &host, &mut |m| notes.push(m));
            if let Some(r) = &rule {
                for m in notes {
                    self.warn(r.resource, m);
                }
            }
            let connect_timeout_ms = compiled.connect_timeout_ms.unwrap_or_else(|| {
                let d = self.mesh.connect_timeout().to_std().unwrap_or_default();
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            });
            let Some(service) = service else {
                self.warnings.push(Warning {
                    resource: String::new(),
                    message: format!("host `{host}` is not in the service registry; cluster {name} has no endpoints"),
                });
                out.push(Cluster {
                    name,
                    protocol: UpstreamProtocol::Http1,
                    lb_policy: compiled.lb_policy,
                    connect_timeout_ms,
                    endpoints: Vec::new(),
                    policy: compiled.policy,
                });
                continue;
            };
            if service.port(port).is_none() {
                self.warnings.push(Warning {
                    resource: String::new(),
                    message: format!(
                        "`{host}` has no port {port}; cluster {name} has no endpoints"
                    ),
                });
            }
            let protocol = match service.port(port) {
                Some(p) if p.protocol.is_http2() => UpstreamProtocol::Http2,
                Some(p) if compiled.h2_upgrade && p.protocol.is_http() => UpstreamProtocol::Http2,
                _ => UpstreamProtocol::Http1,
            };
            let mut endpoints: Vec<Endpoint> = service
                .endpoints
                .iter()
                .filter(|e| e.service_port == port)
                .filter(|e| match &subset_labels {
                    // A subset whose labels are missing selects nothing, as in Istio.
                    None => subset.is_empty(),
                    Some(l) => labels_match(l, &e.labels),
                })
                .map(|e| Endpoint {
                    address: e.address,
                    port: e.port,
                    labels: e.labels.clone(),
                    weight: e.weight,
                    health: HealthStatus::Healthy,
                    locality: e.locality.clone(),
                    priority: 0,
                })
                .collect();
            // The DR's setting, else the mesh's (enabled by default).
            let locality = compiled
                .locality
                .clone()
                .unwrap_or_else(|| self.mesh.locality_lb_setting());
            policy::apply_locality(
                &mut endpoints,
                &locality,
                compiled.policy.outlier_detection.is_some(),
                &policy::ProxyPlace {
                    locality: &self.proxy.locality,
                    labels: &self.proxy.labels,
                },
            );
            if let Some(m) =
                self.mesh_tls_for(&name, &service, &subset, port, tp.as_ref(), &endpoints)
            {
                self.mesh_tls.push(m);
            }
            // Subsets and locality priorities are decided above, so the proxy reads only the
            // sidecar marker (auto mTLS, per endpoint); every label on a sidecar that sees every
            // service would be most of its memory.
            for e in &mut endpoints {
                e.labels.retain(|k, _| k == TLS_MODE_LABEL);
            }
            out.push(Cluster {
                name,
                protocol,
                lb_policy: compiled.lb_policy,
                connect_timeout_ms,
                endpoints,
                policy: compiled.policy,
            });
        }
        out
    }

    /// A connect timeout from a policy's `connectionPool.tcp`, else the mesh's.
    fn connect_timeout_ms(&self, policy: Option<&TrafficPolicy>) -> u64 {
        policy
            .and_then(|p| p.connection_pool.as_ref())
            .and_then(|c| c.tcp.as_ref())
            .and_then(|t| t.connect_timeout.as_ref())
            .and_then(|d| d.to_std())
            .unwrap_or_else(|| self.mesh.connect_timeout().to_std().unwrap_or_default())
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    /// Istio's mTLS origination for one outbound cluster: DestinationRule `tls` (port level over
    /// the policy's) decides when set, `ISTIO_MUTUAL` for every endpoint, any other mode none
    /// from here; unset, auto mTLS (when the mesh enables it) covers the endpoints that run a
    /// sidecar. The server must prove one of the service's service accounts.
    fn mesh_tls_for(
        &self,
        cluster: &str,
        service: &crate::registry::Service,
        subset: &str,
        port: u16,
        policy: Option<&TrafficPolicy>,
        endpoints: &[Endpoint],
    ) -> Option<MeshTlsOrigination> {
        let port_level = policy.and_then(|p| {
            p.port_level_settings.iter().find(|s| {
                s.port
                    .as_ref()
                    .is_some_and(|sel| sel.number == u32::from(port))
            })
        });
        let tls = port_level
            .and_then(|pl| pl.tls.as_ref())
            .or_else(|| policy.and_then(|p| p.tls.as_ref()));
        let all_endpoints = match tls.map(|t| t.mode) {
            Some(ClientTlsMode::IstioMutual) => true,
            Some(_) => return None,
            None if self.mesh.auto_mtls() => false,
            None => return None,
        };
        let sidecars = endpoints
            .iter()
            .any(|e| e.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio"));
        if !all_endpoints && !sidecars {
            return None;
        }
        let mut sans: Vec<String> = service
            .endpoints
            .iter()
            .map(|e| e.service_account.clone())
            .filter(|sa| !sa.is_empty())
            .collect();
        if let Some(t) = tls {
            sans.extend(t.subject_alt_names.iter().cloned());
        }
        sans.sort();
        sans.dedup();
        Some(MeshTlsOrigination {
            cluster: cluster.to_string(),
            all_endpoints,
            subject_alt_names: sans,
            sni: format!("outbound_.{port}_.{subset}_.{}", service.hostname),
        })
    }
}

/// Whether a resource in `own_ns` with `export_to` is visible from `ns`.
fn exported_to(export_to: &[String], own_ns: &str, ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == ns || (e == "." && own_ns == ns))
}

/// Whether every label of `selector` is on `labels`.
fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Listener names as Envoy's: `address_port`.
fn listener_name(l: &Listener) -> String {
    format!("{}_{}", l.address, l.port)
}

#[cfg(test)]
mod capture_tests;
#[cfg(test)]
mod tests;
