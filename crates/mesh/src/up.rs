//! `bowline up`: one running local mesh.
//!
//! Start order: take the run directory's lock (one mesh per machine: the bridge name and the
//! host ports 8080/8443/15014 are fixed), remove what a crashed run left (namespaces, veths,
//! iptables chains, state files), bring the bridge up, start the control plane (the mesh's CA
//! and xDS server, listening on the bridge address where pods reach the host) and wait for its
//! endpoint, start the DNS relay on the bridge address, start the ingress gateway (following the
//! control plane like every sidecar) until it has its first push, record the state. Stop order is the reverse, and ends with the node network's
//! cleanup by tag, so nothing survives even a pod whose owner crashed.
//!
//! Children are started with `kill_on_drop`, so a panic unwinding through [`Mesh`] still ends
//! them, and their pids are recorded: when `up` itself is killed outright, the next `up` ends the
//! recorded children that are still `bowline` processes before it starts its own.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use node::{Node, NodeConfig};
use proxy::dns::{DnsConfig, DnsServer};

use crate::names::EndpointNames;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::ControlClient;
use crate::rundir::{MeshState, RunDir, UpLock};
use crate::Error;

/// Labels of the ingress gateway, as Istio's default `istio-ingressgateway` Deployment has them.
pub const GATEWAY_LABELS: &str = "istio=ingressgateway,app=istio-ingressgateway";
pub const GATEWAY_NAMESPACE: &str = "istio-system";
pub const GATEWAY_SA: &str = "istio-ingressgateway-service-account";
/// The gateway's pod name in its node id, as `bowline proxy-status` lists it.
pub const GATEWAY_NODE_NAME: &str = "istio-ingressgateway";
/// istiod's discovery port (xDS and the certificate service over TLS).
pub const XDS_PORT: u16 = 15012;
/// Gateway ports served elsewhere on the host, as the ingress Service's targetPorts map them
/// (80 → 8080, 443 → 8443); every other Gateway port is served as is.
pub const GATEWAY_PORT_MAP: &str = "80=8080,443=8443";
/// How long a child may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run the mesh.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    pub config_dir: PathBuf,
    pub pod_cidr: Option<Ipv4Net>,
    /// The `bowline` binary the children run.
    pub bowline: PathBuf,
    pub run_dir: RunDir,
    pub control_addr: SocketAddr,
}

impl MeshOptions {
    pub fn new(config_dir: impl Into<PathBuf>, bowline: impl Into<PathBuf>) -> MeshOptions {
        MeshOptions {
            config_dir: config_dir.into(),
            pod_cidr: None,
            bowline: bowline.into(),
            run_dir: RunDir::default(),
            control_addr: SocketAddr::from(([127, 0, 0, 1], 15014)),
        }
    }
}

/// The host processes `up` supervises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostChild {
    Control,
    Gateway,
}

impl std::fmt::Display for HostChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostChild::Control => "the control plane",
            HostChild::Gateway => "the ingress gateway",
        })
    }
}

/// A running mesh; [`Mesh::shutdown`] stops it.
pub struct Mesh {
    pub state: MeshState,
    pub node: Node,
    run_dir: RunDir,
    control: Child,
    gateway: Child,
    _relay: Option<DnsServer>,
    _names: control::store::Store,
    _lock: UpLock,
}

impl Mesh {
    /// Starts everything; on error, what was started is stopped again.
    pub async fn up(opts: MeshOptions) -> Result<Mesh, Error> {
        crate::require_privileges()?;
        let lock = opts.run_dir.lock_up()?;
        let mut config = NodeConfig::default();
        if let Some(cidr) = opts.pod_cidr {
            config.cidr = cidr;
        }
        let node = Node::new(&config)?;
        let node2 = node.clone();
        let cleaned = tokio::task::spawn_blocking(move || node2.cleanup_all())
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        if !cleaned.is_empty() {
            tracing::info!(?cleaned, "removed the leftovers of an earlier run");
        }
        remove_netns_etc();
        if let Some(old) = opts.run_dir.leftover_mesh() {
            kill_leftovers(&old.children);
        }
        opts.run_dir.clear()?;
        let node2 = node.clone();
        tokio::task::spawn_blocking(move || node2.up())
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;

        let config_dir = absolute(&opts.config_dir)?;
        std::fs::create_dir_all(&config_dir)
            .map_err(Error::io(format!("creating {}", config_dir.display())))?;
        remove_stale_pods(&config_dir);
        // Pods reach the host at the bridge address (they have no other route), and so does
        // the gateway on the host: the discovery server listens there only.
        let bridge = node
            .cidr()
            .hosts()
            .next()
            .ok_or_else(|| Error::Invalid(format!("{} has no host address", node.cidr())))?;
        let xds = SocketAddr::from((bridge, XDS_PORT));
        let state_dir = opts.run_dir.state_dir();
        let control = ControlPlane {
            bowline: &opts.bowline,
            config_dir: &config_dir,
            state_dir: &state_dir,
            monitoring: opts.control_addr,
            xds,
        };
        let control_child = control.start().await?;
        let client = ControlClient::new(opts.control_addr);
        wait_ready(&client).await?;

        // Pods have no route out; the bridge address is the host, which can reach the resolver.
        // The relay also answers mesh names for pods without a sidecar.
        let names = Arc::new(EndpointNames::default());
        let names_store = names.follow(&config_dir).await?;
        let config = DnsConfig {
            addr: SocketAddr::new(IpAddr::V4(bridge), 53),
            upstreams: host_upstreams(),
        };
        let relay = match DnsServer::start(config, names).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS relay: pods with sidecars resolve mesh names only");
                None
            }
        };
        let gateway = start_gateway(&opts.bowline, &client, xds).await?;
        let state = MeshState {
            pid: std::process::id() as i32,
            config_dir,
            control: opts.control_addr,
            pod_cidr: node.cidr().to_string(),
            dns_relay: relay.as_ref().map(DnsServer::local_addr),
            bowline: opts.bowline.clone(),
            state_dir: Some(state_dir),
            xds: Some(xds),
            children: [control_child.id(), gateway.id()]
                .into_iter()
                .flatten()
                .map(|p| p as i32)
                .collect(),
        };
        opts.run_dir.write_mesh(&state)?;
        Ok(Mesh {
            state,
            node,
            run_dir: opts.run_dir,
            control: control_child,
            gateway,
            _relay: relay,
            _names: names_store,
            _lock: lock,
        })
    }

    pub fn client(&self) -> ControlClient {
        ControlClient::new(self.state.control)
    }

    pub fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    /// Resolves when the control plane or the gateway exits: which one, and how.
    pub async fn child_exited(&mut self) -> (HostChild, String) {
        tokio::select! {
            s = self.control.wait() => (HostChild::Control, describe(s)),
            s = self.gateway.wait() => (HostChild::Gateway, describe(s)),
        }
    }

    /// Starts `which` again and records its new pid. Pods keep running: their sidecars keep
    /// serving their last config and reconnect to the new control plane, which keeps the CA
    /// and the tokens in its state directory.
    pub async fn restart(&mut self, which: HostChild) -> Result<(), Error> {
        let s = &self.state;
        let state_dir = s
            .state_dir
            .clone()
            .unwrap_or_else(|| self.run_dir.state_dir());
        let xds = s
            .xds
            .ok_or_else(|| Error::Invalid("the mesh record has no discovery address".into()))?;
        let client = self.client();
        match which {
            HostChild::Control => {
                let control = ControlPlane {
                    bowline: &s.bowline,
                    config_dir: &s.config_dir,
                    state_dir: &state_dir,
                    monitoring: s.control,
                    xds,
                };
                self.control = control.start().await?;
                wait_ready(&client).await?;
            }
            HostChild::Gateway => {
                self.gateway = start_gateway(&s.bowline, &client, xds).await?;
            }
        }
        self.state.children = [self.control.id(), self.gateway.id()]
            .into_iter()
            .flatten()
            .map(|p| p as i32)
            .collect();
        self.run_dir.write_mesh(&self.state)
    }

    /// Stops the gateway and the control plane (SIGTERM, then SIGKILL after a grace period),
    /// then removes every pod, link and rule of the node network and the state files.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        terminate(&mut self.gateway, "gateway").await;
        terminate(&mut self.control, "control plane").await;
        self.run_dir.remove_mesh();
        let node = self.node.clone();
        let result = tokio::task::spawn_blocking(move || node.cleanup_all())
            .await
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.run_dir.clear()?;
        remove_netns_etc();
        result.map(|_| ()).map_err(Error::from)
    }
}

fn describe(s: std::io::Result<std::process::ExitStatus>) -> String {
    match s {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// SIGTERM, up to 10 s for the proxy's drain, then SIGKILL.
pub(crate) async fn terminate(child: &mut Child, what: &str) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            tracing::warn!(what, "did not stop on SIGTERM; killing");
            let _ = child.kill().await;
        }
    }
}

/// Pods registered by an earlier run whose owner crashed: their namespaces are gone, so their
/// records (`pod-<ns>-<name>.yaml`, as the control plane's writer names them) must go too, or
/// they would stay endpoints of their services.
fn remove_stale_pods(config_dir: &Path) {
    let Ok(dir) = std::fs::read_dir(config_dir) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("pod-") && name.ends_with(".yaml") {
            tracing::info!(file = %name, "removing a pod of an earlier run");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the per-pod /etc files (`/etc/netns/bowline-*`) of pods without a sidecar.
fn remove_netns_etc() {
    let Ok(dir) = std::fs::read_dir("/etc/netns") else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().starts_with("bowline-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// SIGKILL for recorded children of a dead `up` that are still `bowline` processes (a pid may
/// have been reused by something else since).
fn kill_leftovers(pids: &[i32]) {
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("bowline") {
            tracing::info!(pid, "stopping a process left by an earlier run");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(Error::io("reading the working directory"))?;
    Ok(cwd.join(p))
}

/// The host's resolvers, read here on the host.
fn host_upstreams() -> Vec<SocketAddr> {
    proxy::dns::upstreams_from_resolv_conf("/etc/resolv.conf").unwrap_or_default()
}

/// How `up` runs the control plane.
struct ControlPlane<'a> {
    bowline: &'a Path,
    config_dir: &'a Path,
    state_dir: &'a Path,
    monitoring: SocketAddr,
    xds: SocketAddr,
}

impl ControlPlane<'_> {
    async fn start(&self) -> Result<Child, Error> {
        let addr = self.monitoring;
        let mut cmd = Command::new(self.bowline);
        cmd.arg("control")
            .arg("--config-dir")
            .arg(self.config_dir)
            .arg("--monitoring-addr")
            .arg(addr.to_string())
            .arg("--state-dir")
            .arg(self.state_dir)
            .arg("--xds-addr")
            .arg(self.xds.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        quiet(&mut cmd);
        start_control(cmd, addr).await
    }
}

async fn wait_ready(client: &ControlClient) -> Result<(), Error> {
    wait_for(
        "the control plane",
        || {
            let c = client.clone();
            async move {
                tokio::task::spawn_blocking(move || c.ready())
                    .await
                    .unwrap_or(false)
            }
        },
        READY_TIMEOUT,
    )
    .await
}

async fn start_control(mut cmd: Command, addr: SocketAddr) -> Result<Child, Error> {
    let mut child = cmd
        .spawn()
        .map_err(Error::io("starting the control plane"))?;
    // Its first line says where it listens; wait for it or for its death.
    let Some(stdout) = child.stdout.take() else {
        return Ok(child);
    };
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
    match first {
        Ok(Ok(Some(line))) if line.contains("monitoring on") => {
            tracing::info!(%line, "control plane started");
            // Keep draining its stdout so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok(child)
        }
        _ => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let why = match status {
                Ok(s) => describe(s),
                Err(_) => "no `monitoring on` line".into(),
            };
            Err(Error::Exited(
                format!("the control plane (is {addr} free?)"),
                why,
            ))
        }
    }
}

/// The ingress gateway on the host, following the control plane with its service account's
/// token (it runs as root, so it reads the control plane's files where they are), and waits
/// until it has acknowledged its first push, so the Gateway's ports are served when `up`
/// returns.
async fn start_gateway(
    bowline: &Path,
    client: &ControlClient,
    xds: SocketAddr,
) -> Result<Child, Error> {
    let c = client.clone();
    let grant = tokio::task::spawn_blocking(move || c.token(GATEWAY_NAMESPACE, GATEWAY_SA))
        .await
        .map_err(|e| Error::Invalid(e.to_string()))??;
    let mut cmd = Command::new(bowline);
    cmd.args(["proxy", "--role", "gateway", "--labels", GATEWAY_LABELS])
        .args([
            "--namespace",
            GATEWAY_NAMESPACE,
            "--service-account",
            GATEWAY_SA,
            "--port-map",
            GATEWAY_PORT_MAP,
        ])
        // The host's 15000/15021 belong to whoever runs a proxy there; the mesh's gateway is
        // reached on its listeners only.
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
        ])
        .arg("--xds-address")
        .arg(xds.to_string())
        .arg("--root-cert")
        .arg(&grant.root_cert_file)
        .arg("--token-file")
        .arg(&grant.token_file)
        .args(["--node-name", GATEWAY_NODE_NAME, "--workload-cert"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    quiet(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(Error::io("starting the ingress gateway"))?;
    let node = format!("{GATEWAY_NODE_NAME}.{GATEWAY_NAMESPACE}");
    let ready = wait_for(
        "the ingress gateway",
        || {
            let (c, node) = (client.clone(), node.clone());
            async move {
                tokio::task::spawn_blocking(move || c.synced(&node))
                    .await
                    .unwrap_or(false)
            }
        },
        READY_TIMEOUT,
    );
    tokio::select! {
        r = ready => r.map(|()| child),
        s = child.wait() => Err(Error::Exited("the ingress gateway".into(), describe(s))),
    }
}

/// Children log warnings and errors only, unless RUST_LOG says otherwise: the mesh's terminal
/// is for what the user asked for.
pub(crate) fn quiet(cmd: &mut Command) {
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
}

/// Polls `check` until it is true or `timeout` passes.
pub(crate) async fn wait_for<F, Fut>(
    what: &str,
    mut check: F,
    timeout: Duration,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady(what.to_string(), timeout));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
