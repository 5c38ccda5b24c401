//! Virtual IPs for services that have no address of their own: Kubernetes Services without a
//! `clusterIP` and ServiceEntry hosts without `addresses`. Every proxy computes the registry for
//! itself, so the allocation is a pure function of the set of services, with no state to share.
//!
//! - Kubernetes Services get addresses from [`KUBE_SERVICE_CIDR`] (10.96.0.0/16, inside the
//!   Kubernetes default service range 10.96.0.0/12), as a cluster's apiserver would.
//! - ServiceEntry hosts get addresses from [`SERVICE_ENTRY_CIDR`] (240.240.0.0/16, the class E
//!   range Istio's DNS proxy auto-allocates from), so a client can tell them apart at a glance.
//!   Wildcard hosts get none: no single name can be answered for them.
//!
//! A service's slot is the FNV-1a hash of `namespace/hostname` modulo the range; a taken slot
//! moves on by a second hash of the same key (double hashing). Services are placed in key order,
//! and addresses written in the configuration are taken first. So adding or removing a service
//! moves no other service, except when the newcomer's first slot is one an existing service took
//! on its own first choice and the newcomer sorts before it: with 65,534 slots per range and a
//! mesh of hundreds of services, a rare event, and one that never changes an answer for a name
//! that keeps its address in the configuration.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::Service;

/// The range Kubernetes Services without a cluster IP are given addresses from.
pub const KUBE_SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
/// The range ServiceEntry hosts without addresses are given addresses from (Istio's).
pub const SERVICE_ENTRY_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(240, 240, 0, 0), 16);

/// Gives every service without an IP address of its own a virtual IP ([`Service::vip`]).
pub(crate) fn assign(services: &mut [Service]) {
    for (range, kube) in [(KUBE_SERVICE_CIDR, true), (SERVICE_ENTRY_CIDR, false)] {
        let range = Range::new(range);
        let mut taken: BTreeSet<u32> = services
            .iter()
            .flat_map(|s| &s.addresses)
            .filter_map(|a| match a.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => range.offset(v4),
                _ => None,
            })
            .collect();
        let mut wanting: Vec<(String, usize)> = services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kube_name.is_some() == kube && needs_vip(s))
            .map(|(i, s)| (format!("{}/{}", s.namespace, s.hostname), i))
            .collect();
        wanting.sort();
        for (key, i) in wanting {
            if let Some(offset) = range.place(&key, &mut taken) {
                services[i].vip = Some(IpAddr::V4(range.addr(offset)));
            }
        }
    }
}

/// Wildcard hosts cannot be answered by one address; a service with addresses of its own (IPs
/// or CIDRs, as written) keeps them, as Istio allocates only for entries without any.
fn needs_vip(s: &Service) -> bool {
    !s.hostname.starts_with('*') && s.addresses.is_empty()
}

/// Usable host offsets of one IPv4 range: the network and broadcast addresses and the first host
/// (which Kubernetes gives its own API service) are never handed out.
struct Range {
    base: u32,
    size: u32,
}

impl Range {
    fn new((net, len): (Ipv4Addr, u8)) -> Range {
        Range {
            base: u32::from(net),
            size: 1u32 << (32 - u32::from(len)),
        }
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let ip = u32::from(ip);
        (ip >= self.base && ip - self.base < self.size).then(|| ip - self.base)
    }

    fn addr(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + offset)
    }

    /// Offsets 2..size-1 are usable.
    fn usable(&self) -> u32 {
        self.size - 3
    }

    fn place(&self, key: &str, taken: &mut BTreeSet<u32>) -> Option<u32> {
        let n = u64::from(self.usable());
        let h = fnv1a(key.as_bytes());
        // A bounded probe sequence, then a linear scan, so a nearly full range still places.
        let step = 1 + (fnv1a(&[key.as_bytes(), b"#step"].concat()) % (n - 1));
        let mut slot = h % n;
        for _ in 0..64 {
            let offset = 2 + slot as u32;
            if taken.insert(offset) {
                return Some(offset);
            }
            slot = (slot + step) % n;
        }
        (2..self.size - 1).find(|o| taken.insert(*o))
    }
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_reference_function() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_full_range_still_places_by_scanning() {
        let r = Range::new((Ipv4Addr::new(10, 0, 0, 0), 29));
        let mut taken = BTreeSet::new();
        let placed: Vec<u32> = (0..5)
            .filter_map(|i| r.place(&format!("k{i}"), &mut taken))
            .collect();
        assert_eq!(placed.len(), 5);
        assert!(placed.iter().all(|o| (2..7).contains(o)));
        assert_eq!(r.place("one-too-many", &mut taken), None);
    }
}
