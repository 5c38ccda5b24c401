//! The resource types on the stream and how a [`ProxySnapshot`] splits into them and is put back
//! together.
//!
//! Each snapshot section is one xDS type ([`SECTIONS`], in the order a push sends them: CDS,
//! EDS, MTLS, NDS, RDS, LDS, what is referred to before what refers to it). A cluster's endpoints are their own resource, named like the cluster, so an endpoint
//! change sends one small update instead of the cluster. Adding a section (a DNS name table,
//! inbound listeners...) is one more [`Section`] entry with a split and a merge function.
//!
//! Bodies are the model's serde types as compact JSON rather than protobuf messages of their
//! own: the model is the one definition of what a proxy runs, so there is no second schema to
//! keep in step with it, and the model's `deny_unknown_fields` makes a proxy refuse (NACK) a
//! field it does not understand rather than silently ignore it. The cost is size and decode
//! speed, which only matter per changed resource thanks to the split above.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use model::snapshot::MeshTlsOrigination;
use model::{Cluster, Endpoint, ProxySnapshot, RouteTable};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub const CLUSTER: &str = "type.bowline.dev/bowline.model.Cluster";
pub const ENDPOINTS: &str = "type.bowline.dev/bowline.model.ClusterEndpoints";
pub const LISTENER: &str = "type.bowline.dev/bowline.model.Listener";
pub const MESH_TLS: &str = "type.bowline.dev/bowline.model.MeshTlsOrigination";
pub const ROUTE_TABLE: &str = "type.bowline.dev/bowline.model.RouteTable";
pub const NAME_TABLE: &str = "type.bowline.dev/bowline.model.DnsName";

/// A resource as stored and sent: its body and the version that names that body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Res {
    /// [`version_of`] the body: equal versions mean equal bodies, across processes, so a
    /// restarted control plane recognizes what a reconnecting proxy already holds.
    pub version: String,
    pub body: Bytes,
}

/// Every resource of one type, by name.
pub type TypeResources = BTreeMap<String, Res>;

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("encoding {type_url} `{name}`: {source}")]
    Encode {
        type_url: &'static str,
        name: String,
        source: serde_json::Error,
    },
    #[error("{short} resource `{name}` does not decode: {source}")]
    Decode {
        short: &'static str,
        name: String,
        source: serde_json::Error,
    },
    /// The resources received so far do not make a whole snapshot yet (a cluster whose
    /// endpoints have not arrived): wait for the rest of the push.
    #[error("incomplete: {0}")]
    Incomplete(String),
}

type SplitFn = fn(&ProxySnapshot) -> Result<Vec<(String, Bytes)>, ResourceError>;
type MergeFn = fn(&mut ProxySnapshot, &TypeResources) -> Result<(), ResourceError>;

/// One snapshot section as one resource type.
pub struct Section {
    pub type_url: &'static str,
    /// Envoy's service name for the type (CDS, EDS...), as `proxy-status` prints it.
    pub short: &'static str,
    /// Metric label, Istio's: `cds`, `eds`, `lds`, `rds`.
    pub label: &'static str,
    split: SplitFn,
    merge: MergeFn,
}

/// Every type, in push order: what is referred to before what refers to it (clusters, their
/// endpoints, route tables, listeners), so the proxy, which applies whole snapshots, can apply
/// a push when its last piece arrives and a listener that cannot bind is rejected with its own
/// type. (Istio sends LDS before RDS because Envoy warms listeners until their routes arrive.)
/// Merges run in this order too, so a section may rely on the ones before it.
pub static SECTIONS: &[Section] = &[
    Section {
        type_url: CLUSTER,
        short: "CDS",
        label: "cds",
        split: |s| {
            let bare: Vec<Cluster> = s
                .clusters
                .iter()
                .map(|c| Cluster {
                    endpoints: Vec::new(),
                    ..c.clone()
                })
                .collect();
            split_named(CLUSTER, &bare, |c| &c.name)
        },
        merge: |s, r| {
            s.clusters = merge_all("CDS", r)?;
            Ok(())
        },
    },
    Section {
        type_url: ENDPOINTS,
        short: "EDS",
        label: "eds",
        split: |s| {
            s.clusters
                .iter()
                .map(|c| Ok((c.name.clone(), encode(ENDPOINTS, &c.name, &c.endpoints)?)))
                .collect()
        },
        merge: |s, r| {
            for c in &mut s.clusters {
                let res = r.get(&c.name).ok_or_else(|| {
                    ResourceError::Incomplete(format!("no endpoints for cluster `{}` yet", c.name))
                })?;
                c.endpoints = decode::<Vec<Endpoint>>("EDS", &c.name, &res.body)?;
            }
            Ok(())
        },
    },
    Section {
        type_url: MESH_TLS,
        short: "MTLS",
        label: "mtls",
        split: |s| split_named(MESH_TLS, &s.mesh_tls, |m| &m.cluster),
        merge: |s, r| {
            s.mesh_tls = merge_all::<MeshTlsOrigination>("MTLS", r)?;
            Ok(())
        },
    },
    // Istio's NDS: the DNS proxy's names, one resource per name so a new service adds a few.
    Section {
        type_url: NAME_TABLE,
        short: "NDS",
        label: "nds",
        split: |s| split_named(NAME_TABLE, &s.dns, |n| &n.name),
        merge: |s, r| {
            // Resources come back ordered by name, which is the order lookups rely on.
            s.dns = merge_all::<model::DnsName>("NDS", r)?;
            Ok(())
        },
    },
    Section {
        type_url: ROUTE_TABLE,
        short: "RDS",
        label: "rds",
        split: |s| split_named(ROUTE_TABLE, &s.route_tables, |t| &t.name),
        merge: |s, r| {
            s.route_tables = merge_all::<RouteTable>("RDS", r)?;
            Ok(())
        },
    },
    Section {
        type_url: LISTENER,
        short: "LDS",
        label: "lds",
        split: |s| split_named(LISTENER, &s.listeners, |l| &l.name),
        merge: |s, r| {
            s.listeners = merge_all("LDS", r)?;
            let missing = s
                .listeners
                .iter()
                .filter_map(|l| l.kind.route_table())
                .find(|t| !s.route_tables.iter().any(|rt| rt.name == *t));
            match missing {
                Some(t) => Err(ResourceError::Incomplete(format!(
                    "no route table `{t}` yet"
                ))),
                None => Ok(()),
            }
        },
    },
];

/// Every field of a snapshot must travel in a section: this stops compiling when a field is
/// added to [`ProxySnapshot`] without one (add a [`Section`] above, then the field here).
#[allow(dead_code)]
fn every_field_has_a_section(s: ProxySnapshot) {
    let ProxySnapshot {
        version: _,
        listeners: _,
        route_tables: _,
        clusters: _,
        mesh_tls: _,
        dns: _,
    } = s;
}

/// The section of a type URL.
pub fn section(type_url: &str) -> Option<(usize, &'static Section)> {
    SECTIONS
        .iter()
        .enumerate()
        .find(|(_, s)| s.type_url == type_url)
}

fn encode<T: Serialize + ?Sized>(
    type_url: &'static str,
    name: &str,
    value: &T,
) -> Result<Bytes, ResourceError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|source| ResourceError::Encode {
            type_url,
            name: name.to_string(),
            source,
        })
}

fn decode<T: DeserializeOwned>(
    short: &'static str,
    name: &str,
    body: &[u8],
) -> Result<T, ResourceError> {
    serde_json::from_slice(body).map_err(|source| ResourceError::Decode {
        short,
        name: name.to_string(),
        source,
    })
}

fn split_named<T: Serialize>(
    type_url: &'static str,
    items: &[T],
    name: fn(&T) -> &String,
) -> Result<Vec<(String, Bytes)>, ResourceError> {
    items
        .iter()
        .map(|i| Ok((name(i).clone(), encode(type_url, name(i), i)?)))
        .collect()
}

fn merge_all<T: DeserializeOwned>(
    short: &'static str,
    r: &TypeResources,
) -> Result<Vec<T>, ResourceError> {
    r.iter()
        .map(|(name, res)| decode(short, name, &res.body))
        .collect()
}

/// A stable 64-bit FNV-1a hash of a body, as 16 hex digits. Stable across processes and
/// builds (unlike std's hasher), which resync after a control-plane restart relies on.
pub fn version_of(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What the control plane pushes to one proxy shape at one config version: every section
/// split into resources. Shared (`Arc`) by every proxy of the shape.
#[derive(Debug)]
pub struct Generated {
    /// The config version, sent as `system_version_info`.
    pub version: String,
    /// One entry per [`SECTIONS`] entry, same order.
    pub sections: Vec<Arc<TypeResources>>,
    /// When the config change this push carries was first seen, for convergence time.
    pub triggered: Instant,
}

impl Generated {
    /// Splits `snapshot`. A section equal to the same section of `previous` is shared with it,
    /// so streams can skip it by pointer comparison.
    pub fn new(
        snapshot: &ProxySnapshot,
        version: String,
        triggered: Instant,
        previous: Option<&Generated>,
    ) -> Result<Generated, ResourceError> {
        let mut sections = Vec::with_capacity(SECTIONS.len());
        for (i, s) in SECTIONS.iter().enumerate() {
            let resources: TypeResources = (s.split)(snapshot)?
                .into_iter()
                .map(|(name, body)| {
                    let version = version_of(&body);
                    (name, Res { version, body })
                })
                .collect();
            match previous.and_then(|p| p.sections.get(i)) {
                Some(prev) if **prev == resources => sections.push(prev.clone()),
                _ => sections.push(Arc::new(resources)),
            }
        }
        Ok(Generated {
            version,
            sections,
            triggered,
        })
    }

    /// Total body bytes, for size metrics.
    pub fn bytes(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| s.values())
            .map(|r| r.body.len())
            .sum()
    }
}

/// Puts a snapshot back together from every type's resources (indexed like [`SECTIONS`]).
pub fn assemble(version: &str, types: &[TypeResources]) -> Result<ProxySnapshot, ResourceError> {
    let empty = TypeResources::new();
    let mut s = ProxySnapshot {
        version: version.to_string(),
        ..Default::default()
    };
    for (i, section) in SECTIONS.iter().enumerate() {
        (section.merge)(&mut s, types.get(i).unwrap_or(&empty))?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{HealthStatus, LbPolicy, Listener, ListenerKind, UpstreamProtocol};

    fn snapshot(endpoint_port: u16) -> ProxySnapshot {
        ProxySnapshot {
            version: "v".into(),
            listeners: vec![Listener {
                name: "0.0.0.0_80".into(),
                address: "0.0.0.0".parse().unwrap(),
                port: 80,
                kind: ListenerKind::Http {
                    route_table: "80".into(),
                },
                tls: None,
            }],
            route_tables: vec![RouteTable {
                name: "80".into(),
                virtual_hosts: vec![],
            }],
            clusters: vec![Cluster {
                name: "outbound|80||a".into(),
                protocol: UpstreamProtocol::Http1,
                lb_policy: LbPolicy::RoundRobin,
                connect_timeout_ms: 1000,
                endpoints: vec![Endpoint {
                    address: "10.0.0.1".parse().unwrap(),
                    port: endpoint_port,
                    labels: Default::default(),
                    weight: 1,
                    health: HealthStatus::Healthy,
                    locality: String::new(),
                    priority: 0,
                }],
                policy: Default::default(),
            }],
            mesh_tls: vec![MeshTlsOrigination {
                cluster: "outbound|80||a".into(),
                all_endpoints: true,
                subject_alt_names: vec!["spiffe://cluster.local/ns/default/sa/a".into()],
                sni: "outbound_.80_._.a".into(),
            }],
            dns: vec![
                model::DnsName {
                    name: "a".into(),
                    addresses: vec!["10.96.0.1".parse().unwrap()],
                },
                model::DnsName {
                    name: "a.default.svc.cluster.local".into(),
                    addresses: vec!["10.96.0.1".parse().unwrap()],
                },
            ],
        }
    }

    fn types(g: &Generated) -> Vec<TypeResources> {
        g.sections.iter().map(|s| (**s).clone()).collect()
    }

    #[test]
    fn split_and_assemble_round_trip() {
        let s = snapshot(8080);
        let g = Generated::new(&s, "v".into(), Instant::now(), None).unwrap();
        assert_eq!(assemble("v", &types(&g)).unwrap(), s);
    }

    #[test]
    fn an_endpoint_change_changes_only_the_endpoints_resource() {
        let a = Generated::new(&snapshot(8080), "1".into(), Instant::now(), None).unwrap();
        let b = Generated::new(&snapshot(8081), "2".into(), Instant::now(), Some(&a)).unwrap();
        for (i, s) in SECTIONS.iter().enumerate() {
            let shared = Arc::ptr_eq(&a.sections[i], &b.sections[i]);
            assert_eq!(shared, s.type_url != ENDPOINTS, "{}", s.short);
        }
    }

    #[test]
    fn missing_pieces_are_incomplete_not_errors() {
        let g = Generated::new(&snapshot(1), "v".into(), Instant::now(), None).unwrap();
        let at = |url: &str| section(url).expect("a section").0;
        let mut t = types(&g);
        t[at(ENDPOINTS)].clear();
        assert!(matches!(
            assemble("v", &t),
            Err(ResourceError::Incomplete(_))
        ));
        let mut t = types(&g);
        t[at(ROUTE_TABLE)].clear();
        assert!(matches!(
            assemble("v", &t),
            Err(ResourceError::Incomplete(_))
        ));
        let mut t = types(&g);
        t[at(LISTENER)].get_mut("0.0.0.0_80").unwrap().body = Bytes::from_static(b"{\"name\":1}");
        assert!(matches!(
            assemble("v", &t),
            Err(ResourceError::Decode { .. })
        ));
    }

    #[test]
    fn versions_are_stable() {
        assert_eq!(version_of(b""), "cbf29ce484222325");
        assert_ne!(version_of(b"a"), version_of(b"b"));
    }
}
