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
use model::{Cluster, Endpoint, ProxySnapshot, RouteTable, VirtualHost};
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
    // A route table travels as its own resource without virtual hosts plus one resource per
    // virtual host, as Envoy's VHDS does: a sidecar's port-80 table holds a virtual host per
    // service, and one VirtualService change must not resend ten thousand of them.
    Section {
        type_url: ROUTE_TABLE,
        short: "RDS",
        label: "rds",
        split: split_route_tables,
        merge: merge_route_tables,
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

/// One virtual host of a route table, as its own RDS resource named `TABLE#VHOST`.
#[derive(Serialize)]
struct VirtualHostPartRef<'a> {
    table: &'a str,
    virtual_host: &'a VirtualHost,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VirtualHostPart {
    table: String,
    virtual_host: VirtualHost,
}

fn split_route_tables(s: &ProxySnapshot) -> Result<Vec<(String, Bytes)>, ResourceError> {
    let mut out = Vec::new();
    for t in &s.route_tables {
        let bare = RouteTable {
            name: t.name.clone(),
            virtual_hosts: Vec::new(),
        };
        out.push((t.name.clone(), encode(ROUTE_TABLE, &t.name, &bare)?));
        let mut seen = std::collections::HashSet::new();
        for (i, vh) in t.virtual_hosts.iter().enumerate() {
            // Virtual host names are unique in what the compiler emits; a table that repeats
            // one still travels whole.
            let mut name = format!("{}#{}", t.name, vh.name);
            if !seen.insert(name.clone()) {
                name = format!("{name}#{i}");
            }
            let part = VirtualHostPartRef {
                table: &t.name,
                virtual_host: vh,
            };
            let body = encode(ROUTE_TABLE, &name, &part)?;
            out.push((name, body));
        }
    }
    Ok(out)
}

/// Tables are rebuilt from their bare resource and their virtual hosts, in virtual host name
/// order (the order is not significant: a domain belongs to one virtual host, and the most
/// specific domain wins).
fn merge_route_tables(s: &mut ProxySnapshot, r: &TypeResources) -> Result<(), ResourceError> {
    let mut tables: BTreeMap<String, RouteTable> = BTreeMap::new();
    let mut parts = Vec::new();
    for (name, res) in r {
        // Our encoder writes fields in declaration order: a part starts with its table.
        if res.body.starts_with(b"{\"table\":") {
            parts.push(decode::<VirtualHostPart>("RDS", name, &res.body)?);
        } else {
            let t: RouteTable = decode("RDS", name, &res.body)?;
            tables.insert(t.name.clone(), t);
        }
    }
    for p in parts {
        let table = tables.get_mut(&p.table).ok_or_else(|| {
            ResourceError::Incomplete(format!("no route table `{}` yet", p.table))
        })?;
        table.virtual_hosts.push(p.virtual_host);
    }
    s.route_tables = tables
        .into_values()
        .map(|mut t| {
            t.virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
            t
        })
        .collect();
    Ok(())
}

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
    /// Per section, what changed since the generation this one was built from (`None` when the
    /// section is shared with it, or there was none). Computed once per shape, so the streams
    /// of the shape that hold the previous section find their changes without each comparing
    /// every resource.
    pub deltas: Vec<Option<Arc<Delta>>>,
    /// When the config change this push carries was first seen, for convergence time.
    pub triggered: Instant,
}

/// The difference between two versions of one section.
#[derive(Debug)]
pub struct Delta {
    /// The section this delta starts from.
    pub from: Arc<TypeResources>,
    /// Names added or whose version changed, sorted.
    pub changed: Vec<String>,
    /// Names gone, sorted.
    pub removed: Vec<String>,
}

impl Delta {
    fn between(from: &Arc<TypeResources>, to: &TypeResources) -> Delta {
        let changed = to
            .iter()
            .filter(|(name, res)| from.get(*name).map(|r| &r.version) != Some(&res.version))
            .map(|(name, _)| name.clone())
            .collect();
        let removed = from
            .keys()
            .filter(|name| !to.contains_key(*name))
            .cloned()
            .collect();
        Delta {
            from: from.clone(),
            changed,
            removed,
        }
    }
}

/// `snapshot`'s resources of section `s`. A resource whose version is the one `previous` holds
/// keeps `previous`'s body, so that a compile after a one-route change holds one copy of the
/// ten thousand bodies it did not change, not two, while proxies still hold the old section.
fn split_section(
    s: &Section,
    snapshot: &ProxySnapshot,
    previous: Option<&TypeResources>,
) -> Result<TypeResources, ResourceError> {
    Ok((s.split)(snapshot)?
        .into_iter()
        .map(|(name, body)| {
            let version = version_of(&body);
            let res = match previous.and_then(|p| p.get(&name)) {
                Some(old) if old.version == version => old.clone(),
                _ => Res { version, body },
            };
            (name, res)
        })
        .collect())
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
        let mut deltas = Vec::with_capacity(SECTIONS.len());
        for (i, s) in SECTIONS.iter().enumerate() {
            let prev = previous.and_then(|p| p.sections.get(i));
            let resources = split_section(s, snapshot, prev.map(|p| &**p))?;
            match prev {
                Some(prev) if **prev == resources => {
                    sections.push(prev.clone());
                    deltas.push(None);
                }
                Some(prev) => {
                    deltas.push(Some(Arc::new(Delta::between(prev, &resources))));
                    sections.push(Arc::new(resources));
                }
                None => {
                    sections.push(Arc::new(resources));
                    deltas.push(None);
                }
            }
        }
        Ok(Generated {
            version,
            sections,
            deltas,
            triggered,
        })
    }

    /// `previous` with the clusters named `names` replaced: by the one of `clusters` with that
    /// name (its CDS and EDS resources), or removed when there is none; their mesh mTLS
    /// origination likewise from `mesh_tls`. Every other resource and section is shared with
    /// `previous`. The control plane's endpoint-only push: the resources are split exactly as
    /// [`Generated::new`] splits them, so the result equals a full compile's.
    pub fn patch_clusters(
        previous: &Generated,
        names: &[String],
        clusters: Vec<Cluster>,
        mesh_tls: Vec<MeshTlsOrigination>,
        version: String,
        triggered: Instant,
    ) -> Result<Generated, ResourceError> {
        let partial = ProxySnapshot {
            clusters,
            mesh_tls,
            ..Default::default()
        };
        let mut sections = previous.sections.clone();
        let mut deltas = vec![None; SECTIONS.len()];
        for url in [CLUSTER, ENDPOINTS, MESH_TLS] {
            let Some((i, s)) = section(url) else { continue };
            let mut fresh = split_section(s, &partial, None)?;
            let prev = &previous.sections[i];
            let mut changed = Vec::new();
            let mut removed = Vec::new();
            for name in names {
                match (prev.get(name), fresh.remove(name)) {
                    (Some(old), Some(new)) if old.version == new.version => {}
                    (_, Some(new)) => changed.push((name.clone(), new)),
                    (Some(_), None) => removed.push(name.clone()),
                    (None, None) => {}
                }
            }
            if changed.is_empty() && removed.is_empty() {
                continue;
            }
            let mut next = (**prev).clone();
            for name in &removed {
                next.remove(name);
            }
            let mut changed_names: Vec<String> = changed.iter().map(|(n, _)| n.clone()).collect();
            next.extend(changed);
            changed_names.sort();
            removed.sort();
            deltas[i] = Some(Arc::new(Delta {
                from: prev.clone(),
                changed: changed_names,
                removed,
            }));
            sections[i] = Arc::new(next);
        }
        Ok(Generated {
            version,
            sections,
            deltas,
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
                virtual_hosts: vec![
                    model::VirtualHost {
                        name: "a.default.svc.cluster.local:80".into(),
                        domains: vec!["a".into(), "a.default.svc.cluster.local".into()],
                        routes: vec![],
                    },
                    model::VirtualHost {
                        name: "b.default.svc.cluster.local:80".into(),
                        domains: vec!["b".into()],
                        routes: vec![],
                    },
                ],
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
    fn a_changed_section_keeps_the_bodies_of_its_unchanged_resources() {
        let a = Generated::new(&snapshot(8080), "1".into(), Instant::now(), None).unwrap();
        let mut next = snapshot(8080);
        next.route_tables[0].virtual_hosts[1]
            .domains
            .push("b.other".into());
        let b = Generated::new(&next, "2".into(), Instant::now(), Some(&a)).unwrap();
        let rds = section(ROUTE_TABLE).unwrap().0;
        let (old, new) = (&a.sections[rds], &b.sections[rds]);
        assert!(!Arc::ptr_eq(old, new));
        let body = |s: &TypeResources, name: &str| s[name].body.as_ptr();
        let unchanged = "80#a.default.svc.cluster.local:80";
        let changed = "80#b.default.svc.cluster.local:80";
        assert_eq!(
            body(old, unchanged),
            body(new, unchanged),
            "{:?}",
            new.keys()
        );
        assert_ne!(old[changed].version, new[changed].version);
    }

    #[test]
    fn patched_clusters_equal_a_full_split_and_share_the_rest() {
        let a = Generated::new(&snapshot(8080), "1".into(), Instant::now(), None).unwrap();
        let next = snapshot(8081);
        let full = Generated::new(&next, "2".into(), Instant::now(), Some(&a)).unwrap();
        let names = vec!["outbound|80||a".to_string()];
        let patched = Generated::patch_clusters(
            &a,
            &names,
            next.clusters.clone(),
            next.mesh_tls.clone(),
            "2".into(),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(types(&patched), types(&full));
        let eds = section(ENDPOINTS).unwrap().0;
        for (i, s) in SECTIONS.iter().enumerate() {
            assert_eq!(
                Arc::ptr_eq(&a.sections[i], &patched.sections[i]),
                i != eds,
                "{}",
                s.short
            );
        }
        let delta = patched.deltas[eds].as_ref().expect("an EDS delta");
        assert!(Arc::ptr_eq(&delta.from, &a.sections[eds]));
        assert_eq!(delta.changed, names);
        assert!(delta.removed.is_empty());
        assert_eq!(full.deltas[eds].as_ref().unwrap().changed, names);

        // A cluster that is gone loses its CDS, EDS and MTLS resources.
        let gone =
            Generated::patch_clusters(&a, &names, vec![], vec![], "3".into(), Instant::now())
                .unwrap();
        for url in [CLUSTER, ENDPOINTS, MESH_TLS] {
            let i = section(url).unwrap().0;
            assert!(gone.sections[i].is_empty(), "{url}");
            assert_eq!(gone.deltas[i].as_ref().unwrap().removed, names);
        }
    }

    #[test]
    fn a_route_table_travels_as_a_bare_table_and_one_resource_per_virtual_host() {
        let g = Generated::new(&snapshot(1), "v".into(), Instant::now(), None).unwrap();
        let rds = &g.sections[section(ROUTE_TABLE).unwrap().0];
        let names: Vec<&str> = rds.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "80",
                "80#a.default.svc.cluster.local:80",
                "80#b.default.svc.cluster.local:80"
            ]
        );
        // A virtual host whose table has not arrived waits for it.
        let mut t = types(&g);
        t[section(ROUTE_TABLE).unwrap().0].remove("80");
        assert!(matches!(
            assemble("v", &t),
            Err(ResourceError::Incomplete(_))
        ));
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
