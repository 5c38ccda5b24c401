//! Fault injection (Istio's `fault`): a fixed delay before the request goes upstream (flag
//! DI) and an abort answered by the proxy (flag FI), each for its own share of requests drawn
//! from the proxy's generator, so a seeded proxy injects the same faults every run.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use model::runtime::{in_share, RuntimeFault};
use model::{AbortStatus, PER_MILLION};

use super::ProxyBody;
use crate::error::{FlagSet, ResponseFlag};
use crate::state::Random;

/// Envoy's body for an injected abort.
const ABORT_BODY: &str = "fault filter abort";

/// Whether a share of `per_million` takes this request; no draw for 0% or 100%.
fn drawn(per_million: u32, random: &Random) -> bool {
    match per_million {
        0 => false,
        p if p >= PER_MILLION => true,
        p => in_share(p, random.u64()),
    }
}

/// Applies `fault`: waits out a delay, then returns the abort response if one is injected.
pub async fn inject(
    fault: &RuntimeFault,
    random: &Random,
    flags: &mut FlagSet,
) -> Option<Response<ProxyBody>> {
    if let Some((delay, share)) = fault.delay {
        if drawn(share, random) {
            flags.add(ResponseFlag::DI);
            tokio::time::sleep(delay).await;
        }
    }
    let (status, share) = fault.abort?;
    if !drawn(share, random) {
        return None;
    }
    flags.add(ResponseFlag::FI);
    Some(abort_response(status))
}

fn abort_response(status: AbortStatus) -> Response<ProxyBody> {
    match status {
        AbortStatus::Http(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = super::local(status, Bytes::from_static(ABORT_BODY.as_bytes()));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        // gRPC clients read the status from a trailers-only response: HTTP 200, no body.
        AbortStatus::Grpc(code) => {
            let mut resp = super::local(StatusCode::OK, Bytes::new());
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from(code));
            h.insert("grpc-message", HeaderValue::from_static(ABORT_BODY));
            resp
        }
    }
}
