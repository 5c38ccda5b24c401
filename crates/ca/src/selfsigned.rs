//! The default mesh root: an ECDSA P-256 self-signed CA created once in a state directory and
//! loaded unchanged on every later start.
//!
//! Every workload certificate in the mesh chains to this root, so replacing it silently would
//! break all mTLS at the next rotation. Anything unexpected in the directory (a cert without its
//! key, a key without its cert, a file that does not parse, a key that does not match) is an error
//! naming the file; only an empty directory gets a new root.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::files::{self, FileError};
use crate::identity::TrustDomain;
use crate::{x509, CaError, SigningMaterial};

pub const ROOT_CERT_FILE: &str = "root-cert.pem";
pub const ROOT_KEY_FILE: &str = "root-key.pem";

/// Istio's self-signed root lives ten years (DefaultSelfSignedCACertTTL).
pub const DEFAULT_ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub(crate) fn load_or_create(
    dir: &Path,
    trust_domain: &TrustDomain,
    root_ttl: Duration,
) -> Result<SigningMaterial, CaError> {
    let cert_path = dir.join(ROOT_CERT_FILE);
    let key_path = dir.join(ROOT_KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => load(&cert_path, &key_path),
        (true, false) => Err(CaError::MissingKey {
            key: key_path,
            cert: cert_path,
        }),
        (false, true) => Err(CaError::MissingCert {
            cert: cert_path,
            key: key_path,
        }),
        (false, false) => create(dir, trust_domain, root_ttl),
    }
}

fn load(cert_path: &Path, key_path: &Path) -> Result<SigningMaterial, CaError> {
    let key = files::load_key(key_path)?;
    if files::readable_by_others(key_path) {
        warn!(path = %key_path.display(), "root key is readable by group or others; chmod 600 it");
    }
    let certs = files::load_certs(cert_path)?;
    let root = certs[0].clone();
    let parsed = x509::parse(&root).map_err(|reason| FileError::BadCert {
        path: cert_path.to_path_buf(),
        index: 1,
        reason,
    })?;
    if !x509::is_ca(&parsed) {
        return Err(CaError::NotCa {
            path: cert_path.to_path_buf(),
        });
    }
    x509::verify_signed_by(&parsed, &parsed).map_err(|reason| CaError::NotSelfSigned {
        path: cert_path.to_path_buf(),
        reason,
    })?;
    if x509::public_key_bits(&parsed) != key.public_key_raw() {
        return Err(CaError::KeyMismatch {
            key: key_path.to_path_buf(),
            cert: cert_path.to_path_buf(),
        });
    }
    let not_after = x509::not_after(&parsed);
    if not_after <= OffsetDateTime::now_utc() {
        return Err(CaError::Expired {
            path: cert_path.to_path_buf(),
            not_after,
        });
    }
    info!(path = %cert_path.display(), subject = %x509::subject(&parsed), %not_after, "loaded mesh root");
    drop(parsed);
    SigningMaterial::new(key, vec![root.clone()], vec![root])
}

fn create(
    dir: &Path,
    trust_domain: &TrustDomain,
    root_ttl: Duration,
) -> Result<SigningMaterial, CaError> {
    fs::create_dir_all(dir).map_err(|source| FileError::Write {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    // Istio's self-signed root carries the trust domain as its organization; keep that so
    // `openssl x509 -subject` reads the same as in an Istio mesh.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain.as_str());
    dn.push(DnType::CommonName, "Bowline mesh root CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + root_ttl;
    params.serial_number = Some(crate::random_serial()?);
    let cert = params.self_signed(&key)?;

    // Key first: a crash after it leaves "key without cert", which load_or_create reports
    // instead of minting a different root next to a key nobody trusts.
    let key_path = dir.join(ROOT_KEY_FILE);
    let cert_path = dir.join(ROOT_CERT_FILE);
    files::write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    files::write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
    info!(path = %cert_path.display(), trust_domain = %trust_domain, "created new self-signed mesh root");
    let der = cert.der().clone();
    SigningMaterial::new(key, vec![der.clone()], vec![der])
}
