//! The control plane's HTTP endpoint, istiod's :15014: `/debug/configz`, `/ready`, `/metrics`,
//! and the `/apis/...` calls behind `bowline apply`, `bowline delete` and `bowline get`.
//!
//! There is no authentication yet: whoever can connect can rewrite the mesh's configuration.
//! That is why the default address is loopback, and why binding elsewhere is the operator's
//! explicit choice. HTTP/1.1 only: the clients are the CLI, curl and Prometheus.

mod api;
mod mesh_api;
pub mod metrics;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::store::{ConfigWriter, StoreHandle};
pub use api::percent_encode;
pub use metrics::Metrics;

/// istiod's monitoring port, on loopback: see the module documentation for why.
pub const DEFAULT_MONITORING_ADDR: &str = "127.0.0.1:15014";
/// How long an apply waits, by default, for the store to serve what it wrote: the store's longest
/// debounce (10 periods of the default 100 ms) and a rebuild of a large directory, with room to
/// spare.
pub const DEFAULT_WRITE_VISIBLE_WITHIN: Duration = Duration::from_secs(5);
/// How long open connections may finish their request after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the monitoring address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the handlers share.
pub struct ControlPlane {
    store: StoreHandle,
    writer: Arc<ConfigWriter>,
    metrics: Metrics,
    registry: Registry,
    write_visible_within: Duration,
    mesh: Option<Arc<crate::mesh::MeshState>>,
}

impl ControlPlane {
    /// `metrics` must be the ones the store reports its reloads to; they are registered here.
    pub fn new(store: StoreHandle, writer: ConfigWriter, metrics: Metrics) -> ControlPlane {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.observe_snapshot(&store.load());
        ControlPlane {
            store,
            writer: Arc::new(writer),
            metrics,
            registry,
            write_visible_within: DEFAULT_WRITE_VISIBLE_WITHIN,
            mesh: None,
        }
    }

    /// Serves the mesh calls (`/debug/syncz`, `/debug/registryz`, `/apis/token`) and exports
    /// the push metrics.
    pub fn with_mesh(mut self, mesh: Arc<crate::mesh::MeshState>) -> ControlPlane {
        mesh.metrics.register(&mut self.registry);
        mesh.pusher.register_metrics(&mut self.registry);
        self.mesh = Some(mesh);
        self
    }

    /// How long an apply or delete may wait for the store to serve its change before answering
    /// anyway; must cover the store's debounce, which can delay a change by up to ten periods.
    pub fn with_write_visible_within(mut self, within: Duration) -> ControlPlane {
        self.write_visible_within = within;
        self
    }
}

/// The bound endpoint, not yet serving.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<ControlPlane>,
}

impl Server {
    pub async fn bind(addr: SocketAddr, state: ControlPlane) -> Result<Server, ServerError> {
        let bind_err = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Server {
            listener,
            local_addr,
            state: Arc::new(state),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` resolves, then give open connections [`SHUTDOWN_GRACE`] to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener, state, ..
        } = self;
        let updater = tokio::spawn(keep_metrics_current(state.clone()));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            warn!(error = %e, "monitoring accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let state = state.clone();
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            debug!(%peer, error = %e, "monitoring connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        updater.abort();
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                info!("monitoring connections still open after the grace period; closing them");
            }
        }
    }
}

async fn keep_metrics_current(state: Arc<ControlPlane>) {
    let mut versions = state.store.subscribe();
    while versions.changed().await.is_ok() {
        state.metrics.observe_snapshot(&state.store.load());
    }
}

type Body = Full<Bytes>;

async fn handle(state: &Arc<ControlPlane>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let response = match (method.clone(), path.as_str()) {
        // The first snapshot is loaded before the endpoint is bound: serving means ready.
        (Method::GET, "/ready") => text(StatusCode::OK, "ready\n"),
        (Method::GET, "/debug/configz") => json(StatusCode::OK, &state.store.load().configz()),
        (Method::GET, "/metrics") => metrics_page(state),
        (Method::POST, "/apis/apply") => api::write(state, req, metrics::WriteOp::Apply).await,
        (Method::POST, "/apis/delete") => api::write(state, req, metrics::WriteOp::Delete).await,
        (Method::GET, "/apis/get") => api::get(state, req.uri().query().unwrap_or("")).await,
        (_, p) if mesh_api::PATHS.contains(&p) => mesh_api::handle(state.mesh.as_ref(), req).await,
        (
            _,
            "/ready" | "/debug/configz" | "/metrics" | "/apis/get" | "/apis/apply" | "/apis/delete",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    debug!(%method, %path, status = response.status().as_u16(), "monitoring request");
    response
}

fn metrics_page(state: &ControlPlane) -> Response<Body> {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding metrics: {e}\n"),
        );
    }
    response(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        out,
    )
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body.to_string())
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_default();
    body.push('\n');
    response(status, "application/json", body)
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}
