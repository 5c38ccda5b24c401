//! Plug-in CA, read exactly as Istio reads its `cacerts` secret: an intermediate (`ca-cert.pem`,
//! `ca-key.pem`) that signs workload certificates, the mesh root (`root-cert.pem`), and the chain
//! from the intermediate to the root (`cert-chain.pem`).
//!
//! An operator who plugs in a CA means "use my PKI"; any defect in these files is reported with
//! the file it is in, and nothing falls back to a self-signed root.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::files::{self, FileError};
use crate::{x509, CaError, SigningMaterial};

pub const CA_CERT_FILE: &str = "ca-cert.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";

pub(crate) fn load(dir: &Path) -> Result<SigningMaterial, CaError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let root_path = dir.join(ROOT_CERT_FILE);
    let chain_path = dir.join(CERT_CHAIN_FILE);

    let key = files::load_key(&key_path)?;
    if files::readable_by_others(&key_path) {
        warn!(path = %key_path.display(), "plug-in CA key is readable by group or others");
    }
    let ca_der = files::load_certs(&cert_path)?.swap_remove(0);
    let roots = files::load_certs(&root_path)?;
    let chain_file = files::load_certs(&chain_path)?;

    fn bad_cert(path: &Path, index: usize) -> impl FnOnce(String) -> FileError + '_ {
        move |reason| FileError::BadCert {
            path: path.to_path_buf(),
            index,
            reason,
        }
    }
    let ca = x509::parse(&ca_der).map_err(bad_cert(&cert_path, 1))?;
    if x509::public_key_bits(&ca) != key.public_key_raw() {
        return Err(CaError::KeyMismatch {
            key: key_path,
            cert: cert_path,
        });
    }
    if !x509::is_ca(&ca) {
        return Err(CaError::NotCa { path: cert_path });
    }
    let not_after = x509::not_after(&ca);
    if not_after <= OffsetDateTime::now_utc() {
        return Err(CaError::Expired {
            path: cert_path,
            not_after,
        });
    }
    let parsed_roots = roots
        .iter()
        .enumerate()
        .map(|(i, r)| x509::parse(r).map_err(bad_cert(&root_path, i + 1)))
        .collect::<Result<Vec<_>, _>>()?;

    // Walk from ca-cert.pem upwards through cert-chain.pem until a root signs the current link.
    // Istio's own tooling writes cert-chain.pem as ca-cert followed by its issuers and often the
    // root itself; copies of ca-cert and of roots in the file are links we already have.
    let broken = |reason: String| CaError::ChainBroken {
        path: chain_path.clone(),
        root: root_path.clone(),
        reason,
    };
    let mut issuing_chain: Vec<CertificateDer<'static>> = vec![ca_der.clone()];
    let mut current = ca;
    let mut remaining = chain_file
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != ca_der && !roots.contains(c));
    let root = loop {
        if let Some((i, _)) = parsed_roots
            .iter()
            .enumerate()
            .find(|(_, r)| x509::verify_signed_by(&current, r).is_ok())
        {
            break roots[i].clone();
        }
        let Some((index, next_der)) = remaining.next() else {
            return Err(broken(format!(
                "\"{}\" is not signed by any certificate in the chain or the root file",
                x509::subject(&current)
            )));
        };
        let next = x509::parse(next_der).map_err(bad_cert(&chain_path, index + 1))?;
        x509::verify_signed_by(&current, &next).map_err(|e| {
            broken(format!(
                "certificate #{} does not issue \"{}\": {e}",
                index + 1,
                x509::subject(&current)
            ))
        })?;
        if !x509::is_ca(&next) {
            return Err(broken(format!(
                "certificate #{} (\"{}\") is not a CA",
                index + 1,
                x509::subject(&next)
            )));
        }
        issuing_chain.push(next_der.clone());
        current = next;
    };
    issuing_chain.push(root);
    info!(
        dir = %dir.display(),
        signer = %x509::subject(&x509::parse(&ca_der).map_err(bad_cert(&cert_path, 1))?),
        chain_len = issuing_chain.len(),
        "loaded plug-in CA"
    );
    drop(parsed_roots);
    SigningMaterial::new(key, issuing_chain, roots)
}
