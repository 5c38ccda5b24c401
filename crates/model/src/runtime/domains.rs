//! Virtual-host lookup by authority, indexed once per snapshot.

use std::collections::HashMap;

/// Why a domain cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DomainError {
    Empty,
    /// `*` somewhere other than the whole name, the first or the last character.
    Wildcard,
    /// Already claimed by the virtual host at this index.
    Duplicate(usize),
}

/// Authority → virtual-host index, in Envoy's precedence: exact, then the longest `*suffix`,
/// then the longest `prefix*`, then `*`.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    exact: HashMap<String, usize>,
    /// (suffix without `*`, vhost), longest first.
    suffixes: Vec<(String, usize)>,
    /// (prefix without `*`, vhost), longest first.
    prefixes: Vec<(String, usize)>,
    any: Option<usize>,
}

impl DomainIndex {
    pub(crate) fn insert(&mut self, domain: &str, vhost: usize) -> Result<(), DomainError> {
        let d = domain.to_ascii_lowercase();
        if d.is_empty() {
            return Err(DomainError::Empty);
        }
        let stars = d.matches('*').count();
        let slot = if d == "*" {
            if let Some(prev) = self.any {
                return Err(DomainError::Duplicate(prev));
            }
            self.any = Some(vhost);
            return Ok(());
        } else if stars == 0 {
            return match self.exact.insert(d.clone(), vhost) {
                Some(prev) => {
                    self.exact.insert(d, prev);
                    Err(DomainError::Duplicate(prev))
                }
                None => Ok(()),
            };
        } else if stars == 1 && d.starts_with('*') {
            (&mut self.suffixes, d[1..].to_string())
        } else if stars == 1 && d.ends_with('*') {
            (&mut self.prefixes, d[..d.len() - 1].to_string())
        } else {
            return Err(DomainError::Wildcard);
        };
        let (list, key) = slot;
        if let Some((_, prev)) = list.iter().find(|(k, _)| *k == key) {
            return Err(DomainError::Duplicate(*prev));
        }
        list.push((key, vhost));
        // Stable, so equal lengths keep declaration order.
        list.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        Ok(())
    }

    /// The virtual host for `authority` (any case, with or without a port). A port-qualified
    /// authority is tried as sent first, then without its port, so `reviews:9080` finds a host
    /// that lists only `reviews` (Envoy's `strip_any_host_port`, which Istio's gateways use); `*`
    /// is the last resort for both.
    pub(crate) fn find(&self, authority: &str) -> Option<usize> {
        // Lowercasing allocates only when the client sent upper case, which is rare.
        let lowered;
        let host = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = authority.to_ascii_lowercase();
            lowered.as_str()
        } else {
            authority
        };
        self.find_named(host)
            .or_else(|| strip_port(host).and_then(|h| self.find_named(h)))
            .or(self.any)
    }

    fn find_named(&self, host: &str) -> Option<usize> {
        if let Some(v) = self.exact.get(host) {
            return Some(*v);
        }
        // A wildcard stands for at least one character, as in Envoy.
        let suffix = self
            .suffixes
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()));
        if let Some((_, v)) = suffix {
            return Some(*v);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| host.len() > p.len() && host.starts_with(p.as_str()))
            .map(|(_, v)| *v)
    }
}

/// `host:port` → `host`; IPv6 literals keep their brackets. `None` when there is no port.
pub(crate) fn strip_port(authority: &str) -> Option<&str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        return after.strip_prefix(':').map(|_| &authority[..end + 2]);
    }
    let (host, port) = authority.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(domains: &[(&str, usize)]) -> DomainIndex {
        let mut i = DomainIndex::default();
        for (d, v) in domains {
            i.insert(d, *v).unwrap();
        }
        i
    }

    #[test]
    fn precedence_is_exact_suffix_prefix_any() {
        let i = index(&[
            ("*", 0),
            ("api.example.com", 1),
            ("*.example.com", 2),
            ("*.b.example.com", 3),
            ("api.*", 4),
            ("api.ex*", 5),
        ]);
        assert_eq!(i.find("api.example.com"), Some(1));
        assert_eq!(i.find("API.Example.COM"), Some(1));
        assert_eq!(i.find("x.example.com"), Some(2));
        assert_eq!(i.find("a.b.example.com"), Some(3), "longest suffix wins");
        assert_eq!(i.find("api.example.org"), Some(5), "longest prefix wins");
        assert_eq!(i.find("api.other"), Some(4));
        assert_eq!(
            i.find("example.com"),
            Some(0),
            "`*.x` needs at least one char"
        );
        assert_eq!(i.find("elsewhere"), Some(0));
    }

    #[test]
    fn ports_are_tried_as_sent_then_stripped() {
        let i = index(&[("reviews", 0), ("reviews:9080", 1), ("ratings", 2)]);
        assert_eq!(i.find("reviews:9080"), Some(1));
        assert_eq!(i.find("reviews"), Some(0));
        assert_eq!(i.find("ratings:9080"), Some(2));
        assert_eq!(i.find("details:9080"), None);
        let v6 = index(&[("[::1]", 0)]);
        assert_eq!(v6.find("[::1]:80"), Some(0));
    }

    #[test]
    fn rejects_duplicates_and_inner_wildcards() {
        let mut i = index(&[("a.com", 0), ("*.b.com", 1)]);
        assert_eq!(i.insert("A.com", 2), Err(DomainError::Duplicate(0)));
        assert_eq!(i.insert("*.b.com", 2), Err(DomainError::Duplicate(1)));
        assert_eq!(i.insert("a.*.com", 2), Err(DomainError::Wildcard));
        assert_eq!(i.insert("", 2), Err(DomainError::Empty));
        assert_eq!(
            i.find("a.com"),
            Some(0),
            "a rejected duplicate leaves the first"
        );
    }

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port("a:80"), Some("a"));
        assert_eq!(strip_port("a"), None);
        assert_eq!(strip_port("a:"), None);
        assert_eq!(strip_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(strip_port("[::1]"), None);
    }
}
