//! Server-side TLS settings (`ServerTLSSettings`) as Istio's `validateTLSOptions` and the CRD
//! check them. Sidecar ingress listeners use them here; Gateway has its own copy for now.

use std::collections::BTreeSet;

use super::super::{at, Report};
use crate::types::sidecar::{IngressServerTlsSettings, IngressTlsMode, IngressTlsProtocol};

/// Cipher suites Envoy (BoringSSL) accepts by name.
const CIPHER_SUITES: [&str; 15] = [
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

/// A cipher suite name Istio lets through: a known name, `ALL`, empty, or an OpenSSL-style
/// expression starting with an operator (`-`, `+`, `!`...), which Istio does not parse.
pub fn is_valid_cipher_suite(cs: &str) -> bool {
    match cs.chars().next() {
        None => true,
        Some(_) if cs == "ALL" => true,
        Some(c) if !c.is_alphanumeric() => true,
        Some(_) => CIPHER_SUITES.contains(&cs),
    }
}

/// The CRD's rules on `ServerTLSSettings`: list sizes and one credential source.
pub fn server_tls_schema(r: &mut Report, path: &str, t: &IngressServerTlsSettings) {
    if t.credential_names.is_some() && t.tls_certificates.is_some() {
        r.error(
            path,
            "only one of credentialNames or tlsCertificates can be set",
        );
    }
    if !t.credential_name.is_empty() && t.credential_names.is_some() {
        r.error(
            path,
            "only one of credentialName or credentialNames can be set",
        );
    }
    if let Some(n) = &t.credential_names {
        list_size(r, &at(path, "credentialNames"), n.len());
    }
    if let Some(c) = &t.tls_certificates {
        list_size(r, &at(path, "tlsCertificates"), c.len());
    }
}

/// A sorted set the way Go prints a slice: `[a b]`.
fn go_list(s: &BTreeSet<&str>) -> String {
    format!("[{}]", s.iter().copied().collect::<Vec<_>>().join(" "))
}

fn list_size(r: &mut Report, path: &str, n: usize) {
    if n == 0 {
        r.error(path, "must have at least 1 item");
    } else if n > 2 {
        r.error(path, format!("must have at most 2 items, has {n}"));
    }
}

/// Istio's `validateTLSOptions`.
pub fn server_tls_options(r: &mut Report, path: &str, t: &IngressServerTlsSettings) {
    let credential_names = t.credential_names.as_deref().unwrap_or_default();
    let tls_certificates = t.tls_certificates.as_deref().unwrap_or_default();
    if matches!(
        t.min_protocol_version,
        IngressTlsProtocol::TlsV1_0 | IngressTlsProtocol::TlsV1_1
    ) && t.cipher_suites.is_empty()
    {
        r.warning(
            at(path, "minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid = BTreeSet::new();
    let mut valid = BTreeSet::new();
    let mut duplicate = BTreeSet::new();
    for cs in &t.cipher_suites {
        if !is_valid_cipher_suite(cs) {
            invalid.insert(cs.as_str());
        } else if !valid.insert(cs.as_str()) {
            duplicate.insert(cs.as_str());
        }
    }
    if !invalid.is_empty() {
        r.warning(
            at(path, "cipherSuites"),
            format!("ignoring invalid cipher suites: {}", go_list(&invalid)),
        );
    }
    if !duplicate.is_empty() {
        r.warning(
            at(path, "cipherSuites"),
            format!("ignoring duplicate cipher suites: {}", go_list(&duplicate)),
        );
    }

    if t.mode == IngressTlsMode::IstioMutual {
        for (set, what) in [
            (!t.server_certificate.is_empty(), "server certificate"),
            (!t.private_key.is_empty(), "private key"),
            (!t.ca_certificates.is_empty(), "CA bundle"),
            (!tls_certificates.is_empty(), "tlsCertificates"),
            (!t.credential_name.is_empty(), "credentialName"),
            (!credential_names.is_empty(), "credentialNames"),
        ] {
            if set {
                r.error(
                    path,
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    if matches!(
        t.mode,
        IngressTlsMode::Passthrough | IngressTlsMode::AutoPassthrough
    ) && (!t.ca_crl.is_empty()
        || !t.server_certificate.is_empty()
        || !t.private_key.is_empty()
        || !t.ca_certificates.is_empty()
        || !tls_certificates.is_empty()
        || !t.credential_name.is_empty()
        || !credential_names.is_empty())
    {
        r.warning(
            path,
            format!(
                "{} mode does not use certificates, they will be ignored",
                t.mode.name()
            ),
        );
    }
    let sources = [
        !t.server_certificate.is_empty() && !t.private_key.is_empty(),
        !t.credential_name.is_empty(),
        !credential_names.is_empty(),
        !tls_certificates.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        r.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    let terminating = matches!(
        t.mode,
        IngressTlsMode::Simple | IngressTlsMode::Mutual | IngressTlsMode::OptionalMutual
    );
    if terminating && (!t.credential_name.is_empty() || !credential_names.is_empty()) {
        // Certificates come from the named secrets.
        return;
    }
    if terminating {
        let prefix = if t.mode == IngressTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            if t.ca_certificates.is_empty() {
                r.error(
                    at(path, "caCertificates"),
                    "MUTUAL TLS requires a client CA bundle",
                );
            }
            "MUTUAL TLS"
        };
        if tls_certificates.len() > 2 {
            r.warning(
                at(path, "tlsCertificates"),
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        let certs: Vec<(&str, &str)> = if tls_certificates.is_empty() {
            vec![(t.server_certificate.as_str(), t.private_key.as_str())]
        } else {
            tls_certificates
                .iter()
                .map(|c| (c.server_certificate.as_str(), c.private_key.as_str()))
                .collect()
        };
        for (cert, key) in certs {
            if cert.is_empty() {
                r.error(path, format!("{prefix} requires a server certificate"));
            }
            if key.is_empty() {
                r.error(path, format!("{prefix} requires a private key"));
            }
        }
    }
    if !t.ca_crl.is_empty() {
        if !t.credential_name.is_empty() {
            r.error(
                at(path, "caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if t.mode == IngressTlsMode::Simple {
            r.error(at(path, "caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}
