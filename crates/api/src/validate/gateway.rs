//! Validation of `Gateway`: Istio's `ValidateGateway` (servers, hosts, ports, binds, TLS
//! options, unique port names) plus the CRD schema's required fields, list bounds and CEL rules
//! on `tls`. The server TLS checks ([`validate_tls_options`]) are shared with Sidecar ingress
//! listeners, which carry the same `ServerTLSSettings`.

use std::collections::BTreeSet;

use super::fields::{self, is_dns1123_label};
use super::{at, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::gateway::*;

/// `bind` prefix that makes a server listen on a Unix domain socket.
pub const UNIX_ADDRESS_PREFIX: &str = "unix://";

/// Cipher suites Envoy (BoringSSL) accepts on gateways, besides `ALL` and expressions.
pub const VALID_CIPHER_SUITES: [&str; 15] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Port protocols: the one notion of [`crate::protocol`] (a Gateway port accepts the same names
/// as a Sidecar's, Istio's `protocol.Parse`).
pub use crate::protocol::Protocol;

/// Whether Istio takes a cipher suite name: a known suite, `ALL`, empty, or an expression that
/// starts with an operator (`-`, `+`, `!`...), which is passed through unparsed.
pub fn is_valid_cipher_suite(cs: &str) -> bool {
    match cs.chars().next() {
        None => true,
        _ if cs == "ALL" => true,
        Some(c) if !c.is_alphanumeric() => true,
        Some(_) => VALID_CIPHER_SUITES.contains(&cs),
    }
}

fn s(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

pub fn validate(meta: &ObjectMeta, spec: &Gateway, r: &mut Report) {
    // Gateway names end up in listener and route names, where dots are separators.
    if !is_dns1123_label(&meta.name) {
        r.error(
            "metadata.name",
            format!("invalid gateway name: {:?}", meta.name),
        );
    }
    let servers_path = "spec.servers";
    if spec.servers.is_empty() {
        r.error(servers_path, "gateway must have at least one server");
    }
    let mut port_names = BTreeSet::new();
    for (i, server) in spec.servers.iter().enumerate() {
        let path = idx(servers_path, i);
        validate_server(r, &path, server);
        if let Some(port) = &server.port {
            let name = s(&port.name);
            if !port_names.insert(name) {
                r.error(
                    at(&at(&path, "port"), "name"),
                    format!("port names in servers must be unique: duplicate name {name}"),
                );
            }
            let redirect = server
                .tls
                .as_ref()
                .and_then(|t| t.https_redirect)
                .unwrap_or(false);
            if redirect && !Protocol::parse(s(&port.protocol)).is_http() {
                r.warning(
                    at(&at(&path, "tls"), "httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                );
            }
        }
    }
}

/// One server: hosts, port, bind, TLS options, and whether TLS settings fit the protocol.
pub fn validate_server(r: &mut Report, path: &str, server: &Server) {
    if server.hosts.is_empty() {
        r.error(
            at(path, "hosts"),
            "server config must contain at least one host",
        );
    }
    for (i, host) in server.hosts.iter().enumerate() {
        r.check(
            idx(&at(path, "hosts"), i),
            fields::namespace_slash_host(host, true),
        );
    }
    let bind = s(&server.bind);
    let port_ok = validate_server_port(r, &at(path, "port"), server.port.as_ref(), bind);
    validate_server_bind(r, path, server.port.as_ref(), bind);
    if let Some(tls) = &server.tls {
        validate_tls_options(r, &at(path, "tls"), tls);
    }
    let Some(port) = server.port.as_ref().filter(|_| port_ok) else {
        return;
    };
    let protocol = Protocol::parse(s(&port.protocol));
    match &server.tls {
        None if protocol.is_tls() => r.error(
            path,
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        Some(tls) if !protocol.is_tls() => {
            if protocol.is_http() {
                // On plain HTTP only an https redirect makes sense: passthrough mode and no
                // certificates.
                let passthrough = matches!(
                    tls.mode,
                    ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
                );
                if !passthrough
                    || !s(&tls.ca_certificates).is_empty()
                    || !s(&tls.private_key).is_empty()
                    || !s(&tls.server_certificate).is_empty()
                {
                    r.error(
                        at(path, "tls"),
                        "server cannot have TLS settings for plain text HTTP ports",
                    );
                }
            } else {
                r.error(
                    at(path, "tls"),
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            }
        }
        _ => {}
    }
}

/// The server's port; returns whether it had no errors.
pub fn validate_server_port(r: &mut Report, path: &str, port: Option<&Port>, bind: &str) -> bool {
    let Some(port) = port else {
        r.error(path, "port is required");
        return false;
    };
    let before = r.errors().count();
    let protocol = s(&port.protocol);
    if Protocol::parse(protocol) == Protocol::Unknown {
        r.error(
            at(path, "protocol"),
            format!("invalid protocol {protocol:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP"),
        );
    }
    match port.number {
        None => r.error(
            at(path, "number"),
            "Required value: port number must be set",
        ),
        Some(n) if n > 0 || !bind.starts_with(UNIX_ADDRESS_PREFIX) => {
            r.check(at(path, "number"), fields::port(i64::from(n)))
        }
        Some(_) => {}
    }
    if port.target_port.is_some_and(|t| t > 0) {
        r.error(
            at(path, "targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if s(&port.name).is_empty() {
        r.error(at(path, "name"), "port name must be set");
    }
    r.errors().count() == before
}

/// `bind`: an IP address, or a Unix socket path with port number 0.
pub fn validate_server_bind(r: &mut Report, server_path: &str, port: Option<&Port>, bind: &str) {
    let path = at(server_path, "bind");
    if let Some(socket) = bind.strip_prefix(UNIX_ADDRESS_PREFIX) {
        r.check(&path, unix_address(socket));
        if let Some(n) = port.and_then(|p| p.number).filter(|n| *n != 0) {
            r.error(
                at(&at(server_path, "port"), "number"),
                format!("port number must be 0 for unix domain socket: {n}"),
            );
        }
    } else if !bind.is_empty() {
        r.check(&path, fields::ip_address(bind));
    }
}

pub use super::fields::unix_address;

/// Server TLS settings: Istio's `validateTLSOptions` and the schema's bounds and CEL rules.
pub fn validate_tls_options(r: &mut Report, path: &str, tls: &ServerTlsSettings) {
    validate_tls_schema(r, path, tls);

    if matches!(
        tls.min_protocol_version,
        ServerTlsProtocol::TlsV1_0 | ServerTlsProtocol::TlsV1_1
    ) && tls.cipher_suites.is_empty()
    {
        r.warning(
            at(path, "minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut duplicate = BTreeSet::new();
    for cs in &tls.cipher_suites {
        if !is_valid_cipher_suite(cs) {
            invalid.insert(cs.as_str());
        } else if !seen.insert(cs.as_str()) {
            duplicate.insert(cs.as_str());
        }
    }
    let suites = at(path, "cipherSuites");
    if !invalid.is_empty() {
        r.warning(
            &suites,
            format!("ignoring invalid cipher suites: {}", go_list(&invalid)),
        );
    }
    if !duplicate.is_empty() {
        r.warning(
            &suites,
            format!("ignoring duplicate cipher suites: {}", go_list(&duplicate)),
        );
    }

    let server_cert = s(&tls.server_certificate);
    let private_key = s(&tls.private_key);
    let ca_certs = s(&tls.ca_certificates);
    let credential_name = s(&tls.credential_name);
    let credential_names = tls.credential_names();
    let tls_certificates = tls.tls_certificates();

    if tls.mode == ServerTlsMode::IstioMutual {
        // The mesh's own certificates are used; any other source is a mistake.
        let clashes = [
            (
                !server_cert.is_empty(),
                "serverCertificate",
                "server certificate",
            ),
            (!private_key.is_empty(), "privateKey", "private key"),
            (!ca_certs.is_empty(), "caCertificates", "CA bundle"),
            (
                !tls_certificates.is_empty(),
                "tlsCertificates",
                "tlsCertificates",
            ),
            (
                !credential_name.is_empty(),
                "credentialName",
                "credentialName",
            ),
            (
                !credential_names.is_empty(),
                "credentialNames",
                "credentialNames",
            ),
        ];
        for (set, field, what) in clashes {
            if set {
                r.error(
                    at(path, field),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }

    if matches!(
        tls.mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    ) && (!s(&tls.ca_crl).is_empty()
        || !server_cert.is_empty()
        || !private_key.is_empty()
        || !ca_certs.is_empty()
        || !tls_certificates.is_empty()
        || !credential_name.is_empty()
        || !credential_names.is_empty())
    {
        r.warning(
            at(path, "mode"),
            format!(
                "{} mode does not use certificates, they will be ignored",
                tls.mode.name()
            ),
        );
    }

    let sources = [
        !server_cert.is_empty() && !private_key.is_empty(),
        !credential_name.is_empty(),
        !credential_names.is_empty(),
        !tls_certificates.is_empty(),
    ];
    if sources.iter().filter(|b| **b).count() > 1 {
        r.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }

    let terminating = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    // Certificates fetched from a secret need no files here.
    if terminating && (!credential_name.is_empty() || !credential_names.is_empty()) {
        return;
    }
    if terminating {
        let mutual = tls.mode != ServerTlsMode::Simple;
        let prefix = if mutual { "MUTUAL TLS" } else { "SIMPLE TLS" };
        if mutual && ca_certs.is_empty() {
            r.error(
                at(path, "caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        if tls_certificates.len() > 2 {
            r.warning(
                at(path, "tlsCertificates"),
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        if tls_certificates.is_empty() {
            if server_cert.is_empty() {
                r.error(
                    at(path, "serverCertificate"),
                    format!("{prefix} requires a server certificate"),
                );
            }
            if private_key.is_empty() {
                r.error(
                    at(path, "privateKey"),
                    format!("{prefix} requires a private key"),
                );
            }
        }
        for (i, cert) in tls_certificates.iter().enumerate() {
            let cert_path = idx(&at(path, "tlsCertificates"), i);
            if s(&cert.server_certificate).is_empty() {
                r.error(
                    at(&cert_path, "serverCertificate"),
                    format!("{prefix} requires a server certificate"),
                );
            }
            if s(&cert.private_key).is_empty() {
                r.error(
                    at(&cert_path, "privateKey"),
                    format!("{prefix} requires a private key"),
                );
            }
        }
    }
    if !s(&tls.ca_crl).is_empty() {
        if !credential_name.is_empty() {
            r.error(
                at(path, "caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            r.error(at(path, "caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

/// The CRD schema's rules on `tls`: list bounds and the "only one of" CEL rules.
fn validate_tls_schema(r: &mut Report, path: &str, tls: &ServerTlsSettings) {
    if let Some(names) = &tls.credential_names {
        if names.is_empty() {
            r.error(
                at(path, "credentialNames"),
                "Invalid value: credentialNames in body should have at least 1 items",
            );
        } else if names.len() > 2 {
            r.error(
                at(path, "credentialNames"),
                format!("Too many: {}: must have at most 2 items", names.len()),
            );
        }
    }
    // The schema also caps tlsCertificates at 2, but Istio's own tests accept more with a
    // warning (given below), so only the lower bound is enforced here.
    if tls.tls_certificates.as_ref().is_some_and(|c| c.is_empty()) {
        r.error(
            at(path, "tlsCertificates"),
            "Invalid value: tlsCertificates in body should have at least 1 items",
        );
    }
    let has_names = tls.credential_names.is_some();
    let has_certs = tls.tls_certificates.is_some();
    let has_name = tls.credential_name.is_some();
    if has_names && has_certs {
        r.error(
            path,
            "only one of credentialNames or tlsCertificates can be set",
        );
    }
    if has_name && has_names {
        r.error(
            path,
            "only one of credentialName or credentialNames can be set",
        );
    }
}

/// A sorted set as Go prints a string slice: `[a b c]`.
fn go_list(set: &BTreeSet<&str>) -> String {
    format!("[{}]", set.iter().copied().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use crate::validate::testutil::{assert_error, assert_valid, check};
    use crate::{load_str, Decoded};

    /// A gateway with one server; `server` is the YAML of the server's fields.
    fn gateway(name: &str, server: &str) -> String {
        let server = server.trim().replace('\n', "\n    ");
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: ns\nspec:\n  selector:\n    istio: ingressgateway\n  servers:\n  - {server}\n"
        )
    }

    const HTTPS: &str = "
hosts: ['*.example.com']
port: {number: 443, name: https, protocol: HTTPS}
tls:";

    #[test]
    fn gateway_names_are_dns_labels() {
        let server = "hosts: [example.com]\nport: {number: 80, name: http, protocol: HTTP}";
        assert_valid(&gateway("gw", server));
        assert_error(
            &gateway("my.gw", server),
            "metadata.name",
            "invalid gateway name",
        );
    }

    #[test]
    fn protocols_ignore_case_and_unknown_ones_are_refused() {
        assert_valid(&gateway(
            "gw",
            "hosts: [example.com]\nport: {number: 80, name: g, protocol: gRPC-Web}",
        ));
        assert_error(
            &gateway(
                "gw",
                "hosts: [example.com]\nport: {number: 80, name: g, protocol: QUIC}",
            ),
            "spec.servers[0].port.protocol",
            "invalid protocol",
        );
    }

    #[test]
    fn port_number_is_required_even_on_unix_sockets() {
        assert_valid(&gateway(
            "gw",
            "hosts: [example.com]\nport: {number: 0, name: http, protocol: HTTP}\nbind: unix:///var/run/gw.sock",
        ));
        assert_error(
            &gateway(
                "gw",
                "hosts: [example.com]\nport: {name: http, protocol: HTTP}\nbind: unix:///var/run/gw.sock",
            ),
            "spec.servers[0].port.number",
            "Required value",
        );
    }

    #[test]
    fn unix_socket_paths() {
        for (bind, ok) in [
            ("unix://@abstract", true),
            ("unix:///tmp/sock", true),
            ("unix://", false),
            ("unix://relative/sock", false),
            ("unix:///tmp/dir/", false),
        ] {
            let yaml = gateway(
                "gw",
                &format!(
                    "hosts: [example.com]\nport: {{number: 0, name: http, protocol: HTTP}}\nbind: {bind:?}"
                ),
            );
            assert_eq!(!check(&yaml).has_errors(), ok, "{bind}");
        }
    }

    #[test]
    fn target_port_has_no_effect_on_gateways() {
        assert_error(
            &gateway(
                "gw",
                "hosts: [example.com]\nport: {number: 80, name: http, protocol: HTTP, targetPort: 8080}",
            ),
            "spec.servers[0].port.targetPort",
            "no impact",
        );
    }

    #[test]
    fn tls_settings_only_on_tls_or_redirecting_http_ports() {
        assert_error(
            &gateway(
                "gw",
                "hosts: [example.com]\nport: {number: 27017, name: mongo, protocol: MONGO}\ntls: {mode: PASSTHROUGH}",
            ),
            "spec.servers[0].tls",
            "non HTTPS/TLS ports",
        );
        assert_valid(&gateway(
            "gw",
            "hosts: [example.com]\nport: {number: 80, name: http, protocol: HTTP}\ntls: {httpsRedirect: true}",
        ));
    }

    #[test]
    fn credential_names_are_bounded_and_exclusive() {
        assert_valid(&gateway(
            "gw",
            &format!("{HTTPS}\n  mode: SIMPLE\n  credentialNames: [rsa, ecdsa]"),
        ));
        assert_error(
            &gateway(
                "gw",
                &format!("{HTTPS}\n  mode: SIMPLE\n  credentialNames: []"),
            ),
            "spec.servers[0].tls.credentialNames",
            "at least 1",
        );
        assert_error(
            &gateway(
                "gw",
                &format!("{HTTPS}\n  mode: SIMPLE\n  credentialNames: [a, b, c]"),
            ),
            "spec.servers[0].tls.credentialNames",
            "at most 2",
        );
        assert_error(
            &gateway(
                "gw",
                &format!("{HTTPS}\n  mode: SIMPLE\n  credentialName: a\n  credentialNames: [b]"),
            ),
            "spec.servers[0].tls",
            "only one of credentialName or credentialNames",
        );
        assert_error(
            &gateway(
                "gw",
                &format!("{HTTPS}\n  mode: SIMPLE\n  tlsCertificates: []"),
            ),
            "spec.servers[0].tls.tlsCertificates",
            "at least 1",
        );
    }

    #[test]
    fn istio_mutual_takes_no_certificates() {
        assert_valid(&gateway("gw", &format!("{HTTPS}\n  mode: ISTIO_MUTUAL")));
        assert_error(
            &gateway(
                "gw",
                &format!("{HTTPS}\n  mode: ISTIO_MUTUAL\n  credentialNames: [a]"),
            ),
            "spec.servers[0].tls.credentialNames",
            "ISTIO_MUTUAL TLS cannot have associated credentialNames",
        );
    }

    #[test]
    fn optional_mutual_needs_a_client_ca() {
        assert_error(
            &gateway(
                "gw",
                &format!(
                    "{HTTPS}\n  mode: OPTIONAL_MUTUAL\n  serverCertificate: /c\n  privateKey: /k"
                ),
            ),
            "spec.servers[0].tls.caCertificates",
            "MUTUAL TLS requires a client CA bundle",
        );
        assert_valid(&gateway(
            "gw",
            &format!("{HTTPS}\n  mode: OPTIONAL_MUTUAL\n  credentialName: secret"),
        ));
    }

    #[test]
    fn warnings_on_certificates_ignored_and_old_protocols() {
        let r = assert_valid(&gateway(
            "gw",
            &format!("{HTTPS}\n  mode: AUTO_PASSTHROUGH\n  credentialName: secret"),
        ));
        assert!(r.warnings().any(|f| f
            .message
            .contains("AUTO_PASSTHROUGH mode does not use certificates")));
        let r = assert_valid(&gateway(
            "gw",
            &format!("{HTTPS}\n  mode: SIMPLE\n  credentialName: s\n  minProtocolVersion: TLSV1_1"),
        ));
        assert!(r
            .warnings()
            .any(|f| f.path == "spec.servers[0].tls.minProtocolVersion"));
        let r = assert_valid(&gateway(
            "gw",
            &format!("{HTTPS}\n  mode: SIMPLE\n  credentialName: s\n  minProtocolVersion: TLSV1_1\n  cipherSuites: ['-ALL', ECDHE-RSA-AES128-SHA]"),
        ));
        assert_eq!(r.warnings().count(), 0);
    }

    #[test]
    fn unknown_fields_and_enum_values_are_refused() {
        let yaml = gateway(
            "gw",
            &format!("{HTTPS}\n  mode: SIMPLE\n  credentialName: s\n  maxProtocolVersion: TLSV1_4"),
        );
        assert!(matches!(
            load_str("t.yaml", &yaml).into_iter().next(),
            Some(Decoded::Invalid(_))
        ));
        let yaml = gateway(
            "gw",
            "hosts: [example.com]\nport: {number: 80, name: http, protocol: HTTP}\nhost: example.com",
        );
        assert!(matches!(
            load_str("t.yaml", &yaml).into_iter().next(),
            Some(Decoded::Invalid(_))
        ));
    }
}
