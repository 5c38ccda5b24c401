//! The HTTP data path: one call per downstream request, from routing to the upstream response.
//!
//! Each request loads the current [`State`] once and uses it to the end, so a snapshot swap
//! never changes a request half way through.
//!
//! - [`fault`]: injected delays and aborts; [`retry`]: attempts, timeouts and retries;
//!   [`mirror`]: shadow copies; [`body`]: the request body kept for those three.

pub mod body;
pub mod fault;
pub mod headers;
pub mod mirror;
pub mod retry;
pub mod server;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use model::runtime::{
    redirect_location, CompiledCors, RuntimeAction, RuntimeForward, RuntimeRoute,
};
use model::RequestView;
use prometheus_client::metrics::counter::Counter;

use crate::error::{FlagSet, RequestError, ResponseFlag};
use crate::state::State;
use crate::Shared;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What a request knows about the connection it came on.
pub struct ConnInfo {
    pub listener: Arc<str>,
    pub port: u16,
    pub peer: SocketAddr,
    /// The peer's IP as a header value, made once per connection for `x-forwarded-for`.
    pub peer_ip: HeaderValue,
    /// Captured connections: where the client was going (iptables' original destination).
    pub original_dst: Option<SocketAddr>,
    /// Arrived on the virtual inbound listener (for the workload, not from it).
    pub inbound: bool,
    /// The mesh identity proven over mTLS, for XFCC and authorization.
    pub mesh_peer: Option<Arc<crate::mtls::PeerInfo>>,
}

impl ConnInfo {
    pub fn new(listener: Arc<str>, port: u16, peer: SocketAddr) -> ConnInfo {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            listener,
            port,
            peer,
            peer_ip,
            original_dst: None,
            inbound: false,
            mesh_peer: None,
        }
    }

    /// A captured connection: routing sees the port the client dialed.
    pub fn captured(mut self, original_dst: SocketAddr, inbound: bool) -> ConnInfo {
        self.port = original_dst.port();
        self.original_dst = Some(original_dst);
        self.inbound = inbound;
        self
    }

    pub fn with_peer(mut self, peer: crate::mtls::PeerInfo) -> ConnInfo {
        self.mesh_peer = Some(Arc::new(peer));
        self
    }
}

static EMPTY_LABELS: std::sync::LazyLock<std::collections::BTreeMap<String, String>> =
    std::sync::LazyLock::new(Default::default);

/// Serves one request. Never fails: every error becomes a response with its status.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    // Counts DC if the client goes away before a response: hyper drops this future then.
    let mut guard = RequestGuard {
        shared: &shared,
        done: false,
    };
    let state = shared.store.load();
    let mut flags = FlagSet::default();
    let (resp, counters) = match proxy(&shared, &conn, &state, req, &mut flags).await {
        Ok(r) => r,
        Err(e) => {
            flags.add(e.flag);
            tracing::debug!(error = %e, listener = &*conn.listener, "request failed");
            (error_response(&e), None)
        }
    };
    for flag in flags.iter() {
        shared.metrics.error(flag);
    }
    if !flags.is_empty() {
        tracing::debug!(status = resp.status().as_u16(), response_flags = %flags, "flagged response");
    }
    let class = crate::metrics::CodeClass::of(resp.status().as_u16()).index();
    counters.unwrap_or(&shared.local_counters)[class].inc();
    guard.done = true;
    Ok(resp)
}

struct RequestGuard<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.metrics.error(ResponseFlag::DC);
        }
    }
}

type Routed<'s> = (Response<ProxyBody>, Option<&'s [Counter; 5]>);

async fn proxy<'s>(
    shared: &Shared,
    conn: &ConnInfo,
    state: &'s Arc<State>,
    req: Request<Incoming>,
    flags: &mut FlagSet,
) -> Result<Routed<'s>, RequestError> {
    let no_route = || RequestError::new(ResponseFlag::NR, "no route");
    let table = state
        .runtime
        .listener(&conn.listener)
        .and_then(|l| l.kind.http_table(conn.original_dst))
        .ok_or_else(no_route)?;
    let authority = authority_of(&req)?;
    let view = RequestView {
        method: req.method(),
        scheme: "http",
        authority: authority.to_str().unwrap_or(""),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        port: conn.port,
        source_labels: &EMPTY_LABELS,
        source_namespace: None,
    };
    let hit = state.runtime.route(table, &view).ok_or_else(no_route)?;
    let route = hit.route;
    let origin = req.headers().get(header::ORIGIN).cloned();
    let cors = route
        .cors
        .as_ref()
        .filter(|c| origin_allowed(c, origin.as_ref()));

    if let Some(c) = cors {
        if is_preflight(&req) {
            return Ok((preflight(c, origin.as_ref()), None));
        }
    }

    let (mut resp, counters) = match &route.action {
        RuntimeAction::Direct { status, body } => (local(*status, body.clone()), None),
        RuntimeAction::Redirect(r) => {
            let location = redirect_location(r, &view);
            let mut resp = local(
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY),
                Bytes::new(),
            );
            let location = HeaderValue::from_str(&location)
                .map_err(|_| RequestError::new(ResponseFlag::DPE, "unrepresentable redirect"))?;
            resp.headers_mut().insert(header::LOCATION, location);
            (resp, None)
        }
        RuntimeAction::Forward(f) => {
            let aborted = match &f.fault {
                Some(fault) => fault::inject(fault, &shared.random, flags).await,
                None => None,
            };
            match aborted {
                Some(resp) => (resp, None),
                None => {
                    let new_path = f
                        .rewrite
                        .as_ref()
                        .and_then(|rw| rw.path(view.path, hit.matched));
                    let (resp, counters) = forward(
                        shared, conn, state, route, f, req, authority, new_path, flags,
                    )
                    .await?;
                    (resp, Some(counters))
                }
            }
        }
    };
    route.response_headers.apply(resp.headers_mut());
    if let (Some(c), Some(o)) = (cors, origin) {
        add_cors(c, o, resp.headers_mut());
    }
    Ok((resp, counters))
}

#[allow(clippy::too_many_arguments)]
async fn forward<'s>(
    shared: &Shared,
    conn: &ConnInfo,
    state: &'s Arc<State>,
    route: &RuntimeRoute,
    f: &RuntimeForward,
    mut req: Request<Incoming>,
    authority: HeaderValue,
    new_path: Option<String>,
    flags: &mut FlagSet,
) -> Result<(Response<ProxyBody>, &'s [Counter; 5]), RequestError> {
    let ci = f.clusters.pick(shared.random.u64());
    let cluster = &state.runtime.clusters[ci];
    let cs = &state.clusters[ci];

    let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::add_forwarding(&mut parts.headers, &conn.peer_ip, "http");
    if conn.original_dst.is_some() {
        // Captured: inbound appends the mTLS peer's element, outbound removes what the
        // application sent (Envoy's APPEND_FORWARD and SANITIZE, as Istio configures sidecars).
        crate::mtls::forward_client_cert(&mut parts.headers, conn.mesh_peer.as_deref());
    }
    let rewritten = f.rewrite.as_ref().and_then(|rw| rw.authority.clone());
    let authority = rewritten.unwrap_or(authority);
    route.request_headers.apply(&mut parts.headers);
    let path_and_query = match new_path {
        Some(p) => {
            let pq = match parts.uri.query() {
                Some(q) => format!("{p}?{q}"),
                None => p,
            };
            PathAndQuery::try_from(pq)
                .map_err(|_| RequestError::new(ResponseFlag::DPE, "rewritten path is invalid"))?
        }
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };
    let out = retry::Outgoing {
        method: parts.method,
        headers: parts.headers,
        path_and_query,
        authority,
    };
    let mut replay = body::Replay::new(body, body::REPLAY_LIMIT);
    if !upgrade {
        for m in &f.mirrors {
            mirror::spawn(shared, state, m, &out, &replay, f.timeout);
        }
    }
    // An upgraded connection is tied to the one attempt that answered 101: never retried.
    let policy = f.retry.as_deref().filter(|_| !upgrade);
    let via = retry::Via {
        state,
        ci,
        original_dst: conn.original_dst,
        mesh: shared.certs.as_ref().map(|c| &c.mesh),
        clients: &shared.mesh_clients,
    };
    let mut resp = retry::run(
        shared,
        cluster,
        cs,
        via,
        policy,
        f.timeout,
        out,
        &mut replay,
        flags,
    )
    .await?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(downstream) = on_upgrade {
            let upstream = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(downstream, upstream, shared.drain.watch()));
        }
        headers::strip_hop_by_hop(resp.headers_mut(), true);
    } else {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
    }
    Ok((
        resp.map(|b| b.map_err(BoxError::from).boxed_unsync()),
        &cs.counters,
    ))
}

fn uri(authority: Option<Authority>, pq: PathAndQuery) -> Result<Uri, RequestError> {
    let authority =
        authority.ok_or_else(|| RequestError::new(ResponseFlag::DPE, "invalid authority"))?;
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(pq)
        .build()
        .map_err(|e| RequestError::new(ResponseFlag::DPE, e.to_string()))
}

/// Copies bytes both ways between an upgraded client and backend until either closes, or
/// the drain is forced.
async fn tunnel(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    mut drain: crate::drain::DrainWatch,
) {
    let (d, u) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let (mut d, mut u) = (TokioIo::new(d), TokioIo::new(u));
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut d, &mut u) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        }
        _ = drain.reached(crate::drain::Phase::Forced) => {}
    }
}

/// `:authority` for HTTP/2 and absolute-form requests, else the Host header (an empty one if
/// absent: only a `*` virtual host matches it). Cloning a parsed header shares its bytes.
fn authority_of(req: &Request<Incoming>) -> Result<HeaderValue, RequestError> {
    if let Some(a) = req.uri().authority() {
        return HeaderValue::from_str(a.as_str())
            .map_err(|_| RequestError::new(ResponseFlag::DPE, "invalid authority"));
    }
    Ok(req
        .headers()
        .get(header::HOST)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("")))
}

fn local(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut resp = Response::new(Full::new(body).map_err(|e| match e {}).boxed_unsync());
    *resp.status_mut() = status;
    resp
}

fn error_response(e: &RequestError) -> Response<ProxyBody> {
    let mut resp = local(e.flag.status(), Bytes::from(e.body()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn origin_allowed(c: &CompiledCors, origin: Option<&HeaderValue>) -> bool {
    origin
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| c.origin_allowed(o))
}

fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn preflight(c: &CompiledCors, origin: Option<&HeaderValue>) -> Response<ProxyBody> {
    let mut resp = local(StatusCode::OK, Bytes::new());
    let h = resp.headers_mut();
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
    }
    if let Some(v) = &c.allow_methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    if let Some(v) = &c.allow_headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &c.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    if c.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    resp
}

fn add_cors(c: &CompiledCors, origin: HeaderValue, h: &mut http::HeaderMap) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Some(v) = &c.expose_headers {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    if c.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}
