//! Pod addresses: which addresses of the pod CIDR a pod may get, and picking a free one.
//!
//! There is no allocation record of its own: the caller passes in the indexes already in use,
//! read from the live namespaces and links (see `pod`), so allocation survives restarts and
//! crashes without a state file that could disagree with the kernel.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Errors in the address pool.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("pod CIDR {0} must be between /8 and /30 (one gateway address and at least one pod)")]
    Size(Ipv4Net),
    #[error("pod CIDR {0} has no free address left")]
    Exhausted(Ipv4Net),
}

/// The pod CIDR: the first host address is the bridge (every pod's gateway); pods get the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    net: Ipv4Net,
}

impl Pool {
    pub fn new(cidr: Ipv4Net) -> Result<Pool, IpamError> {
        let net = cidr.trunc();
        if !(8..=30).contains(&net.prefix_len()) {
            return Err(IpamError::Size(net));
        }
        Ok(Pool { net })
    }

    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// The bridge's address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.addr(1)
    }

    /// The address at offset `index` from the network address.
    pub fn addr(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.network()) + index)
    }

    /// The offset of `addr` if it is a pod address of this pool.
    pub fn index(&self, addr: Ipv4Addr) -> Option<u32> {
        let index = u32::from(addr).checked_sub(u32::from(self.net.network()))?;
        self.pod_indexes().contains(&index).then_some(index)
    }

    /// Offsets pods may have: not the network address, not the gateway, not the broadcast.
    fn pod_indexes(&self) -> std::ops::RangeInclusive<u32> {
        let size = 1u32 << (32 - self.net.prefix_len());
        2..=size - 2
    }

    /// The lowest pod offset not in `used`. Lowest-first makes a restarted mesh give pods the
    /// same addresses again; reusing an address is safe because a pod's MAC derives from its
    /// address (see [`mac_for`]), so no neighbour holds a stale ARP entry for it.
    pub fn allocate(&self, used: &BTreeSet<u32>) -> Result<u32, IpamError> {
        self.pod_indexes()
            .find(|i| !used.contains(i))
            .ok_or(IpamError::Exhausted(self.net))
    }
}

/// A locally administered MAC address made from a pod's IPv4 address (as Kubernetes' bridge
/// plugins do with 0a:58), so that a reused address comes back with the same MAC.
pub fn mac_for(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str) -> Pool {
        Pool::new(cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn gateway_is_the_first_address_and_pods_follow() {
        let p = pool("10.88.0.0/16");
        assert_eq!(p.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(p.allocate(&BTreeSet::new()), Ok(2));
        assert_eq!(p.addr(2), Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(p.allocate(&[2, 3, 5].into()), Ok(4));
    }

    #[test]
    fn index_rejects_network_gateway_broadcast_and_strangers() {
        let p = pool("10.88.0.0/24");
        assert_eq!(p.index(Ipv4Addr::new(10, 88, 0, 7)), Some(7));
        assert_eq!(p.index(Ipv4Addr::new(10, 88, 0, 0)), None);
        assert_eq!(p.index(Ipv4Addr::new(10, 88, 0, 1)), None);
        assert_eq!(p.index(Ipv4Addr::new(10, 88, 0, 255)), None);
        assert_eq!(p.index(Ipv4Addr::new(10, 88, 1, 7)), None);
        assert_eq!(p.index(Ipv4Addr::new(10, 87, 0, 7)), None);
    }

    #[test]
    fn a_full_pool_is_an_error() {
        let p = pool("10.88.0.0/30");
        assert_eq!(p.allocate(&BTreeSet::new()), Ok(2));
        assert_eq!(
            p.allocate(&[2].into()),
            Err(IpamError::Exhausted("10.88.0.0/30".parse().unwrap()))
        );
    }

    #[test]
    fn sizes_outside_8_to_30_are_refused_and_host_bits_ignored() {
        assert!(Pool::new("10.0.0.0/7".parse().unwrap()).is_err());
        assert!(Pool::new("10.0.0.0/31".parse().unwrap()).is_err());
        assert_eq!(pool("10.88.3.4/16").net().to_string(), "10.88.0.0/16");
    }

    #[test]
    fn macs_follow_addresses() {
        assert_eq!(mac_for(Ipv4Addr::new(10, 88, 0, 2)), "0a:58:0a:58:00:02");
    }
}
