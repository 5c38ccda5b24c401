//! What analyzers read: every resource given, indexed by kind, with typed accessors, plus the
//! mesh config and the lookups several analyzers share (namespaces, services by host, pods).

use std::collections::{BTreeMap, BTreeSet};

use crate::resource::{Kind, OtherObject, Resource, Spec};
use crate::types::k8s::{PodSpec, ServiceSpec};
use crate::types::mesh::MeshConfig;
use crate::types::*;

/// Something a message can be about: a modelled resource or another object.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    Resource(&'a Resource),
    Other(&'a OtherObject),
}

impl<'a> Object<'a> {
    /// `Kind namespace/name`.
    pub fn id(&self) -> String {
        match self {
            Object::Resource(r) => r.id(),
            Object::Other(o) => format!(
                "{} {}/{}",
                o.kind,
                o.meta.namespace_or_default(),
                o.meta.name
            ),
        }
    }
    /// `file:line` of `path` inside the object.
    pub fn reference(&self, path: &str) -> Option<String> {
        let (origin, positions) = match self {
            Object::Resource(r) => (&r.origin, &r.positions),
            Object::Other(o) => (&o.origin, &o.positions),
        };
        Some(format!("{}:{}", origin.file, positions.line_of(path)))
    }
}

impl<'a> From<&'a Resource> for Object<'a> {
    fn from(r: &'a Resource) -> Self {
        Object::Resource(r)
    }
}

/// The input of one analysis run.
pub struct Context<'a> {
    resources: Vec<&'a Resource>,
    pub others: Vec<&'a OtherObject>,
    pub mesh: &'a MeshConfig,
    by_kind: BTreeMap<Kind, Vec<usize>>,
}

macro_rules! typed {
    ($($fn:ident: $variant:ident => $ty:ty;)*) => {
        impl<'a> Context<'a> {
            $(
                #[doc = concat!("Every ", stringify!($variant), " with its spec.")]
                pub fn $fn(&self) -> impl Iterator<Item = (&'a Resource, &'a $ty)> + '_ {
                    self.of_kind(Kind::$variant).filter_map(|r| match &r.spec {
                        Spec::$variant(s) => Some((r, &**s)),
                        _ => None,
                    })
                }
            )*
        }
    };
}

typed! {
    virtual_services: VirtualService => VirtualService;
    destination_rules: DestinationRule => DestinationRule;
    gateways: Gateway => Gateway;
    service_entries: ServiceEntry => ServiceEntry;
    sidecars: Sidecar => Sidecar;
    workload_entries: WorkloadEntry => WorkloadEntry;
    envoy_filters: EnvoyFilter => EnvoyFilter;
    authorization_policies: AuthorizationPolicy => AuthorizationPolicy;
    peer_authentications: PeerAuthentication => PeerAuthentication;
    request_authentications: RequestAuthentication => RequestAuthentication;
    telemetries: Telemetry => Telemetry;
    services: Service => ServiceSpec;
    pods: Pod => PodSpec;
}

impl<'a> Context<'a> {
    pub fn new(
        resources: Vec<&'a Resource>,
        others: Vec<&'a OtherObject>,
        mesh: &'a MeshConfig,
    ) -> Self {
        let mut by_kind: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
        for (i, r) in resources.iter().enumerate() {
            by_kind.entry(r.kind).or_default().push(i);
        }
        Context {
            resources,
            others,
            mesh,
            by_kind,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &'a Resource> + '_ {
        self.resources.iter().copied()
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a Resource> + '_ {
        self.by_kind
            .get(&kind)
            .into_iter()
            .flatten()
            .map(|&i| self.resources[i])
    }

    /// Objects of kinds Bowline does not model, by kind name (`HTTPRoute`, `Gateway` of the
    /// Gateway API...).
    pub fn others_of_kind<'s>(
        &'s self,
        group: &'s str,
        kind: &'s str,
    ) -> impl Iterator<Item = &'a OtherObject> + 's {
        self.others
            .iter()
            .copied()
            .filter(move |o| o.kind == kind && o.group() == group)
    }

    /// Namespaces that exist: declared Namespace objects plus every namespace a resource is in.
    pub fn namespaces(&self) -> BTreeSet<&'a str> {
        let mut s: BTreeSet<&'a str> = self.all().map(|r| r.namespace()).collect();
        s.extend(self.others.iter().map(|o| o.meta.namespace_or_default()));
        s.extend(self.of_kind(Kind::Namespace).map(|r| r.meta.name.as_str()));
        s
    }

    /// Pods in `namespace` whose labels include every label of `selector`.
    pub fn pods_matching<'s>(
        &'s self,
        namespace: &'s str,
        selector: &'s BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Resource> + 's {
        self.of_kind(Kind::Pod)
            .filter(move |p| p.namespace() == namespace && labels_match(selector, &p.meta.labels))
    }
}

/// Whether `labels` carry every key/value of `selector` (an empty selector matches everything).
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
