//! Mesh TLS on rustls: what a workload (or its proxy) needs to speak Istio-style mTLS.
//!
//! - [`workload`]: key generation and the CSR a workload sends the CA; [`Certified`], a
//!   certificate, its key and the mesh roots, checked to belong together.
//! - [`store`]: [`CertStore`], the current [`Certified`] behind an `ArcSwap`, so rotation is one
//!   atomic swap: new handshakes use the new certificate at once, live connections keep theirs.
//! - [`config`]: rustls server configs for inbound mesh traffic and client configs for outbound,
//!   with Istio's ALPN vocabulary ([`MeshAlpn`]).
//! - [`verify`]: the peer checks: chain to the mesh root, and a SPIFFE identity, for a client
//!   among the destination's allowed service accounts instead of a hostname.
//! - [`xfcc`] and [`info`]: the `x-forwarded-client-cert` header and certificate facts for admin
//!   pages.
//!
//! The crypto provider is ring. It builds from a small amount of C and assembly with only `cc`,
//! where aws-lc-rs compiles a whole libcrypto (and wants cmake for some targets); on the
//! project's two-core machines that is minutes per clean build. `rcgen` and `x509-parser` use
//! ring too, so the mesh has exactly one crypto library. The one thing given up is FIPS, which
//! only aws-lc-rs offers; switching is confined to [`provider`].

pub mod config;
pub mod info;
pub mod store;
pub mod verify;
pub mod workload;
pub mod xfcc;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use ca::{Identity, TrustDomain};
pub use config::{client_config, server_config, MeshAlpn};
pub use info::CertInfo;
pub use store::{CertStore, RotateError, DEFAULT_GRACE_PERIOD_RATIO};
pub use verify::{peer_identity, PeerError};
pub use workload::{generate_csr, Certified, CertifiedError, WorkloadKey};

/// The one crypto provider every mesh TLS config in Bowline is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
