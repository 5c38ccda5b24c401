//! Istio's `serviceentry` analyzers: TCP ports of ServiceEntries that have no address to tell
//! their traffic apart (IST0134), and ServiceEntries visible to the same namespace that give one
//! host and port different protocols (IST0177).

use std::collections::{BTreeMap, BTreeSet};

use super::{Analyzer, Code, Context, Message};
use crate::resource::Resource;

/// This family's analyzers.
pub const ALL: &[&dyn Analyzer] = &[&ProtocolAddresses, &ConflictingProtocol];

/// `serviceentry.Analyzer` (Istio's ProtocolAddressesAnalyzer): a TCP (or protocol-less) port of
/// a ServiceEntry without `addresses` cannot be told apart from other TCP services on the same
/// port, unless the control plane allocated an address (its `status.addresses`) or the proxies
/// auto-allocate them (DNS capture with auto-allocation in `defaultConfig.proxyMetadata`).
pub struct ProtocolAddresses;

fn proxies_allocate_addresses(cx: &Context<'_>) -> bool {
    let md = cx.mesh.proxy_config().proxy_metadata;
    let on = |k: &str| md.get(k).is_some_and(|v| v == "true");
    on("ISTIO_META_DNS_CAPTURE")
        && (on("ISTIO_META_DNS_AUTO_ALLOCATE") || on("PILOT_ENABLE_IP_AUTOALLOCATE"))
}

fn has_allocated_address(r: &Resource) -> bool {
    r.status
        .as_ref()
        .and_then(|s| s.get("addresses"))
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty())
}

impl Analyzer for ProtocolAddresses {
    fn name(&self) -> &'static str {
        "serviceentry.Analyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        if proxies_allocate_addresses(cx) {
            return;
        }
        for (r, se) in cx.service_entries() {
            if !se.addresses.is_empty() || has_allocated_address(r) {
                continue;
            }
            for (i, p) in se.ports.iter().enumerate() {
                if !(p.protocol.is_empty() || p.protocol.eq_ignore_ascii_case("TCP")) {
                    continue;
                }
                out.push(Message::new(
                    Code::ServiceEntryAddressesRequired,
                    &r.into(),
                    &format!("spec.ports[{i}].name"),
                    format!(
                        "Port {} ({}) is TCP but the ServiceEntry has no addresses: its traffic cannot be told \
                         apart from other TCP services on that port; set addresses or an application protocol",
                        p.number,
                        if p.protocol.is_empty() { "no protocol" } else { p.protocol.as_str() }
                    ),
                ));
            }
        }
    }
}

/// `serviceentry.ConflictingServiceEntryProtocolAnalyzer`: ServiceEntries that one namespace
/// sees together (by `exportTo`) must agree on the protocol of each host and port (IST0177).
pub struct ConflictingProtocol;

const EVERYWHERE: &str = "*";

/// The namespaces a ServiceEntry is visible in: `*` for all (also when `exportTo` is empty), its
/// own for `.`, else the names given.
fn scopes<'a>(export_to: &'a [String], own: &'a str) -> BTreeSet<&'a str> {
    if export_to.is_empty() || export_to.iter().any(|e| e == EVERYWHERE) {
        return BTreeSet::from([EVERYWHERE]);
    }
    export_to
        .iter()
        .map(|e| if e == "." { own } else { e.as_str() })
        .collect()
}

impl Analyzer for ConflictingProtocol {
    fn name(&self) -> &'static str {
        "serviceentry.ConflictingServiceEntryProtocolAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        // (scope, host, port) -> (protocol, resource) of every port that claims it.
        type Claims<'a> = BTreeMap<(&'a str, &'a str, u32), Vec<(&'a str, &'a Resource)>>;
        let mut index: Claims<'_> = BTreeMap::new();
        for (r, se) in cx.service_entries() {
            for scope in scopes(&se.export_to, r.namespace()) {
                for h in &se.hosts {
                    for p in &se.ports {
                        index
                            .entry((scope, h.as_str(), p.number))
                            .or_default()
                            .push((p.protocol.as_str(), r));
                    }
                }
            }
        }
        let mut reported: BTreeSet<String> = BTreeSet::new();
        for (&(scope, host, port), entries) in &index {
            // A namespace sees its own entries and the ones exported everywhere.
            let mut seen: Vec<(&str, &Resource)> = entries.clone();
            if scope != EVERYWHERE {
                if let Some(global) = index.get(&(EVERYWHERE, host, port)) {
                    seen.extend(global.iter().copied());
                }
            }
            let protocols: BTreeSet<String> =
                seen.iter().map(|(p, _)| p.to_ascii_uppercase()).collect();
            if protocols.len() < 2 {
                continue;
            }
            let names: BTreeSet<String> = seen
                .iter()
                .map(|(_, r)| format!("{}/{}", r.namespace(), r.name()))
                .collect();
            let names = names.into_iter().collect::<Vec<_>>().join(", ");
            let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
            for (_, r) in seen {
                if !reported.insert(r.id()) {
                    continue;
                }
                out.push(Message::new(
                    Code::ConflictingServiceEntryProtocol,
                    &r.into(),
                    "metadata.name",
                    format!(
                        "ServiceEntries {names} give host {host} port {port} different protocols ({protocols}); \
                         only one of them takes effect"
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::selectors::testing::{m, run, run_with};
    use crate::types::mesh::MeshConfig;

    fn se(name: &str, ns: &str, extra: &str, protocol: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  hosts: [db.example.com]\n  ports:\n  - {{number: 5432, name: p, protocol: {protocol}}}\n  \
             resolution: DNS\n{extra}"
        )
    }

    #[test]
    fn tcp_without_addresses() {
        let yaml = [
            se("tcp", "default", "", "TCP"),
            se("lower", "default", "", "tcp"),
            se("none", "default", "", "\"\""),
            se("http", "default", "", "HTTP"),
            se("addr", "default", "  addresses: [10.1.2.3]\n", "TCP"),
            se(
                "alloc",
                "default",
                "status:\n  addresses: [{host: db.example.com, value: 240.240.0.1}]\n",
                "TCP",
            ),
        ]
        .concat();
        assert_eq!(
            run(&ProtocolAddresses, &yaml),
            vec![
                m("IST0134", "ServiceEntry default/lower"),
                m("IST0134", "ServiceEntry default/none"),
                m("IST0134", "ServiceEntry default/tcp"),
            ]
        );
    }

    #[test]
    fn proxies_that_allocate_addresses_need_none() {
        let yaml = se("tcp", "default", "", "TCP");
        let mesh = |pairs: &[(&str, &str)]| {
            let mut m = MeshConfig::default();
            let mut pc = m.proxy_config();
            pc.proxy_metadata = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            m.default_config = Some(pc);
            m
        };
        let capture_auto = mesh(&[
            ("ISTIO_META_DNS_CAPTURE", "true"),
            ("ISTIO_META_DNS_AUTO_ALLOCATE", "true"),
        ]);
        assert_eq!(run_with(&ProtocolAddresses, &yaml, &capture_auto), vec![]);
        let capture_pilot = mesh(&[
            ("ISTIO_META_DNS_CAPTURE", "true"),
            ("PILOT_ENABLE_IP_AUTOALLOCATE", "true"),
        ]);
        assert_eq!(run_with(&ProtocolAddresses, &yaml, &capture_pilot), vec![]);
        // Auto-allocation does nothing without DNS capture.
        let auto_only = mesh(&[("ISTIO_META_DNS_AUTO_ALLOCATE", "true")]);
        assert_eq!(run_with(&ProtocolAddresses, &yaml, &auto_only).len(), 1);
        let capture_only = mesh(&[("ISTIO_META_DNS_CAPTURE", "true")]);
        assert_eq!(run_with(&ProtocolAddresses, &yaml, &capture_only).len(), 1);
    }

    #[test]
    fn protocols_conflict_where_entries_are_seen_together() {
        let local = "  exportTo: [\".\"]\n";
        let yaml = [
            se("a", "ns1", local, "HTTP"),
            se("b", "ns2", local, "HTTPS"),
            se("c", "ns2", "  exportTo: [ns3]\n", "TCP"),
            se("d", "ns3", local, "tcp"),
        ]
        .concat();
        // ns1 and ns2 keep theirs to themselves; c (exported to ns3) and d agree up to case.
        assert_eq!(run(&ConflictingProtocol, &yaml), vec![]);
        let yaml = format!("{yaml}{}", se("global", "ns4", "", "GRPC"));
        assert_eq!(
            run(&ConflictingProtocol, &yaml),
            vec![
                m("IST0177", "ServiceEntry ns1/a"),
                m("IST0177", "ServiceEntry ns2/b"),
                m("IST0177", "ServiceEntry ns2/c"),
                m("IST0177", "ServiceEntry ns3/d"),
                m("IST0177", "ServiceEntry ns4/global"),
            ]
        );
    }
}
