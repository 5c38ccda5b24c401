//! How a caller proves which workload it is before the CA signs for that identity.
//!
//! [`Authenticator`] turns a presented credential into an [`Identity`], or refuses it with a
//! reason. It is async and object-safe so that Kubernetes service-account tokens (a TokenReview
//! call to the API server, as Istio does) can implement it next to [`BootstrapTokens`] without
//! changing the CA.
//!
//! Bootstrap tokens are the control plane's own: one random 256-bit token per workload, written
//! to `<dir>/<namespace>/<service-account>.token` (mode 0600) for the node agent to hand to that
//! workload, and compared in constant time.

use std::fs;
use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::RwLock;

use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use crate::files::{self, FileError};
use crate::identity::{Identity, IdentityError, TrustDomain};

/// Why a credential was not accepted. Never contains the credential itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("no credential was presented")]
    Missing,
    #[error("the credential is not a bootstrap token (expected {TOKEN_PREFIX} and 64 hex digits)")]
    Malformed,
    #[error("the bootstrap token is unknown: never issued here, or revoked")]
    UnknownToken,
    #[error("the credential was rejected: {0}")]
    Rejected(String),
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;

/// One way for a caller to prove its identity.
pub trait Authenticator: Send + Sync {
    /// `credential` is the bearer value the caller presented (Istio's agents send theirs in the
    /// `authorization: Bearer` header of the CSR request).
    fn authenticate<'a>(&'a self, credential: &'a str) -> AuthFuture<'a>;
}

/// A bootstrap-token file or directory that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "{path}: not a bootstrap token file (expected one line: {TOKEN_PREFIX} and 64 hex digits)"
    )]
    Malformed { path: PathBuf },
    #[error("{path}: the path does not name a workload identity: {source}")]
    Identity {
        path: PathBuf,
        source: IdentityError,
    },
    #[error("cannot read the system random number generator")]
    Random,
}

/// Marks our tokens so an authenticator chain can tell them from Kubernetes JWTs at a glance.
pub const TOKEN_PREFIX: &str = "bowline-bt.";

struct Entry {
    token: [u8; 32],
    identity: Identity,
}

/// Per-workload bootstrap tokens, persisted in a directory the control plane owns.
pub struct BootstrapTokens {
    dir: PathBuf,
    trust_domain: TrustDomain,
    entries: RwLock<Vec<Entry>>,
}

impl BootstrapTokens {
    /// Opens (creating if needed) the token directory and loads every token already issued, so
    /// a control-plane restart does not invalidate workloads' tokens.
    pub fn open(dir: &Path, trust_domain: TrustDomain) -> Result<Self, TokenError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| FileError::Write {
                path: dir.to_path_buf(),
                cause: source,
            })?;
        let mut entries = Vec::new();
        for ns_dir in read_dir(dir)? {
            if !ns_dir.is_dir() {
                continue;
            }
            for path in read_dir(&ns_dir)? {
                if path.extension().is_some_and(|e| e == "token") {
                    entries.push(load_entry(&path, &ns_dir, &trust_domain)?);
                }
            }
        }
        info!(dir = %dir.display(), tokens = entries.len(), "loaded bootstrap tokens");
        Ok(Self {
            dir: dir.to_path_buf(),
            trust_domain,
            entries: RwLock::new(entries),
        })
    }

    pub fn token_path(&self, identity: &Identity) -> PathBuf {
        self.dir
            .join(identity.namespace())
            .join(format!("{}.token", identity.service_account()))
    }

    /// Issues a fresh token for `identity`, replacing (and so revoking) any earlier one.
    /// Returns the token and the file it was written to.
    pub fn issue(&self, identity: &Identity) -> Result<(String, PathBuf), TokenError> {
        if identity.trust_domain() != &self.trust_domain {
            return Err(TokenError::Identity {
                path: self.token_path(identity),
                source: IdentityError::TrustDomain(identity.trust_domain().to_string()),
            });
        }
        let mut token = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut token)
            .map_err(|_| TokenError::Random)?;
        let text = format!("{TOKEN_PREFIX}{}", hex(&token));
        let path = self.token_path(identity);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| FileError::Write {
                    path: parent.to_path_buf(),
                    cause: source,
                })?;
        }
        files::write_atomic(&path, format!("{text}\n").as_bytes(), 0o600)?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|e| &e.identity != identity);
        entries.push(Entry {
            token,
            identity: identity.clone(),
        });
        info!(%identity, path = %path.display(), "issued bootstrap token");
        Ok((text, path))
    }

    /// Revokes the token of `identity`; true when there was one.
    pub fn revoke(&self, identity: &Identity) -> Result<bool, TokenError> {
        let path = self.token_path(identity);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(FileError::Write {
                    path,
                    cause: source,
                }
                .into())
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let before = entries.len();
        entries.retain(|e| &e.identity != identity);
        Ok(entries.len() != before)
    }

    fn check(&self, credential: &str) -> Result<Identity, AuthError> {
        if credential.is_empty() {
            return Err(AuthError::Missing);
        }
        let presented = parse_token(credential.trim()).ok_or(AuthError::Malformed)?;
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        // Compare against every entry, without stopping at the first byte that differs, so the
        // time taken says nothing about how close a guess was.
        let mut found = None;
        for e in entries.iter() {
            if bool::from(e.token.ct_eq(&presented)) {
                found = Some(e.identity.clone());
            }
        }
        found.ok_or_else(|| {
            warn!("refused an unknown bootstrap token");
            AuthError::UnknownToken
        })
    }
}

impl Authenticator for BootstrapTokens {
    fn authenticate<'a>(&'a self, credential: &'a str) -> AuthFuture<'a> {
        Box::pin(async move { self.check(credential) })
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, TokenError> {
    let err = |source| FileError::Read {
        path: dir.to_path_buf(),
        cause: source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        out.push(entry.map_err(err)?.path());
    }
    out.sort();
    Ok(out)
}

fn load_entry(path: &Path, ns_dir: &Path, td: &TrustDomain) -> Result<Entry, TokenError> {
    let name_of = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let identity =
        Identity::new(td.clone(), &name_of(ns_dir), &name_of(path)).map_err(|source| {
            TokenError::Identity {
                path: path.to_path_buf(),
                source,
            }
        })?;
    if files::readable_by_others(path) {
        warn!(path = %path.display(), "bootstrap token is readable by group or others");
    }
    let text = String::from_utf8(files::read(path)?).map_err(|_| TokenError::Malformed {
        path: path.to_path_buf(),
    })?;
    let token = parse_token(text.trim()).ok_or_else(|| TokenError::Malformed {
        path: path.to_path_buf(),
    })?;
    Ok(Entry { token, identity })
}

fn parse_token(s: &str) -> Option<[u8; 32]> {
    let digits = s.strip_prefix(TOKEN_PREFIX)?.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_rejects_near_misses() {
        let t = [0xabu8; 32];
        let s = format!("{TOKEN_PREFIX}{}", hex(&t));
        assert_eq!(parse_token(&s), Some(t));
        assert_eq!(parse_token(&s[..s.len() - 1]), None);
        assert_eq!(parse_token(&format!("{s}0")), None);
        assert_eq!(parse_token(&s.replace(TOKEN_PREFIX, "other.")), None);
        assert_eq!(parse_token(&s.replacen('a', "g", 1)), None);
    }
}
