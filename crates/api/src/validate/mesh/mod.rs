//! Validation of MeshConfig: Istio's `ValidateMeshConfig` and everything it calls (proxy config,
//! trust domains, service settings, extension providers, TLS settings, locality and zone-aware
//! load balancing, the default traffic policy and the inbound retry policy).
//!
//! Istio validates the mesh config in effect, after merging it over its defaults, so an unset
//! field is checked with its default value (and defaults pass). Lists are checked as written,
//! so that findings keep the user's indices. Paths start at the mesh config root
//! (`defaultConfig.drainDuration`).
//!
//! Where Istio silently keeps one member of a oneof set twice, we warn (Istio says nothing).

mod networking;
pub mod providers;
pub mod proxy;

use super::{at, fields, idx, Report};
use crate::types::mesh::*;

/// Istio's connect timeout bounds: at least 1ms, at most 1h.
const CONNECT_TIMEOUT_MAX_NANOS: i128 = 3_600_000_000_000;
const CONNECT_TIMEOUT_MIN_NANOS: i128 = 1_000_000;

/// ECDH curves Envoy (BoringSSL) accepts in `tlsDefaults.ecdhCurves`.
const VALID_ECDH_CURVES: [&str; 7] = [
    "P-224",
    "P-256",
    "P-521",
    "P-384",
    "X25519",
    "X25519Kyber768Draft00",
    "X25519MLKEM768",
];

pub fn validate(mesh: &MeshConfig, r: &mut Report) {
    let eff = mesh.with_defaults();

    r.check(
        "proxyListenPort",
        fields::port(i64::from(eff.proxy_listen_port()))
            .map_err(|e| format!("invalid proxy listen port: {e}")),
    );
    r.check(
        "connectTimeout",
        connect_timeout(&eff.connect_timeout())
            .map_err(|e| format!("invalid connect timeout: {e}")),
    );
    r.check(
        "protocolDetectionTimeout",
        protocol_detection_timeout(&eff.protocol_detection_timeout())
            .map_err(|e| format!("invalid protocol detection timeout: {e}")),
    );

    proxy::validate_proxy_config(&eff.proxy_config(), "defaultConfig", r);
    if let Some(pc) = &mesh.default_config {
        proxy::proxy_config_oneofs(pc, "defaultConfig", r);
    }

    if let Some(v) = &eff.locality_lb_setting {
        networking::locality_lb(r, "localityLbSetting", v);
    }
    if let Some(v) = &eff.zone_aware_lb_setting {
        networking::zone_aware_lb(r, "zoneAwareLbSetting", v);
    }

    for (i, s) in mesh.service_settings.iter().enumerate() {
        for (j, h) in s.hosts.iter().enumerate() {
            if let Err(e) = fields::wildcard_domain(h) {
                r.error(
                    idx(&at(&idx("serviceSettings", i), "hosts"), j),
                    format!("serviceSettings[{i}], host `{h}`: {e}"),
                );
            }
        }
    }

    r.check(
        "trustDomain",
        trust_domain(eff.trust_domain()).map_err(|e| format!("trustDomain: {e}")),
    );
    for (i, a) in mesh.trust_domain_aliases.iter().enumerate() {
        if let Err(e) = trust_domain(a) {
            r.error(
                idx("trustDomainAliases", i),
                format!("trustDomainAliases[{i}], domain `{a}` : {e}"),
            );
        }
    }

    providers::validate_providers(&mesh.extension_providers, "extensionProviders", r);

    if eff
        .mesh_mtls
        .as_ref()
        .is_some_and(|t| !t.ecdh_curves.is_empty())
    {
        r.error(
            "meshMTLS.ecdhCurves",
            "mesh TLS does not support ECDH curves configuration",
        );
    }
    if let Some(t) = &eff.tls_defaults {
        tls_defaults_curves(r, "tlsDefaults.ecdhCurves", &t.ecdh_curves);
    }

    if let Some(dtp) = &eff.default_traffic_policy {
        networking::default_traffic_policy(r, "defaultTrafficPolicy", dtp);
    }
    if let Some(v) = &eff.default_inbound_http_retry_policy {
        networking::inbound_retry(r, "defaultInboundHttpRetryPolicy", v);
    }

    shapes(mesh, r);
}

/// The oneofs set twice.
fn shapes(mesh: &MeshConfig, r: &mut Report) {
    for (i, c) in mesh.ca_certificates.iter().enumerate() {
        oneof(
            r,
            &idx("caCertificates", i),
            &[
                ("pem", c.pem.is_some()),
                ("spiffeBundleUrl", c.spiffe_bundle_url.is_some()),
            ],
        );
    }
}

/// Warn when more than one member of a oneof is set: Go's jsonpb keeps the last one (in the
/// proto's declaration order, which `set` follows) without a word.
pub(super) fn oneof(r: &mut Report, path: &str, set: &[(&str, bool)]) {
    let names: Vec<&str> = set.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    if let [.., last] = names.as_slice() {
        if names.len() > 1 {
            r.warning(
                path,
                format!(
                    "only one of {} may be set; Istio uses {last} and ignores the others",
                    names.join(", ")
                ),
            );
        }
    }
}

/// Istio's `ValidateConnectTimeout`.
fn connect_timeout(d: &crate::types::common::Duration) -> Result<(), String> {
    fields::duration(d)?;
    let n = d.as_nanos();
    if !(CONNECT_TIMEOUT_MIN_NANOS..=CONNECT_TIMEOUT_MAX_NANOS).contains(&n) {
        return Err(format!(
            "time {} must be >{} and <{}",
            proxy::go_duration(n),
            proxy::go_duration(CONNECT_TIMEOUT_MIN_NANOS),
            proxy::go_duration(CONNECT_TIMEOUT_MAX_NANOS)
        ));
    }
    Ok(())
}

/// Istio's `ValidateProtocolDetectionTimeout`: 0 disables it; otherwise whole milliseconds.
fn protocol_detection_timeout(d: &crate::types::common::Duration) -> Result<(), String> {
    if d.as_nanos() != 0 && d.as_nanos() % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

/// Istio's `ValidateTrustDomain`: dot-separated DNS-1123 labels, a trailing dot allowed.
pub fn trust_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    let parts: Vec<&str> = domain.split('.').collect();
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !fields::is_dns1123_label(label) {
            return Err(format!("trust domain name {domain:?} invalid"));
        }
    }
    Ok(())
}

/// Istio's `ValidateMeshTLSDefaults`: unknown or repeated curves are warnings.
fn tls_defaults_curves(r: &mut Report, path: &str, curves: &[String]) {
    let mut unknown = std::collections::BTreeSet::new();
    let mut valid = std::collections::BTreeSet::new();
    let mut dup = std::collections::BTreeSet::new();
    for c in curves {
        if !c.is_empty() && !VALID_ECDH_CURVES.contains(&c.as_str()) {
            unknown.insert(c.as_str());
        } else if !valid.insert(c.as_str()) {
            dup.insert(c.as_str());
        }
    }
    let list = |s: &std::collections::BTreeSet<&str>| {
        format!("[{}]", s.iter().copied().collect::<Vec<_>>().join(" "))
    };
    if !unknown.is_empty() {
        r.warning(
            path,
            format!("detected unrecognized ECDH curves: {}", list(&unknown)),
        );
    }
    if !dup.is_empty() {
        r.warning(
            path,
            format!("detected duplicate ECDH curves: {}", list(&dup)),
        );
    }
}

#[cfg(test)]
mod tests;
