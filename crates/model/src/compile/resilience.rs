//! A VirtualService rule's resilience settings as pilot resolves them: the retry policy (the
//! rule's, the mesh's `defaultHttpRetryPolicy`, or Istio's default), fault injection and
//! mirrors, with Istio's percentages in parts per million.

use api::types::{self as t, HttpRoute};
use api::Resource;

use super::Cx;
use crate::route::{
    AbortStatus, FaultAbort, FaultDelay, FaultPolicy, MirrorPolicy, RetryPolicy, PER_MILLION,
};

/// Istio's default retry policy (pilot's `DefaultPolicy`): two retries on connection
/// failures, refused streams, gRPC `unavailable` / `cancelled` and 503, preferring other hosts.
fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        per_try_timeout_ms: None,
        retry_on: [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ]
        .map(String::from)
        .to_vec(),
        retriable_status_codes: vec![503],
        ignore_previous_hosts: true,
        retry_remote_localities: false,
        backoff_base_ms: None,
    }
}

/// A route's retry policy as pilot resolves it: the rule's `retries`, else the mesh's
/// `defaultHttpRetryPolicy`, else Istio's default; `attempts: 0` disables retries.
pub(super) fn retry_policy(
    mesh: &api::types::mesh::MeshConfig,
    rule: Option<&t::HttpRetry>,
) -> Option<RetryPolicy> {
    let Some(rt) = rule.or(mesh.default_http_retry_policy.as_ref()) else {
        return Some(istio_default_retry());
    };
    let attempts = u32::try_from(rt.attempts).ok().filter(|a| *a > 0)?;
    let mut p = istio_default_retry();
    p.attempts = attempts;
    if !rt.retry_on.is_empty() {
        // Numbers in retryOn are status codes; naming any implies retriable-status-codes.
        let (codes, names): (Vec<&str>, Vec<&str>) = rt
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .partition(|s| s.parse::<u16>().is_ok());
        p.retry_on = names.into_iter().map(String::from).collect();
        p.retriable_status_codes = codes.iter().filter_map(|c| c.parse().ok()).collect();
        if !p.retriable_status_codes.is_empty()
            && !p.retry_on.iter().any(|n| n == "retriable-status-codes")
        {
            p.retry_on.push("retriable-status-codes".into());
        }
    }
    p.per_try_timeout_ms = rt
        .per_try_timeout
        .as_ref()
        .and_then(|d| d.to_std())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms > 0);
    if let Some(ignore) = rt.retry_ignore_previous_hosts {
        p.ignore_previous_hosts = ignore;
    }
    p.retry_remote_localities = rt.retry_remote_localities.unwrap_or(false);
    p.backoff_base_ms = rt
        .backoff
        .as_ref()
        .and_then(|d| d.to_std())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms > 0);
    Some(p)
}

/// Istio's `Percent` (0-100, fractional) in parts per million.
fn per_million(p: &api::types::common::Percent) -> u32 {
    (p.value.clamp(0.0, 100.0) * 10_000.0).round() as u32
}

/// Istio's fault: a share given by `percentage`, else the legacy integer `percent` (delay
/// only); with neither, no request is affected, as in pilot.
pub(super) fn fault(
    cx: &mut Cx<'_>,
    r: &Resource,
    f: &t::HttpFaultInjection,
    i: usize,
) -> Option<FaultPolicy> {
    let delay = f.delay.as_ref().and_then(|d| {
        let Some(fixed) = d.fixed_delay.as_ref().and_then(|d| d.to_std()) else {
            cx.warn(
                r,
                format!("http[{i}]: fault delay without fixedDelay is not supported; ignored"),
            );
            return None;
        };
        let share = match &d.percentage {
            Some(p) => per_million(p),
            None => u32::try_from(d.percent.clamp(0, 100)).unwrap_or(0) * 10_000,
        };
        Some(FaultDelay {
            fixed_delay_ms: u64::try_from(fixed.as_millis()).unwrap_or(u64::MAX),
            per_million: share,
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let status = if let Some(s) = a.http_status {
            AbortStatus::Http(u16::try_from(s).unwrap_or(500))
        } else if let Some(g) = &a.grpc_status {
            let Some(code) = grpc_code(g) else {
                cx.warn(
                    r,
                    format!("http[{i}]: fault abort grpcStatus `{g}` is unknown; ignored"),
                );
                return None;
            };
            AbortStatus::Grpc(code)
        } else {
            cx.warn(
                r,
                format!("http[{i}]: fault abort needs httpStatus or grpcStatus; ignored"),
            );
            return None;
        };
        Some(FaultAbort {
            status,
            per_million: a.percentage.as_ref().map(per_million).unwrap_or(0),
        })
    });
    (delay.is_some() || abort.is_some()).then_some(FaultPolicy { delay, abort })
}

/// gRPC status names to codes.
fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|p| u32::try_from(p).ok())
}

/// `mirror` (with `mirrorPercentage` or the legacy `mirrorPercent`) and `mirrors`: 100% when
/// no share is given, none when it is 0.
pub(super) fn mirrors(cx: &mut Cx<'_>, r: &Resource, h: &HttpRoute) -> Vec<MirrorPolicy> {
    let mut out = Vec::new();
    if let Some(dest) = &h.mirror {
        let share = match (&h.mirror_percentage, h.mirror_percent) {
            (Some(p), _) => per_million(p),
            (None, Some(p)) => p.min(100) * 10_000,
            (None, None) => PER_MILLION,
        };
        if share > 0 {
            if let Some(cluster) = cx.destination(r, dest) {
                out.push(MirrorPolicy {
                    cluster,
                    per_million: share,
                });
            }
        }
    }
    for m in &h.mirrors {
        let Some(dest) = &m.destination else { continue };
        let share = m
            .percentage
            .as_ref()
            .map(per_million)
            .unwrap_or(PER_MILLION);
        if share > 0 {
            if let Some(cluster) = cx.destination(r, dest) {
                out.push(MirrorPolicy {
                    cluster,
                    per_million: share,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{ForwardAction, RouteAction};

    /// The one forward route of the sidecar's `web` virtual host for `vs` under `mesh`.
    fn web_forward(vs: &str, mesh: &str) -> (ForwardAction, Vec<String>) {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec:\n  selector: {{app: web}}\n  ports: [{{name: http, port: 80}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web-1, namespace: shop, labels: {{app: web}}, annotations: {{bowline.io/address: 127.0.0.11}}}}\nspec: {{}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: shadow, namespace: shop}}\nspec:\n  selector: {{app: shadow}}\n  ports: [{{name: http, port: 80}}]\n{vs}"
        );
        let rs = crate::registry::tests::resources(&yaml);
        let mesh = if mesh.is_empty() {
            api::types::mesh::MeshConfig::istio_default()
        } else {
            api::types::mesh::load_mesh_config("mesh", mesh).unwrap()
        };
        let proxy = super::super::ProxyIdentity::new(super::super::Role::Sidecar, "shop");
        let c = super::super::compile(&rs, &mesh, &proxy).unwrap();
        let table = c
            .snapshot
            .route_tables
            .iter()
            .find(|t| t.name == "80")
            .unwrap();
        let vh = table
            .virtual_hosts
            .iter()
            .find(|v| v.name.starts_with("web."))
            .unwrap();
        let RouteAction::Forward(f) = &vh.routes[0].action else {
            panic!("not a forward")
        };
        let warnings = c.warnings.iter().map(|w| w.to_string()).collect();
        (f.clone(), warnings)
    }

    const VS: &str = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web}\n";

    #[test]
    fn retries_resolve_as_pilot_does() {
        // No VirtualService: Istio's default.
        let (f, _) = web_forward("", "");
        let r = f.retry.unwrap();
        assert_eq!(r.attempts, 2);
        assert_eq!(r.retriable_status_codes, [503]);
        assert!(r.retry_on.iter().any(|o| o == "connect-failure"));
        assert!(r.ignore_previous_hosts);
        // Numbers in retryOn are status codes and imply retriable-status-codes.
        let (f, _) = web_forward(
            &format!("{VS}    retries: {{attempts: 3, perTryTimeout: 2s, retryOn: '5xx,409,reset', retryRemoteLocalities: true, backoff: 50ms}}\n"),
            "",
        );
        let r = f.retry.unwrap();
        assert_eq!(r.attempts, 3);
        assert_eq!(r.per_try_timeout_ms, Some(2000));
        assert_eq!(r.retry_on, ["5xx", "reset", "retriable-status-codes"]);
        assert_eq!(r.retriable_status_codes, [409]);
        assert!(r.retry_remote_localities);
        assert_eq!(r.backoff_base_ms, Some(50));
        // attempts 0 disables; the mesh default replaces Istio's.
        let (f, _) = web_forward(&format!("{VS}    retries: {{attempts: 0}}\n"), "");
        assert!(f.retry.is_none());
        let (f, _) = web_forward("", "defaultHttpRetryPolicy:\n  attempts: 0\n");
        assert!(f.retry.is_none());
        let (f, _) = web_forward(
            VS,
            "defaultHttpRetryPolicy:\n  attempts: 5\n  retryOn: gateway-error\n",
        );
        let r = f.retry.unwrap();
        assert_eq!(
            (r.attempts, r.retry_on.as_slice()),
            (5, &["gateway-error".to_string()][..])
        );
        assert!(r.retriable_status_codes.is_empty());
    }

    #[test]
    fn faults_take_percentage_or_the_legacy_percent() {
        let (f, w) = web_forward(
            &format!("{VS}    fault:\n      delay: {{fixedDelay: 7s, percent: 30}}\n      abort: {{httpStatus: 418, percentage: {{value: 12.5}}}}\n"),
            "",
        );
        assert!(w.is_empty(), "{w:?}");
        let fault = f.fault.unwrap();
        assert_eq!(
            fault.delay,
            Some(FaultDelay {
                fixed_delay_ms: 7000,
                per_million: 300_000
            })
        );
        assert_eq!(
            fault.abort,
            Some(FaultAbort {
                status: AbortStatus::Http(418),
                per_million: 125_000
            })
        );
        let (f, _) = web_forward(
            &format!("{VS}    fault:\n      abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 100}}}}\n"),
            "",
        );
        let abort = f.fault.unwrap().abort.unwrap();
        assert_eq!(abort.status, AbortStatus::Grpc(14));
        assert_eq!(abort.per_million, PER_MILLION);
    }

    #[test]
    fn mirrors_default_to_all_and_zero_means_none() {
        let (f, _) = web_forward(&format!("{VS}    mirror: {{host: shadow}}\n"), "");
        assert_eq!(
            f.mirrors,
            [MirrorPolicy {
                cluster: "outbound|80||shadow.shop.svc.cluster.local".into(),
                per_million: PER_MILLION
            }]
        );
        let (f, _) = web_forward(
            &format!("{VS}    mirror: {{host: shadow}}\n    mirrorPercentage: {{value: 0}}\n"),
            "",
        );
        assert!(f.mirrors.is_empty());
        let (f, _) = web_forward(
            &format!("{VS}    mirrors:\n    - destination: {{host: shadow}}\n      percentage: {{value: 25}}\n    - destination: {{host: web}}\n"),
            "",
        );
        let shares: Vec<u32> = f.mirrors.iter().map(|m| m.per_million).collect();
        assert_eq!(shares, [250_000, PER_MILLION]);
    }
}
