//! The mesh certificate authority, with Istio's semantics and no network code.
//!
//! - [`identity`]: SPIFFE identities (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`) and trust domains.
//! - [`CertificateAuthority`] (in `authority`): opened from a self-signed root in a state
//!   directory or from an Istio-style plug-in `cacerts` directory; signs workload CSRs for the
//!   identity the caller proved, and issues the control plane's own serving certificate.
//! - [`auth`]: how a caller proves who it is ([`Authenticator`]), with per-workload bootstrap
//!   tokens as the first way.
//!
//! The transport that carries CSRs and tokens (gRPC, HTTP) belongs to the control plane; this
//! crate only decides what to sign.

pub mod auth;
mod authority;
mod files;
pub mod identity;
mod plugin;
mod selfsigned;
mod x509;

use std::path::PathBuf;

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

pub use auth::{AuthError, Authenticator, BootstrapTokens};
pub use authority::{CaConfig, CaSource, CertificateAuthority, IssuedCert, ServerCert, SignError};
pub use files::FileError;
pub use identity::{Identity, IdentityError, TrustDomain};
pub use plugin::{CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE};
pub use selfsigned::{DEFAULT_ROOT_TTL, ROOT_CERT_FILE, ROOT_KEY_FILE};

/// Why the CA could not be opened. Each variant names the file to look at.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "{cert} exists but its key {key} is missing; refusing to create a new root behind the \
         mesh's back (every workload trusts the old one): restore the key, or remove {cert} to \
         start a new mesh root"
    )]
    MissingKey { key: PathBuf, cert: PathBuf },
    #[error(
        "{key} exists but its certificate {cert} is missing; restore the certificate, or remove \
         {key} to start a new mesh root"
    )]
    MissingCert { cert: PathBuf, key: PathBuf },
    #[error("{key} is not the private key of {cert}")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{path}: the certificate is not a CA (basicConstraints CA:TRUE is missing)")]
    NotCa { path: PathBuf },
    #[error("{path}: the root certificate is not self-signed: {reason}")]
    NotSelfSigned { path: PathBuf, reason: String },
    #[error("{path}: the certificate expired at {not_after}")]
    Expired {
        path: PathBuf,
        not_after: OffsetDateTime,
    },
    #[error("{path}: the chain does not lead to a root in {root}: {reason}")]
    ChainBroken {
        path: PathBuf,
        root: PathBuf,
        reason: String,
    },
    #[error("cannot create the signing key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read the system random number generator")]
    Random,
}

/// The signer of a CA, validated: its key, the chain from its certificate to the root, and the
/// roots workloads should trust.
pub(crate) struct SigningMaterial {
    issuer: Issuer<'static, KeyPair>,
    /// Signer first, root last; `[root]` when the root signs directly.
    issuing_chain: Vec<CertificateDer<'static>>,
    roots: Vec<CertificateDer<'static>>,
    signer_not_after: OffsetDateTime,
}

impl SigningMaterial {
    pub(crate) fn new(
        key: KeyPair,
        issuing_chain: Vec<CertificateDer<'static>>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, CaError> {
        let signer = &issuing_chain[0];
        let signer_not_after = x509::parse(signer)
            .map(|c| x509::not_after(&c))
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        Ok(Self {
            issuer: Issuer::from_ca_cert_der(signer, key)?,
            issuing_chain,
            roots,
            signer_not_after,
        })
    }
}

/// A positive 128-bit serial: unpredictable, as the CA/Browser baseline asks of public CAs, so
/// serials leak nothing about issuance order or volume.
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber, CaError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    // Clear the sign bit (serials are positive) and set the next one so the length is stable.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}
