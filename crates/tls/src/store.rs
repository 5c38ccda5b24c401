//! The workload's current certificate, swapped atomically on rotation.
//!
//! Handshakes load the snapshot once (certificate resolvers and verifiers read it per
//! handshake), so a rotation takes effect on the next handshake; established connections already
//! hold their keys and are not touched.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use ca::Identity;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use tracing::info;

use crate::workload::Certified;

/// Istio's SECRET_GRACE_PERIOD_RATIO default: rotate once half the lifetime is left.
pub const DEFAULT_GRACE_PERIOD_RATIO: f64 = 0.5;

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the new certificate is for {new}, but this workload is {current}")]
    IdentityChanged {
        current: Box<Identity>,
        new: Box<Identity>,
    },
    #[error("grace period ratio {0} is outside 0..=1")]
    Ratio(f64),
}

pub struct CertStore {
    current: ArcSwap<Certified>,
    grace_period_ratio: f64,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("identity", &self.current.load().identity().to_string())
            .field("serial", &self.current.load().info().serial)
            .finish()
    }
}

impl CertStore {
    pub fn new(initial: Certified) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(initial),
            grace_period_ratio: DEFAULT_GRACE_PERIOD_RATIO,
        })
    }

    /// `ratio` is the fraction of the lifetime still left when rotation becomes due (Istio's
    /// SECRET_GRACE_PERIOD_RATIO).
    pub fn with_grace_period_ratio(
        initial: Certified,
        ratio: f64,
    ) -> Result<Arc<Self>, RotateError> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(RotateError::Ratio(ratio));
        }
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(initial),
            grace_period_ratio: ratio,
        }))
    }

    pub fn current(&self) -> Arc<Certified> {
        self.current.load_full()
    }

    /// Installs `next` for every handshake from now on and returns the one it replaced. A
    /// workload's identity never changes, so a certificate for another is refused.
    pub fn rotate(&self, next: Certified) -> Result<Arc<Certified>, RotateError> {
        let current = self.current.load();
        if next.identity() != current.identity() {
            return Err(RotateError::IdentityChanged {
                current: Box::new(current.identity().clone()),
                new: Box::new(next.identity().clone()),
            });
        }
        info!(
            identity = %next.identity(),
            old_serial = %current.info().serial,
            new_serial = %next.info().serial,
            "rotated workload certificate"
        );
        Ok(self.current.swap(Arc::new(next)))
    }

    /// When the current certificate should be replaced: `not_after - ratio * lifetime`.
    pub fn rotation_due_at(&self) -> SystemTime {
        let c = self.current.load();
        let lifetime = c
            .not_after()
            .duration_since(c.not_before())
            .unwrap_or_default();
        c.not_after() - lifetime.mul_f64(self.grace_period_ratio)
    }

    pub fn needs_rotation(&self, now: SystemTime) -> bool {
        now >= self.rotation_due_at()
    }
}

/// Serves the store's current certificate, server side and client side.
#[derive(Debug)]
pub(crate) struct StoreResolver(pub(crate) Arc<CertStore>);

impl ResolvesServerCert for StoreResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified_key().clone())
    }
}

impl ResolvesClientCert for StoreResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let key = self.0.current().certified_key().clone();
        // Offering a certificate the server cannot verify only trades a clear "no usable
        // signature scheme" for an opaque handshake failure later.
        key.key.choose_scheme(sigschemes).map(|_| key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}
