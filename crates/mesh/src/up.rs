//! `bowline up`: one running local mesh.
//!
//! Start order: take the run directory's lock (one mesh per machine: the bridge name and the
//! host ports 8080/8443/15014 are fixed), remove what a crashed run left (namespaces, veths,
//! iptables chains, state files), bring the bridge up, create the mesh CA, start the control
//! plane and wait for its endpoint, start the DNS relay on the bridge address, start the ingress
//! gateway, record the state. Stop order is the reverse, and ends with the node network's
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
        let control = start_control(&opts.bowline, &config_dir, opts.control_addr).await?;
        let client = ControlClient::new(opts.control_addr);
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
        .await?;

        // Pods have no route out; the bridge address is the host, which can reach the resolver.
        // The relay also answers mesh names for pods without a sidecar.
        let names = Arc::new(EndpointNames::default());
        let names_store = names.follow(&config_dir).await?;
        let relay = match node.cidr().hosts().next().map(IpAddr::V4) {
            Some(ip) => {
                let config = DnsConfig {
                    addr: SocketAddr::new(ip, 53),
                    upstreams: host_upstreams(),
                };
                match DnsServer::start(config, names).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "no DNS relay: pods with sidecars resolve mesh names only");
                        None
                    }
                }
            }
            None => None,
        };
        let ca_dir = opts.run_dir.ca_dir();
        let ca_dir2 = ca_dir.clone();
        tokio::task::spawn_blocking(move || create_ca(&ca_dir2))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        let gateway = start_gateway(&opts.bowline, &config_dir, &ca_dir)?;
        let state = MeshState {
            pid: std::process::id() as i32,
            config_dir,
            control: opts.control_addr,
            pod_cidr: node.cidr().to_string(),
            dns_relay: relay.as_ref().map(DnsServer::local_addr),
            bowline: opts.bowline.clone(),
            ca_dir: Some(ca_dir),
            children: [control.id(), gateway.id()]
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
            control,
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

    /// Starts `which` again (pods keep running: sidecars follow the config directory, which
    /// outlives the control plane) and records its new pid.
    pub async fn restart(&mut self, which: HostChild) -> Result<(), Error> {
        let s = &self.state;
        match which {
            HostChild::Control => {
                self.control = start_control(&s.bowline, &s.config_dir, s.control).await?;
                let client = self.client();
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
                .await?;
            }
            HostChild::Gateway => {
                let ca = s.ca_dir.clone().unwrap_or_else(|| self.run_dir.ca_dir());
                self.gateway = start_gateway(&s.bowline, &s.config_dir, &ca)?;
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

async fn start_control(
    bowline: &Path,
    config_dir: &Path,
    addr: SocketAddr,
) -> Result<Child, Error> {
    let mut cmd = Command::new(bowline);
    cmd.arg("control")
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--monitoring-addr")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    quiet(&mut cmd);
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

/// The mesh CA's root, made once here before any proxy starts (each proxy signs its own
/// certificate from this directory in config-dir mode; concurrent first starts must not race to
/// create it). The proxies run as uid 1337, so the directory is theirs to read: on this one
/// machine the CA key is as protected as the proxy uid.
fn create_ca(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    ca::CertificateAuthority::open(
        ca::CaSource::SelfSigned { state_dir: dir },
        ca::CaConfig::default(),
    )
    .map_err(|e| Error::Invalid(format!("the mesh CA in {}: {e}", dir.display())))?;
    let uid = Some(nix::unistd::Uid::from_raw(crate::pod::PROXY_UID));
    let gid = Some(nix::unistd::Gid::from_raw(crate::pod::PROXY_UID));
    let mut paths = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        paths.extend(entries.flatten().map(|e| e.path()));
    }
    for p in paths {
        nix::unistd::chown(&p, uid, gid)
            .map_err(|e| Error::Invalid(format!("chown {}: {e}", p.display())))?;
    }
    Ok(())
}

fn start_gateway(bowline: &Path, config_dir: &Path, ca_dir: &Path) -> Result<Child, Error> {
    let mut cmd = Command::new(bowline);
    cmd.args(["proxy", "--role", "gateway", "--labels", GATEWAY_LABELS])
        .args([
            "--namespace",
            GATEWAY_NAMESPACE,
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
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--ca-dir")
        .arg(ca_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    quiet(&mut cmd);
    cmd.spawn()
        .map_err(Error::io("starting the ingress gateway"))
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
