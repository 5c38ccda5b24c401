//! Bowline's data plane.
//!
//! - [`state`]: the live configuration, one compiled snapshot behind an `ArcSwap`, and
//!   per-cluster load-balancing state.
//! - [`listeners`]: sockets that follow the snapshot, and dispatch by listener kind.
//! - [`http`]: the HTTP path: routing, rewrites, header rules, faults, retries, mirrors,
//!   upstream calls, upgrades.
//! - [`upstream`]: HTTP/1 keep-alive pools and HTTP/2 connections per endpoint.
//! - [`lb`], [`outlier`], [`pool`], [`upstream_tls`]: DestinationRule traffic policy: hashing
//!   and priority levels, outlier ejection, circuit breakers with a limited pool, upstream TLS.
//! - [`tcp`]: opaque TCP, TLS passthrough by SNI ([`sni`]), protocol sniffing.
//! - [`capture`]: the sidecar's virtual outbound (15001) and inbound (15006) listeners, by
//!   original destination; [`mtls`]: mesh mTLS in and out; [`certs`]: the workload certificate
//!   ([`certs::CertProvider`], rotation).
//! - [`h1guard`]: the request-smuggling check hyper does not do.
//! - [`error`]: failures by side, named by Istio response flag.
//! - [`metrics`], [`admin`]: Prometheus metrics; the admin (:15000) and health (:15021) servers.
//! - [`drain`]: graceful-then-forced shutdown.
//! - [`dns`]: the sidecar's DNS proxy (mesh names from the snapshot, the rest relayed).
//!
//! [`start`] runs the proxy on the caller's tokio runtime (the binary picks the worker count)
//! and the admin servers on a thread of their own.
//!
//! | port (default)   | what                                                                |
//! |------------------|---------------------------------------------------------------------|
//! | snapshot's       | listeners: HTTP/1.1 + h2c, h2c only, TCP, TLS passthrough, sniffing |
//! | 127.0.0.1:15000  | admin: `/config_dump` `/stats` `/stats/prometheus` `/clusters[?format=json]` `/ready` `/logging` `/certs` `POST /certs/rotate` `POST /drain_listeners` `POST /quitquitquit` |
//! | 0.0.0.0:15021    | health: `/healthz/ready` (503 while draining)                       |
//! | 127.0.0.1:15053  | DNS proxy, UDP and TCP, when configured (sidecars)                  |

pub mod admin;
pub mod capture;
pub mod certs;
pub mod dns;
pub mod drain;
pub mod error;
pub mod h1guard;
pub mod http;
pub mod lb;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod mtls;
pub mod outlier;
pub mod pool;
pub mod sni;
pub mod state;
pub mod stats;
pub mod tcp;
pub mod upstream;
pub mod upstream_tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use model::ProxySnapshot;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

pub use error::{FlagSet, ProxyError, RequestError, ResponseFlag, Side};

/// Downstream hardening limits. Defaults are Envoy's.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head (HTTP/1) or header list (HTTP/2); over it: 431.
    pub max_header_bytes: usize,
    /// Most header lines in an HTTP/1 request; over it: 431.
    pub max_headers: usize,
    /// Time allowed for a request head to arrive; then the connection is closed.
    pub header_read_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            h2_max_concurrent_streams: 2147483647,
        }
    }
}

/// Where the proxy listens for management, and how it behaves.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub admin_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub limits: Limits,
    /// Seed for traffic splits and load balancing; `None` uses per-thread generators.
    pub seed: Option<u64>,
    /// The DNS proxy, answering from the snapshot's name table; `None`: no DNS proxy.
    pub dns: Option<dns::DnsConfig>,
    /// The workload certificate, for mesh mTLS; `None` serves plain text only (STRICT ports
    /// then refuse everything).
    pub certs: Option<Arc<certs::CertManager>>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 15000)),
            health_addr: SocketAddr::from(([0, 0, 0, 0], 15021)),
            limits: Limits::default(),
            seed: None,
            dns: None,
            certs: None,
        }
    }
}

/// What every connection and request shares.
pub struct Shared {
    pub store: state::Store,
    pub metrics: metrics::Metrics,
    pub random: state::Random,
    pub drain: drain::Drain,
    pub certs: Option<Arc<certs::CertManager>>,
    pub mesh_clients: Arc<mtls::MeshClients>,
    /// Bounds mirrored requests in flight.
    pub mirrors: http::mirror::Mirrors,
    builders: http::server::Builders,
    /// Request counters for requests answered by the proxy itself.
    local_counters: [Counter; 5],
    /// Set by `POST /quitquitquit`.
    quit: watch::Sender<bool>,
    /// Log levels `/logging` changes, when the process installed them.
    pub log: std::sync::OnceLock<Arc<logging::LogLevels>>,
}

/// A running proxy.
pub struct ProxyHandle {
    shared: Arc<Shared>,
    listeners: Arc<listeners::Listeners>,
    reconciled: watch::Receiver<listeners::Reconciled>,
    admin_addr: SocketAddr,
    health_addr: SocketAddr,
    dns_addr: Option<SocketAddr>,
}

/// Validates `snapshot`, binds its listeners and the admin servers, and starts serving.
pub async fn start(
    config: ProxyConfig,
    snapshot: ProxySnapshot,
) -> Result<ProxyHandle, ProxyError> {
    let (metrics, registry) = metrics::Metrics::new();
    let store = state::Store::new(snapshot, metrics.clone())?;
    let shared = Arc::new(Shared {
        store,
        random: match config.seed {
            Some(seed) => state::Random::seeded(seed),
            None => state::Random::Thread,
        },
        drain: drain::Drain::default(),
        certs: config.certs.clone(),
        mesh_clients: Arc::default(),
        mirrors: http::mirror::Mirrors::default(),
        builders: http::server::Builders::new(&config.limits),
        local_counters: metrics.cluster_counters(""),
        metrics,
        quit: watch::Sender::new(false),
        log: std::sync::OnceLock::new(),
    });
    let listeners = Arc::new(listeners::Listeners::default());
    // The first reconcile is done here so a bind failure fails the start.
    listeners.reconcile(&shared).await?;
    let reconciled = listeners::spawn_manager(listeners.clone(), shared.clone());
    let (admin_addr, health_addr) = admin::start(
        admin::AdminContext {
            shared: shared.clone(),
            registry,
        },
        config.admin_addr,
        config.health_addr,
    )?;
    let dns_addr = match config.dns {
        Some(dns) => {
            let names: Arc<dyn dns::Names> = Arc::new(shared.clone());
            let server = dns::DnsServer::start(dns, names).await?;
            let addr = server.local_addr();
            server.stop_on_drain(shared.clone());
            Some(addr)
        }
        None => None,
    };
    Ok(ProxyHandle {
        shared,
        listeners,
        reconciled,
        admin_addr,
        health_addr,
        dns_addr,
    })
}

impl ProxyHandle {
    /// The address a listener is bound to (useful when the snapshot asked for port 0).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.local_addr(name)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// The DNS proxy's address (UDP and TCP), when it runs.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }

    /// Swaps in a new snapshot: requests already routed finish on the old one. Returns once
    /// listeners match the new snapshot; on error nothing changed (or, for a bind failure, every
    /// other listener was still applied).
    pub async fn apply(&self, snapshot: ProxySnapshot) -> Result<(), ProxyError> {
        let version = self.shared.store.apply(snapshot)?;
        let mut reconciled = self.reconciled.clone();
        // An error here means the manager stopped: the proxy is draining, sockets stay shut.
        let Ok(done) = reconciled.wait_for(|(v, _)| *v >= version).await else {
            return Ok(());
        };
        match &*done {
            (v, Some(e)) if *v == version => Err(ProxyError::Listeners(e.clone())),
            _ => Ok(()),
        }
    }

    /// Resolves when `POST /quitquitquit` was received.
    pub async fn quit_requested(&self) {
        let mut rx = self.shared.quit.subscribe();
        let _ = rx.wait_for(|q| *q).await;
    }

    /// Stops accepting, lets in-flight work finish for up to `period`, then closes the rest.
    /// Returns how many connections were still open when forced.
    pub async fn drain(&self, period: Duration) -> usize {
        self.shared.drain.run(period).await
    }

    /// Lets `/logging` change the process's log levels (once; later calls are ignored).
    pub fn set_log_levels(&self, levels: Arc<logging::LogLevels>) {
        let _ = self.shared.log.set(levels);
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}
