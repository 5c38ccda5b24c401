//! Compiled resilience actions: retry policies (Envoy's `retry_on` vocabulary, backoff), fault
//! injection and mirrors. The decisions live here, as pure functions of a response or failure,
//! so the proxy only runs attempts and the rules can be tested without sockets.

use std::time::Duration;

use http::HeaderMap;

use crate::route::{AbortStatus, FaultPolicy, MirrorPolicy, RetryPolicy, PER_MILLION};

use super::BuildError;

/// Envoy's default backoff base interval; the cap is ten times the base.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

/// A set of Envoy retry conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 4);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const RETRIABLE_HEADERS: RetryOn = RetryOn(1 << 7);
    pub const RESET_BEFORE_REQUEST: RetryOn = RetryOn(1 << 8);
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 9);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 10);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 11);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 12);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 13);
    /// Accepted and never true here: there is no rate-limit service, nor HTTP/3.
    pub const INERT: RetryOn = RetryOn(1 << 14);

    /// One condition by its Envoy name.
    pub fn parse(name: &str) -> Option<RetryOn> {
        Some(match name {
            "5xx" => Self::FIVE_XX,
            "gateway-error" => Self::GATEWAY_ERROR,
            "reset" => Self::RESET,
            "reset-before-request" => Self::RESET_BEFORE_REQUEST,
            "connect-failure" => Self::CONNECT_FAILURE,
            "refused-stream" => Self::REFUSED_STREAM,
            "retriable-4xx" => Self::RETRIABLE_4XX,
            "retriable-status-codes" => Self::RETRIABLE_STATUS_CODES,
            "retriable-headers" => Self::RETRIABLE_HEADERS,
            "cancelled" => Self::GRPC_CANCELLED,
            "deadline-exceeded" => Self::GRPC_DEADLINE_EXCEEDED,
            "internal" => Self::GRPC_INTERNAL,
            "resource-exhausted" => Self::GRPC_RESOURCE_EXHAUSTED,
            "unavailable" => Self::GRPC_UNAVAILABLE,
            "envoy-ratelimited" | "http3-post-connect-failure" => Self::INERT,
            _ => return None,
        })
    }

    pub fn contains(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    fn insert(&mut self, other: RetryOn) {
        self.0 |= other.0;
    }
}

/// Why an attempt produced no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The connection could not be made (refused, unreachable, connect timeout).
    ConnectFailure,
    /// The HTTP/2 stream was refused (REFUSED_STREAM) before the backend processed it.
    RefusedStream,
    /// Reset, closed or garbled after the connection was made, before a response head.
    Reset,
    /// The per-try timeout fired before a response head.
    PerTryTimeout,
}

/// [`RetryPolicy`] compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeRetry {
    /// Retries after the first attempt.
    pub retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: RetryOn,
    pub status_codes: Vec<u16>,
    pub ignore_previous_hosts: bool,
    pub remote_localities: bool,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl RuntimeRetry {
    pub(crate) fn compile(p: &RetryPolicy, at: &str) -> Result<Self, BuildError> {
        let mut on = RetryOn::default();
        for name in &p.retry_on {
            on.insert(RetryOn::parse(name).ok_or_else(|| BuildError::Invalid {
                at: format!("{at}.retry_on"),
                reason: format!("`{name}` is not a retry condition"),
            })?);
        }
        let backoff_base = p
            .backoff_base_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_BACKOFF_BASE);
        Ok(RuntimeRetry {
            retries: p.attempts,
            per_try_timeout: p
                .per_try_timeout_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            on,
            status_codes: p.retriable_status_codes.clone(),
            ignore_previous_hosts: p.ignore_previous_hosts,
            remote_localities: p.retry_remote_localities,
            backoff_base,
            backoff_max: backoff_base * 10,
        })
    }

    /// Whether a response head calls for another attempt. `request` carries Envoy's
    /// `x-envoy-retriable-header-names` for `retriable-headers`.
    pub fn retriable_response(
        &self,
        status: u16,
        headers: &HeaderMap,
        request: &HeaderMap,
    ) -> bool {
        let on = self.on;
        if on.contains(RetryOn::FIVE_XX) && status >= 500 {
            return true;
        }
        if on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504) {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_4XX) && status == 409 {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_STATUS_CODES) && self.status_codes.contains(&status) {
            return true;
        }
        if on.contains(RetryOn::RETRIABLE_HEADERS) && has_retriable_header(headers, request) {
            return true;
        }
        grpc_retriable(on, headers)
    }

    /// Whether a failed attempt (no response head) calls for another.
    pub fn retriable_failure(&self, f: AttemptFailure) -> bool {
        let on = self.on;
        // Envoy: 5xx, gateway-error and reset cover every way of getting no response.
        if on.contains(RetryOn::FIVE_XX)
            || on.contains(RetryOn::GATEWAY_ERROR)
            || on.contains(RetryOn::RESET)
        {
            return true;
        }
        match f {
            AttemptFailure::ConnectFailure => {
                on.contains(RetryOn::CONNECT_FAILURE) || on.contains(RetryOn::RESET_BEFORE_REQUEST)
            }
            AttemptFailure::RefusedStream => {
                on.contains(RetryOn::REFUSED_STREAM) || on.contains(RetryOn::RESET_BEFORE_REQUEST)
            }
            AttemptFailure::Reset | AttemptFailure::PerTryTimeout => false,
        }
    }

    /// The wait before retry number `retry` (1-based), Envoy's jittered exponential backoff:
    /// uniform below `base * (2^retry - 1)`, never above the cap. `r` is any uniform u64.
    pub fn backoff(&self, retry: u32, r: u64) -> Duration {
        let base = self.backoff_base.as_millis() as u64;
        let max = self.backoff_max.as_millis() as u64;
        let factor = (1u64 << retry.min(20)) - 1;
        let ceiling = base.saturating_mul(factor).max(1);
        Duration::from_millis((r % ceiling).min(max))
    }
}

fn has_retriable_header(headers: &HeaderMap, request: &HeaderMap) -> bool {
    request
        .get_all("x-envoy-retriable-header-names")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .any(|n| headers.contains_key(n))
}

/// gRPC conditions read `grpc-status` from the response head: a trailers-only response.
fn grpc_retriable(on: RetryOn, headers: &HeaderMap) -> bool {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
    else {
        return false;
    };
    let wanted = match code {
        1 => RetryOn::GRPC_CANCELLED,
        4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
        8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
        13 => RetryOn::GRPC_INTERNAL,
        14 => RetryOn::GRPC_UNAVAILABLE,
        _ => return false,
    };
    on.contains(wanted)
}

/// [`FaultPolicy`] compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeFault {
    /// Delay and the share of requests delayed (per million).
    pub delay: Option<(Duration, u32)>,
    /// Abort and the share of requests aborted (per million).
    pub abort: Option<(AbortStatus, u32)>,
}

impl RuntimeFault {
    pub(crate) fn compile(f: &FaultPolicy, at: &str) -> Result<Self, BuildError> {
        if let Some(a) = &f.abort {
            if let AbortStatus::Http(s) = a.status {
                if !(200..=599).contains(&s) {
                    return Err(BuildError::Invalid {
                        at: format!("{at}.abort.status"),
                        reason: format!("{s} is not an HTTP status to abort with"),
                    });
                }
            }
        }
        Ok(RuntimeFault {
            delay: f.delay.as_ref().map(|d| {
                (
                    Duration::from_millis(d.fixed_delay_ms),
                    d.per_million.min(PER_MILLION),
                )
            }),
            abort: f
                .abort
                .as_ref()
                .map(|a| (a.status, a.per_million.min(PER_MILLION))),
        })
    }
}

/// Whether a uniform draw `r` falls in a share of `per_million`.
pub fn in_share(per_million: u32, r: u64) -> bool {
    per_million >= PER_MILLION || (r % u64::from(PER_MILLION)) < u64::from(per_million)
}

/// A mirror target resolved to a cluster index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeMirror {
    pub cluster: usize,
    pub per_million: u32,
}

impl RuntimeMirror {
    pub(crate) fn compile(
        m: &MirrorPolicy,
        clusters: &std::collections::HashMap<String, usize>,
        at: &str,
    ) -> Result<Self, BuildError> {
        let cluster = *clusters
            .get(&m.cluster)
            .ok_or_else(|| BuildError::UnknownRef {
                at: format!("{at}.cluster"),
                what: "cluster",
                name: m.cluster.clone(),
            })?;
        Ok(RuntimeMirror {
            cluster,
            per_million: m.per_million.min(PER_MILLION),
        })
    }
}

/// Envoy's shadow host: `-shadow` appended to the host, before any port
/// (`reviews:9080` → `reviews-shadow:9080`).
pub fn shadow_host(authority: &str) -> String {
    if let Some((host, port)) = authority.rsplit_once(':') {
        let bracketed_or_plain = host.ends_with(']') || !host.contains(':');
        if bracketed_or_plain && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return format!("{host}-shadow:{port}");
        }
    }
    format!("{authority}-shadow")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy(on: &[&str], codes: &[u16]) -> RuntimeRetry {
        RuntimeRetry::compile(
            &RetryPolicy {
                attempts: 2,
                per_try_timeout_ms: None,
                retry_on: on.iter().map(|s| s.to_string()).collect(),
                retriable_status_codes: codes.to_vec(),
                ignore_previous_hosts: true,
                retry_remote_localities: false,
                backoff_base_ms: None,
            },
            "r",
        )
        .unwrap()
    }

    #[test]
    fn response_conditions_follow_envoys_vocabulary() {
        let none = HeaderMap::new();
        let p = policy(&["gateway-error"], &[]);
        assert!(p.retriable_response(503, &none, &none));
        assert!(!p.retriable_response(500, &none, &none));
        let p = policy(&["5xx"], &[]);
        assert!(p.retriable_response(500, &none, &none));
        assert!(!p.retriable_response(404, &none, &none));
        let p = policy(&["retriable-4xx"], &[]);
        assert!(p.retriable_response(409, &none, &none));
        assert!(!p.retriable_response(400, &none, &none));
        let p = policy(&["retriable-status-codes"], &[418]);
        assert!(p.retriable_response(418, &none, &none));
        assert!(!p.retriable_response(503, &none, &none));

        let p = policy(&["retriable-headers"], &[]);
        let mut req = HeaderMap::new();
        req.insert(
            "x-envoy-retriable-header-names",
            HeaderValue::from_static("x-retry-me, x-other"),
        );
        let mut resp = HeaderMap::new();
        assert!(!p.retriable_response(200, &resp, &req));
        resp.insert("x-retry-me", HeaderValue::from_static("1"));
        assert!(p.retriable_response(200, &resp, &req));

        let p = policy(&["unavailable", "cancelled"], &[]);
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", HeaderValue::from_static("14"));
        assert!(p.retriable_response(200, &grpc, &none));
        grpc.insert("grpc-status", HeaderValue::from_static("13"));
        assert!(!p.retriable_response(200, &grpc, &none));
        let p = policy(&["internal"], &[]);
        assert!(p.retriable_response(200, &grpc, &none));
    }

    #[test]
    fn failures_retry_per_condition() {
        let p = policy(&["connect-failure"], &[]);
        assert!(p.retriable_failure(AttemptFailure::ConnectFailure));
        assert!(!p.retriable_failure(AttemptFailure::Reset));
        assert!(!p.retriable_failure(AttemptFailure::RefusedStream));
        let p = policy(&["refused-stream"], &[]);
        assert!(p.retriable_failure(AttemptFailure::RefusedStream));
        assert!(!p.retriable_failure(AttemptFailure::ConnectFailure));
        for on in ["5xx", "gateway-error", "reset"] {
            let p = policy(&[on], &[]);
            assert!(p.retriable_failure(AttemptFailure::Reset), "{on}");
            assert!(p.retriable_failure(AttemptFailure::PerTryTimeout), "{on}");
            assert!(p.retriable_failure(AttemptFailure::ConnectFailure), "{on}");
        }
        assert!(RuntimeRetry::compile(
            &RetryPolicy {
                retry_on: vec!["bogus".into()],
                ..RetryPolicy {
                    attempts: 1,
                    per_try_timeout_ms: None,
                    retry_on: vec![],
                    retriable_status_codes: vec![],
                    ignore_previous_hosts: true,
                    retry_remote_localities: false,
                    backoff_base_ms: None,
                }
            },
            "r"
        )
        .is_err());
    }

    #[test]
    fn backoff_is_jittered_exponential_from_25ms_capped_at_250ms() {
        let p = policy(&["5xx"], &[]);
        let mut rng = 12345u64;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng >> 11
        };
        let mut max = [0u128; 6];
        for _ in 0..2000 {
            for (i, m) in max.iter_mut().enumerate() {
                let d = p.backoff(i as u32 + 1, next()).as_millis();
                *m = (*m).max(d);
            }
        }
        assert!(max[0] < 25 && max[0] >= 20, "{max:?}");
        assert!(max[1] < 75 && max[1] >= 65, "{max:?}");
        assert!(max[2] < 175 && max[2] >= 160, "{max:?}");
        assert_eq!(max[4], 250, "{max:?}");
        assert_eq!(max[5], 250, "{max:?}");
    }

    #[test]
    fn shares_and_shadow_hosts() {
        assert!(in_share(PER_MILLION, 999_999));
        assert!(!in_share(0, 0));
        assert!(in_share(100_000, 99_999));
        assert!(!in_share(100_000, 100_000));
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("httpbin"), "httpbin-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(
            shadow_host("a.default.svc.cluster.local"),
            "a.default.svc.cluster.local-shadow"
        );
    }
}
