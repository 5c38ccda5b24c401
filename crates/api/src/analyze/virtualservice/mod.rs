//! The `virtualservice.*` analyzers: references from VirtualServices to hosts, subsets and
//! gateways that do not exist ([`destinations`], [`gateways`]), hosts claimed by several
//! VirtualServices on the mesh gateway ([`conflicts`]), and JWT claim routing on gateways whose
//! pods no RequestAuthentication covers ([`jwt`]).

pub mod conflicts;
pub mod destinations;
pub mod gateways;
pub mod jwt;

#[cfg(test)]
pub(crate) mod tests;

use super::Analyzer;
use crate::resource::Resource;
use crate::types::virtual_service::{Destination, VirtualService};

/// The analyzers of this family.
pub const ALL: &[&dyn Analyzer] = &[
    &conflicts::ConflictingMeshGatewayHosts,
    &destinations::DestinationHosts,
    &destinations::DestinationRules,
    &gateways::Gateways,
    &jwt::JwtClaimRoute,
];

/// Where a destination sits in a VirtualService.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Route,
    Mirror,
}

/// One destination of a VirtualService with the path of its `host` field.
pub struct AtPath<'a> {
    pub destination: &'a Destination,
    pub path: String,
    pub place: Place,
}

/// A missing `destination` reads as an empty one (host `""`), as Istio's getters make it.
static EMPTY: Destination = Destination {
    host: String::new(),
    subset: String::new(),
    port: None,
};

fn at_path(parent: String, d: Option<&Destination>, place: Place) -> AtPath<'_> {
    match d {
        Some(destination) => AtPath {
            destination,
            path: format!("{parent}.host"),
            place,
        },
        None => AtPath {
            destination: &EMPTY,
            path: parent,
            place,
        },
    }
}

/// Route destinations in Istio's order: TCP, TLS, then HTTP routes.
pub fn route_destinations(vs: &VirtualService) -> Vec<AtPath<'_>> {
    let tcp = vs.tcp.iter().map(|r| &r.route);
    let tls = vs.tls.iter().map(|r| &r.route);
    let mut v = Vec::new();
    for (kind, routes) in [("tcp", tcp.collect::<Vec<_>>()), ("tls", tls.collect())] {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, rd) in route.iter().enumerate() {
                let parent = format!("spec.{kind}[{i}].route[{j}].destination");
                v.push(at_path(parent, rd.destination.as_ref(), Place::Route));
            }
        }
    }
    for (i, r) in vs.http.iter().enumerate() {
        for (j, rd) in r.route.iter().enumerate() {
            let parent = format!("spec.http[{i}].route[{j}].destination");
            v.push(at_path(parent, rd.destination.as_ref(), Place::Route));
        }
    }
    v
}

/// HTTP mirror destinations: each rule's `mirror`, then its `mirrors`.
pub fn mirror_destinations(vs: &VirtualService) -> Vec<AtPath<'_>> {
    let mut v = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        if let Some(m) = &r.mirror {
            v.push(AtPath {
                destination: m,
                path: format!("spec.http[{i}].mirror.host"),
                place: Place::Mirror,
            });
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            let parent = format!("spec.http[{i}].mirrors[{j}].destination");
            v.push(at_path(parent, m.destination.as_ref(), Place::Mirror));
        }
    }
    v
}

/// `namespace/name` of a resource, as Istio's messages name it.
pub fn full_name(r: &Resource) -> String {
    format!("{}/{}", r.namespace(), r.name())
}
