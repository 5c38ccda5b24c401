//! The few X.509 checks the CA makes on certificates it did not create itself: is it a CA, who
//! signed it, does a key match it, is it within its validity.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

/// Parses a certificate already known to be X.509 (files.rs checked it on load).
pub(crate) fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| e.to_string())
}

pub(crate) fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// Checks that `child` names `parent` as issuer and carries a valid signature by its key.
pub(crate) fn verify_signed_by(
    child: &X509Certificate<'_>,
    parent: &X509Certificate<'_>,
) -> Result<(), String> {
    if child.issuer() != parent.subject() {
        return Err(format!(
            "issuer \"{}\" is not \"{}\"",
            child.issuer(),
            parent.subject()
        ));
    }
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|e| format!("signature by \"{}\" does not verify: {e}", parent.subject()))
}

/// The public key bits of a certificate, to compare against a private key's public half.
pub(crate) fn public_key_bits<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    &cert.public_key().subject_public_key.data
}

pub(crate) fn not_after(cert: &X509Certificate<'_>) -> OffsetDateTime {
    cert.validity().not_after.to_datetime()
}

pub(crate) fn subject(cert: &X509Certificate<'_>) -> String {
    cert.subject().to_string()
}
