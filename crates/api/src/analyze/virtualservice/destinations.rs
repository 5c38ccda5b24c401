//! `virtualservice.DestinationHostAnalyzer`: destination and mirror hosts that no Service or
//! ServiceEntry visible from the VirtualService provides (IST0101), ports such a service does not
//! expose (IST0101) or leaves ambiguous (IST0112), and gateway routes without a subset to a host
//! that a mesh VirtualService splits by subset (IST0140).
//!
//! `virtualservice.DestinationRuleAnalyzer`: subsets no DestinationRule for the host defines
//! (IST0101).

use std::collections::BTreeSet;

use super::{full_name, mirror_destinations, route_destinations, AtPath, Place};
use crate::analyze::hosts::{resource_name_of_host, ServiceHosts, ServiceInfo};
use crate::analyze::{Analyzer, Code, Context, Message};
use crate::resource::Resource;
use crate::types::virtual_service::{Destination, VirtualService};

pub struct DestinationHosts;

impl Analyzer for DestinationHosts {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationHostAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let services = ServiceHosts::new(cx);
        let split = subset_destinations(cx);
        // An input with no Service and no ServiceEntry at all is routing config analysed apart
        // from the registry (services live in the cluster or another repository): every host
        // would be "not found", which is noise, not a finding. istioctl reads the live cluster
        // for those; without one we say nothing about hosts rather than something false.
        let has_registry = cx.services().next().is_some() || cx.service_entries().next().is_some();
        for (r, vs) in cx.virtual_services() {
            unsplit_gateway_routes(r, vs, &split, out);
            if !has_registry {
                continue;
            }
            let ns = r.namespace();
            let all = route_destinations(vs)
                .into_iter()
                .chain(mirror_destinations(vs));
            for d in all {
                let host = &d.destination.host;
                match services.lookup(ns, &vs.export_to, host) {
                    None => {
                        let what = match d.place {
                            Place::Route => "host",
                            Place::Mirror => "mirror host",
                        };
                        out.push(Message::new(
                            Code::ReferencedResourceNotFound,
                            &r.into(),
                            &d.path,
                            format!("referenced {what} not found: {host:?}"),
                        ));
                    }
                    Some(s) => check_port(r, &d, s, out),
                }
            }
        }
    }
}

/// A destination without a port is fine unless the service has several; one with a port needs
/// the service to expose it.
fn check_port(r: &Resource, d: &AtPath<'_>, s: &ServiceInfo<'_>, out: &mut Vec<Message>) {
    let host = &d.destination.host;
    match &d.destination.port {
        None if s.ports.len() > 1 => {
            let ports: Vec<String> = s.ports.iter().map(u32::to_string).collect();
            out.push(Message::new(
                Code::VirtualServiceDestinationPortSelectorRequired,
                &r.into(),
                &d.path,
                format!(
                    "destination {host:?} exposes several ports ({}); the destination must select one",
                    ports.join(", ")
                ),
            ));
        }
        None => {}
        Some(p) if s.ports.contains(&p.number) => {}
        Some(p) => out.push(Message::new(
            Code::ReferencedResourceNotFound,
            &r.into(),
            &d.path,
            format!("referenced host:port not found: \"{host}:{}\"", p.number),
        )),
    }
}

/// VirtualServices with a subset destination to one of their own hosts, with those destinations.
fn subset_destinations<'a>(cx: &Context<'a>) -> Vec<(&'a Resource, Vec<&'a Destination>)> {
    let mut v = Vec::new();
    for (r, vs) in cx.virtual_services() {
        let mut ds = Vec::new();
        for rd in vs.http.iter().flat_map(|h| &h.route) {
            let Some(d) = &rd.destination else { continue };
            if d.subset.is_empty() {
                continue;
            }
            // One entry per equal VirtualService host, as Istio counts them.
            ds.extend(vs.hosts.iter().filter(|h| **h == d.host).map(|_| d));
        }
        if !ds.is_empty() {
            v.push((r, ds));
        }
    }
    v
}

/// Routes of a gateway-bound VirtualService that pick no subset, to a host some VirtualService
/// routes by subset: that subset routing does not apply to traffic entering through the gateway.
fn unsplit_gateway_routes(
    r: &Resource,
    vs: &VirtualService,
    split: &[(&Resource, Vec<&Destination>)],
    out: &mut Vec<Message>,
) {
    if vs.gateways.is_empty() {
        return;
    }
    for (i, http) in vs.http.iter().enumerate() {
        for (j, rd) in http.route.iter().enumerate() {
            let (host, subset) = rd
                .destination
                .as_ref()
                .map_or(("", ""), |d| (d.host.as_str(), d.subset.as_str()));
            if !subset.is_empty() {
                continue;
            }
            for (other, ds) in split {
                for _ in ds.iter().filter(|d| d.host == host) {
                    out.push(Message::new(
                        Code::IngressRouteRulesNotAffected,
                        &r.into(),
                        &format!("spec.http[{i}].route[{j}].destination.host"),
                        format!(
                            "subset routing of VirtualService {} for {host:?} does not apply to \
                             traffic entering through the gateways of VirtualService {}",
                            full_name(other),
                            full_name(r)
                        ),
                    ));
                }
            }
        }
    }
}

pub struct DestinationRules;

impl Analyzer for DestinationRules {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationRuleAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        // As for hosts: with no DestinationRule in the input at all, subsets are defined
        // elsewhere, and calling each one missing would be noise.
        if cx.destination_rules().next().is_none() {
            return;
        }
        let mut subsets: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
        for (r, dr) in cx.destination_rules() {
            let (ns, name) = resource_name_of_host(r.namespace(), &dr.host);
            for s in &dr.subsets {
                subsets.insert((ns, name, &s.name));
            }
        }
        for (r, vs) in cx.virtual_services() {
            let all = route_destinations(vs)
                .into_iter()
                .chain(mirror_destinations(vs));
            for d in all {
                let subset = d.destination.subset.as_str();
                if subset.is_empty() {
                    continue;
                }
                let host = d.destination.host.as_str();
                let (ns, name) = resource_name_of_host(r.namespace(), host);
                if subsets.contains(&(ns, name, subset)) {
                    continue;
                }
                let what = match d.place {
                    Place::Route => "host",
                    Place::Mirror => "mirror",
                };
                out.push(Message::new(
                    Code::ReferencedResourceNotFound,
                    &r.into(),
                    &d.path,
                    format!("no DestinationRule defines subset {subset:?} of {what} {host:?}"),
                ));
            }
        }
    }
}
