//! Traffic mirroring (Istio's `mirror` / `mirrors`): a fire-and-forget copy of the request to
//! another cluster with `-shadow` appended to its host, as Envoy's request mirror policy does.
//!
//! The copy runs on its own task: it never delays or fails the real request, its response is
//! read and dropped, the number in flight is bounded ([`MAX_IN_FLIGHT`], excess copies are
//! dropped and counted) and each one is bounded in time. A body is mirrored only if it was
//! kept whole within the replay limit.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http_body_util::BodyExt;
use model::runtime::{in_share, shadow_host, RuntimeMirror};
use model::PER_MILLION;
use tokio::sync::Semaphore;

use super::body::Replay;
use super::retry::{send_once, Outgoing, Via};
use crate::metrics::MirrorResult;
use crate::state::State;
use crate::Shared;

/// Mirrored requests in flight at once, per proxy.
pub const MAX_IN_FLIGHT: usize = 128;

/// Time allowed for a mirrored request without a route timeout, from sending to the end of the
/// discarded response.
const DEFAULT_MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// The proxy-wide bound on mirrored requests in flight.
pub struct Mirrors {
    permits: Arc<Semaphore>,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

/// Starts the copy of `out` for `m`, if this request falls in its share.
pub fn spawn(
    shared: &Shared,
    state: &Arc<State>,
    m: &RuntimeMirror,
    out: &Outgoing,
    replay: &Replay,
    timeout: Option<Duration>,
) {
    let selected = m.per_million >= PER_MILLION
        || (m.per_million > 0 && in_share(m.per_million, shared.random.u64()));
    if !selected {
        return;
    }
    let Ok(permit) = shared.mirrors.permits.clone().try_acquire_owned() else {
        shared.metrics.mirror(MirrorResult::Dropped);
        return;
    };
    let ci = m.cluster;
    let (cluster, cs) = (&state.runtime.clusters[ci], &state.clusters[ci]);
    let Some(ei) = cs.pick(cluster, &shared.random) else {
        shared.metrics.mirror(MirrorResult::Dropped);
        return;
    };
    let shadow = shadow_host(out.authority.to_str().unwrap_or(""));
    let Ok(authority) = HeaderValue::from_str(&shadow) else {
        shared.metrics.mirror(MirrorResult::Dropped);
        return;
    };
    let out = Outgoing {
        authority,
        ..out.clone()
    };
    let body = replay.copy();
    let state = state.clone();
    let metrics = shared.metrics.clone();
    let mesh = shared.certs.as_ref().map(|c| c.mesh.clone());
    let clients = shared.mesh_clients.clone();
    let limit = timeout.unwrap_or(DEFAULT_MIRROR_TIMEOUT);
    tokio::spawn(async move {
        let _permit = permit;
        let work = async {
            let Some(body) = body.await else {
                return MirrorResult::Dropped;
            };
            let (cluster, cs) = (&state.runtime.clusters[ci], &state.clusters[ci]);
            let _in_flight = cs.in_flight(ei);
            let via = Via {
                state: &state,
                ci,
                original_dst: None,
                mesh: mesh.as_ref(),
                clients: &clients,
            };
            match send_once(cs, cluster, Some(ei), via, &out, out.headers.clone(), body).await {
                Ok(resp) => {
                    // Read to the end so the connection can be reused; the bytes are dropped.
                    let _ = resp.into_body().collect().await;
                    MirrorResult::Sent
                }
                Err(e) => {
                    tracing::debug!(error = %e, cluster = %cluster.name, "mirror failed");
                    MirrorResult::Failed
                }
            }
        };
        let result = tokio::time::timeout(limit, work)
            .await
            .unwrap_or(MirrorResult::Failed);
        metrics.mirror(result);
    });
}
