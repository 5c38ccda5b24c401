//! The `x-forwarded-client-cert` value an Istio sidecar adds to requests it received over mesh
//! mTLS: `By=<own SPIFFE ID>;Hash=<SHA-256 of the peer certificate, hex>;Subject="";URI=<peer
//! SPIFFE ID>`. Applications (and Istio's own tests) read the caller's identity from it.

use ca::Identity;
use rustls::pki_types::CertificateDer;

use crate::info::hex;
use crate::verify::{spiffe_identity, PeerError};

/// The XFCC element for a peer whose certificate and identity are already known.
pub fn xfcc(own: &Identity, peer_cert: &CertificateDer<'_>, peer: &Identity) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, peer_cert);
    // Subject is always empty: mesh certificates carry their identity only in the URI SAN.
    format!(
        "By={own};Hash={};Subject=\"\";URI={peer}",
        hex(hash.as_ref())
    )
}

/// The XFCC element for the peer of an established inbound connection.
pub fn xfcc_for(own: &Identity, conn: &rustls::CommonState) -> Result<String, PeerError> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(PeerError::NoCertificate)?;
    Ok(xfcc(own, leaf, &spiffe_identity(leaf)?))
}
