//! What a gateway needs from a TLS Secret named by `credentialName`: a certificate and key under
//! either the generic (`cert`/`key`) or the `kubernetes.io/tls` (`tls.crt`/`tls.key`) names, and a
//! certificate that parses and is valid now.
//!
//! As Istio's analyzer, only the certificate is inspected: the key must be present, but whether it
//! parses or belongs to the certificate is left to the proxy (Istio's own test data pairs a
//! certificate with another certificate's key and expects no message).

use std::collections::BTreeMap;

use base64::Engine as _;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

use crate::types::k8s::SecretData;

const GENERIC: (&str, &str) = ("cert", "key");
const TLS: (&str, &str) = ("tls.crt", "tls.key");

/// The Secret's values as bytes: `data` decoded from base64, then `stringData` over it, as the
/// API server stores them. A value that is not base64 reads as empty.
fn values(s: &SecretData) -> BTreeMap<&str, Vec<u8>> {
    let mut out: BTreeMap<&str, Vec<u8>> = s
        .data
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .unwrap_or_default();
            (k.as_str(), bytes)
        })
        .collect();
    for (k, v) in &s.string_data {
        out.insert(k.as_str(), v.as_bytes().to_vec());
    }
    out
}

/// The certificate chain the gateway would serve, or why the Secret holds none.
fn certificate(s: &SecretData) -> Result<Vec<u8>, String> {
    let v = values(s);
    let non_empty = |k: &str| v.get(k).is_some_and(|b| !b.is_empty());
    for (cert, key) in [GENERIC, TLS] {
        if non_empty(cert) && non_empty(key) {
            return Ok(v.get(cert).cloned().unwrap_or_default());
        }
    }
    for (cert, key) in [GENERIC, TLS] {
        if v.contains_key(cert) && v.contains_key(key) {
            return Err(format!("keys {cert:?} and {key:?} are empty"));
        }
    }
    let found: Vec<&str> = v.keys().copied().collect();
    Err(format!(
        "expected keys ({:?} and {:?}) or ({:?} and {:?}), found [{}]",
        GENERIC.0,
        GENERIC.1,
        TLS.0,
        TLS.1,
        found.join(", ")
    ))
}

/// Checks the first PEM block of `pem`: it must hold DER certificates, each valid at `now`.
pub fn check_certificate(pem: &[u8], now: ASN1Time) -> Result<(), String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|_| "the certificate is not PEM encoded".to_string())?;
    let mut der: &[u8] = &block.contents;
    if der.is_empty() {
        return Err("the PEM block is empty".into());
    }
    while !der.is_empty() {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("the certificate does not parse: {e}"))?;
        let validity = cert.validity();
        if now > validity.not_after {
            return Err(format!("the certificate expired on {}", validity.not_after));
        }
        if now < validity.not_before {
            return Err(format!(
                "the certificate is not valid before {}",
                validity.not_before
            ));
        }
        der = rest;
    }
    Ok(())
}

/// Why the Secret cannot serve as a gateway's TLS credential at `now`, if it cannot.
pub fn problem(s: &SecretData, now: ASN1Time) -> Option<String> {
    certificate(s)
        .and_then(|pem| check_certificate(&pem, now))
        .err()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 certificate made for these tests, valid for ten years, and its key.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUCTN8cCsT1yyYwYTmL/KPoq8WaggwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMYm93bGluZS50ZXN0MB4XDTI2MTEyMTA1NTk1OVoXDTM2MTEx
ODA1NTk1OVowFzEVMBMGA1UEAwwMYm93bGluZS50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAET/uwz7NBv6E4+NPoRFaJ6mGDsTZdwlp7cffJonIR/h5A+H/u
sp+bFzK6zjZsZHqy+j/0DNgO7ojamtuNMWASv6NTMFEwHQYDVR0OBBYEFLdeFztc
K4xCpVc1b1fwh2WNINxSMB8GA1UdIwQYMBaAFLdeFztcK4xCpVc1b1fwh2WNINxS
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgZaRpOVuoNk2KGE82
aVE5ZU1jWKf2rUQXXg+TA7hBl6kCIQC+O/D5qsucIjiOZL83vya7VE6FPJ/IpMw4
jKmhZWoVBA==
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpMvcFL5ETfzMNJws
ssqsyrOYspIDFdsXH7TEDOGB8nehRANCAARP+7DPs0G/oTj40+hEVonqYYOxNl3C
Wntx98michH+HkD4f+6yn5sXMrrONmxkerL6P/QM2A7uiNqa240xYBK/
-----END PRIVATE KEY-----
";

    fn at(ts: i64) -> ASN1Time {
        ASN1Time::from_timestamp(ts).expect("timestamp")
    }
    /// 2027-01-01, inside the certificate's validity.
    const INSIDE: i64 = 1_798_761_600;
    /// 2037-01-01, after it.
    const AFTER: i64 = 2_114_380_800;
    /// 2026-01-01, before it.
    const BEFORE: i64 = 1_767_225_600;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(pairs: &[(&str, String)]) -> SecretData {
        SecretData {
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_tls_and_generic_secrets() {
        let tls = secret(&[("tls.crt", b64(CERT)), ("tls.key", b64(KEY))]);
        assert_eq!(problem(&tls, at(INSIDE)), None);
        let generic = secret(&[("cert", b64(CERT)), ("key", b64(KEY))]);
        assert_eq!(problem(&generic, at(INSIDE)), None);
        // A chain: every certificate in it is checked.
        let chain = secret(&[
            ("tls.crt", b64(&format!("{CERT}{CERT}"))),
            ("tls.key", b64(KEY)),
        ]);
        assert_eq!(problem(&chain, at(INSIDE)), None);
    }

    #[test]
    fn string_data_counts_as_data() {
        let s = SecretData {
            string_data: [
                ("tls.crt".to_string(), CERT.to_string()),
                ("tls.key".to_string(), KEY.to_string()),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(problem(&s, at(INSIDE)), None);
    }

    #[test]
    fn expired_or_not_yet_valid() {
        let tls = secret(&[("tls.crt", b64(CERT)), ("tls.key", b64(KEY))]);
        assert!(problem(&tls, at(AFTER)).is_some_and(|p| p.contains("expired")));
        assert!(problem(&tls, at(BEFORE)).is_some_and(|p| p.contains("not valid before")));
    }

    #[test]
    fn missing_empty_or_misnamed_keys() {
        let only_cert = secret(&[("tls.crt", b64(CERT))]);
        assert!(problem(&only_cert, at(INSIDE)).is_some_and(|p| p.contains("found [tls.crt]")));
        let empty = secret(&[("tls.crt", String::new()), ("tls.key", String::new())]);
        assert!(problem(&empty, at(INSIDE)).is_some_and(|p| p.contains("empty")));
        let misnamed = secret(&[("tls.cert", b64(CERT)), ("tls.key", b64(KEY))]);
        assert!(problem(&misnamed, at(INSIDE)).is_some());
        assert!(problem(&SecretData::default(), at(INSIDE)).is_some());
    }

    #[test]
    fn certificate_that_is_not_pem_or_not_x509() {
        let junk = secret(&[("cert", b64("hush hush hush\n")), ("key", b64(KEY))]);
        assert!(problem(&junk, at(INSIDE)).is_some_and(|p| p.contains("PEM")));
        let key_as_cert = secret(&[("tls.crt", b64(KEY)), ("tls.key", b64(KEY))]);
        assert!(problem(&key_as_cert, at(INSIDE)).is_some_and(|p| p.contains("parse")));
        let not_base64 = secret(&[("tls.crt", "%%%".into()), ("tls.key", b64(KEY))]);
        assert!(problem(&not_base64, at(INSIDE)).is_some());
    }

    #[test]
    fn a_key_from_another_pair_is_not_judged() {
        let other_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let s = secret(&[("tls.crt", b64(CERT)), ("tls.key", b64(other_key))]);
        assert_eq!(problem(&s, at(INSIDE)), None);
    }
}
