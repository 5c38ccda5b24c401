//! Istio's `ValidateMeshConfigProxyConfig`: the proxy config in effect (MeshConfig's
//! `defaultConfig` merged over Istio's defaults), plus the address and duration helpers it uses
//! (`split_host_port` is the shared one of `fields`, re-exported).

use super::super::{at, fields, Report};
use super::{networking, oneof};
use crate::types::common::Duration;
use crate::types::mesh::*;

/// Check a proxy config in effect. `path` is where it sits (`defaultConfig`).
pub fn validate_proxy_config(pc: &ProxyConfig, path: &str, r: &mut Report) {
    let p = |f: &str| at(path, f);
    if pc.config_path.as_deref().unwrap_or("").is_empty() {
        r.error(p("configPath"), "config path must be set");
    }
    if pc.binary_path.as_deref().unwrap_or("").is_empty() {
        r.error(p("binaryPath"), "binary path must be set");
    }
    match (&pc.service_cluster, &pc.tracing_service_name) {
        (_, Some(_)) => {}
        (Some(c), None) if c.is_empty() => {
            r.error(p("serviceCluster"), "service cluster must be specified")
        }
        (Some(_), None) => {}
        (None, None) => r.error(
            path,
            "oneof service cluster or tracing service name must be specified",
        ),
    }
    match &pc.drain_duration {
        Some(d) => r.check(p("drainDuration"), drain_duration(d)),
        None => r.error(
            p("drainDuration"),
            "invalid drain duration: duration must be greater than 1ms",
        ),
    }
    match pc.discovery_address.as_deref().unwrap_or("") {
        "" => r.error(
            p("discoveryAddress"),
            "discovery address must be set to the proxy discovery service",
        ),
        addr => r.check(
            p("discoveryAddress"),
            proxy_address(addr).map_err(|e| format!("invalid discovery address: {e}")),
        ),
    }
    if let Some(t) = &pc.tracing {
        tracing(r, &p("tracing"), t);
    }
    if let Some(a) = pc.statsd_udp_address.as_deref().filter(|a| !a.is_empty()) {
        r.check(
            p("statsdUdpAddress"),
            proxy_address(a).map_err(|e| format!("invalid statsd udp address {a:?}: {e}")),
        );
    }
    if let Some(a) = pc
        .envoy_metrics_service_address
        .as_deref()
        .filter(|a| !a.is_empty())
    {
        r.check(
            p("envoyMetricsServiceAddress"),
            proxy_address(a)
                .map_err(|e| format!("invalid envoy metrics service address {a:?}: {e}")),
        );
    }
    if pc
        .proxy_metadata
        .contains_key("ISTIO_META_DNS_AUTO_ALLOCATE")
    {
        r.warning(
            at(&p("proxyMetadata"), "ISTIO_META_DNS_AUTO_ALLOCATE"),
            "'ISTIO_META_DNS_AUTO_ALLOCATE' is deprecated; review \
             https://istio.io/latest/docs/ops/configuration/traffic-management/dns-proxy/#dns-auto-allocation-v2 \
             for information about replacement functionality",
        );
    }
    for (field, svc, what) in [
        (
            "envoyMetricsService",
            &pc.envoy_metrics_service,
            "envoy metrics service",
        ),
        (
            "envoyAccessLogService",
            &pc.envoy_access_log_service,
            "envoy access log service",
        ),
    ] {
        let Some(svc) = svc else { continue };
        let spath = p(field);
        if !svc.address.is_empty() {
            r.check(
                at(&spath, "address"),
                proxy_address(&svc.address)
                    .map_err(|e| format!("invalid {what} address {:?}: {e}", svc.address)),
            );
        }
        remote_service_shapes(r, &spath, svc);
    }
    r.check(
        p("proxyAdminPort"),
        fields::port(i64::from(pc.proxy_admin_port.unwrap_or(0)))
            .map_err(|e| format!("invalid proxy admin port: {e}")),
    );
    match pc.control_plane_auth_policy.unwrap_or_default() {
        AuthenticationPolicy::None | AuthenticationPolicy::MutualTls => {}
        AuthenticationPolicy::Inherit => r.error(
            p("controlPlaneAuthPolicy"),
            "invalid authentication policy: unrecognized control plane auth policy \"INHERIT\"",
        ),
    }
    r.check(
        p("statusPort"),
        fields::port(i64::from(pc.status_port.unwrap_or(0)))
            .map_err(|e| format!("invalid status port: {e}")),
    );
    if let Some(pkp) = &pc.private_key_provider {
        private_key_provider(r, &p("privateKeyProvider"), pkp);
    }
    if let Some(cs) = &pc.connection_settings {
        connection_settings(r, &p("connectionSettings"), cs);
    }
}

/// Where the two oneofs of a proxy config are set twice. Only the user's own fields can be.
pub fn proxy_config_oneofs(pc: &ProxyConfig, path: &str, r: &mut Report) {
    oneof(
        r,
        path,
        &[
            ("serviceCluster", pc.service_cluster.is_some()),
            ("tracingServiceName", pc.tracing_service_name.is_some()),
        ],
    );
    if let Some(pkp) = &pc.private_key_provider {
        oneof(
            r,
            &at(path, "privateKeyProvider"),
            &[
                ("cryptomb", pkp.cryptomb.is_some()),
                ("qat", pkp.qat.is_some()),
            ],
        );
    }
}

fn remote_service_shapes(r: &mut Report, path: &str, svc: &RemoteService) {
    if let Some(v) = &svc.tls_settings {
        networking::client_tls(r, &at(path, "tlsSettings"), v, "");
    }
}

fn tracing(r: &mut Report, path: &str, t: &Tracing) {
    let tracers = [
        ("zipkin", t.zipkin.is_some()),
        ("lightstep", t.lightstep.is_some()),
        ("datadog", t.datadog.is_some()),
        ("stackdriver", t.stackdriver.is_some()),
        ("openCensusAgent", t.open_census_agent.is_some()),
    ];
    oneof(r, path, &tracers);
    // jsonpb keeps the last tracer set; Istio validates only that one.
    let winner = tracers.iter().rev().find(|(_, set)| *set).map(|(n, _)| *n);
    match winner {
        Some("lightstep") => {
            if let Some(ls) = &t.lightstep {
                let lp = at(path, "lightstep");
                if ls.address.is_empty() {
                    r.error(
                        at(&lp, "address"),
                        "invalid lightstep config: address is required",
                    );
                } else {
                    r.check(
                        at(&lp, "address"),
                        proxy_address(&ls.address).map_err(|e| {
                            format!("invalid lightstep config: invalid lightstep address: {e}")
                        }),
                    );
                }
                if ls.access_token.is_empty() {
                    r.error(
                        at(&lp, "accessToken"),
                        "invalid lightstep config: access token is required",
                    );
                }
            }
        }
        Some("zipkin") => {
            if let Some(z) = &t.zipkin {
                r.check(
                    at(&at(path, "zipkin"), "address"),
                    proxy_address(&z.address.replacen("$(HOST_IP)", "127.0.0.1", 1))
                        .map_err(|e| format!("invalid zipkin config: {e}")),
                );
            }
        }
        Some("datadog") => {
            if let Some(d) = &t.datadog {
                r.check(
                    at(&at(path, "datadog"), "address"),
                    proxy_address(&d.address.replacen("$(HOST_IP)", "127.0.0.1", 1))
                        .map_err(|e| format!("invalid datadog config: {e}")),
                );
            }
        }
        _ => {}
    }
    if let Some(v) = &t.tls_settings {
        networking::client_tls(
            r,
            &at(path, "tlsSettings"),
            v,
            "invalid tracing TLS config: ",
        );
    }
    for (name, tag) in &t.custom_tags {
        oneof(
            r,
            &at(&at(path, "customTags"), name),
            &[
                ("literal", tag.literal.is_some()),
                ("environment", tag.environment.is_some()),
                ("header", tag.header.is_some()),
            ],
        );
    }
}

fn private_key_provider(r: &mut Report, path: &str, pkp: &PrivateKeyProvider) {
    let prefix = "invalid private key provider configuration";
    // qat is declared after cryptomb, so jsonpb keeps it when both are set.
    let (field, poller) = match (&pkp.cryptomb, &pkp.qat) {
        (_, Some(q)) => ("qat", q),
        (Some(c), None) => ("cryptomb", c),
        (None, None) => {
            r.error(
                path,
                format!("{prefix}: private key provider configuration is required"),
            );
            r.error(path, format!("{prefix}: unknown private key provider"));
            return;
        }
    };
    let pp = at(&at(path, field), "pollDelay");
    match &poller.poll_delay {
        None => r.error(pp, format!("{prefix}: pollDelay is required")),
        Some(d) if d.as_nanos() == 0 => {
            r.error(pp, format!("{prefix}: pollDelay must be non zero"))
        }
        Some(_) => {}
    }
}

fn connection_settings(r: &mut Report, path: &str, cs: &ConnectionSettings) {
    let prefix = "invalid connection settings";
    let mut err = |field: &str, m: &str| r.error(at(path, field), format!("{prefix}: {m}"));
    let non_negative_ints = [
        (
            "listenerPerConnectionBufferLimitBytes",
            cs.listener_per_connection_buffer_limit_bytes,
            "listener_per_connection_buffer_limit_bytes must be non-negative",
        ),
        (
            "clusterPerConnectionBufferLimitBytes",
            cs.cluster_per_connection_buffer_limit_bytes,
            "cluster_per_connection_buffer_limit_bytes must be non-negative",
        ),
    ];
    for (field, v, m) in non_negative_ints {
        if v.is_some_and(|v| v < 0) {
            err(field, m);
        }
    }
    let durations = [
        (
            "httpIdleTimeout",
            &cs.http_idle_timeout,
            "http_idle_timeout",
        ),
        (
            "httpMaxConnectionDuration",
            &cs.http_max_connection_duration,
            "http_max_connection_duration",
        ),
        (
            "httpDrainTimeout",
            &cs.http_drain_timeout,
            "http_drain_timeout",
        ),
        (
            "httpRequestTimeout",
            &cs.http_request_timeout,
            "http_request_timeout",
        ),
        (
            "httpRequestHeadersTimeout",
            &cs.http_request_headers_timeout,
            "http_request_headers_timeout",
        ),
        (
            "httpStreamIdleTimeout",
            &cs.http_stream_idle_timeout,
            "http_stream_idle_timeout",
        ),
        (
            "httpMaxStreamDuration",
            &cs.http_max_stream_duration,
            "http_max_stream_duration",
        ),
    ];
    for (field, d, name) in durations {
        if d.as_ref().is_some_and(Duration::is_negative) {
            err(field, &format!("{name} must be non-negative"));
        }
    }
    let positive = [
        (
            "httpMaxConcurrentStreams",
            cs.http_max_concurrent_streams,
            "http_max_concurrent_streams must be positive",
        ),
        (
            "listenerConnectionLimit",
            cs.listener_connection_limit,
            "listener_connection_limit must be positive",
        ),
        (
            "globalDownstreamConnectionLimit",
            cs.global_downstream_connection_limit,
            "global_downstream_connection_limit must be positive",
        ),
    ];
    for (field, v, m) in positive {
        if v.is_some_and(|v| v <= 0) {
            err(field, m);
        }
    }
    for (field, v, name) in [
        (
            "http2InitialStreamWindowSize",
            cs.http2_initial_stream_window_size,
            "http2_initial_stream_window_size",
        ),
        (
            "http2InitialConnectionWindowSize",
            cs.http2_initial_connection_window_size,
            "http2_initial_connection_window_size",
        ),
    ] {
        if v.is_some_and(|v| v < 65535) {
            err(field, &format!("{name} must be at least 65535"));
        }
    }
}

/// Istio's `ValidateDrainDuration`: at least 1ms, whole seconds.
pub fn drain_duration(d: &Duration) -> Result<(), String> {
    fields::duration(d).map_err(|e| format!("invalid drain duration: {e}"))?;
    if d.as_nanos() % 1_000_000_000 != 0 {
        return Err("drain time only supports durations to seconds precision".into());
    }
    Ok(())
}

/// Istio's `ValidateProxyAddress`: `host:port` with a valid port and a host that is an FQDN or
/// an IP address (IPv6 in brackets).
pub fn proxy_address(addr: &str) -> Result<(), String> {
    let (host, port) =
        split_host_port(addr).map_err(|e| format!("unable to split {addr:?}: {e}"))?;
    let port: i64 = port
        .parse()
        .map_err(|_| format!("port ({port}) is not a number"))?;
    fields::port(port)?;
    if fields::fqdn(host).is_err() && fields::ip_address(host).is_err() {
        return Err(format!("{host:?} is not a valid hostname or an IP address"));
    }
    Ok(())
}

pub use super::super::fields::split_host_port;

/// Go's `time.Duration.String` (`1h0m0s`, `1.5s`, `300ms`), for messages that quote Istio's.
pub fn go_duration(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let frac = |v: u128, digits: u32| -> String {
        let div = 10u128.pow(digits);
        let (whole, rest) = (v / div, v % div);
        if rest == 0 {
            whole.to_string()
        } else {
            let f = format!("{rest:0width$}", width = digits as usize);
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 6))
    } else {
        let secs = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let s = secs % 60;
        let m = (secs / 60) % 60;
        let h = secs / 3600;
        let sec_text = frac(s * 1_000_000_000 + sub, 9);
        if h > 0 {
            format!("{h}h{m}m{sec_text}s")
        } else if m > 0 {
            format!("{m}m{sec_text}s")
        } else {
            format!("{sec_text}s")
        }
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_000_000), "1ms");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(-1_000_000_000), "-1s");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(7_200_000_000_000), "2h0m0s");
    }

    #[test]
    fn proxy_addresses() {
        assert!(proxy_address("istiod.istio-system.svc:15012").is_ok());
        assert!(proxy_address("10.0.0.1:9411").is_ok());
        assert!(proxy_address("[::1]:9411").is_ok());
        assert!(proxy_address("zipkin").is_err());
        assert!(proxy_address("zipkin:0").is_err());
        assert!(proxy_address("zipkin:abc").is_err());
        assert!(proxy_address("::1:9411").is_err());
        assert!(proxy_address("bad_host:80").is_err());
        assert!(proxy_address("").is_err());
    }

    #[test]
    fn drain_durations() {
        let d = |t: &str| Duration::parse(t).unwrap();
        assert!(drain_duration(&d("45s")).is_ok());
        assert!(drain_duration(&d("1500ms")).is_err());
        assert!(drain_duration(&d("0s")).is_err());
    }
}
