//! The admin server (Envoy's :15000) and the health server (Istio's :15021).
//!
//! Both run on their own thread and single-threaded runtime, so a slow scrape or a large
//! config dump never takes a data-plane worker.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::drain::Phase;
use crate::error::ProxyError;
use crate::Shared;

pub struct AdminContext {
    pub shared: Arc<Shared>,
    pub registry: Registry,
}

/// Binds both servers on the calling thread (so bind errors are returned), then serves them
/// from a dedicated thread until the drain is forced.
pub fn start(
    ctx: AdminContext,
    admin_addr: SocketAddr,
    health_addr: SocketAddr,
) -> Result<(SocketAddr, SocketAddr), ProxyError> {
    let bind = |what, addr| {
        std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|source| ProxyError::AdminBind { what, addr, source })
    };
    let admin = bind("admin", admin_addr)?;
    let health = bind("health", health_addr)?;
    let addrs = (
        admin.local_addr().unwrap_or(admin_addr),
        health.local_addr().unwrap_or(health_addr),
    );
    let ctx = Arc::new(ctx);
    std::thread::Builder::new()
        .name("bowline-admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "admin runtime failed to start");
                    return;
                }
            };
            rt.block_on(async move {
                let (Ok(admin), Ok(health)) =
                    (TcpListener::from_std(admin), TcpListener::from_std(health))
                else {
                    tracing::error!("admin sockets could not be registered");
                    return;
                };
                let mut forced = ctx.shared.drain.watch();
                tokio::select! {
                    _ = serve(admin, ctx.clone(), false) => {}
                    _ = serve(health, ctx.clone(), true) => {}
                    _ = forced.reached(Phase::Forced) => {}
                }
            });
        })
        .map_err(ProxyError::AdminThread)?;
    Ok(addrs)
}

async fn serve(listener: TcpListener, ctx: Arc<AdminContext>, health: bool) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            // Usually EMFILE: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                async move {
                    Ok::<_, Infallible>(if health {
                        health_route(&ctx, &req)
                    } else {
                        admin_route(&ctx, &req)
                    })
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn ready(ctx: &AdminContext) -> Response<Full<Bytes>> {
    match ctx.shared.drain.phase() {
        Phase::Running => text(StatusCode::OK, "LIVE\n"),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n"),
    }
}

fn health_route(ctx: &AdminContext, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz/ready" => ready(ctx),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn admin_route(ctx: &AdminContext, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/config_dump") => config_dump(ctx),
        (&Method::GET, "/stats/prometheus") => {
            let mut out = String::new();
            if prometheus_client::encoding::text::encode(&mut out, &ctx.registry).is_err() {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
            }
            let mut r = text(StatusCode::OK, out);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (&Method::GET, "/clusters") => text(StatusCode::OK, clusters(ctx)),
        (&Method::GET, "/ready") => ready(ctx),
        (&Method::GET, "/certs") => match &ctx.shared.certs {
            Some(c) => json(c.describe()),
            None => text(StatusCode::NOT_FOUND, "no workload certificate\n"),
        },
        (&Method::POST, "/certs/rotate") => match &ctx.shared.certs {
            Some(c) => {
                c.request_rotation();
                text(StatusCode::ACCEPTED, "rotation requested\n")
            }
            None => text(StatusCode::NOT_FOUND, "no workload certificate\n"),
        },
        (&Method::POST, "/quitquitquit") => {
            ctx.shared.quit.send_replace(true);
            text(StatusCode::OK, "OK\n")
        }
        (_, "/quitquitquit") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "endpoints: /config_dump /stats/prometheus /clusters /ready /certs POST /certs/rotate POST /quitquitquit\n",
        ),
    }
}

fn json(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::OK, value.to_string());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn config_dump(ctx: &AdminContext) -> Response<Full<Bytes>> {
    let state = ctx.shared.store.load();
    match serde_json::to_vec_pretty(&state.runtime.source) {
        Ok(json) => {
            let mut r = text(StatusCode::OK, json);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Envoy's `/clusters` text format, one fact per line.
fn clusters(ctx: &AdminContext) -> String {
    let state = ctx.shared.store.load();
    let mut out = String::new();
    for (c, cs) in state.runtime.clusters.iter().zip(&state.clusters) {
        let _ = writeln!(out, "{}::lb_policy::{:?}", c.name, c.lb_policy);
        for (i, e) in c.endpoints.iter().enumerate() {
            let _ = writeln!(out, "{}::{}::weight::{}", c.name, e.addr, e.weight);
            let _ = writeln!(out, "{}::{}::rq_active::{}", c.name, e.addr, cs.active(i));
            let _ = writeln!(out, "{}::{}::health_flags::healthy", c.name, e.addr);
        }
    }
    out
}
