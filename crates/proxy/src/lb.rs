//! Endpoint choice within a cluster: consistent hashing (ring hash and Maglev), the request's
//! hash key (header, cookie, source IP, query parameter), slow-start weights, and Envoy's
//! priority levels for locality failover.
//!
//! Tables are built once per snapshot from endpoint addresses (never indexes), so removing an
//! endpoint only moves the keys it owned (ring) or few more (Maglev).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use model::runtime::RuntimeCluster;
use model::{ConsistentHash, HashAlgorithm, HashKey};

/// What a request offers the load balancer.
pub struct LbRequest<'a> {
    pub headers: Option<&'a HeaderMap>,
    pub query: Option<&'a str>,
    pub peer: Option<IpAddr>,
    /// The address the client dialed, for `PASSTHROUGH` clusters.
    pub original_dst: Option<SocketAddr>,
}

impl LbRequest<'_> {
    /// A connection with nothing to hash on but its peer (TCP).
    pub fn tcp(peer: Option<IpAddr>, original_dst: Option<SocketAddr>) -> LbRequest<'static> {
        LbRequest {
            headers: None,
            query: None,
            peer,
            original_dst,
        }
    }
}

/// 64-bit FNV-1a finished with a splitmix64 mix: deterministic across runs and processes.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of a request's key, and a cookie to set when the key was a cookie we made up.
pub struct HashedKey {
    pub hash: u64,
    pub set_cookie: Option<String>,
}

/// The request's hash per the policy; `None` when the key is absent (Envoy then picks as if
/// no hash policy were set). `fresh` supplies a value for a generated cookie.
pub fn request_hash(
    ch: &ConsistentHash,
    req: &LbRequest<'_>,
    fresh: impl FnOnce() -> u64,
) -> Option<HashedKey> {
    let plain = |hash| {
        Some(HashedKey {
            hash,
            set_cookie: None,
        })
    };
    match &ch.key {
        HashKey::Header { name } => {
            let values: Vec<&[u8]> = req
                .headers?
                .get_all(name.as_str())
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            if values.is_empty() {
                return None;
            }
            plain(hash64(&values.join(&b","[..])))
        }
        HashKey::SourceIp => plain(hash64(req.peer?.to_string().as_bytes())),
        HashKey::QueryParameter { name } => {
            let value = req.query?.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then_some(v)
            })?;
            plain(hash64(value.as_bytes()))
        }
        HashKey::Cookie { name, path, ttl_ms } => {
            if let Some(v) = cookie(req.headers?, name) {
                return plain(hash64(v.as_bytes()));
            }
            // Envoy generates the cookie only when a TTL is configured (0 = session cookie).
            let ttl = (*ttl_ms)?;
            let value = format!("{:016x}", fresh());
            let mut set = format!("{name}=\"{value}\"");
            if ttl > 0 {
                set.push_str(&format!("; Max-Age={}", ttl.div_ceil(1000)));
            }
            if !path.is_empty() {
                set.push_str(&format!("; Path={path}"));
            }
            set.push_str("; HttpOnly");
            Some(HashedKey {
                hash: hash64(value.as_bytes()),
                set_cookie: Some(set),
            })
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (quotes removed).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

/// A consistent-hash table over a cluster's endpoints.
#[derive(Debug)]
pub enum HashTable {
    /// Sorted (hash, endpoint index) points.
    Ring(Vec<(u64, u32)>),
    /// Endpoint index per slot.
    Maglev(Vec<u32>),
}

impl HashTable {
    pub fn build(c: &RuntimeCluster, algorithm: HashAlgorithm) -> Option<HashTable> {
        if c.endpoints.is_empty() {
            return None;
        }
        let names: Vec<String> = c.endpoints.iter().map(|e| e.addr.to_string()).collect();
        let weights: Vec<u64> = c.endpoints.iter().map(|e| u64::from(e.weight)).collect();
        Some(match algorithm {
            HashAlgorithm::RingHash { minimum_ring_size } => {
                HashTable::Ring(ring(&names, &weights, minimum_ring_size))
            }
            HashAlgorithm::Maglev { table_size } => {
                HashTable::Maglev(maglev(&names, &weights, table_size))
            }
        })
    }

    /// The endpoint owning `hash`, skipping endpoints `usable` rejects (ejected ones), as
    /// Envoy retries the next point on the ring.
    pub fn lookup(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            HashTable::Ring(points) => {
                let start = points.partition_point(|(h, _)| *h < hash);
                (0..points.len())
                    .map(|i| points[(start + i) % points.len()].1 as usize)
                    .find(|i| usable(*i))
            }
            HashTable::Maglev(table) => {
                let n = table.len() as u64;
                (0..n.min(64))
                    .map(|i| {
                        table[((hash.wrapping_add(i.wrapping_mul(0x9e37_79b9))) % n) as usize]
                            as usize
                    })
                    .find(|i| usable(*i))
            }
        }
    }
}

/// A ketama ring: each endpoint gets points in proportion to its weight, `min_size` points at
/// least in all (capped at 8M as Envoy caps it). Points per unit of weight are rounded up to a
/// power of two, so when an endpoint leaves, the others usually keep exactly their points and
/// only the leaver's keys move.
fn ring(names: &[String], weights: &[u64], min_size: u64) -> Vec<(u64, u32)> {
    let total: u64 = weights.iter().sum::<u64>().max(1);
    let min_size = min_size.clamp(1, 8 << 20);
    let per_unit = min_size.div_ceil(total).next_power_of_two();
    let mut points = Vec::new();
    for (i, (name, w)) in names.iter().zip(weights).enumerate() {
        for r in 0..(per_unit * w).min(8 << 20) {
            points.push((hash64(format!("{name}_{r}").as_bytes()), i as u32));
        }
    }
    points.sort_unstable();
    points
}

/// Maglev's lookup table (Eisenbud et al.), weighted as Envoy weights it: an endpoint takes its
/// next preferred slot on a round only when its weight has accumulated enough.
fn maglev(names: &[String], weights: &[u64], size: u64) -> Vec<u32> {
    let m = size.max(3);
    let max_w = weights.iter().copied().max().unwrap_or(1).max(1);
    let perms: Vec<(u64, u64)> = names
        .iter()
        .map(|n| {
            let offset = hash64(n.as_bytes()) % m;
            let skip = mix(hash64(n.as_bytes()) ^ 0x5bd1_e995) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; names.len()];
    let mut table = vec![u32::MAX; m as usize];
    let mut filled = 0u64;
    let mut round = 0u64;
    while filled < m {
        round += 1;
        for i in 0..names.len() {
            // Weighted turns: endpoint i places an entry on `weight/max` of the rounds.
            if (round * weights[i]) / max_w == ((round - 1) * weights[i]) / max_w {
                continue;
            }
            let (offset, skip) = perms[i];
            loop {
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if table[slot] == u32::MAX {
                    table[slot] = i as u32;
                    filled += 1;
                    break;
                }
            }
            if filled == m {
                break;
            }
        }
    }
    table
}

/// Slow start: the share of an endpoint's weight it gets `age_ms` after joining.
pub fn warmup_factor(w: &model::Warmup, age_ms: u64) -> f64 {
    if w.duration_ms == 0 || age_ms >= w.duration_ms {
        return 1.0;
    }
    let time = (age_ms as f64 / w.duration_ms as f64).max(0.0);
    let aggression = if w.aggression > 0.0 {
        w.aggression
    } else {
        1.0
    };
    let min = (w.minimum_percent / 100.0).clamp(0.0, 1.0);
    time.powf(1.0 / aggression).max(min)
}

/// Envoy's overprovisioning factor: a priority level at 5/7 health still takes all traffic.
const OVERPROVISION: u64 = 140;

/// The priority level for a request: Envoy's priority load, where each level takes as much
/// traffic as its health (× 1.4) allows and spills the rest to the next. `healthy[p]` and
/// `total[p]` count endpoints per level; `r` is uniform. `None` when nothing is healthy.
pub fn choose_priority(healthy: &[u64], total: &[u64], r: u64) -> Option<usize> {
    let health: Vec<u64> = healthy
        .iter()
        .zip(total)
        .map(|(h, t)| {
            if *t == 0 {
                0
            } else {
                (h * OVERPROVISION / t).min(100)
            }
        })
        .collect();
    let sum: u64 = health.iter().sum::<u64>().min(100);
    if sum == 0 {
        return None;
    }
    // Loads normalised so they sum to 100 even when the whole cluster is degraded.
    let mut left = 100u64;
    let mut loads = Vec::with_capacity(health.len());
    for h in &health {
        let l = (*h).min(left);
        loads.push(l);
        left -= l;
    }
    let assigned: u64 = loads.iter().sum();
    let pick = r % assigned.max(1);
    let mut acc = 0;
    for (p, l) in loads.iter().enumerate() {
        acc += l;
        if pick < acc {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    fn owner(table: &HashTable, names: &[String], key: u64) -> String {
        names[table.lookup(key, |_| true).unwrap()].clone()
    }

    #[test]
    fn ring_and_maglev_move_few_keys_when_an_endpoint_leaves() {
        let all = names(5);
        let fewer: Vec<String> = all
            .iter()
            .filter(|n| !n.ends_with(".2:80"))
            .cloned()
            .collect();
        for (before, after) in [
            (
                HashTable::Ring(ring(&all, &[1; 5], 1024)),
                HashTable::Ring(ring(&fewer, &[1; 4], 1024)),
            ),
            (
                HashTable::Maglev(maglev(&all, &[1; 5], 65537)),
                HashTable::Maglev(maglev(&fewer, &[1; 4], 65537)),
            ),
        ] {
            let mut moved = 0;
            for k in 0..2000u64 {
                let key = hash64(&k.to_le_bytes());
                let a = owner(&before, &all, key);
                let b = owner(&after, &fewer, key);
                if a != "10.0.0.2:80" && a != b {
                    moved += 1;
                }
            }
            if matches!(before, HashTable::Ring(_)) {
                assert_eq!(moved, 0, "ring moved keys of surviving endpoints");
            } else {
                assert!(moved < 2000 / 10, "maglev moved {moved} keys");
            }
        }
    }

    #[test]
    fn maglev_follows_weights() {
        let t = maglev(&names(2), &[3, 1], 65537);
        let zero = t.iter().filter(|i| **i == 0).count();
        assert!((47000..51000).contains(&zero), "{zero}");
    }

    #[test]
    fn priority_load_spills_by_health() {
        assert_eq!(choose_priority(&[2, 2], &[2, 2], 99), Some(0));
        // Half of level 0 healthy: 70 % stays, 30 % spills.
        let spilled = (0..100)
            .filter(|r| choose_priority(&[1, 2], &[2, 2], *r) == Some(1))
            .count();
        assert_eq!(spilled, 30);
        assert_eq!(choose_priority(&[0, 1], &[1, 1], 5), Some(1));
        assert_eq!(choose_priority(&[0, 0], &[1, 1], 5), None);
    }

    #[test]
    fn warmup_ramps_linearly_from_the_minimum() {
        let w = model::Warmup {
            duration_ms: 1000,
            minimum_percent: 10.0,
            aggression: 1.0,
        };
        assert_eq!(warmup_factor(&w, 0), 0.1);
        assert!((warmup_factor(&w, 500) - 0.5).abs() < 1e-9);
        assert_eq!(warmup_factor(&w, 2000), 1.0);
    }
}
