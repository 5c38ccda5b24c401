//! The service registry: which services exist, on which ports, backed by which endpoints, built
//! from ServiceEntries, WorkloadEntries and Kubernetes Services with their Pods and Deployments.
//!
//! Istio's pilot builds the same thing from live Kubernetes watches; here the input is the set of
//! decoded resources, so addresses come from `status.podIP` or the `bowline.io/address`
//! annotation (files have no scheduler to assign them). What cannot be turned into an endpoint is
//! reported as a [`Warning`] and left out, never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use api::analyze::hosts::{to_fqdn, EXPORT_ALL, EXPORT_LOCAL, SERVICE_DOMAIN};
use api::protocol::Protocol;
use api::types::k8s::{IntOrString, PodSpecBody};
use api::types::service_entry::{ServiceEntry, ServiceEntryLocation, ServiceEntryResolution};
use api::types::workload::WorkloadEntry;
use api::{Kind, Resource, Spec};

use crate::compile::Warning;

/// Annotation giving a Pod or Deployment the address its endpoint is reached on.
pub const ADDRESS_ANNOTATION: &str = "bowline.io/address";

/// The kinds the compile reads only through the registry: when only resources of these kinds
/// changed, what changed for every proxy is what changed in the [`Registry`].
pub const REGISTRY_KINDS: [Kind; 5] = [
    Kind::ServiceEntry,
    Kind::Service,
    Kind::Pod,
    Kind::Deployment,
    Kind::WorkloadEntry,
];

/// Every service, sorted by hostname then namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    /// Shared, so that the registry of the next epoch, when only endpoints moved, copies ten
    /// thousand pointers rather than ten thousand services.
    pub services: Vec<Arc<Service>>,
}

/// One hostname in one namespace (a ServiceEntry with several hosts gives several services).
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// FQDN for Kubernetes services, the host as written for ServiceEntries (possibly `*.x`).
    pub hostname: String,
    pub namespace: String,
    /// The Kubernetes Service name; `None` for ServiceEntries (no short names for those).
    pub kube_name: Option<String>,
    /// Cluster IP or ServiceEntry addresses (CIDRs included as written).
    pub addresses: Vec<String>,
    /// The virtual IP given to a service without an IP address of its own ([`vips`]).
    pub vip: Option<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub location: ServiceEntryLocation,
    pub resolution: ServiceEntryResolution,
    /// Namespaces the service is visible from; `*` means all.
    pub export_to: Vec<String>,
    /// Sorted by address then port.
    pub endpoints: Vec<ServiceEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
}

/// One workload instance behind one service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceEndpoint {
    /// The service port this endpoint serves.
    pub service_port: u16,
    pub address: IpAddr,
    /// The port on the workload (targetPort).
    pub port: u16,
    pub labels: BTreeMap<String, String>,
    /// `region/zone/subzone`, empty when unknown.
    pub locality: String,
    pub weight: u32,
    /// SPIFFE identity, empty when unknown.
    pub service_account: String,
}

impl Service {
    /// Every field but the endpoints is equal (spelled out so a new field is not forgotten).
    fn same_but_endpoints(&self, other: &Service) -> bool {
        let Service {
            hostname,
            namespace,
            kube_name,
            addresses,
            vip,
            ports,
            location,
            resolution,
            export_to,
            endpoints: _,
        } = self;
        *hostname == other.hostname
            && *namespace == other.namespace
            && *kube_name == other.kube_name
            && *addresses == other.addresses
            && *vip == other.vip
            && *ports == other.ports
            && *location == other.location
            && *resolution == other.resolution
            && *export_to == other.export_to
    }

    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// The address clients reach the service on: its first IP address as configured, else its
    /// virtual IP.
    pub fn cluster_ip(&self) -> Option<IpAddr> {
        self.addresses
            .iter()
            .find_map(|a| a.parse::<IpAddr>().ok())
            .or(self.vip)
    }

    /// Whether a proxy in `namespace` may see this service.
    pub fn visible_from(&self, namespace: &str) -> bool {
        self.export_to
            .iter()
            .any(|e| e == EXPORT_ALL || e == namespace)
    }
}

impl Registry {
    /// Builds the registry; `trust_domain` makes service accounts SPIFFE identities.
    pub fn build(resources: &[&Resource], trust_domain: &str, warnings: &mut Vec<Warning>) -> Self {
        let mut services = Vec::new();
        let workloads = Workloads::collect(resources, trust_domain, warnings);
        for r in resources {
            match &r.spec {
                Spec::ServiceEntry(se) => {
                    services.extend(service_entry(r, se, &workloads, trust_domain, warnings));
                }
                Spec::Service(svc) => services.push(kube_service(r, &svc.spec, &workloads)),
                _ => {}
            }
        }
        for s in &mut services {
            s.endpoints.sort();
            s.endpoints.dedup();
        }
        services.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        vips::assign(&mut services);
        Registry {
            services: services.into_iter().map(Arc::new).collect(),
        }
    }

    /// The service `host` names for a proxy in `namespace`: visible ones only, the one in the
    /// proxy's own namespace first (Istio's rule when several namespaces define a host).
    /// `services` is sorted by hostname ([`Self::build`]), so this is a binary search: the
    /// compile looks up every cluster's host and must stay linear in the service count.
    pub fn lookup(&self, namespace: &str, host: &str) -> Option<&Service> {
        self.lookup_shared(namespace, host).map(|s| &**s)
    }

    /// [`Self::lookup`], as the registry holds the service.
    pub fn lookup_shared(&self, namespace: &str, host: &str) -> Option<&Arc<Service>> {
        let candidates = self
            .same_host(host)
            .iter()
            .filter(|s| s.visible_from(namespace));
        candidates
            .clone()
            .find(|s| s.namespace == namespace)
            .or_else(|| candidates.clone().next())
    }

    /// The services named `host`, in every namespace, in registry order.
    fn same_host(&self, host: &str) -> &[Arc<Service>] {
        let start = self
            .services
            .partition_point(|s| s.hostname.as_str() < host);
        let len = self.services[start..]
            .iter()
            .take_while(|s| s.hostname == host)
            .count();
        &self.services[start..start + len]
    }

    /// The hostnames whose endpoints differ from `before`'s when nothing else about any service
    /// differs (same services, ports, addresses, virtual IPs...); `None` when something else
    /// changed. Such a change only touches the clusters of those hosts (see
    /// [`crate::compile::recompile_clusters`]).
    pub fn endpoint_changes(&self, before: &Registry) -> Option<BTreeSet<String>> {
        if self.services.len() != before.services.len() {
            return None;
        }
        let mut changed = BTreeSet::new();
        for (now, was) in self.services.iter().zip(&before.services) {
            if !now.same_but_endpoints(was) {
                return None;
            }
            if now.endpoints != was.endpoints {
                changed.insert(now.hostname.clone());
            }
        }
        Some(changed)
    }

    /// This registry (built from the resources before a change) with the endpoints of the
    /// ServiceEntries in `changed` (`(before, after)` pairs) rebuilt, when each changed only in
    /// its inline endpoints and selects no workloads: an endpoint change without rebuilding
    /// ten thousand services. `None` when that does not hold; build the registry anew then.
    /// The hostnames whose endpoints differ come with it, as [`Self::endpoint_changes`] would
    /// give them.
    pub fn with_endpoints_of(
        &self,
        changed: &[(&Resource, &Resource)],
        trust_domain: &str,
        warnings: &mut Vec<Warning>,
    ) -> Option<(Registry, BTreeSet<String>)> {
        let mut next = self.clone();
        let mut hosts = BTreeSet::new();
        for (was, now) in changed {
            let (Spec::ServiceEntry(a), Spec::ServiceEntry(b)) = (&was.spec, &now.spec) else {
                return None;
            };
            let bare = |se: &ServiceEntry| ServiceEntry {
                endpoints: Vec::new(),
                ..se.clone()
            };
            if a.workload_selector.is_some()
                || b.workload_selector.is_some()
                || was.meta != now.meta
                || bare(a) != bare(b)
            {
                return None;
            }
            for s in Registry::build(&[*now], trust_domain, warnings).services {
                let start = next
                    .services
                    .partition_point(|o| (&o.hostname, &o.namespace) < (&s.hostname, &s.namespace));
                match next.services.get(start..start + 2) {
                    Some([one, other])
                        if other.hostname == one.hostname && other.namespace == one.namespace =>
                    {
                        return None
                    }
                    _ => {}
                }
                let old = next.services.get_mut(start)?;
                if old.hostname != s.hostname || old.namespace != s.namespace {
                    return None;
                }
                if old.endpoints != s.endpoints {
                    hosts.insert(s.hostname.clone());
                    Arc::make_mut(old).endpoints = s.endpoints.clone();
                }
            }
        }
        Some((next, hosts))
    }

    /// Services a proxy in `namespace` sees, sorted and without hostname duplicates.
    pub fn visible(&self, namespace: &str) -> Vec<&Service> {
        self.visible_shared(namespace)
            .into_iter()
            .map(|s| &**s)
            .collect()
    }

    /// [`Self::visible`], as the registry holds the services.
    pub fn visible_shared(&self, namespace: &str) -> Vec<&Arc<Service>> {
        let mut out: Vec<&Arc<Service>> = Vec::new();
        for s in &self.services {
            // Sorted by hostname: a duplicate can only follow the service already taken.
            let taken = out.last().is_some_and(|o| o.hostname == s.hostname);
            if s.visible_from(namespace) && !taken {
                if let Some(chosen) = self.lookup_shared(namespace, &s.hostname) {
                    out.push(chosen);
                }
            }
        }
        out
    }
}

/// A Pod, Deployment template or WorkloadEntry that can back services.
struct Workload<'a> {
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
    address: IpAddr,
    /// Named ports (container ports, or a WorkloadEntry's `ports`).
    named_ports: BTreeMap<String, u16>,
    locality: String,
    weight: u32,
    service_account: String,
    /// Pods and Deployments back Services and selecting ServiceEntries; WorkloadEntries only
    /// selecting ServiceEntries, as in Istio.
    kube: bool,
}

struct Workloads<'a>(Vec<Workload<'a>>);

impl<'a> Workloads<'a> {
    fn collect(
        resources: &[&'a Resource],
        trust_domain: &str,
        warnings: &mut Vec<Warning>,
    ) -> Self {
        let mut out = Vec::new();
        for &r in resources {
            let ns = r.namespace();
            match &r.spec {
                Spec::Pod(pod) => {
                    let ip = r
                        .meta
                        .annotations
                        .get(ADDRESS_ANNOTATION)
                        .map(String::as_str)
                        .or_else(|| {
                            r.status
                                .as_ref()
                                .and_then(|s| s.get("podIP"))
                                .and_then(|v| v.as_str())
                        });
                    if let Some(w) =
                        kube_workload(r, ip, &r.meta.labels, &pod.spec, trust_domain, warnings)
                    {
                        out.push(w);
                    }
                }
                Spec::Deployment(d) => {
                    let t = &d.spec.template;
                    let ip = t
                        .metadata
                        .annotations
                        .get(ADDRESS_ANNOTATION)
                        .or_else(|| r.meta.annotations.get(ADDRESS_ANNOTATION))
                        .map(String::as_str);
                    if let Some(w) =
                        kube_workload(r, ip, &t.metadata.labels, &t.spec, trust_domain, warnings)
                    {
                        out.push(w);
                    }
                }
                Spec::WorkloadEntry(we) => {
                    if let Some(address) = parse_ip(r, we.address(), warnings) {
                        out.push(Workload {
                            namespace: ns,
                            labels: &r.meta.labels,
                            address,
                            named_ports: named_ports(we),
                            locality: we.locality.clone(),
                            weight: we.weight,
                            service_account: identity(trust_domain, ns, &we.service_account),
                            kube: false,
                        });
                    }
                }
                _ => {}
            }
        }
        Workloads(out)
    }

    fn selected<'s>(
        &'s self,
        namespace: &'s str,
        selector: &'s BTreeMap<String, String>,
        kube_only: bool,
    ) -> impl Iterator<Item = &'s Workload<'a>> + 's {
        self.0.iter().filter(move |w| {
            w.namespace == namespace
                && (w.kube || !kube_only)
                && !selector.is_empty()
                && selector.iter().all(|(k, v)| w.labels.get(k) == Some(v))
        })
    }
}

fn kube_workload<'a>(
    r: &'a Resource,
    ip: Option<&str>,
    labels: &'a BTreeMap<String, String>,
    spec: &PodSpecBody,
    trust_domain: &str,
    warnings: &mut Vec<Warning>,
) -> Option<Workload<'a>> {
    // A workload without an address is simply not running yet: not worth a warning.
    let address = parse_ip(r, ip?, warnings)?;
    let ns = r.namespace();
    let named_ports = spec
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
        .collect();
    let sa = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .unwrap_or("default");
    Some(Workload {
        namespace: ns,
        labels,
        address,
        named_ports,
        locality: labels
            .get("istio-locality")
            .map(|l| l.replace('.', "/"))
            .or_else(|| {
                let region = labels.get("topology.kubernetes.io/region")?;
                let zone = labels.get("topology.kubernetes.io/zone");
                let subzone = labels.get("topology.istio.io/subzone");
                Some(match (zone, subzone) {
                    (Some(z), Some(s)) => format!("{region}/{z}/{s}"),
                    (Some(z), None) => format!("{region}/{z}"),
                    _ => region.clone(),
                })
            })
            .unwrap_or_default(),
        weight: 1,
        service_account: identity(trust_domain, ns, sa),
        kube: true,
    })
}

fn parse_ip(r: &Resource, text: &str, warnings: &mut Vec<Warning>) -> Option<IpAddr> {
    if text.is_empty() {
        return None;
    }
    match text.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            warnings.push(Warning::new(
                r,
                format!("address `{text}` is not an IP address; DNS and unix addresses are not supported yet, the workload is skipped"),
            ));
            None
        }
    }
}

fn identity(trust_domain: &str, ns: &str, sa: &str) -> String {
    if sa.is_empty() {
        String::new()
    } else {
        format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}")
    }
}

fn named_ports(we: &WorkloadEntry) -> BTreeMap<String, u16> {
    we.ports
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), u16::try_from(*v).ok()?)))
        .collect()
}

fn kube_service(
    r: &Resource,
    spec: &api::types::k8s::ServiceSpecBody,
    workloads: &Workloads<'_>,
) -> Service {
    let ns = r.namespace();
    let mut ports = Vec::new();
    let mut endpoints = Vec::new();
    for p in &spec.ports {
        let Ok(number) = u16::try_from(p.port) else {
            continue;
        };
        let name = p.name.clone().unwrap_or_default();
        ports.push(ServicePort {
            protocol: Protocol::of_port(
                p.port,
                &name,
                p.protocol.as_deref(),
                p.app_protocol.as_deref(),
            ),
            name,
            number,
        });
        for w in workloads.selected(ns, &spec.selector, true) {
            let target = match &p.target_port {
                None => Some(number),
                Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
                Some(IntOrString::String(s)) => w.named_ports.get(s).copied(),
            };
            if let Some(port) = target {
                endpoints.push(endpoint(number, port, w));
            }
        }
    }
    let export_to = match r.meta.annotations.get("networking.istio.io/exportTo") {
        Some(a) if !a.trim().is_empty() => a
            .split(',')
            .map(str::trim)
            .map(|e| if e == EXPORT_LOCAL { ns } else { e })
            .map(String::from)
            .collect(),
        _ => vec![EXPORT_ALL.to_string()],
    };
    Service {
        hostname: format!("{}.{ns}.{SERVICE_DOMAIN}", r.name()),
        namespace: ns.to_string(),
        kube_name: Some(r.name().to_string()),
        addresses: spec
            .cluster_ip
            .iter()
            .filter(|ip| ip.parse::<IpAddr>().is_ok())
            .cloned()
            .collect(),
        vip: None,
        ports,
        location: ServiceEntryLocation::MeshInternal,
        resolution: ServiceEntryResolution::Static,
        export_to,
        endpoints,
    }
}

fn endpoint(service_port: u16, port: u16, w: &Workload<'_>) -> ServiceEndpoint {
    ServiceEndpoint {
        service_port,
        address: w.address,
        port,
        labels: w.labels.clone(),
        locality: w.locality.clone(),
        weight: w.weight.max(1),
        service_account: w.service_account.clone(),
    }
}

fn service_entry(
    r: &Resource,
    se: &ServiceEntry,
    workloads: &Workloads<'_>,
    trust_domain: &str,
    warnings: &mut Vec<Warning>,
) -> Vec<Service> {
    let ns = r.namespace();
    let ports: Vec<(ServicePort, u16)> = se
        .ports
        .iter()
        .filter_map(|p| {
            let number = u16::try_from(p.number).ok()?;
            let target = p
                .target_port
                .and_then(|t| u16::try_from(t).ok())
                .filter(|t| *t != 0)
                .unwrap_or(number);
            Some((
                ServicePort {
                    name: p.name.clone(),
                    number,
                    protocol: Protocol::parse(&p.protocol),
                },
                target,
            ))
        })
        .collect();
    let mut endpoints = Vec::new();
    for we in &se.endpoints {
        let Some(address) = parse_ip(r, we.address(), warnings) else {
            continue;
        };
        let w = Workload {
            namespace: ns,
            labels: &we.labels,
            address,
            named_ports: named_ports(we),
            locality: we.locality.clone(),
            weight: we.weight,
            service_account: identity(trust_domain, ns, &we.service_account),
            kube: false,
        };
        push_se_endpoints(&ports, &w, &mut endpoints);
    }
    if let Some(sel) = &se.workload_selector {
        for w in workloads.selected(ns, &sel.labels, false) {
            push_se_endpoints(&ports, w, &mut endpoints);
        }
    }
    let export_to = if se.export_to.is_empty() {
        vec![EXPORT_ALL.to_string()]
    } else {
        se.export_to
            .iter()
            .map(|e| if e == EXPORT_LOCAL { ns } else { e.as_str() })
            .map(String::from)
            .collect()
    };
    se.hosts
        .iter()
        .map(|h| Service {
            hostname: to_fqdn(ns, h),
            namespace: ns.to_string(),
            kube_name: None,
            addresses: se.addresses.clone(),
            vip: None,
            ports: ports.iter().map(|(p, _)| p.clone()).collect(),
            location: se.location,
            resolution: se.resolution,
            export_to: export_to.clone(),
            endpoints: endpoints.clone(),
        })
        .collect()
}

/// A ServiceEntry endpoint serves each port on the workload's port of the same name, else the
/// port's targetPort, else the port number itself.
fn push_se_endpoints(
    ports: &[(ServicePort, u16)],
    w: &Workload<'_>,
    out: &mut Vec<ServiceEndpoint>,
) {
    for (p, target) in ports {
        let port = w.named_ports.get(&p.name).copied().unwrap_or(*target);
        out.push(endpoint(p.number, port, w));
    }
}

pub mod vips;

#[cfg(test)]
pub(crate) mod tests;
