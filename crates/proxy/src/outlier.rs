//! Outlier detection: per-endpoint error streaks, ejection and return, as Envoy does it with
//! Istio's settings (consecutive 5xx, gateway errors, local-origin failures; no success rate).
//!
//! State lives per cluster across snapshots (keyed by endpoint address), so a config push
//! neither forgets an ejection nor its multiplier. Time is checked lazily when a host is looked
//! at, which gives the same answers as Envoy's interval timer to within one interval.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use model::OutlierDetection;

/// What happened to one request, as the outlier detector classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// Connect failure, reset or timeout before a response: a local-origin failure.
    LocalFailure,
}

#[derive(Debug, Default)]
struct Host {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    /// Times ejected (decays while healthy); the ejection lasts base time × this.
    ejections: u32,
    ejected_until: Option<Instant>,
    /// When the last ejection ended, for decaying `ejections`.
    returned_at: Option<Instant>,
}

/// Ejection state of a cluster's hosts.
#[derive(Debug, Default)]
pub struct Outliers {
    hosts: Mutex<HashMap<SocketAddr, Host>>,
}

impl Outliers {
    /// Records `outcome` for `addr`; returns true when this ejected the host.
    pub fn report(
        &self,
        cfg: &OutlierDetection,
        addr: SocketAddr,
        total_hosts: usize,
        outcome: Outcome,
        now: Instant,
    ) -> bool {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let ejected_now = hosts
            .values()
            .filter(|h| h.ejected_until.is_some_and(|t| t > now))
            .count();
        let h = hosts.entry(addr).or_default();
        if h.ejected_until.is_some_and(|t| t > now) {
            return false;
        }
        match outcome {
            Outcome::Status(s) => {
                let error = if cfg.error_codes.is_empty() {
                    s >= 500
                } else {
                    cfg.error_codes.contains(&s)
                };
                h.consecutive_5xx = if error { h.consecutive_5xx + 1 } else { 0 };
                h.consecutive_gateway = if (502..=504).contains(&s) {
                    h.consecutive_gateway + 1
                } else {
                    0
                };
                if cfg.split_external_local_origin_errors {
                    // A response means the connection worked.
                    h.consecutive_local = 0;
                }
            }
            Outcome::LocalFailure if cfg.split_external_local_origin_errors => {
                h.consecutive_local += 1;
            }
            Outcome::LocalFailure => {
                // Unsplit, Envoy counts a local failure as a 503 from the host.
                h.consecutive_5xx += 1;
                h.consecutive_gateway += 1;
            }
        }
        let hit = |n: u32, threshold: u32| threshold > 0 && n >= threshold;
        let tripped = hit(h.consecutive_5xx, cfg.consecutive_5xx)
            || hit(h.consecutive_gateway, cfg.consecutive_gateway)
            || hit(h.consecutive_local, cfg.consecutive_local_origin);
        if !tripped {
            return false;
        }
        // Envoy ejects at least one host, and more only below max_ejection_percent.
        let allowed = ejected_now == 0
            || (ejected_now as u64 * 100)
                < u64::from(cfg.max_ejection_percent) * total_hosts as u64;
        if !allowed {
            return false;
        }
        let interval = Duration::from_millis(cfg.interval_ms.max(1));
        // The multiplier decays by one per interval spent healthy.
        if let Some(back) = h.returned_at.or(h.ejected_until) {
            let healthy_for = now.saturating_duration_since(back);
            let decay = (healthy_for.as_millis() / interval.as_millis().max(1)) as u32;
            h.ejections = h.ejections.saturating_sub(decay);
        }
        h.ejections += 1;
        h.ejected_until =
            Some(now + Duration::from_millis(cfg.base_ejection_time_ms) * h.ejections);
        h.consecutive_5xx = 0;
        h.consecutive_gateway = 0;
        h.consecutive_local = 0;
        tracing::info!(%addr, ejections = h.ejections, "outlier detection ejected host");
        true
    }

    /// Whether `addr` is ejected now.
    pub fn is_ejected(&self, addr: SocketAddr, now: Instant) -> bool {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = hosts.get_mut(&addr) else {
            return false;
        };
        match h.ejected_until {
            Some(t) if t > now => true,
            Some(t) => {
                h.returned_at = Some(t);
                h.ejected_until = None;
                false
            }
            None => false,
        }
    }

    /// Ejected addresses among `addrs`, in one lock.
    pub fn ejected(&self, addrs: impl Iterator<Item = SocketAddr>, now: Instant) -> Vec<bool> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        addrs
            .map(|a| {
                hosts
                    .get(&a)
                    .and_then(|h| h.ejected_until)
                    .is_some_and(|t| t > now)
            })
            .collect()
    }

    /// Whether any host is ejected (a cheap check before the per-request filter).
    pub fn any(&self, now: Instant) -> bool {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .values()
            .any(|h| h.ejected_until.is_some_and(|t| t > now))
    }

    /// How many times `addr` has been ejected (for `/clusters`).
    pub fn ejections(&self, addr: SocketAddr) -> u32 {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.get(&addr).map_or(0, |h| h.ejections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin: 0,
            interval_ms: 100,
            base_ejection_time_ms: 1000,
            max_ejection_percent: 10,
            min_health_percent: 0,
            error_codes: vec![],
        }
    }

    #[test]
    fn consecutive_errors_eject_and_the_time_multiplies() {
        let o = Outliers::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let t0 = Instant::now();
        assert!(!o.report(&cfg(), a, 2, Outcome::Status(500), t0));
        assert!(
            !o.report(&cfg(), a, 2, Outcome::Status(200), t0),
            "success resets"
        );
        assert!(!o.report(&cfg(), a, 2, Outcome::Status(500), t0));
        assert!(!o.report(&cfg(), a, 2, Outcome::LocalFailure, t0));
        assert!(o.report(&cfg(), a, 2, Outcome::Status(503), t0));
        assert!(o.is_ejected(a, t0 + Duration::from_millis(999)));
        assert!(!o.is_ejected(a, t0 + Duration::from_millis(1000)));
        // Ejected again right away: twice the base time.
        let t1 = t0 + Duration::from_millis(1000);
        for _ in 0..3 {
            o.report(&cfg(), a, 2, Outcome::Status(500), t1);
        }
        assert!(o.is_ejected(a, t1 + Duration::from_millis(1999)));
        assert!(!o.is_ejected(a, t1 + Duration::from_millis(2000)));
    }

    #[test]
    fn max_ejection_percent_keeps_hosts_but_always_allows_one() {
        let o = Outliers::default();
        let t = Instant::now();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        for _ in 0..3 {
            o.report(&cfg(), a, 2, Outcome::Status(500), t);
        }
        assert!(o.is_ejected(a, t));
        for _ in 0..3 {
            o.report(&cfg(), b, 2, Outcome::Status(500), t);
        }
        assert!(
            !o.is_ejected(b, t),
            "10 % of 2 hosts: only the first ejection"
        );
    }

    #[test]
    fn split_local_origin_failures_count_apart_from_statuses() {
        let cfg = OutlierDetection {
            split_external_local_origin_errors: true,
            consecutive_local_origin: 2,
            consecutive_5xx: 0,
            consecutive_gateway: 2,
            max_ejection_percent: 100,
            ..cfg()
        };
        let o = Outliers::default();
        let t = Instant::now();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(
            !o.report(&cfg, a, 1, Outcome::Status(500), t),
            "5xx check disabled"
        );
        assert!(!o.report(&cfg, a, 1, Outcome::LocalFailure, t));
        assert!(
            !o.report(&cfg, a, 1, Outcome::Status(502), t),
            "a response resets local failures"
        );
        assert!(
            !o.report(&cfg, a, 1, Outcome::LocalFailure, t),
            "not a gateway error when split"
        );
        assert!(o.report(&cfg, a, 1, Outcome::LocalFailure, t));
    }
}
