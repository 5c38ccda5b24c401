//! The discovery server: one task per proxy stream, with xDS's delta semantics.
//!
//! A stream starts with a bearer token (checked by the [`Authenticator`]) and a first request
//! whose node names the proxy; the node's namespace and service account must be the ones the
//! token proves. Each type's first request subscribes (wildcard unless it names resources) and
//! may carry the versions the proxy already holds, so a reconnecting proxy gets only what
//! changed. On every push signal the stream asks the [`Provider`] for its resources, compares
//! each resource's version with what it last sent, and sends per type (in [`SECTIONS`] order)
//! only the changed and removed ones, with a fresh nonce.
//!
//! ACK and NACK come back as requests carrying the nonce; a NACK's error detail is recorded in
//! the [`SyncTable`] and counted, and nothing is resent until the config changes: a rejected
//! version is never retried blindly.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ca::{Authenticator, Identity};
use model::{ProxyIdentity, Role};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::metrics::{TypeLabels, XdsMetrics};
use crate::pb::aggregated_discovery_service_server::AggregatedDiscoveryService;
use crate::pb::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Node, Resource};
use crate::resources::{section, Generated, TypeResources, SECTIONS};
use crate::status::{unix_now, ProxySync, SyncTable};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the discovery server needs from the control plane.
pub trait Provider: Send + Sync + 'static {
    /// Marked changed whenever there is new config to push (already debounced).
    fn pushes(&self) -> watch::Receiver<u64>;
    /// The resources for `proxy` now. Errors are logged and the stream keeps what it sent.
    fn generate<'a>(
        &'a self,
        proxy: &'a ProxyIdentity,
    ) -> BoxFuture<'a, Result<Arc<Generated>, String>>;
    /// A proxy connected; the returned guard is dropped when its stream ends.
    fn connected(&self, proxy: &ProxyIdentity) -> Box<dyn Send + Sync>;
}

/// The bearer credential of a call (`authorization: Bearer <token>`), as Istio's agents send
/// their token.
pub fn bearer(meta: &tonic::metadata::MetadataMap) -> Result<&str, Status> {
    let value = meta
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("no authorization metadata"))?
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not text"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| Status::unauthenticated("authorization is not a bearer token"))
}

/// Authenticates a call, logging refusals with the peer's address.
pub(crate) async fn authenticate<T>(
    auth: &dyn Authenticator,
    req: &Request<T>,
    what: &str,
) -> Result<Identity, Status> {
    let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
    let token = bearer(req.metadata()).inspect_err(|e| {
        warn!(%peer, call = what, reason = e.message(), "refused an unauthenticated call");
    })?;
    auth.authenticate(token).await.map_err(|e| {
        warn!(%peer, call = what, reason = %e, "refused a call with a bad credential");
        Status::unauthenticated(e.to_string())
    })
}

/// The proxy a node describes, checked against the identity the caller proved.
pub fn admit(node: &Node, proven: &Identity) -> Result<ProxyIdentity, Status> {
    let mut proxy: ProxyIdentity = serde_json::from_slice(&node.metadata_json)
        .map_err(|e| Status::invalid_argument(format!("node metadata: {e}")))?;
    proxy.id = node.id.clone();
    if !node.id.is_empty() {
        let parts: Vec<&str> = node.id.split('~').collect();
        let [kind, ip, name_ns, _domain] = parts[..] else {
            return Err(Status::invalid_argument(format!(
                "node id `{}` is not TYPE~IP~NAME.NAMESPACE~DOMAIN",
                node.id
            )));
        };
        let role = match kind {
            "sidecar" => Role::Sidecar,
            "router" => Role::Gateway,
            other => {
                return Err(Status::invalid_argument(format!(
                    "node id type `{other}` is neither sidecar nor router"
                )))
            }
        };
        if role != proxy.role {
            return Err(Status::invalid_argument(format!(
                "node id says {kind} but the metadata's role is {:?}",
                proxy.role
            )));
        }
        if let Ok(ip) = ip.parse() {
            if !proxy.ips.contains(&ip) {
                proxy.ips.insert(0, ip);
            }
        }
        if let Some((_, ns)) = name_ns.rsplit_once('.') {
            if ns != proxy.namespace {
                return Err(Status::invalid_argument(format!(
                    "node id names namespace `{ns}` but the metadata says `{}`",
                    proxy.namespace
                )));
            }
        }
    }
    if proxy.namespace != proven.namespace() {
        return Err(Status::permission_denied(format!(
            "the credential proves {proven}, which may not act for namespace `{}`",
            proxy.namespace
        )));
    }
    if proxy.service_account.is_empty() {
        proxy.service_account = proven.service_account().to_string();
    } else if proxy.service_account != proven.service_account() {
        return Err(Status::permission_denied(format!(
            "the credential proves {proven}, not service account `{}`",
            proxy.service_account
        )));
    }
    Ok(proxy)
}

/// The gRPC service.
pub struct Discovery<P> {
    provider: Arc<P>,
    auth: Arc<dyn Authenticator>,
    table: SyncTable,
    metrics: XdsMetrics,
    control_plane: String,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    next_conn: AtomicU64,
}

impl<P: Provider> Discovery<P> {
    pub fn new(
        provider: Arc<P>,
        auth: Arc<dyn Authenticator>,
        table: SyncTable,
        metrics: XdsMetrics,
        control_plane: String,
        max_concurrent_pushes: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Discovery {
            provider,
            auth,
            table,
            metrics,
            control_plane,
            permits: Arc::new(Semaphore::new(max_concurrent_pushes.max(1))),
            shutdown,
            next_conn: AtomicU64::new(1),
        }
    }
}

#[tonic::async_trait]
impl<P: Provider> AggregatedDiscoveryService for Discovery<P> {
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn delta_aggregated_resources(
        &self,
        req: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let proven = authenticate(self.auth.as_ref(), &req, "discovery").await?;
        let peer = req.remote_addr();
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before its first request"))?;
        let node = first
            .node
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("the first request has no node"))?;
        let proxy = admit(node, &proven).inspect_err(|e| {
            warn!(?peer, node = %node.id, %proven, reason = e.message(), "refused a proxy");
        })?;
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        info!(conn, node = %proxy.id, namespace = %proxy.namespace, ?peer, "proxy connected");
        self.table.insert(
            conn,
            ProxySync {
                proxy: if proxy.id.is_empty() {
                    format!("conn-{conn}")
                } else {
                    proxy.id.clone()
                },
                namespace: proxy.namespace.clone(),
                role: format!("{:?}", proxy.role).to_lowercase(),
                service_account: proxy.service_account.clone(),
                cluster_id: node.cluster.clone(),
                control_plane: self.control_plane.clone(),
                connected_at: unix_now(),
                types: Default::default(),
            },
        );
        let (tx, rx) = mpsc::channel(8);
        let stream = Stream {
            conn,
            guard: Some(self.provider.connected(&proxy)),
            proxy,
            provider: self.provider.clone(),
            table: self.table.clone(),
            metrics: self.metrics.clone(),
            control_plane: self.control_plane.clone(),
            permits: self.permits.clone(),
            tx,
            types: HashMap::new(),
            pending: VecDeque::new(),
            nonces: 0,
        };
        self.metrics.connected.inc();
        let pushes = self.provider.pushes();
        let shutdown = self.shutdown.clone();
        tokio::spawn(stream.run(first, inbound, pushes, shutdown));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// One type's subscription and what was sent of it.
struct TypeState {
    section: usize,
    wildcard: bool,
    names: BTreeSet<String>,
    /// Versions the proxy holds (or was last sent), by name.
    sent: HashMap<String, String>,
    /// The resources last diffed, to skip an unchanged type by pointer.
    last: Option<Arc<TypeResources>>,
    /// Whether anything was sent yet: the first response goes out even when empty, so the
    /// proxy knows it is in sync.
    responded: bool,
}

impl TypeState {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

struct Pending {
    seq: u64,
    nonce: String,
    section: usize,
    version: String,
    triggered: Instant,
}

struct Stream<P> {
    conn: u64,
    proxy: ProxyIdentity,
    guard: Option<Box<dyn Send + Sync>>,
    provider: Arc<P>,
    table: SyncTable,
    metrics: XdsMetrics,
    control_plane: String,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    types: HashMap<&'static str, TypeState>,
    pending: VecDeque<Pending>,
    nonces: u64,
}

/// Responses awaiting ACK kept per stream; a proxy that never answers cannot grow it further.
const MAX_PENDING: usize = 64;

impl<P: Provider> Stream<P> {
    async fn run(
        mut self,
        first: DeltaDiscoveryRequest,
        mut inbound: Streaming<DeltaDiscoveryRequest>,
        mut pushes: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        pushes.mark_unchanged();
        let mut next = Some(first);
        loop {
            if let Some(req) = next.take() {
                if let Err(e) = self.on_request(req).await {
                    debug!(conn = self.conn, error = %e, "stream closed while answering");
                    break;
                }
            }
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => next = Some(req),
                    Ok(None) => break,
                    Err(e) => {
                        debug!(conn = self.conn, error = %e, "stream error");
                        break;
                    }
                },
                changed = pushes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if self.push_all().await.is_err() {
                        break;
                    }
                }
                () = stopped(&mut shutdown) => break,
            }
        }
        info!(conn = self.conn, node = %self.proxy.id, "proxy disconnected");
        self.table.remove(self.conn);
        self.metrics.connected.dec();
        self.guard.take();
    }

    async fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Result<(), Closed> {
        let Some((index, section)) = section(&req.type_url) else {
            warn!(conn = self.conn, type_url = %req.type_url, "request for an unknown type ignored");
            return Ok(());
        };
        if !req.response_nonce.is_empty() {
            self.on_answer(&req, index);
        }
        let push = match self.types.get_mut(section.type_url) {
            None => {
                let names: BTreeSet<String> =
                    req.resource_names_subscribe.iter().cloned().collect();
                let wildcard = names.is_empty() || names.contains("*");
                self.types.insert(
                    section.type_url,
                    TypeState {
                        section: index,
                        wildcard,
                        names: names.into_iter().filter(|n| n != "*").collect(),
                        sent: req.initial_resource_versions.clone().into_iter().collect(),
                        last: None,
                        responded: false,
                    },
                );
                true
            }
            Some(ts) => {
                let mut changed = false;
                for n in &req.resource_names_subscribe {
                    changed |= if n == "*" {
                        !std::mem::replace(&mut ts.wildcard, true)
                    } else {
                        ts.names.insert(n.clone())
                    };
                }
                for n in &req.resource_names_unsubscribe {
                    if n == "*" {
                        ts.wildcard = false;
                    } else {
                        ts.names.remove(n);
                    }
                    // Forgotten, so a later subscribe sends it again.
                    ts.sent
                        .retain(|name, _| ts.wildcard || ts.names.contains(name));
                    changed = true;
                }
                if changed {
                    ts.last = None;
                }
                changed
            }
        };
        if let Some(ts) = self.types.get(section.type_url) {
            let subscribed = if ts.wildcard {
                vec!["*".to_string()]
            } else {
                ts.names.iter().cloned().collect()
            };
            self.table
                .update(self.conn, section.short, |t| t.subscribed = subscribed);
        }
        if push {
            let generated = self.generate().await;
            if let Some(g) = generated {
                self.send_type(&g, section.type_url).await?;
            }
        }
        Ok(())
    }

    fn on_answer(&mut self, req: &DeltaDiscoveryRequest, index: usize) {
        let short = SECTIONS[index].short;
        let Some(pos) = self
            .pending
            .iter()
            .position(|p| p.nonce == req.response_nonce)
        else {
            debug!(conn = self.conn, nonce = %req.response_nonce, "answer for an unknown nonce");
            return;
        };
        let p = self.pending.remove(pos).unwrap_or_else(|| unreachable!());
        // Answers come in order: older nonces of the same type were superseded.
        self.pending
            .retain(|o| !(o.section == p.section && o.seq < p.seq));
        match &req.error_detail {
            Some(err) => {
                warn!(conn = self.conn, node = %self.proxy.id, r#type = short, version = %p.version,
                    reason = %err.message, "proxy rejected a response (NACK)");
                self.metrics
                    .rejects
                    .get_or_create(&TypeLabels {
                        r#type: SECTIONS[index].label,
                    })
                    .inc();
                self.table.update(self.conn, short, |t| {
                    t.nack = Some(err.message.clone());
                    t.acked_nonce = p.nonce.clone();
                });
            }
            None => {
                self.metrics
                    .convergence
                    .observe(p.triggered.elapsed().as_secs_f64());
                self.table.update(self.conn, short, |t| {
                    t.acked_nonce = p.nonce.clone();
                    t.acked_version = p.version.clone();
                    t.nack = None;
                });
            }
        }
    }

    async fn generate(&self) -> Option<Arc<Generated>> {
        match self.provider.generate(&self.proxy).await {
            Ok(g) => Some(g),
            Err(e) => {
                warn!(conn = self.conn, node = %self.proxy.id, error = %e,
                    "no config for this proxy; it keeps what it has");
                None
            }
        }
    }

    async fn push_all(&mut self) -> Result<(), Closed> {
        let permits = self.permits.clone();
        let _permit = permits.acquire().await;
        let Some(g) = self.generate().await else {
            return Ok(());
        };
        for s in SECTIONS {
            if self.types.contains_key(s.type_url) {
                self.send_type(&g, s.type_url).await?;
            }
        }
        Ok(())
    }

    async fn send_type(&mut self, g: &Generated, type_url: &'static str) -> Result<(), Closed> {
        let started = Instant::now();
        let Some(ts) = self.types.get_mut(type_url) else {
            return Ok(());
        };
        let current = &g.sections[ts.section];
        if ts.responded && ts.last.as_ref().is_some_and(|l| Arc::ptr_eq(l, current)) {
            return Ok(());
        }
        let mut resources = Vec::new();
        let mut bytes = 0;
        for (name, res) in current.iter() {
            if !ts.wants(name) || ts.sent.get(name) == Some(&res.version) {
                continue;
            }
            bytes += res.body.len();
            ts.sent.insert(name.clone(), res.version.clone());
            resources.push(Resource {
                name: name.clone(),
                version: res.version.clone(),
                body: res.body.clone(),
            });
        }
        let mut removed: Vec<String> = ts
            .sent
            .keys()
            .filter(|n| !current.contains_key(*n))
            .cloned()
            .collect();
        removed.sort();
        for n in &removed {
            ts.sent.remove(n);
        }
        ts.last = Some(current.clone());
        if ts.responded && resources.is_empty() && removed.is_empty() {
            return Ok(());
        }
        ts.responded = true;
        let index = ts.section;
        let section = &SECTIONS[index];
        self.nonces += 1;
        let nonce = format!("{}-{}", self.conn, self.nonces);
        let count = resources.len();
        let response = DeltaDiscoveryResponse {
            system_version_info: g.version.clone(),
            type_url: type_url.to_string(),
            resources,
            removed_resources: removed,
            nonce: nonce.clone(),
            control_plane: self.control_plane.clone(),
        };
        let labels = TypeLabels {
            r#type: section.label,
        };
        self.metrics.pushes.get_or_create(&labels).inc();
        self.metrics
            .push_bytes
            .get_or_create(&labels)
            .inc_by(bytes as u64);
        self.metrics
            .config_size
            .get_or_create(&labels)
            .observe(bytes as f64);
        let total = current.len();
        self.table.update(self.conn, section.short, |t| {
            t.type_url = type_url.to_string();
            t.sent_nonce = nonce.clone();
            t.sent_version = g.version.clone();
            t.resources = total;
        });
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            seq: self.nonces,
            nonce,
            section: index,
            version: g.version.clone(),
            triggered: g.triggered,
        });
        debug!(
            conn = self.conn,
            r#type = section.short,
            resources = count,
            bytes,
            "sent"
        );
        self.tx.send(Ok(response)).await.map_err(|_| Closed)?;
        self.metrics
            .push_time
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The proxy's end of the stream is gone.
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the proxy's stream is closed")
    }
}
