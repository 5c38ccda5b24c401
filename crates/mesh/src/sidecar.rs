//! The sidecar's command line: the one place that knows how a sidecar gets its configuration
//! (the local mesh uses the control plane's xDS push; a config directory remains possible).
//!
//! A sidecar runs inside its pod's network namespace as uid 1337 (the uid the capture rules
//! leave alone), with Istio's ports: outbound capture 15001, inbound capture 15006, DNS
//! 127.0.0.1:15053, admin 127.0.0.1:15000, health 15021. Being in the pod's own namespace, none
//! of these collide with another pod or with the host.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Where a sidecar's configuration comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigSource {
    /// The control plane's config directory, compiled by the sidecar itself and watched.
    Dir {
        config_dir: PathBuf,
        /// The mesh CA's directory, for workload certificates in this mode.
        ca_dir: Option<PathBuf>,
    },
    /// The control plane's xDS server, with the bootstrap token the control plane issued; the
    /// workload certificate comes from the control plane's CA too.
    Xds {
        addr: SocketAddr,
        root_cert: PathBuf,
        token_file: PathBuf,
        /// The pod's name, for the node id `sidecar~IP~NAME.NS~...` proxy-status shows.
        node_name: String,
    },
}

/// Everything a sidecar is started with.
#[derive(Clone, Debug)]
pub struct SidecarArgs {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub pod_ip: Ipv4Addr,
    pub source: ConfigSource,
    /// Where the DNS proxy relays names outside the mesh.
    pub dns_upstream: Option<SocketAddr>,
}

/// Istio's DNS proxy address inside a pod.
pub const DNS_ADDR: &str = "127.0.0.1:15053";
/// The sidecar's health endpoint port inside a pod.
pub const HEALTH_PORT: u16 = 15021;

impl SidecarArgs {
    /// The arguments after the `bowline` binary.
    pub fn argv(&self) -> Vec<String> {
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut argv: Vec<String> = vec![
            "proxy".into(),
            "--capture".into(),
            "--namespace".into(),
            self.namespace.clone(),
            "--labels".into(),
            labels,
            "--service-account".into(),
            self.service_account.clone(),
            "--pod-ip".into(),
            self.pod_ip.to_string(),
            "--admin-addr".into(),
            "127.0.0.1:15000".into(),
            "--health-addr".into(),
            format!("0.0.0.0:{HEALTH_PORT}"),
            "--dns-addr".into(),
            DNS_ADDR.into(),
        ];
        if let Some(up) = self.dns_upstream {
            argv.extend(["--dns-upstream".into(), up.to_string()]);
        }
        match &self.source {
            ConfigSource::Dir { config_dir, ca_dir } => {
                argv.extend([
                    "--role".into(),
                    "sidecar".into(),
                    "--config-dir".into(),
                    config_dir.display().to_string(),
                ]);
                if let Some(ca) = ca_dir {
                    argv.extend(["--ca-dir".into(), ca.display().to_string()]);
                }
            }
            ConfigSource::Xds {
                addr,
                root_cert,
                token_file,
                node_name,
            } => argv.extend([
                "--xds-address".into(),
                addr.to_string(),
                "--root-cert".into(),
                root_cert.display().to_string(),
                "--token-file".into(),
                token_file.display().to_string(),
                "--node-name".into(),
                node_name.clone(),
                "--workload-cert".into(),
            ]),
        }
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_dir_sidecar_captures_and_runs_dns() {
        let args = SidecarArgs {
            namespace: "default".into(),
            labels: [("app".to_string(), "reviews".to_string())].into(),
            service_account: "bookinfo-reviews".into(),
            pod_ip: Ipv4Addr::new(10, 88, 0, 5),
            source: ConfigSource::Dir {
                config_dir: "/m".into(),
                ca_dir: None,
            },
            dns_upstream: Some("10.88.0.1:53".parse().unwrap()),
        };
        let line = args.argv().join(" ");
        assert!(line.starts_with("proxy --capture --namespace default --labels app=reviews"));
        assert!(line.contains("--service-account bookinfo-reviews --pod-ip 10.88.0.5"));
        assert!(line.contains("--dns-addr 127.0.0.1:15053 --dns-upstream 10.88.0.1:53"));
        assert!(line.ends_with("--role sidecar --config-dir /m"));
    }

    #[test]
    fn an_xds_sidecar_follows_the_control_plane_with_its_token() {
        let args = SidecarArgs {
            namespace: "default".into(),
            labels: [("app".to_string(), "sleep".to_string())].into(),
            service_account: "sleep".into(),
            pod_ip: Ipv4Addr::new(10, 88, 0, 7),
            source: ConfigSource::Xds {
                addr: "10.88.0.1:15012".parse().unwrap(),
                root_cert: "/r/root.pem".into(),
                token_file: "/r/token".into(),
                node_name: "sleep".into(),
            },
            dns_upstream: None,
        };
        let line = args.argv().join(" ");
        assert!(line.starts_with("proxy --capture --namespace default --labels app=sleep"));
        assert!(line.ends_with(
            "--xds-address 10.88.0.1:15012 --root-cert /r/root.pem --token-file /r/token \
             --node-name sleep --workload-cert"
        ));
        assert!(!line.contains("--config-dir"));
    }
}
