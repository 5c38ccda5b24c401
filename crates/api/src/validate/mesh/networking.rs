//! Checks of the MeshConfig fields typed by networking messages (HTTPRetry,
//! LocalityLoadBalancerSetting, ZoneAwareLoadBalancerSetting, ConnectionPoolSettings,
//! OutlierDetection, ClientTLSSettings). The rules are the DestinationRule and VirtualService
//! ones; this module adds what Istio's `ValidateMeshConfig` does differently: an outlier detection
//! is always assumed for failover, only the webhook's rules apply (the mesh config is no CRD),
//! messages carry the mesh's prefixes, and the inbound retry policy has its own rules.

use super::super::destination_rule::traffic_policy;
use super::super::virtual_service::http_retry;
use super::super::{at, Report};
use crate::types::destination_rule::{
    ClientTlsSettings, LocalityLoadBalancerSetting, OutlierDetection, ZoneAwareLoadBalancerSetting,
};
use crate::types::mesh::DefaultTrafficPolicy;
use crate::types::virtual_service::HttpRetry;

/// Run `check` and report its findings with `prefix` before each error message.
fn prefixed(r: &mut Report, prefix: &str, check: impl FnOnce(&mut Report)) {
    let mut sub = Report::default();
    check(&mut sub);
    for mut f in sub.findings {
        if f.severity == super::super::Severity::Error {
            f.message = format!("{prefix}{}", f.message);
        }
        r.findings.push(f);
    }
}

/// Istio's `ValidateLocalityLbSetting` with an (empty) outlier detection, as the mesh calls it.
pub(super) fn locality_lb(r: &mut Report, path: &str, lb: &LocalityLoadBalancerSetting) {
    traffic_policy::locality_lb_setting(r, path, lb, Some(&OutlierDetection::default()));
}

/// Istio's `ValidateZoneAwareLbSetting` with an (empty) outlier detection, as the mesh calls it.
pub(super) fn zone_aware_lb(r: &mut Report, path: &str, lb: &ZoneAwareLoadBalancerSetting) {
    traffic_policy::zone_aware_lb_setting(r, path, lb, Some(&OutlierDetection::default()));
}

/// Istio's `validateMeshConfigDefaultTrafficPolicy`: the common connection pool and outlier
/// detection rules of a DestinationRule.
pub(super) fn default_traffic_policy(r: &mut Report, path: &str, dtp: &DefaultTrafficPolicy) {
    if let Some(cp) = &dtp.connection_pool {
        traffic_policy::connection_pool_common(r, &at(path, "connectionPool"), cp);
    }
    if let Some(od) = &dtp.outlier_detection {
        traffic_policy::outlier_detection_common(r, &at(path, "outlierDetection"), od);
    }
}

/// `defaultInboundHttpRetryPolicy`: a retry policy where only attempts, retryOn and backoff apply.
pub(super) fn inbound_retry(r: &mut Report, path: &str, retry: &HttpRetry) {
    let prefix = "invalid default inbound http retry policy: ";
    prefixed(r, prefix, |r| http_retry(r, path, retry, false));
    if retry.attempts == 0 && retry.backoff.is_some() {
        r.error(
            at(path, "backoff"),
            format!("{prefix}backoff configured when attempts are set to 0 (disabled)"),
        );
    }
    let ignored = [
        ("perTryTimeout", retry.per_try_timeout.is_some()),
        (
            "retryRemoteLocalities",
            retry.retry_remote_localities.is_some(),
        ),
        (
            "retryIgnorePreviousHosts",
            retry.retry_ignore_previous_hosts.is_some(),
        ),
    ];
    for (field, set) in ignored {
        if set {
            r.warning(
                at(path, field),
                format!("{field} is ignored by the default inbound http retry policy"),
            );
        }
    }
}

/// Istio's `ValidateTLS` with no config namespace (the mesh has none), so any `configmap://`
/// credential is refused.
pub(super) fn client_tls(r: &mut Report, path: &str, tls: &ClientTlsSettings, prefix: &str) {
    prefixed(r, prefix, |r| traffic_policy::client_tls(r, path, "", tls));
}
