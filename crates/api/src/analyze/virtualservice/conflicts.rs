//! `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: several VirtualServices bound to the
//! mesh gateway that claim the same host for the same namespaces (IST0109); sidecars would pick
//! one of them arbitrarily.
//!
//! Hosts are scoped by the namespaces the VirtualService is exported to (`*` for all). A host in a
//! namespace scope also conflicts with a VirtualService exported everywhere whose host matches it
//! (wildcards included); hosts exported everywhere conflict only when equal.

use std::collections::{BTreeMap, BTreeSet};

use super::full_name;
use crate::analyze::hosts::{
    exports_to_all, host_matches, to_fqdn, EXPORT_ALL, EXPORT_LOCAL, MESH_GATEWAY,
};
use crate::analyze::{Analyzer, Code, Context, Message};
use crate::resource::Resource;

pub struct ConflictingMeshGatewayHosts;

impl Analyzer for ConflictingMeshGatewayHosts {
    fn name(&self) -> &'static str {
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        // (scope, fqdn) -> VirtualServices, one entry per host naming it.
        let mut hosts: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
        for (r, vs) in cx.virtual_services() {
            let on_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY);
            if !on_mesh {
                continue;
            }
            let ns = r.namespace();
            let scopes: BTreeSet<&str> = if exports_to_all(&vs.export_to) {
                BTreeSet::from([EXPORT_ALL])
            } else {
                vs.export_to
                    .iter()
                    .map(|e| if e == EXPORT_LOCAL { ns } else { e.as_str() })
                    .collect()
            };
            for scope in scopes {
                for h in &vs.hosts {
                    hosts
                        .entry((scope.to_string(), to_fqdn(ns, h)))
                        .or_default()
                        .push(r);
                }
            }
        }

        let mut reported: BTreeSet<String> = BTreeSet::new();
        for ((scope, fqdn), claimants) in &hosts {
            let mut all = claimants.clone();
            if scope != EXPORT_ALL {
                for ((other_scope, other), rs) in &hosts {
                    if other_scope == EXPORT_ALL && host_matches(fqdn, other) {
                        all.extend(rs.iter().copied());
                    }
                }
            }
            if all.len() < 2 {
                continue;
            }
            let mut names: Vec<String> = all.iter().map(|r| full_name(r)).collect();
            names.sort();
            for r in &all {
                if !reported.insert(r.id()) {
                    continue;
                }
                out.push(Message::new(
                    Code::ConflictingMeshGatewayVirtualServiceHosts,
                    &(*r).into(),
                    "metadata.name",
                    format!(
                        "VirtualServices {} bound to the mesh gateway define the same host {scope}/{fqdn}; \
                         which one applies is undefined (merge them into one)",
                        names.join(",")
                    ),
                ));
            }
        }
    }
}
