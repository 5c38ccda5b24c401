//! Workload identities as Istio names them: `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`.
//!
//! Parsing is strict on purpose: an identity ends up compared byte for byte against certificate
//! SANs and authorization policies, so two spellings of one identity must not both parse.

use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "spiffe://";

/// Why a string is not an Istio SPIFFE identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0:?} is not a SPIFFE ID: it must start with spiffe://")]
    NotSpiffe(String),
    #[error("{0:?} does not have Istio's shape spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>")]
    Shape(String),
    #[error("trust domain {0:?} is not valid: lowercase letters, digits, '.', '-' and '_' only")]
    TrustDomain(String),
    #[error("{what} {value:?} is not a valid Kubernetes name")]
    Name { what: &'static str, value: String },
}

/// A SPIFFE trust domain such as `cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        // SPIFFE restricts trust domains to this set, so a domain that passes can never smuggle
        // a '/' or a port into the URI it is formatted into.
        let ok = !name.is_empty()
            && name.len() <= 255
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(IdentityError::TrustDomain(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Default for TrustDomain {
    /// Istio's default trust domain.
    fn default() -> Self {
        Self("cluster.local".to_string())
    }
}

/// One workload identity: a Kubernetes service account in a namespace, in a trust domain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    trust_domain: TrustDomain,
    namespace: String,
    service_account: String,
}

impl Identity {
    pub fn new(
        trust_domain: TrustDomain,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, IdentityError> {
        // Namespaces are DNS labels; service accounts are DNS subdomains (they may hold dots).
        if !is_dns_name(namespace, false) {
            return Err(IdentityError::Name {
                what: "namespace",
                value: namespace.to_string(),
            });
        }
        if !is_dns_name(service_account, true) {
            return Err(IdentityError::Name {
                what: "service account",
                value: service_account.to_string(),
            });
        }
        Ok(Self {
            trust_domain,
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        })
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

// Debug shows the SPIFFE ID itself: errors that wrap an Identity (rustls prints its errors'
// payloads with Debug) should read as the ID an operator greps for.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self})")
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or_else(|| IdentityError::NotSpiffe(s.to_string()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] => Identity::new(TrustDomain::new(td)?, ns, sa),
            _ => Err(IdentityError::Shape(s.to_string())),
        }
    }
}

fn is_dns_name(s: &str, dots_allowed: bool) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    if dots_allowed {
        s.split('.').all(label_ok)
    } else {
        label_ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_istio_identity() {
        let s = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
        let id: Identity = s.parse().unwrap();
        assert_eq!(id.trust_domain().as_str(), "cluster.local");
        assert_eq!(id.namespace(), "default");
        assert_eq!(id.service_account(), "bookinfo-productpage");
        assert_eq!(id.to_string(), s);
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "http://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/b/extra",
            "spiffe://cluster.local/sa/b/ns/a",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://Cluster.Local/ns/a/sa/b",
            "spiffe://cluster.local/ns/A/sa/b",
            "spiffe://cluster.local/ns/a.b/sa/b",
            "spiffe://cluster.local:443/ns/a/sa/b",
            "spiffe:///ns/a/sa/b",
        ] {
            assert!(bad.parse::<Identity>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn service_account_may_have_dots() {
        let id: Identity = "spiffe://td/ns/a/sa/b.c".parse().unwrap();
        assert_eq!(id.service_account(), "b.c");
    }
}
