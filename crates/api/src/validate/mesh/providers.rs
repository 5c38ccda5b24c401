//! Istio's `validateExtensionProvider`. Istio only logs what it finds here ("can be ignored if the
//! given extension provider is not used") and accepts the mesh config, so every finding is a
//! warning.

use std::collections::BTreeSet;

use super::super::{at, fields, idx, Report};
use super::oneof;
use crate::types::mesh::*;

pub fn validate_providers(providers: &[ExtensionProvider], path: &str, r: &mut Report) {
    let mut names = BTreeSet::new();
    for (i, p) in providers.iter().enumerate() {
        let ppath = idx(path, i);
        let mut w = |field: &str, m: String| {
            r.warning(
                at(&ppath, field),
                format!("invalid extension provider {}: {m}", p.name),
            )
        };
        if p.name.is_empty() {
            w("name", "empty extension provider name".into());
        } else if !names.insert(p.name.as_str()) {
            w(
                "name",
                format!("duplicate extension provider name {}", p.name),
            );
        }
        let kinds = p.kinds();
        let set: Vec<(&str, bool)> = kinds.iter().map(|k| (k.field(), true)).collect();
        oneof(r, &ppath, &set);
        let Some(kind) = p.kind() else {
            r.warning(
                &ppath,
                format!(
                    "invalid extension provider {}: unsupported provider: no provider type is set",
                    p.name
                ),
            );
            continue;
        };
        let kpath = at(&ppath, kind.field());
        let mut w = |field: &str, m: String| {
            let path = if field.is_empty() {
                kpath.clone()
            } else {
                at(&kpath, field)
            };
            r.warning(path, format!("invalid extension provider {}: {m}", p.name))
        };
        // (service, port, whether the port message says "invalid service port")
        let endpoint: Option<(&str, u32, bool)> = match kind {
            ProviderKind::EnvoyExtAuthzHttp => p
                .envoy_ext_authz_http
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, false)),
            ProviderKind::EnvoyExtAuthzGrpc => p
                .envoy_ext_authz_grpc
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, true)),
            ProviderKind::Zipkin => p
                .zipkin
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, true)),
            ProviderKind::Lightstep => p
                .lightstep
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, true)),
            ProviderKind::Datadog => p
                .datadog
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, true)),
            ProviderKind::Opencensus => p
                .opencensus
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, true)),
            ProviderKind::Skywalking => p
                .skywalking
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, true)),
            ProviderKind::Opentelemetry => p
                .opentelemetry
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, false)),
            ProviderKind::EnvoyHttpAls => p
                .envoy_http_als
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, false)),
            ProviderKind::EnvoyTcpAls => p
                .envoy_tcp_als
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, false)),
            ProviderKind::EnvoyOtelAls => p
                .envoy_otel_als
                .as_ref()
                .map(|c| (c.service.as_str(), c.port, false)),
            ProviderKind::Prometheus
            | ProviderKind::Stackdriver
            | ProviderKind::EnvoyFileAccessLog => None,
            ProviderKind::Sds => {
                // Istio's validation has no case for SDS providers and reports them as unsupported.
                w("", "unsupported provider: sds".into());
                None
            }
        };
        if let Some((service, port, port_prefix)) = endpoint {
            if let Err(e) = fields::port(i64::from(port)) {
                let m = if port_prefix {
                    format!("invalid service port: {e}")
                } else {
                    e
                };
                w("port", m);
            }
            if let Err(e) = provider_service(service) {
                w("service", e);
            }
        }
        match kind {
            ProviderKind::EnvoyExtAuthzHttp => {
                if let Some(c) = &p.envoy_ext_authz_http {
                    if let Err(e) = status_on_error(&c.status_on_error) {
                        w("statusOnError", e);
                    }
                    if !c.path_prefix.is_empty() {
                        if let Err(e) = url_path(&c.path_prefix) {
                            w(
                                "pathPrefix",
                                format!("invalid pathPrefix {}: {e}", c.path_prefix),
                            );
                        }
                        if !c.path_prefix.starts_with('/') {
                            w(
                                "pathPrefix",
                                format!(
                                    "pathPrefix should begin with `/` but found {:?}",
                                    c.path_prefix
                                ),
                            );
                        }
                    }
                }
            }
            ProviderKind::EnvoyExtAuthzGrpc => {
                if let Some(c) = &p.envoy_ext_authz_grpc {
                    if let Err(e) = status_on_error(&c.status_on_error) {
                        w("statusOnError", e);
                    }
                }
            }
            ProviderKind::Lightstep
                if p.lightstep
                    .as_ref()
                    .is_some_and(|c| c.access_token.is_empty()) =>
            {
                w("accessToken", "access token is required".into());
            }
            ProviderKind::Opentelemetry
                if p.opentelemetry
                    .as_ref()
                    .is_some_and(|c| c.grpc.is_some() && c.http.is_some()) =>
            {
                w(
                    "",
                    "OpenTelemetryTracingProvider cannot specify both grpc and http".into(),
                );
            }
            _ => {}
        }
        if let Some(f) = p
            .envoy_file_access_log
            .as_ref()
            .and_then(|f| f.log_format.as_ref())
        {
            oneof(
                r,
                &at(&at(&ppath, "envoyFileAccessLog"), "logFormat"),
                &[("text", f.text.is_some()), ("labels", f.labels.is_some())],
            );
        }
    }
}

/// Istio's `validateExtensionProviderService`: an FQDN, an IP, or `namespace/host`.
fn provider_service(service: &str) -> Result<(), String> {
    if service.is_empty() {
        return Err("service must not be empty".into());
    }
    if !service.contains('/') {
        if fields::fqdn(service).is_err() {
            if let Err(e) = fields::ip_address(service) {
                return Err(format!("invalid service fmt {service}: {e}"));
            }
        }
        return Ok(());
    }
    fields::namespace_slash_host(service, false)
}

/// Status codes of Envoy's `envoy.type.v3.StatusCode` (0, `Empty`, included).
const ENVOY_STATUS_CODES: [i32; 57] = [
    0, 100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307,
    308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
    421, 422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
];

fn status_on_error(status: &str) -> Result<(), String> {
    if status.is_empty() {
        return Ok(());
    }
    let code: i32 = status
        .parse()
        .map_err(|_| format!("invalid statusOnError value {status}: not an integer"))?;
    if !ENVOY_STATUS_CODES.contains(&code) {
        return Err(format!(
            "unsupported statusOnError value {status}: not an HTTP status code Envoy supports"
        ));
    }
    Ok(())
}

/// What Go's `url.Parse` refuses in a path: control characters and malformed `%` escapes.
fn url_path(p: &str) -> Result<(), String> {
    if p.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(b.len());
                return Err(format!(
                    "invalid URL escape {:?}",
                    String::from_utf8_lossy(&b[i..end])
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services() {
        assert!(provider_service("zipkin.istio-system.svc.cluster.local").is_ok());
        assert!(provider_service("10.0.0.1").is_ok());
        assert!(provider_service("foo/ext-authz.foo.svc.cluster.local").is_ok());
        assert!(provider_service("").is_err());
        assert!(provider_service("bad_name").is_err());
        assert!(provider_service("foo/ext-authz").is_err());
    }

    #[test]
    fn status_codes() {
        assert!(status_on_error("").is_ok());
        assert!(status_on_error("403").is_ok());
        assert!(status_on_error("0").is_ok());
        assert!(status_on_error("418").is_err());
        assert!(status_on_error("abc").is_err());
        assert!(status_on_error("-1").is_err());
    }

    #[test]
    fn path_prefixes() {
        assert!(url_path("/check").is_ok());
        assert!(url_path("/a%20b").is_ok());
        assert!(url_path("/a%zz").is_err());
        assert!(url_path("/a%2").is_err());
        assert!(url_path("/a\nb").is_err());
    }
}
