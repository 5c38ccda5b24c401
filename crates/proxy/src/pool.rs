//! Circuit breakers and the limited connection pool used for clusters with a
//! `connectionPool` or `tls` policy.
//!
//! As Envoy configures them from Istio's settings, the thresholds are per cluster, not per host:
//! `maxConnections` caps the cluster's upstream connections, `http1MaxPendingRequests` the
//! requests waiting for one, `http2MaxRequests` the requests in flight, `maxRetries` the retries
//! in flight. A request that finds no idle connection is pending (Envoy counts it so while its
//! connection is being made too); one that finds the pending queue full fails with `UO`.
//! Connections are per endpoint and carry `maxRequestsPerConnection` requests at most.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use model::ConnectionPool;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::error::{RequestError, ResponseFlag};
use crate::mtls::UpstreamSecurity;
use crate::upstream::UpstreamBody;
use crate::upstream_tls::Connector;

/// A counter that refuses to pass a limit; `None` never refuses.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU32);

impl Gauge {
    pub fn try_acquire(&self, limit: Option<u32>) -> bool {
        let limit = limit.unwrap_or(u32::MAX);
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn release(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// One cluster's circuit-breaker counters, kept across snapshots.
#[derive(Debug, Default)]
pub struct Breakers {
    pub connections: Gauge,
    pub pending: Gauge,
    pub requests: Gauge,
    pub retries: Gauge,
}

/// Releases one unit of a [`Gauge`] when dropped.
pub struct Slot(Arc<Breakers>, fn(&Breakers) -> &Gauge);

impl Slot {
    pub fn acquire(
        b: &Arc<Breakers>,
        which: fn(&Breakers) -> &Gauge,
        limit: Option<u32>,
    ) -> Option<Slot> {
        which(b).try_acquire(limit).then(|| Slot(b.clone(), which))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        (self.1)(&self.0).release();
    }
}

enum Sender {
    H1(http1::SendRequest<UpstreamBody>),
    H2(http2::SendRequest<UpstreamBody>),
}

struct Idle {
    sender: Sender,
    created: Instant,
    idle_since: Instant,
    used: u32,
}

/// Which protocol a pool speaks upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// A pool for one cluster: idle connections per endpoint under the cluster's breakers.
pub struct Pool {
    pub proto: Proto,
    pub settings: ConnectionPool,
    pub connect_timeout: Duration,
    /// The TLS connector, or why the cluster's TLS settings are unusable.
    tls: Result<Option<Connector>, String>,
    breakers: Arc<Breakers>,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    /// Woken when a connection is returned or closed, for pending requests.
    freed: Arc<Notify>,
    me: std::sync::Weak<Pool>,
}

impl Pool {
    pub fn new(
        proto: Proto,
        settings: ConnectionPool,
        connect_timeout: Duration,
        tls: Result<Option<Connector>, String>,
        breakers: Arc<Breakers>,
    ) -> Arc<Pool> {
        Arc::new_cyclic(|me| Pool {
            proto,
            settings,
            connect_timeout,
            tls,
            breakers,
            idle: Mutex::new(HashMap::new()),
            freed: Arc::new(Notify::new()),
            me: me.clone(),
        })
    }

    /// Sends `req` to `addr`. `Err` with `UO` when the pending queue is full.
    pub async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        sec: &UpstreamSecurity,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, PoolError> {
        let (sender, created, used) = self.acquire(addr, sec).await?;
        match sender {
            Sender::H1(mut s) => {
                let resp = s
                    .send_request(req)
                    .await
                    .map_err(|e| PoolError::Upstream(classify(&e)))?;
                let pool = self.clone();
                // The connection is free again once the response body has been read: hyper's
                // `ready` resolves then. Waiting here keeps the proxy's body type untouched.
                tokio::spawn(async move {
                    if s.ready().await.is_ok() {
                        pool.put(addr, Sender::H1(s), created, used + 1);
                    }
                });
                Ok(resp)
            }
            Sender::H2(mut s) => {
                if used == 0 {
                    // A new connection: make it available to others.
                    self.put(addr, Sender::H2(s.clone()), created, 1);
                }
                s.ready()
                    .await
                    .map_err(|e| PoolError::Upstream(classify(&e)))?;
                s.send_request(req)
                    .await
                    .map_err(|e| PoolError::Upstream(classify(&e)))
            }
        }
    }

    /// Sends one request prepared for this pool's protocol. A full pending queue counts an
    /// overflow on `cs` and fails with `UO`.
    pub async fn request(
        self: &Arc<Self>,
        cs: &crate::state::ClusterState,
        addr: SocketAddr,
        sec: &UpstreamSecurity,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, RequestError> {
        match self.send(addr, sec, req).await {
            Ok(r) => Ok(r),
            Err(PoolError::Overflow) => {
                cs.overflowed();
                Err(RequestError::new(
                    ResponseFlag::UO,
                    "pending requests overflow",
                ))
            }
            Err(PoolError::Upstream(e)) => Err(e),
        }
    }

    async fn acquire(
        &self,
        addr: SocketAddr,
        sec: &UpstreamSecurity,
    ) -> Result<(Sender, Instant, u32), PoolError> {
        if let Some(hit) = self.take(addr) {
            return Ok(hit);
        }
        let Some(_pending) = Slot::acquire(
            &self.breakers,
            |b| &b.pending,
            self.settings.max_pending_requests,
        ) else {
            return Err(PoolError::Overflow);
        };
        loop {
            let freed = self.freed.notified();
            if let Some(hit) = self.take(addr) {
                return Ok(hit);
            }
            if self
                .breakers
                .connections
                .try_acquire(self.settings.max_connections)
            {
                return match self.connect(addr, sec).await {
                    Ok(s) => Ok((s, Instant::now(), 0)),
                    Err(e) => {
                        self.breakers.connections.release();
                        self.freed.notify_waiters();
                        Err(PoolError::Upstream(e))
                    }
                };
            }
            // Bounded wait so a missed wake-up costs latency, never a hang.
            let _ = tokio::time::timeout(Duration::from_millis(50), freed).await;
        }
    }

    fn take(&self, addr: SocketAddr) -> Option<(Sender, Instant, u32)> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(c) = list.pop() {
            if self.expired(&c, now) {
                continue;
            }
            let live = match &c.sender {
                Sender::H1(s) => !s.is_closed() && s.is_ready(),
                Sender::H2(s) => !s.is_closed(),
            };
            if !live {
                continue;
            }
            if let Sender::H2(shared) = &c.sender {
                // A multiplexed connection stays available to others while this stream runs.
                let mine = Sender::H2(shared.clone());
                let (created, used) = (c.created, c.used);
                list.push(Idle {
                    used: used + 1,
                    ..c
                });
                return Some((mine, created, used));
            }
            return Some((c.sender, c.created, c.used));
        }
        None
    }

    fn expired(&self, c: &Idle, now: Instant) -> bool {
        let s = &self.settings;
        let over = |limit: Option<u64>, since: Instant| {
            limit.is_some_and(|ms| ms > 0 && now.duration_since(since) >= Duration::from_millis(ms))
        };
        s.max_requests_per_connection.is_some_and(|m| c.used >= m)
            || over(s.max_connection_duration_ms, c.created)
            || over(s.idle_timeout_ms, c.idle_since)
    }

    fn put(&self, addr: SocketAddr, sender: Sender, created: Instant, used: u32) {
        let c = Idle {
            sender,
            created,
            idle_since: Instant::now(),
            used,
        };
        if !self.expired(&c, c.idle_since) {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let list = idle.entry(addr).or_default();
            if let Sender::H2(_) = c.sender {
                // One shared HTTP/2 connection per endpoint.
                list.clear();
            }
            list.push(c);
            drop(idle);
            self.sweep_later(addr);
        }
        // Dropping an expired sender closes its connection; the connection task frees the slot.
        self.freed.notify_waiters();
    }

    /// With an idle timeout, closes the endpoint's expired idle connections once it passes,
    /// so the backend sees them go rather than waiting for the next request to notice.
    fn sweep_later(&self, addr: SocketAddr) {
        let Some(ms) = self.settings.idle_timeout_ms.filter(|ms| *ms > 0) else {
            return;
        };
        let Some(me) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let now = Instant::now();
            let mut idle = me.idle.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = idle.get_mut(&addr) {
                list.retain(|c| !me.expired(c, now));
            }
        });
    }

    /// A new connection: the DestinationRule's TLS when set, else mesh mTLS (or a bound source)
    /// as `sec` says, else plain TCP.
    async fn connect(
        &self,
        addr: SocketAddr,
        sec: &UpstreamSecurity,
    ) -> Result<Sender, RequestError> {
        if matches!(self.tls, Ok(None)) && !sec.is_plain() {
            let io = crate::mtls::connect(addr, sec, self.connect_timeout)
                .await
                .map_err(|e| RequestError::new(ResponseFlag::UF, format!("{addr}: {e}")))?;
            let (breakers, freed) = (self.breakers.clone(), self.freed.clone());
            let on_close = move || {
                breakers.connections.release();
                freed.notify_waiters();
            };
            return self.handshake(TokioIo::new(io), addr, on_close).await;
        }
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RequestError::new(ResponseFlag::UF, format!("{addr}: connect timeout")))?
            .map_err(|e| RequestError::new(ResponseFlag::UF, format!("{addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if let Some(k) = &self.settings.tcp_keepalive {
            set_keepalive(&tcp, k);
        }
        let breakers = self.breakers.clone();
        let freed = self.freed.clone();
        let on_close = move || {
            breakers.connections.release();
            freed.notify_waiters();
        };
        match &self.tls {
            Err(reason) => {
                on_close();
                Err(RequestError::new(
                    ResponseFlag::UF,
                    format!("{addr}: TLS settings: {reason}"),
                ))
            }
            Ok(None) => self.handshake(TokioIo::new(tcp), addr, on_close).await,
            Ok(Some(t)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    t.connector.connect(t.server_name.clone(), tcp),
                )
                .await
                .map_err(|_| {
                    RequestError::new(ResponseFlag::UF, format!("{addr}: TLS handshake timeout"))
                })?
                .map_err(|e| {
                    RequestError::new(ResponseFlag::UF, format!("{addr}: TLS error: {e}"))
                })?;
                self.handshake(TokioIo::new(tls), addr, on_close).await
            }
        }
    }

    async fn handshake<T>(
        &self,
        io: T,
        addr: SocketAddr,
        on_close: impl FnOnce() + Send + 'static,
    ) -> Result<Sender, RequestError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let fail = |e: hyper::Error| RequestError::new(ResponseFlag::UF, format!("{addr}: {e}"));
        match self.proto {
            Proto::H1 => {
                let (s, conn) = http1::Builder::new().handshake(io).await.map_err(fail)?;
                tokio::spawn(async move {
                    if let Err(e) = conn.with_upgrades().await {
                        tracing::debug!(%addr, error = %e, "upstream connection closed");
                    }
                    on_close();
                });
                Ok(Sender::H1(s))
            }
            Proto::H2 => {
                let (s, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(fail)?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%addr, error = %e, "upstream h2 connection closed");
                    }
                    on_close();
                });
                Ok(Sender::H2(s))
            }
        }
    }

    /// Open idle connections per endpoint, for `/clusters`.
    pub fn idle_count(&self, addr: SocketAddr) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.get(&addr).map_or(0, Vec::len)
    }
}

/// A pool failure: overflow (UO) or an upstream error with its flag.
#[derive(Debug)]
pub enum PoolError {
    Overflow,
    Upstream(RequestError),
}

fn classify(e: &hyper::Error) -> RequestError {
    if e.is_parse() || e.is_parse_status() {
        return RequestError::new(ResponseFlag::UPE, e.to_string());
    }
    if e.is_user() || e.is_body_write_aborted() {
        return RequestError::new(ResponseFlag::DC, e.to_string());
    }
    RequestError::new(ResponseFlag::UC, e.to_string())
}

/// `tcpKeepalive`: SO_KEEPALIVE with the probe count, idle time and interval when given.
fn set_keepalive(tcp: &TcpStream, k: &model::policy::TcpKeepalive) {
    use nix::sys::socket::{setsockopt, sockopt};
    let fd = std::os::fd::AsFd::as_fd(tcp);
    let secs = |ms: u64| u32::try_from(ms.div_ceil(1000).max(1)).unwrap_or(u32::MAX);
    let mut result = setsockopt(&fd, sockopt::KeepAlive, &true);
    if let Some(p) = k.probes {
        result = result.and(setsockopt(&fd, sockopt::TcpKeepCount, &p));
    }
    if let Some(t) = k.time_ms {
        result = result.and(setsockopt(&fd, sockopt::TcpKeepIdle, &secs(t)));
    }
    if let Some(i) = k.interval_ms {
        result = result.and(setsockopt(&fd, sockopt::TcpKeepInterval, &secs(i)));
    }
    if let Err(e) = result {
        tracing::debug!(error = %e, "tcp keepalive not set");
    }
}
