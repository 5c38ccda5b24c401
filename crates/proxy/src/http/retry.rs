//! The attempts of one forwarded request: endpoint choice (preferring endpoints not tried yet,
//! Envoy's previous-hosts predicate), per-try and whole-request timeouts, the retry decision
//! (the model's [`RuntimeRetry`]), jittered exponential backoff and `x-envoy-attempt-count`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Request, Response, Version};
use hyper::body::Incoming;
use model::runtime::{AttemptFailure, RuntimeCluster, RuntimeRetry};
use tokio::time::Instant;

use super::body::{Replay, UpstreamBody};
use super::headers::X_ENVOY_ATTEMPT_COUNT;
use crate::error::{FlagSet, RequestError, ResponseFlag};
use crate::metrics::Metrics;
use crate::mtls::{MeshClients, MeshTls};
use crate::state::{ClusterState, State, Upstream};
use crate::Shared;

/// Envoy's `host_selection_retry_max_attempts` as Istio sets it: how many picks a retry makes
/// looking for an endpoint it has not tried.
const HOST_SELECTION_ATTEMPTS: usize = 5;

/// The request as it goes upstream, minus its body: made once, sent by every attempt and
/// mirror.
#[derive(Clone)]
pub struct Outgoing {
    pub method: Method,
    pub headers: HeaderMap,
    pub path_and_query: PathAndQuery,
    /// `Host` (HTTP/1) or `:authority` (HTTP/2) sent upstream.
    pub authority: HeaderValue,
}

/// How attempts reach the cluster beyond the endpoint pick: the original destination (for
/// passthrough clusters), and per endpoint mesh mTLS or a bound source address
/// ([`crate::mtls::upstream_security`]).
#[derive(Clone, Copy)]
pub struct Via<'a> {
    pub state: &'a State,
    pub ci: usize,
    pub original_dst: Option<SocketAddr>,
    pub mesh: Option<&'a Arc<MeshTls>>,
    pub clients: &'a MeshClients,
}

/// Sends one attempt to endpoint `ei` of the cluster (the original destination when `None`);
/// resolves with the response head.
pub async fn send_once(
    cs: &ClusterState,
    cluster: &RuntimeCluster,
    ei: Option<usize>,
    via: Via<'_>,
    out: &Outgoing,
    mut headers: HeaderMap,
    body: UpstreamBody,
) -> Result<Response<Incoming>, RequestError> {
    let addr = match ei {
        Some(i) => cluster.endpoints[i].addr,
        None => via.original_dst.ok_or_else(|| {
            RequestError::new(
                ResponseFlag::UH,
                format!("cluster {} needs an original destination", cluster.name),
            )
        })?,
    };
    let sec = crate::mtls::upstream_security(via.mesh, via.state, via.ci, ei, addr, true)?;
    let mut req = Request::new(body);
    *req.method_mut() = out.method.clone();
    match &cs.upstream {
        Upstream::H1(client) => {
            let endpoint = match ei {
                Some(i) => cs.authorities[i].clone(),
                None => Authority::try_from(addr.to_string()).map_err(|_| {
                    RequestError::new(ResponseFlag::DPE, "invalid original destination")
                })?,
            };
            *req.uri_mut() = super::uri(Some(endpoint), out.path_and_query.clone())?;
            *req.version_mut() = Version::HTTP_11;
            headers.insert(header::HOST, out.authority.clone());
            *req.headers_mut() = headers;
            if sec.is_plain() {
                client.request(req).await
            } else {
                via.clients
                    .h1(&sec, cluster.connect_timeout)
                    .request(req)
                    .await
            }
            .map_err(crate::upstream::classify_h1)
        }
        Upstream::H2(pool) => {
            // HTTP/2 carries the authority in the URI (`:authority`), not a Host header.
            *req.uri_mut() = super::uri(
                Authority::try_from(out.authority.as_bytes()).ok(),
                out.path_and_query.clone(),
            )?;
            *req.version_mut() = Version::HTTP_2;
            headers.remove(header::HOST);
            *req.headers_mut() = headers;
            if sec.is_plain() {
                pool.send(addr, cluster.connect_timeout, req).await
            } else {
                via.clients
                    .h2_send(addr, &sec, cluster.connect_timeout, req)
                    .await
            }
        }
    }
}

/// An endpoint for the next attempt: with `avoid`, re-picks (a few times) while the pick was
/// already tried.
fn pick(
    shared: &Shared,
    cluster: &RuntimeCluster,
    cs: &ClusterState,
    tried: &[usize],
    avoid: bool,
) -> Result<usize, RequestError> {
    let none = || {
        RequestError::new(
            ResponseFlag::UH,
            format!("cluster {} has no healthy endpoint", cluster.name),
        )
    };
    let mut ei = cs.pick(cluster, &shared.random).ok_or_else(none)?;
    if avoid && cluster.endpoints.len() > 1 {
        for _ in 0..HOST_SELECTION_ATTEMPTS {
            if !tried.contains(&ei) {
                break;
            }
            ei = cs.pick(cluster, &shared.random).ok_or_else(none)?;
        }
    }
    Ok(ei)
}

/// How an attempt ended.
enum Outcome {
    Response(Response<Incoming>),
    Failed(RequestError),
    PerTryTimeout,
}

impl Outcome {
    fn into_result(self) -> Result<Response<Incoming>, RequestError> {
        match self {
            Outcome::Response(r) => Ok(r),
            Outcome::Failed(e) => Err(e),
            Outcome::PerTryTimeout => Err(timeout_error()),
        }
    }
}

fn timeout_error() -> RequestError {
    RequestError::new(ResponseFlag::UT, "upstream request timeout")
}

/// Whether `policy` retries this outcome.
fn retriable(policy: &RuntimeRetry, outcome: &Outcome, request: &HeaderMap) -> bool {
    match outcome {
        Outcome::Response(r) => {
            policy.retriable_response(r.status().as_u16(), r.headers(), request)
        }
        Outcome::PerTryTimeout => policy.retriable_failure(AttemptFailure::PerTryTimeout),
        Outcome::Failed(e) => {
            let failure = match e.flag {
                ResponseFlag::UF => AttemptFailure::ConnectFailure,
                ResponseFlag::UC | ResponseFlag::UPE if e.refused_stream => {
                    AttemptFailure::RefusedStream
                }
                ResponseFlag::UC | ResponseFlag::UPE => AttemptFailure::Reset,
                // The client's side failed (its body, its connection): nothing to retry.
                _ => return false,
            };
            policy.retriable_failure(failure)
        }
    }
}

/// Runs attempts until one is final: a response or failure the policy does not retry, no
/// retry left (URX), a body too large to send again, or the route timeout (UT).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    shared: &Shared,
    cluster: &RuntimeCluster,
    cs: &ClusterState,
    via: Via<'_>,
    policy: Option<&RuntimeRetry>,
    timeout: Option<Duration>,
    mut out: Outgoing,
    replay: &mut Replay,
    flags: &mut FlagSet,
) -> Result<Response<Incoming>, RequestError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let avoid = policy.is_some_and(|p| p.ignore_previous_hosts);
    let mut tried = Vec::new();
    let mut attempt: u32 = 1;
    loop {
        // A passthrough cluster has one destination: the one the client dialed.
        let ei = if cluster.lb_policy == model::LbPolicy::Passthrough {
            None
        } else {
            let ei = pick(shared, cluster, cs, &tried, avoid)?;
            tried.push(ei);
            Some(ei)
        };
        // Without a policy there is one attempt: its headers need no copy.
        let mut headers = match policy {
            Some(_) => out.headers.clone(),
            None => std::mem::take(&mut out.headers),
        };
        headers.insert(X_ENVOY_ATTEMPT_COUNT.clone(), HeaderValue::from(attempt));
        let body = replay.attempt();
        let per_try = policy.and_then(|p| p.per_try_timeout);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let limit = match (per_try, remaining) {
            (Some(p), Some(r)) => Some(p.min(r)),
            (p, r) => p.or(r),
        };
        let send = async {
            let _in_flight = ei.map(|i| cs.in_flight(i));
            send_once(cs, cluster, ei, via, &out, headers, body).await
        };
        let outcome = match limit {
            Some(limit) => match tokio::time::timeout(limit, send).await {
                Ok(Ok(r)) => Outcome::Response(r),
                Ok(Err(e)) => Outcome::Failed(e),
                Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(timeout_error());
                }
                Err(_) => Outcome::PerTryTimeout,
            },
            None => match send.await {
                Ok(r) => Outcome::Response(r),
                Err(e) => Outcome::Failed(e),
            },
        };
        let Some(policy) = policy.filter(|p| retriable(p, &outcome, &out.headers)) else {
            if attempt > 1 && matches!(outcome, Outcome::Response(_)) {
                Metrics::cluster_inc(&shared.metrics.retry_successes, &cluster.name);
            }
            return outcome.into_result();
        };
        if attempt > policy.retries {
            flags.add(ResponseFlag::URX);
            Metrics::cluster_inc(&shared.metrics.retry_limit_exceeded, &cluster.name);
            return outcome.into_result();
        }
        if !replay.replayable() {
            tracing::debug!(cluster = %cluster.name, "request body too large to retry");
            return outcome.into_result();
        }
        let wait = policy.backoff(attempt, shared.random.u64());
        if let Some(d) = deadline {
            if Instant::now() + wait >= d {
                tokio::time::sleep_until(d).await;
                return Err(timeout_error());
            }
        }
        // The failed attempt's response is discarded before waiting.
        drop(outcome);
        tokio::time::sleep(wait).await;
        tracing::debug!(cluster = %cluster.name, attempt = attempt + 1, "retrying");
        Metrics::cluster_inc(&shared.metrics.retries, &cluster.name);
        attempt += 1;
    }
}
