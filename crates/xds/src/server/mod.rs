//! The discovery server: one task per proxy stream, with xDS's delta semantics.
//!
//! A stream starts with a bearer token (checked by the [`Authenticator`]) and a first request
//! whose node names the proxy; the node's namespace and service account must be the ones the
//! token proves. Each type's first request subscribes (wildcard unless it names resources) and
//! may carry the versions the proxy already holds, so a reconnecting proxy gets only what
//! changed. On every push signal the stream asks the [`Provider`] for its resources, finds what
//! differs from what the proxy holds (the shape's delta when the proxy holds the section it
//! starts from, else by comparing versions), and sends per type (in [`SECTIONS`] order) only the
//! changed and removed ones, in responses of bounded size, each with a fresh nonce.
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
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::metrics::{TypeLabels, XdsMetrics};
use crate::pb::aggregated_discovery_service_server::AggregatedDiscoveryService;
use crate::pb::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Node, Resource};
use crate::resources::{section, Generated, SECTIONS};
use crate::status::{unix_now, ProxySync, SyncTable};

mod held;

use held::{next_chunk, Diff, TypeState};

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
    unacked: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    next_conn: AtomicU64,
}

/// Bytes of large responses sent but not yet answered, across all streams, in KiB permits.
/// A thousand proxies connecting at once each get their whole config (megabytes with ten
/// thousand services), and each response is held encoded until the proxy reads it: without a
/// bound the control plane's memory is the sum of every proxy's config. Proxies answer every
/// response as it arrives (incomplete ones included), so the budget frees as fast as proxies
/// read; one that never answers gives its share back after [`UNACKED_HOLD`].
const UNACKED_BUDGET_KIB: usize = 128 * 1024;
/// Responses smaller than this are not counted: incremental pushes never wait on the budget.
const UNACKED_MIN_BYTES: usize = 64 * 1024;
/// How long a response's share of the budget waits for its answer.
const UNACKED_HOLD: std::time::Duration = std::time::Duration::from_secs(30);

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
            unacked: Arc::new(Semaphore::new(UNACKED_BUDGET_KIB)),
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
            unacked: self.unacked.clone(),
            tx,
            inbound,
            deferred: VecDeque::new(),
            types: HashMap::new(),
            pending: VecDeque::new(),
            nonces: 0,
        };
        self.metrics.connected.inc();
        let pushes = self.provider.pushes();
        let shutdown = self.shutdown.clone();
        tokio::spawn(stream.run(first, pushes, shutdown));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Pending {
    seq: u64,
    nonce: String,
    section: usize,
    version: String,
    triggered: Instant,
    /// Dropped with the entry (answered, superseded, stream gone): gives the response's share
    /// of the unacknowledged-bytes budget back.
    _budget: Option<oneshot::Sender<()>>,
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
    unacked: Arc<Semaphore>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    /// The proxy's requests. Read while responses wait to go out as well (see
    /// [`Stream::deliver`]), not only between pushes.
    inbound: Streaming<DeltaDiscoveryRequest>,
    /// Requests read during a push that change subscriptions: handled after it.
    deferred: VecDeque<DeltaDiscoveryRequest>,
    types: HashMap<&'static str, TypeState>,
    pending: VecDeque<Pending>,
    nonces: u64,
}

/// Responses awaiting ACK kept per stream; a proxy that never answers cannot grow it further.
const MAX_PENDING: usize = 1024;

impl<P: Provider> Stream<P> {
    async fn run(
        mut self,
        first: DeltaDiscoveryRequest,
        mut pushes: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        pushes.mark_unchanged();
        self.deferred.push_back(first);
        'stream: loop {
            while let Some(req) = self.deferred.pop_front() {
                if let Err(e) = self.on_request(req).await {
                    debug!(conn = self.conn, error = %e, "stream closed while answering");
                    break 'stream;
                }
            }
            tokio::select! {
                msg = self.inbound.message() => match msg {
                    Ok(Some(req)) => self.deferred.push_back(req),
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
                        base: None,
                        overlay: req
                            .initial_resource_versions
                            .iter()
                            .map(|(name, version)| (name.clone(), Some(version.clone())))
                            .collect(),
                        responded: false,
                    },
                );
                true
            }
            Some(ts) => {
                let mut changed = false;
                for n in &req.resource_names_subscribe {
                    if n == "*" {
                        if !ts.wildcard {
                            // Only the names subscribed by name are held.
                            let kept: HashMap<String, Option<String>> = ts
                                .names
                                .iter()
                                .map(|name| (name.clone(), ts.held(name).map(str::to_string)))
                                .collect();
                            ts.wildcard = true;
                            ts.overlay = kept;
                            ts.base = Some(Arc::default());
                            changed = true;
                        }
                    } else if ts.names.insert(n.clone()) && !ts.wildcard {
                        ts.overlay.insert(n.clone(), None);
                        changed = true;
                    }
                }
                for n in &req.resource_names_unsubscribe {
                    // Forgotten by the proxy, so a later subscribe sends it again.
                    if n == "*" {
                        // The proxy keeps the names it subscribed to by name.
                        let kept: HashMap<String, Option<String>> = ts
                            .names
                            .iter()
                            .map(|name| (name.clone(), ts.held(name).map(str::to_string)))
                            .collect();
                        ts.wildcard = false;
                        ts.overlay = kept;
                        ts.base = None;
                    } else {
                        ts.names.remove(n);
                        ts.overlay.remove(n);
                    }
                    changed = true;
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

    /// Queue `response` for the proxy, reading its requests while the queue is full. A proxy
    /// answers every response as it applies it, so during a large push its answers keep coming:
    /// left unread they would pile up in HTTP/2's receive buffers, each small frame holding on
    /// to a whole read buffer (about 100 KB per proxy in a full push), and the budget shares
    /// they release would stay taken until the push ends.
    async fn deliver(&mut self, response: DeltaDiscoveryResponse) -> Result<(), Closed> {
        loop {
            let req = tokio::select! {
                permit = self.tx.reserve() => {
                    permit.map_err(|_| Closed)?.send(Ok(response));
                    return Ok(());
                }
                msg = self.inbound.message() => match msg {
                    Ok(Some(req)) => req,
                    Ok(None) | Err(_) => return Err(Closed),
                },
            };
            self.answered_early(req);
        }
    }

    /// An answer read during a push is taken now; anything that changes a subscription waits
    /// for the push to end, in order. Answers may overtake subscription changes: they only
    /// settle responses already sent, which no subscription change touches.
    fn answered_early(&mut self, req: DeltaDiscoveryRequest) {
        let only_answer = !req.response_nonce.is_empty()
            && req.resource_names_subscribe.is_empty()
            && req.resource_names_unsubscribe.is_empty();
        match section(&req.type_url) {
            Some((index, _)) if only_answer => self.on_answer(&req, index),
            _ => self.deferred.push_back(req),
        }
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
        if self.pending.is_empty() {
            // A full push leaves room for hundreds of entries that an idle stream never needs.
            self.pending.shrink_to(8);
        }
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
        // Out of the map while it is sent, so the stream's other fields stay free to use.
        let Some(mut ts) = self.types.remove(type_url) else {
            return Ok(());
        };
        let sent = self.send_diff(&mut ts, g).await;
        self.types.insert(type_url, ts);
        sent
    }

    async fn send_diff(&mut self, ts: &mut TypeState, g: &Generated) -> Result<(), Closed> {
        let started = Instant::now();
        let index = ts.section;
        let current = g.sections[index].clone();
        if ts.holds(&current) {
            return Ok(());
        }
        let diff = ts.diff(&current, g.deltas[index].as_deref());
        let (count, bytes) = diff
            .sends()
            .fold((0, 0), |(n, b), (_, r)| (n + 1, b + r.body.len()));
        let removed = diff.removed();
        if !(ts.responded && count == 0 && removed.is_empty()) {
            // Before the response is built: waiting ones then hold nothing.
            let holding = self.pending.iter().any(|p| p._budget.is_some());
            let budget = hold_budget(&self.unacked, bytes, holding).await;
            self.send_parts(&diff, removed, budget, g, index, current.len())
                .await?;
            let section = &SECTIONS[index];
            let labels = TypeLabels {
                r#type: section.label,
            };
            self.metrics
                .config_size
                .get_or_create(&labels)
                .observe(bytes as f64);
            self.metrics
                .push_time
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
        }
        drop(diff);
        ts.base = Some(current);
        ts.overlay.clear();
        ts.responded = true;
        Ok(())
    }

    /// `diff` as responses of bounded size; the removed names and the budget's share go with the
    /// last, and there is always at least one.
    async fn send_parts(
        &mut self,
        diff: &Diff<'_>,
        removed: Vec<String>,
        mut budget: Option<oneshot::Sender<()>>,
        g: &Generated,
        index: usize,
        total: usize,
    ) -> Result<(), Closed> {
        let section = &SECTIONS[index];
        let labels = TypeLabels {
            r#type: section.label,
        };
        let mut sends = diff.sends().peekable();
        let mut removed = Some(removed);
        for part in 1.. {
            let resources: Vec<Resource> = next_chunk(&mut sends)
                .into_iter()
                .map(|(name, res)| Resource {
                    name: name.clone(),
                    version: res.version.clone(),
                    body: res.body.clone(),
                })
                .collect();
            let last = sends.peek().is_none();
            let chunk_bytes: usize = resources.iter().map(|r| r.body.len()).sum();
            self.nonces += 1;
            let nonce = format!("{}-{}", self.conn, self.nonces);
            let count = resources.len();
            let response = DeltaDiscoveryResponse {
                system_version_info: g.version.clone(),
                type_url: section.type_url.to_string(),
                resources,
                removed_resources: if last {
                    removed.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
                nonce: nonce.clone(),
                control_plane: self.control_plane.clone(),
            };
            self.metrics.pushes.get_or_create(&labels).inc();
            self.metrics
                .push_bytes
                .get_or_create(&labels)
                .inc_by(chunk_bytes as u64);
            self.table.update(self.conn, section.short, |t| {
                t.type_url = section.type_url.to_string();
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
                _budget: if last { budget.take() } else { None },
            });
            debug!(
                conn = self.conn,
                r#type = section.short,
                resources = count,
                bytes = chunk_bytes,
                part,
                last,
                "sent"
            );
            self.deliver(response).await?;
            if last {
                break;
            }
        }
        Ok(())
    }
}

/// A large response's share of the unacknowledged-bytes budget, held until the returned sender
/// is dropped or [`UNACKED_HOLD`] passes. A stream that holds no share waits for one; a stream
/// that already holds one takes what is free without waiting, since its own answers, which would
/// free its share, are not read while it waits: streams holding the budget must never wait on
/// each other.
async fn hold_budget(
    unacked: &Arc<Semaphore>,
    bytes: usize,
    holding: bool,
) -> Option<oneshot::Sender<()>> {
    if bytes < UNACKED_MIN_BYTES {
        return None;
    }
    let kib = u32::try_from((bytes / 1024).min(UNACKED_BUDGET_KIB)).unwrap_or(u32::MAX);
    let permit = if holding {
        unacked.clone().try_acquire_many_owned(kib).ok()?
    } else {
        unacked.clone().acquire_many_owned(kib).await.ok()?
    };
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(UNACKED_HOLD, rx).await;
        drop(permit);
    });
    Some(tx)
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
