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
    let query = req.uri().query().unwrap_or("");
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/config_dump") => config_dump(ctx),
        (&Method::GET, "/stats") => text(
            StatusCode::OK,
            crate::stats::text(&ctx.shared, &ctx.registry, query),
        ),
        (&Method::GET, "/logging") => logging_list(ctx),
        (&Method::POST, "/logging") => logging_set(ctx, query),
        (&Method::POST, "/drain_listeners") => {
            // Listeners stop accepting; connections already open finish what they started.
            ctx.shared.drain.start();
            text(StatusCode::OK, "OK\n")
        }
        (_, "/drain_listeners") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (&Method::GET, "/stats/prometheus") => {
            let mut out = String::new();
            if prometheus_client::encoding::text::encode(&mut out, &ctx.registry).is_err() {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
            }
            crate::stats::append_prometheus(&ctx.shared, &mut out);
            let mut r = text(StatusCode::OK, out);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (&Method::GET, "/clusters") if req.uri().query() == Some("format=json") => {
            let mut r = text(StatusCode::OK, clusters_json(ctx).to_string());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
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
        _ => text(StatusCode::NOT_FOUND, HELP),
    }
}

const HELP: &str = "admin commands are:
  /config_dump: the proxy's snapshot (listeners, route tables, clusters) as JSON
  /stats: counters and gauges as `name: value` lines (?filter=substring)
  /stats/prometheus: the same in Prometheus text format
  /clusters: upstream clusters, endpoints and their state
  /ready: LIVE, or 503 DRAINING
  /certs: the workload certificate (serial, SAN, validity, root fingerprint) as JSON
  POST /certs/rotate: fetch a new workload certificate now
  /logging: log levels; POST /logging?level=debug sets all, POST /logging?http=debug one logger
  POST /drain_listeners: stop accepting new connections, keep serving open ones
  POST /quitquitquit: drain and exit
";

fn logging_list(ctx: &AdminContext) -> Response<Full<Bytes>> {
    let Some(log) = ctx.shared.log.get() else {
        return text(
            StatusCode::OK,
            "log levels are not adjustable in this process\n",
        );
    };
    let mut out = String::from("active loggers:\n");
    for (name, level) in log.levels() {
        let _ = writeln!(out, "  {name}: {level}");
    }
    text(StatusCode::OK, out)
}

/// `level=L` sets every logger; `name=L` one logger (Envoy's `/logging?http=debug`).
fn logging_set(ctx: &AdminContext, query: &str) -> Response<Full<Bytes>> {
    let Some(log) = ctx.shared.log.get() else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "log levels are not adjustable in this process\n",
        );
    };
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    if pairs.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: POST /logging?level=debug or /logging?<logger>=<level>\n",
        );
    }
    for (k, v) in pairs {
        let module = (k != "level").then_some(k);
        if let Err(e) = log.set(module, v) {
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
    }
    logging_list(ctx)
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
    match serde_json::to_vec_pretty(&state.runtime.snapshot()) {
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

/// Envoy's `/clusters` text format, one fact per line: circuit-breaker thresholds, then per
/// host its weight, locality, priority, requests in flight, ejections and health flags
/// (`/failed_outlier_check` while ejected).
fn clusters(ctx: &AdminContext) -> String {
    let state = ctx.shared.store.load();
    let now = std::time::Instant::now();
    let mut out = String::new();
    for (c, cs) in state.runtime.clusters.iter().zip(&state.clusters) {
        let n = &c.name;
        let _ = writeln!(out, "{n}::lb_policy::{:?}", c.lb_policy);
        let p = &c.policy.connection_pool;
        let limit = |v: Option<u32>| v.map_or("unlimited".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "{n}::default_priority::max_connections::{}",
            limit(p.max_connections)
        );
        let _ = writeln!(
            out,
            "{n}::default_priority::max_pending_requests::{}",
            limit(p.max_pending_requests)
        );
        let _ = writeln!(
            out,
            "{n}::default_priority::max_requests::{}",
            limit(p.max_requests)
        );
        let _ = writeln!(
            out,
            "{n}::default_priority::max_retries::{}",
            limit(p.max_retries)
        );
        let b = &cs.shared.breakers;
        let _ = writeln!(out, "{n}::cx_active::{}", b.connections.get());
        let _ = writeln!(out, "{n}::rq_pending_active::{}", b.pending.get());
        let ejected = cs
            .shared
            .outliers
            .ejected(c.endpoints.iter().map(|e| e.addr), now);
        for (i, e) in c.endpoints.iter().enumerate() {
            let h = format!("{n}::{}", e.addr);
            let _ = writeln!(out, "{h}::weight::{}", e.weight);
            let _ = writeln!(out, "{h}::priority::{}", e.priority);
            let _ = writeln!(out, "{h}::locality::{}", e.locality);
            let _ = writeln!(out, "{h}::rq_active::{}", cs.active(i));
            let _ = writeln!(
                out,
                "{h}::outlier_ejections::{}",
                cs.shared.outliers.ejections(e.addr)
            );
            let flags = if ejected[i] {
                "/failed_outlier_check"
            } else {
                "healthy"
            };
            let _ = writeln!(out, "{h}::health_flags::{flags}");
        }
    }
    out
}

/// `/clusters?format=json`: the same facts as a JSON document.
fn clusters_json(ctx: &AdminContext) -> serde_json::Value {
    let state = ctx.shared.store.load();
    let now = std::time::Instant::now();
    let clusters: Vec<serde_json::Value> = state
        .runtime
        .clusters
        .iter()
        .zip(&state.clusters)
        .map(|(c, cs)| {
            let ejected = cs.shared.outliers.ejected(c.endpoints.iter().map(|e| e.addr), now);
            let hosts: Vec<serde_json::Value> = c
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    serde_json::json!({
                        "address": e.addr.to_string(),
                        "weight": e.weight,
                        "priority": e.priority,
                        "locality": e.locality,
                        "rq_active": cs.active(i),
                        "outlier_ejections": cs.shared.outliers.ejections(e.addr),
                        "health_flags": if ejected[i] { vec!["FAILED_OUTLIER_CHECK"] } else { vec![] },
                    })
                })
                .collect();
            serde_json::json!({
                "name": c.name,
                "lb_policy": format!("{:?}", c.lb_policy),
                "circuit_breakers": c.policy.connection_pool,
                "host_statuses": hosts,
            })
        })
        .collect();
    serde_json::json!({ "cluster_statuses": clusters })
}
