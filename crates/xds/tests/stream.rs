//! The discovery protocol over a real TLS listener, in process: what each push sends, ACK and
//! NACK bookkeeping, subscriptions by name, resync after reconnecting, authentication, and the
//! certificate service.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca::{BootstrapTokens, CaConfig, CaSource, CertificateAuthority, Identity, TrustDomain};
use model::{
    Cluster, Endpoint, HealthStatus, LbPolicy, Listener, ListenerKind, ProxyIdentity,
    ProxySnapshot, Role, RouteTable, UpstreamProtocol,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use xds::client::{ClientError, Connection, Rejection};
use xds::pb::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use xds::pb::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, ErrorDetail, Node};
use xds::resources::{CLUSTER, ENDPOINTS, LISTENER, MESH_TLS, NAME_TABLE, ROUTE_TABLE};
use xds::server::BoxFuture;
use xds::{Generated, Provider, SyncTable};

const TYPES: [&str; 6] = [
    CLUSTER,
    ENDPOINTS,
    MESH_TLS,
    NAME_TABLE,
    ROUTE_TABLE,
    LISTENER,
];

/// Serves whatever snapshot the test sets, to every proxy.
struct Fixed {
    current: Mutex<Arc<Generated>>,
    pushes: watch::Sender<u64>,
    connected: Mutex<Vec<String>>,
}

impl Fixed {
    fn set(&self, s: &ProxySnapshot) {
        let mut cur = self.current.lock().unwrap();
        let n = *self.pushes.borrow() + 1;
        *cur = Arc::new(Generated::new(s, n.to_string(), Instant::now(), Some(&cur)).unwrap());
        drop(cur);
        self.pushes.send_replace(n);
    }
}

impl Provider for Fixed {
    fn pushes(&self) -> watch::Receiver<u64> {
        self.pushes.subscribe()
    }
    fn generate<'a>(
        &'a self,
        _: &'a ProxyIdentity,
    ) -> BoxFuture<'a, Result<Arc<Generated>, String>> {
        let g = self.current.lock().unwrap().clone();
        Box::pin(async move { Ok(g) })
    }
    fn connected(&self, proxy: &ProxyIdentity) -> Box<dyn Send + Sync> {
        self.connected.lock().unwrap().push(proxy.id.clone());
        Box::new(())
    }
}

fn cluster(name: &str, port: u16) -> Cluster {
    Cluster {
        name: name.into(),
        protocol: UpstreamProtocol::Http1,
        lb_policy: LbPolicy::RoundRobin,
        connect_timeout_ms: 1000,
        endpoints: vec![Endpoint {
            address: "10.0.0.1".parse().unwrap(),
            port,
            labels: BTreeMap::new(),
            weight: 1,
            health: HealthStatus::Healthy,
            locality: String::new(),
            priority: 0,
        }],
        policy: Default::default(),
    }
}

fn snapshot(a_port: u16, listener_port: u16) -> ProxySnapshot {
    ProxySnapshot {
        version: String::new(),
        listeners: vec![Listener {
            name: "l".into(),
            address: "127.0.0.1".parse().unwrap(),
            port: listener_port,
            kind: ListenerKind::Http {
                route_table: "r".into(),
            },
            tls: None,
        }],
        route_tables: vec![RouteTable {
            name: "r".into(),
            virtual_hosts: vec![],
        }],
        clusters: vec![cluster("a", a_port), cluster("b", 2)],
        mesh_tls: vec![],
        dns: vec![],
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    provider: Arc<Fixed>,
    table: SyncTable,
    conn: Connection,
    ca: Arc<CertificateAuthority>,
    _stop: watch::Sender<bool>,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(
        CertificateAuthority::open(
            CaSource::SelfSigned {
                state_dir: dir.path(),
            },
            CaConfig::default(),
        )
        .unwrap(),
    );
    let tokens = Arc::new(
        BootstrapTokens::open(&dir.path().join("tokens"), TrustDomain::default()).unwrap(),
    );
    let (token, _) = tokens.issue(&identity("default", "web")).unwrap();
    let serving = ca
        .issue_server_cert(&["localhost"], &["127.0.0.1".parse().unwrap()], None)
        .unwrap();
    let provider = Arc::new(Fixed {
        current: Mutex::new(Arc::new(
            Generated::new(&snapshot(1, 1000), "1".into(), Instant::now(), None).unwrap(),
        )),
        pushes: watch::Sender::new(1),
        connected: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let table = SyncTable::default();
    let (stop, mut stopped) = watch::channel(false);
    let opts = xds::ServeOptions {
        provider: provider.clone(),
        authenticator: tokens,
        ca: ca.clone(),
        cert_chain_pem: serving.cert.cert_chain_pem(),
        key_pem: serving.key_pem,
        control_plane: "test-cp".into(),
        max_concurrent_pushes: 4,
        table: table.clone(),
        metrics: xds::XdsMetrics::default(),
    };
    tokio::spawn(xds::serve(listener, opts, async move {
        let _ = stopped.wait_for(|v| *v).await;
    }));
    Harness {
        conn: Connection {
            address,
            server_name: None,
            root_cert_pem: ca.roots_pem(),
            token,
        },
        _dir: dir,
        provider,
        table,
        ca,
        _stop: stop,
    }
}

fn identity(ns: &str, sa: &str) -> Identity {
    Identity::new(TrustDomain::default(), ns, sa).unwrap()
}

fn node(ns: &str) -> Node {
    let mut p = ProxyIdentity::new(Role::Sidecar, ns);
    p.service_account = "web".into();
    Node {
        id: format!("sidecar~10.0.0.9~web-1.{ns}~{ns}.svc.cluster.local"),
        cluster: "Kubernetes".into(),
        metadata_json: serde_json::to_vec(&p).unwrap(),
    }
}

struct Stream {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Stream {
    async fn open(
        h: &Harness,
        ns: &str,
        first: Vec<DeltaDiscoveryRequest>,
        token: Option<&str>,
    ) -> Result<Stream, tonic::Status> {
        let mut client = AggregatedDiscoveryServiceClient::new(h.conn.channel().await.unwrap());
        let (tx, rx) = mpsc::channel(16);
        for (i, mut r) in first.into_iter().enumerate() {
            if i == 0 {
                r.node = Some(node(ns));
            }
            tx.send(r).await.unwrap();
        }
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(t) = token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let rx = client.delta_aggregated_resources(req).await?.into_inner();
        Ok(Stream { tx, rx })
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("a response within 10 s")
            .unwrap()
            .expect("the stream is open")
    }

    async fn answer(&self, r: &DeltaDiscoveryResponse, nack: Option<&str>) {
        self.tx
            .send(DeltaDiscoveryRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                error_detail: nack.map(|m| ErrorDetail {
                    code: 3,
                    message: m.into(),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

fn subscribe(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn all_types() -> Vec<DeltaDiscoveryRequest> {
    TYPES.iter().map(|t| subscribe(t, &["*"])).collect()
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|x| x.name.as_str()).collect()
}

async fn full_sync(h: &Harness) -> Stream {
    let token = h.conn.token.clone();
    let mut s = Stream::open(h, "default", all_types(), Some(&token))
        .await
        .unwrap();
    for t in TYPES {
        let r = s.next().await;
        assert_eq!(r.type_url, t);
        assert_eq!(r.control_plane, "test-cp");
        s.answer(&r, None).await;
    }
    s
}

/// Polls the sync table until `f` holds for the only proxy's `short` type.
async fn wait_sync(h: &Harness, short: &str, f: impl Fn(&xds::TypeSync) -> bool) -> xds::TypeSync {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = h
            .table
            .snapshot()
            .first()
            .and_then(|p| p.types.get(short).cloned())
        {
            if f(&t) {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{short} never reached the state: {:?}",
            h.table.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_push_sends_only_changed_resources_per_type() {
    let h = start().await;
    let mut s = full_sync(&h).await;
    for t in ["CDS", "EDS", "MTLS", "RDS", "LDS"] {
        let synced = wait_sync(&h, t, |t| t.state() == "SYNCED").await;
        assert_eq!(synced.acked_version, "1");
    }
    assert_eq!(
        h.provider.connected.lock().unwrap()[0],
        "sidecar~10.0.0.9~web-1.default~default.svc.cluster.local"
    );

    // One endpoint moves: one EDS response with that cluster's endpoints only.
    h.provider.set(&snapshot(7, 1000));
    let r = s.next().await;
    assert_eq!((r.type_url.as_str(), names(&r)), (ENDPOINTS, vec!["a"]));
    assert!(r.removed_resources.is_empty());
    s.answer(&r, None).await;

    // A cluster goes: its cluster and its endpoints are removed, nothing else is sent.
    let mut next = snapshot(7, 1000);
    next.clusters.retain(|c| c.name == "a");
    h.provider.set(&next);
    let r = s.next().await;
    assert_eq!(
        (r.type_url.as_str(), r.removed_resources.clone()),
        (CLUSTER, vec!["b".to_string()])
    );
    assert!(r.resources.is_empty());
    let e = s.next().await;
    assert_eq!(
        (e.type_url.as_str(), e.removed_resources.clone()),
        (ENDPOINTS, vec!["b".to_string()])
    );
    s.answer(&r, None).await;
    s.answer(&e, None).await;
    wait_sync(&h, "EDS", |t| {
        t.acked_version == "3" && t.state() == "SYNCED"
    })
    .await;
}

#[tokio::test]
async fn a_nack_is_recorded_and_the_rejected_version_is_not_resent() {
    let h = start().await;
    let mut s = full_sync(&h).await;
    h.provider.set(&snapshot(1, 2000));
    let r = s.next().await;
    assert_eq!(r.type_url, LISTENER);
    s.answer(&r, Some("cannot bind 127.0.0.1:2000: address in use"))
        .await;
    let t = wait_sync(&h, "LDS", |t| t.nack.is_some()).await;
    assert_eq!(t.state(), "STALE");
    assert_eq!(t.acked_version, "1", "the last accepted version stays");
    assert!(t.nack.unwrap().contains("address in use"));

    // A push that changes nothing for this proxy sends nothing; the next real change (an
    // endpoint) is the next response, not the rejected listener again.
    h.provider.set(&snapshot(1, 2000));
    h.provider.set(&snapshot(9, 2000));
    let r = s.next().await;
    assert_eq!((r.type_url.as_str(), names(&r)), (ENDPOINTS, vec!["a"]));
    assert_eq!(wait_sync(&h, "LDS", |_| true).await.state(), "STALE");

    // A new listener version is sent, and accepting it clears the NACK.
    h.provider.set(&snapshot(9, 3000));
    let r = s.next().await;
    assert_eq!(r.type_url, LISTENER);
    s.answer(&r, None).await;
    wait_sync(&h, "LDS", |t| t.state() == "SYNCED").await;
}

#[tokio::test]
async fn resources_can_be_subscribed_and_unsubscribed_by_name() {
    let h = start().await;
    let token = h.conn.token.clone();
    let mut s = Stream::open(
        &h,
        "default",
        vec![subscribe(ENDPOINTS, &["a"])],
        Some(&token),
    )
    .await
    .unwrap();
    let r = s.next().await;
    assert_eq!(names(&r), vec!["a"]);
    s.answer(&r, None).await;
    s.tx.send(subscribe(ENDPOINTS, &["b"])).await.unwrap();
    let r = s.next().await;
    assert_eq!(names(&r), vec!["b"]);
    s.tx.send(DeltaDiscoveryRequest {
        type_url: ENDPOINTS.into(),
        resource_names_unsubscribe: vec!["a".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    wait_sync(&h, "EDS", |t| t.subscribed == ["b"]).await;
    // `a` changes, then `b`: only `b` arrives.
    let mut next = snapshot(5, 1000);
    h.provider.set(&next);
    next.clusters[1].endpoints[0].port = 6;
    h.provider.set(&next);
    let r = s.next().await;
    assert_eq!(names(&r), vec!["b"]);
}

#[tokio::test]
async fn a_reconnecting_proxy_gets_only_what_it_lacks() {
    let h = start().await;
    let first = full_sync(&h).await;
    // What the first stream holds, by type.
    let g = h
        .provider
        .generate(&ProxyIdentity::new(Role::Sidecar, "default"))
        .await
        .unwrap();
    let mut versions: HashMap<&str, HashMap<String, String>> = HashMap::new();
    for (i, t) in TYPES.iter().enumerate() {
        versions.insert(
            t,
            g.sections[i]
                .iter()
                .map(|(n, r)| (n.clone(), r.version.clone()))
                .collect(),
        );
    }
    drop(first);

    // Holding everything except a stale `a`, plus a cluster the server no longer has.
    versions
        .get_mut(ENDPOINTS)
        .unwrap()
        .insert("a".into(), "0000000000000000".into());
    versions
        .get_mut(CLUSTER)
        .unwrap()
        .insert("gone".into(), "0000000000000000".into());
    let reqs = TYPES
        .iter()
        .map(|t| DeltaDiscoveryRequest {
            initial_resource_versions: versions[t].clone(),
            ..subscribe(t, &["*"])
        })
        .collect();
    let token = h.conn.token.clone();
    let mut s = Stream::open(&h, "default", reqs, Some(&token))
        .await
        .unwrap();
    let c = s.next().await;
    assert_eq!(
        (names(&c), c.removed_resources.clone()),
        (vec![], vec!["gone".to_string()])
    );
    let e = s.next().await;
    assert_eq!(names(&e), vec!["a"]);
    for t in [MESH_TLS, NAME_TABLE, ROUTE_TABLE, LISTENER] {
        let r = s.next().await;
        assert_eq!(
            (r.type_url.as_str(), r.resources.len()),
            (t, 0),
            "in sync: an empty response"
        );
    }
}

#[tokio::test]
async fn unauthenticated_and_foreign_streams_are_refused() {
    let h = start().await;
    let err = Stream::open(&h, "default", all_types(), None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = Stream::open(&h, "default", all_types(), Some("bowline-bt.00"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // The token proves default/web: it may not speak for another namespace.
    let token = h.conn.token.clone();
    let err = Stream::open(&h, "other", all_types(), Some(&token))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(h.table.is_empty());
}

fn code(err: &ClientError) -> Option<tonic::Code> {
    match err {
        ClientError::Status(s) => Some(s.code()),
        _ => None,
    }
}

#[tokio::test]
async fn certificates_are_signed_for_the_proven_identity_only() {
    let h = start().await;
    let (_key, csr) = tls::generate_csr(&identity("default", "web")).unwrap();
    let chain = xds::client::create_certificate(&h.conn, &csr, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(chain.len(), 2, "leaf and root");
    assert!(h.ca.roots_pem().contains(chain[1].trim()));

    let (_key, csr) = tls::generate_csr(&identity("default", "admin")).unwrap();
    let err = xds::client::create_certificate(&h.conn, &csr, None)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), Some(tonic::Code::PermissionDenied), "{err}");

    let anonymous = Connection {
        token: String::new(),
        ..h.conn.clone()
    };
    let err = xds::client::create_certificate(&anonymous, &csr, None)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), Some(tonic::Code::Unauthenticated), "{err}");
}

/// Records what the client applied; refuses listeners on port 2000.
struct Recorder(Mutex<Vec<ProxySnapshot>>);

impl xds::Applier for Recorder {
    fn apply(&self, s: ProxySnapshot) -> BoxFuture<'_, Result<(), Rejection>> {
        Box::pin(async move {
            if s.listeners.iter().any(|l| l.port == 2000) {
                return Err(Rejection::Invalid("port 2000 is taken".into()));
            }
            self.0.lock().unwrap().push(s);
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_client_applies_whole_snapshots_and_nacks_what_the_proxy_refuses() {
    let h = start().await;
    let recorder = Arc::new(Recorder(Mutex::default()));
    let mut proxy = ProxyIdentity::new(Role::Sidecar, "default");
    proxy.id = "sidecar~10.0.0.9~c.default~default.svc.cluster.local".into();
    proxy.service_account = "web".into();
    let client = xds::Client::new(h.conn.clone(), proxy, "Kubernetes", recorder.clone());
    let task = tokio::spawn(client.run());
    wait_sync(&h, "LDS", |t| t.state() == "SYNCED").await;
    {
        let applied = recorder.0.lock().unwrap();
        let last = applied.last().unwrap();
        assert_eq!(last.clusters, snapshot(1, 1000).clusters);
        // Pieces arrive type by type; only whole snapshots are applied.
        assert!(applied
            .iter()
            .all(|s| s.listeners.is_empty() || s.route_tables.len() == 1));
    }
    h.provider.set(&snapshot(1, 2000));
    let t = wait_sync(&h, "LDS", |t| t.nack.is_some()).await;
    assert_eq!(t.nack.as_deref(), Some("port 2000 is taken"));
    // The proxy keeps its last good snapshot and takes the next change on top of it.
    h.provider.set(&snapshot(4, 2000));
    wait_sync(&h, "EDS", |t| t.acked_version == "3").await;
    let last = recorder.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.listeners[0].port, 1000);
    assert_eq!(last.clusters[0].endpoints[0].port, 4);
    task.abort();
}
