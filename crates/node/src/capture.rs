//! Istio's sidecar traffic capture inside one pod's network namespace: the nat chains
//! ISTIO_INBOUND, ISTIO_IN_REDIRECT, ISTIO_OUTPUT, ISTIO_REDIRECT and ISTIO_OUTPUT_DNS, plus the
//! raw-table conntrack zones for DNS, in the order and with the matches that Istio's
//! `istio-iptables` writes for an injected sidecar (`-i '*' -b '*'`, REDIRECT mode, DNS capture
//! of every server). Someone who knows Istio's `iptables-save` output should recognise ours.
//!
//! Rules are applied with one `iptables-restore` of the whole nat and raw tables: the pod's
//! namespace is ours alone, so replacing the tables is both atomic and idempotent, and removing
//! capture is restoring them empty. IPv4 only, like the pod network.

use std::fmt::Write as _;

use ipnet::Ipv4Net;

use crate::sys::{self, SysError, Tool};

/// Inbound ports never captured: the proxy's admin (15000), merged metrics (15020), health
/// (15021) and Prometheus (15090) ports, which istio-iptables' injected `-d` flag also excludes.
pub const ALWAYS_EXCLUDED_INBOUND: [u16; 4] = [15000, 15020, 15021, 15090];

/// Errors applying capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("could not apply capture rules in network namespace {netns}: {source}")]
    Apply { netns: String, source: SysError },
    #[error("could not read capture rules in network namespace {netns}: {source}")]
    Read { netns: String, source: SysError },
}

/// How a pod's traffic is captured; the defaults are Istio's sidecar defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The proxy's uid: its own traffic is never captured on the way out (Istio's `-u`).
    pub proxy_uid: u32,
    /// The proxy's gid, treated like the uid (Istio's `-g`, which defaults to the uid).
    pub proxy_gid: u32,
    /// Where outbound TCP is redirected (Istio's `-p`).
    pub outbound_port: u16,
    /// Where inbound TCP is redirected (Istio's `-z`).
    pub inbound_port: u16,
    /// The HBONE tunnel port, never captured inbound (Istio's `--inbound-tunnel-port`).
    pub tunnel_port: u16,
    /// Inbound ports left alone besides [`ALWAYS_EXCLUDED_INBOUND`] (Istio's `-d`).
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound ports left alone (Istio's `-o`).
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations left alone (Istio's `-x`).
    pub exclude_outbound_cidrs: Vec<Ipv4Net>,
    /// Redirect DNS (UDP and TCP port 53, to any server) to `dns_port`, as Istio does with DNS
    /// capture on and no server list (`CAPTURE_ALL_DNS`).
    pub dns: bool,
    /// The proxy's DNS listener.
    pub dns_port: u16,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            proxy_uid: 1337,
            proxy_gid: 1337,
            outbound_port: 15001,
            inbound_port: 15006,
            tunnel_port: 15008,
            exclude_inbound_ports: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
            dns: true,
            dns_port: 15053,
        }
    }
}

const LOOPBACK: &str = "127.0.0.1/32";
/// The source address Istio's inbound passthrough binds to when it connects to the app, so
/// that the connection is recognisable here and not captured again.
const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6/32";

impl Capture {
    /// The `iptables-restore` input for this capture: the whole nat and raw tables.
    pub fn restore_input(&self) -> String {
        let mut t = Tables::default();
        let (uid, gid) = (self.proxy_uid.to_string(), self.proxy_gid.to_string());
        let tunnel = self.tunnel_port.to_string();

        t.nat(
            "ISTIO_INBOUND",
            &format!("-p tcp --dport {tunnel} -j RETURN"),
        );
        t.nat(
            "ISTIO_REDIRECT",
            &format!("-p tcp -j REDIRECT --to-ports {}", self.outbound_port),
        );
        t.nat(
            "ISTIO_IN_REDIRECT",
            &format!("-p tcp -j REDIRECT --to-ports {}", self.inbound_port),
        );

        // Inbound: everything but the excluded ports goes to the inbound listener.
        t.nat("PREROUTING", "-p tcp -j ISTIO_INBOUND");
        let mut excluded: Vec<u16> = ALWAYS_EXCLUDED_INBOUND.to_vec();
        excluded.extend(&self.exclude_inbound_ports);
        for port in dedup_keep_order(excluded) {
            t.nat("ISTIO_INBOUND", &format!("-p tcp --dport {port} -j RETURN"));
        }
        t.nat("ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT");

        // Outbound.
        t.nat("OUTPUT", "-j ISTIO_OUTPUT");
        for port in dedup_keep_order(self.exclude_outbound_ports.clone()) {
            t.nat("ISTIO_OUTPUT", &format!("-p tcp --dport {port} -j RETURN"));
            t.nat("ISTIO_OUTPUT", &format!("-p udp --dport {port} -j RETURN"));
        }
        t.nat(
            "ISTIO_OUTPUT",
            &format!("-o lo -s {INBOUND_PASSTHROUGH_SOURCE} -j RETURN"),
        );
        for owner in [format!("--uid-owner {uid}"), format!("--gid-owner {gid}")] {
            // The proxy calling the pod's own address (a service VIP that resolved back to this
            // pod) goes through the inbound listener, as if it came from outside. With DNS
            // capture, Istio leaves uid-matched port 53 out so its agent talks to DNS directly.
            let is_uid = owner.starts_with("--uid");
            let ports = if self.dns && is_uid {
                format!("-m multiport ! --dports 53,{tunnel}")
            } else {
                format!("! --dport {tunnel}")
            };
            t.nat(
                "ISTIO_OUTPUT",
                &format!(
                    "-o lo ! -d {LOOPBACK} -p tcp {ports} -m owner {owner} -j ISTIO_IN_REDIRECT"
                ),
            );
            // The app calling itself over loopback is left alone, except TCP DNS, which must
            // still reach the DNS proxy.
            let not_owner = owner.replacen("--", "! --", 1);
            if self.dns {
                t.nat(
                    "ISTIO_OUTPUT",
                    &format!("-o lo -p tcp ! --dport 53 -m owner {not_owner} -j RETURN"),
                );
            } else {
                t.nat(
                    "ISTIO_OUTPUT",
                    &format!("-o lo -m owner {not_owner} -j RETURN"),
                );
            }
            // Nothing else the proxy sends is captured: that would loop back into it.
            t.nat("ISTIO_OUTPUT", &format!("-m owner {owner} -j RETURN"));
        }

        if self.dns {
            let dns = self.dns_port;
            t.nat("ISTIO_OUTPUT", "-j ISTIO_OUTPUT_DNS");
            t.nat(
                "ISTIO_OUTPUT_DNS",
                &format!("-p tcp --dport 53 -j REDIRECT --to-ports {dns}"),
            );
            t.nat(
                "ISTIO_OUTPUT_DNS",
                &format!("-p udp --dport 53 -j REDIRECT --to-ports {dns}"),
            );
            // Two conntrack zones keep the proxy's upstream queries (zone 1) apart from the
            // app's queries to the proxy (zone 2): with one zone, UDP entries with the same
            // tuple collide and replies go to the wrong socket.
            t.raw("OUTPUT", "-j ISTIO_OUTPUT_DNS");
            for owner in [format!("--uid-owner {uid}"), format!("--gid-owner {gid}")] {
                t.raw(
                    "ISTIO_OUTPUT_DNS",
                    &format!("-p udp --dport 53 -m owner {owner} -j CT --zone 1"),
                );
                t.raw(
                    "ISTIO_OUTPUT_DNS",
                    &format!("-p udp --sport {dns} -m owner {owner} -j CT --zone 2"),
                );
            }
            t.raw("PREROUTING", "-j ISTIO_INBOUND");
            t.raw("ISTIO_OUTPUT_DNS", "-p udp --dport 53 -j CT --zone 2");
            t.raw("ISTIO_INBOUND", "-p udp --sport 53 -j CT --zone 1");
        }

        // Apps that talk to the proxy (or to each other) on localhost are left alone.
        t.nat("ISTIO_OUTPUT", &format!("-d {LOOPBACK} -j RETURN"));
        for cidr in &self.exclude_outbound_cidrs {
            t.nat("ISTIO_OUTPUT", &format!("-d {} -j RETURN", cidr.trunc()));
        }
        t.nat("ISTIO_OUTPUT", "-j ISTIO_REDIRECT");
        t.render()
    }
}

/// The tables with no rule at all: what removing capture restores.
pub fn empty_restore_input() -> String {
    Tables::default().render()
}

fn dedup_keep_order(ports: Vec<u16>) -> Vec<u16> {
    let mut seen = std::collections::BTreeSet::new();
    ports.into_iter().filter(|p| seen.insert(*p)).collect()
}

/// Rules per table in insertion order; chains are declared in order of first use.
#[derive(Default)]
struct Tables {
    nat: Vec<(String, String)>,
    raw: Vec<(String, String)>,
}

impl Tables {
    fn nat(&mut self, chain: &str, rule: &str) {
        self.nat.push((chain.to_string(), rule.to_string()));
    }

    fn raw(&mut self, chain: &str, rule: &str) {
        self.raw.push((chain.to_string(), rule.to_string()));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (table, builtin, rules) in [
            (
                "nat",
                &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"][..],
                &self.nat,
            ),
            ("raw", &["PREROUTING", "OUTPUT"][..], &self.raw),
        ] {
            let _ = writeln!(out, "*{table}");
            for chain in builtin {
                let _ = writeln!(out, ":{chain} ACCEPT [0:0]");
            }
            let mut declared: Vec<&str> = Vec::new();
            for (chain, _) in rules {
                if !builtin.contains(&chain.as_str()) && !declared.contains(&chain.as_str()) {
                    declared.push(chain);
                    let _ = writeln!(out, ":{chain} - [0:0]");
                }
            }
            for (chain, rule) in rules {
                let _ = writeln!(out, "-A {chain} {rule}");
            }
            let _ = writeln!(out, "COMMIT");
        }
        out
    }
}

/// Replaces the nat and raw tables of network namespace `netns` with `capture`'s rules, or with
/// empty tables when `capture` is `None`.
pub fn apply(netns: &str, capture: Option<&Capture>) -> Result<(), CaptureError> {
    let input = capture.map_or_else(empty_restore_input, Capture::restore_input);
    let restore = Tool::IptablesRestore
        .path()
        .map_err(|source| CaptureError::Apply {
            netns: netns.to_string(),
            source,
        })?;
    let restore = restore.to_string_lossy();
    sys::run(
        Tool::Ip,
        &["netns", "exec", netns, &restore, "--wait"],
        Some(&input),
    )
    .map_err(|source| CaptureError::Apply {
        netns: netns.to_string(),
        source,
    })?;
    tracing::debug!(netns, captured = capture.is_some(), "capture rules applied");
    Ok(())
}

/// `iptables-save` of network namespace `netns`, for checks and for humans.
pub fn save(netns: &str) -> Result<String, CaptureError> {
    let read = |source| CaptureError::Read {
        netns: netns.to_string(),
        source,
    };
    let save = Tool::IptablesSave.path().map_err(read)?;
    sys::run(
        Tool::Ip,
        &["netns", "exec", netns, &save.to_string_lossy()],
        None,
    )
    .map_err(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What istio-iptables writes for an injected sidecar with DNS capture of all servers
    /// (`-p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -b '*' -d 15090,15021,15020`,
    /// CAPTURE_ALL_DNS), read off its golden files and run.go, with our always-excluded 15000
    /// and `--to-ports` spelled the same way in every REDIRECT.
    const ISTIO_SIDECAR: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_OUTPUT_DNS - [0:0]
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15000 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS
-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_OUTPUT_DNS - [0:0]
:ISTIO_INBOUND - [0:0]
-A OUTPUT -j ISTIO_OUTPUT_DNS
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1
-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --uid-owner 1337 -j CT --zone 2
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --gid-owner 1337 -j CT --zone 1
-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --gid-owner 1337 -j CT --zone 2
-A PREROUTING -j ISTIO_INBOUND
-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j CT --zone 2
-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1
COMMIT
";

    #[test]
    fn defaults_match_istios_sidecar_rules() {
        assert_eq!(Capture::default().restore_input(), ISTIO_SIDECAR);
    }

    #[test]
    fn exclusions_come_before_the_catch_alls() {
        let c = Capture {
            exclude_inbound_ports: vec![9000, 15021, 9000],
            exclude_outbound_ports: vec![5432],
            exclude_outbound_cidrs: vec!["10.1.2.3/16".parse().unwrap()],
            dns: false,
            ..Capture::default()
        };
        let rules = c.restore_input();
        let pos = |needle: &str| {
            rules
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in\n{rules}"))
        };
        assert_eq!(rules.matches("--dport 9000 -j RETURN").count(), 1);
        assert_eq!(rules.matches("--dport 15021 -j RETURN").count(), 1);
        assert!(
            pos("--dport 9000 -j RETURN") < pos("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
        );
        assert!(pos("-p tcp --dport 5432 -j RETURN") < pos("-o lo -s 127.0.0.6/32"));
        assert!(pos("-p udp --dport 5432 -j RETURN") < pos("-o lo -s 127.0.0.6/32"));
        assert!(pos("-d 10.1.0.0/16 -j RETURN") < pos("-A ISTIO_OUTPUT -j ISTIO_REDIRECT"));
        // Without DNS capture there is no DNS chain, no raw rule and no port-53 carve-out.
        assert!(!rules.contains("ISTIO_OUTPUT_DNS"));
        assert!(!rules.contains("CT --zone"));
        assert!(rules.contains("-o lo -m owner ! --uid-owner 1337 -j RETURN"));
        assert!(rules.contains("-p tcp ! --dport 15008 -m owner --uid-owner 1337"));
    }

    #[test]
    fn other_proxy_ids_and_ports_are_used_everywhere() {
        let c = Capture {
            proxy_uid: 7,
            proxy_gid: 8,
            outbound_port: 1,
            inbound_port: 2,
            dns_port: 3,
            ..Capture::default()
        };
        let rules = c.restore_input();
        assert!(!rules.contains("1337"));
        assert!(!rules.contains("15001") && !rules.contains("15006") && !rules.contains("15053"));
        assert!(rules.contains("--uid-owner 7 ") && rules.contains("--gid-owner 8 "));
        assert!(rules.contains("--to-ports 1\n") && rules.contains("--to-ports 2\n"));
        assert!(rules.contains("--to-ports 3\n") && rules.contains("--sport 3 "));
    }

    #[test]
    fn no_capture_is_empty_tables() {
        let empty = empty_restore_input();
        assert!(empty.starts_with("*nat\n:PREROUTING ACCEPT [0:0]\n"));
        assert!(!empty.contains("-A "));
        assert_eq!(empty.matches("COMMIT").count(), 2);
    }
}
