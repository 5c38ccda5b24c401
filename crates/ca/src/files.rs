//! Reading and writing the CA's PEM files: certificates, private keys, and owner-only writes.
//!
//! Every error names the file, because the operator fixes files, not Rust values. Keys are
//! accepted in the three plain encodings that tools write (PKCS#8, PKCS#1 from `openssl genrsa
//! -traditional` and Istio's sample `cacerts`, SEC1 from `openssl ecparam -genkey`); encrypted keys
//! are refused by name since a control plane has no one to ask for a passphrase.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA file that could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // `cause`, not `source`: the I/O reason is part of this message, and as an error source too
    // it would print twice in a cause chain (`error: ...: {:#}`).
    #[error("cannot read {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write {path}: {cause}")]
    Write { path: PathBuf, cause: io::Error },
    #[error(
        "{path}: the private key is encrypted; Bowline cannot ask for a passphrase, so store it \
         decrypted (openssl pkey -in {path} -out <new file>) with 0600 permissions"
    )]
    EncryptedKey { path: PathBuf },
    #[error("{path}: no private key found (expected PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")]
    NoKey { path: PathBuf },
    #[error("{path}: the private key cannot be used for signing: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path}: no PEM CERTIFICATE block found")]
    NoCert { path: PathBuf },
    #[error("{path}: malformed PEM: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("{path}: certificate #{index} is not valid X.509: {reason}")]
    BadCert {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    fs::read(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// All certificates in a PEM file, in file order; at least one, each parseable as X.509.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(FileError::NoCert {
            path: path.to_path_buf(),
        });
    }
    for (i, c) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(c).map_err(|e| FileError::BadCert {
            path: path.to_path_buf(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(certs)
}

/// The signing key in a PEM file, refusing encrypted keys by name.
pub(crate) fn load_key(path: &Path) -> Result<KeyPair, FileError> {
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    // Both the PKCS#8 and the legacy OpenSSL form are checked before parsing: the parser would
    // skip an ENCRYPTED PRIVATE KEY block and report "no key", which sends the operator looking
    // for the wrong problem.
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(FileError::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => FileError::NoKey {
            path: path.to_path_buf(),
        },
        other => FileError::BadPem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    let bad = |reason: String| FileError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    let pkcs8 = match &der {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(k) => pkcs8_wrap(&RSA_ALGORITHM_ID, k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => {
            // SEC1 does not say which curve in a way ring reads, so try the curves rcgen signs
            // with; ring checks the embedded curve against the one we claim.
            return [P256_ALGORITHM_ID.as_slice(), P384_ALGORITHM_ID.as_slice()]
                .iter()
                .find_map(|alg| {
                    let der = pkcs8_wrap(alg, k.secret_sec1_der());
                    KeyPair::try_from(&PrivatePkcs8KeyDer::from(der)).ok()
                })
                .ok_or_else(|| bad("EC key is not on P-256 or P-384".into()));
        }
        _ => return Err(bad("unsupported private key encoding".into())),
    };
    KeyPair::try_from(&PrivatePkcs8KeyDer::from(pkcs8)).map_err(|e| bad(e.to_string()))
}

// DER AlgorithmIdentifier bodies (without the outer SEQUENCE).
const RSA_ALGORITHM_ID: [u8; 13] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const P256_ALGORITHM_ID: [u8; 19] = [
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07,
];
const P384_ALGORITHM_ID: [u8; 16] = [
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22,
];

/// PKCS#8 PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING } around a raw key.
fn pkcs8_wrap(algorithm_id: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(der_tlv(0x30, algorithm_id));
    body.extend(der_tlv(0x04, key));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// Writes `contents` to `path` through a temporary file and a rename, so a crash never leaves
/// a half-written key or certificate where the next start would read it. `mode` applies from
/// the first byte: a key is never readable by others, even briefly.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: path.to_path_buf(),
        cause: source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // A leftover from a crashed run is ours and unused; create_new below must not trip on it.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// True when group or others may read the file: worth a warning for a private key.
pub(crate) fn readable_by_others(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 != 0)
        .unwrap_or(false)
}

pub(crate) fn certs_to_pem(certs: &[CertificateDer<'_>]) -> String {
    certs.iter().map(|c| cert_to_pem(c)).collect()
}

pub(crate) fn cert_to_pem(cert: &CertificateDer<'_>) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", cert.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encoding_round_trips() {
        for len in [1usize, 2, 3, 64, 200] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let pem = cert_to_pem(&CertificateDer::from(der.clone()));
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), der.as_slice());
        }
    }

    #[test]
    fn long_der_lengths() {
        assert_eq!(der_tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(der_tlv(0x04, &[0; 0x1234])[..4], [0x04, 0x82, 0x12, 0x34]);
    }
}
