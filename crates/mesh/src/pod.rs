//! One workload of the local mesh, from start to removal.
//!
//! Start: a pod network namespace with Istio's capture (when it has a sidecar); the pod
//! registered through the control plane as a Kubernetes Pod with its address, labels
//! (`security.istio.io/tlsMode: istio` when it has a sidecar), service account and container
//! ports, plus a Service named after its `app` label when none exists yet; the sidecar (uid 1337,
//! following the control plane's xDS push with its own copy of the bootstrap token) until its
//! health endpoint answers and it has acknowledged its first push; then the app (as root, a uid the capture does not exempt)
//! until each of its ports accepts. Stop: the app, the sidecar, the Pod resource, the namespace.
//!
//! A Pod rather than a WorkloadEntry, because Kubernetes Services select Pods in the registry (as
//! in a cluster), and a Service gives the Kubernetes names (`reviews`, `reviews.default`,
//! `reviews.default.svc.cluster.local`) that Istio's samples and tasks use. Services are left in
//! place when a pod goes, as in Kubernetes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::time::Duration;

use node::{Capture, Node, Pod};
use serde_json::json;
use tokio::process::Child;

use crate::client::ControlClient;
use crate::rundir::{MeshState, PodState, RunDir};
use crate::sidecar::{ConfigSource, SidecarArgs, HEALTH_PORT};
use crate::up::{terminate, wait_for};
use crate::Error;

/// The proxy's uid, as in Istio.
pub const PROXY_UID: u32 = 1337;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `PORT[/NAME]`: a container port and, for the Service, its name (which picks the protocol
/// as in Istio: `http`, `http-*`, `grpc`, `tcp`...). The name defaults to `http`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub port: u16,
    pub name: String,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, name) = s.split_once('/').unwrap_or((s, "http"));
        let port = port
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{s}`: the port must be 1-65535 (PORT[/NAME])"))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "`{s}`: the port name must be letters, digits and `-`"
            ));
        }
        Ok(PortSpec { port, name })
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ports: Vec<PortSpec>,
    pub sidecar: bool,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl PodSpec {
    pub fn new(name: &str, namespace: &str, command: Vec<String>) -> PodSpec {
        PodSpec {
            name: name.to_string(),
            namespace: namespace.to_string(),
            labels: BTreeMap::new(),
            service_account: "default".to_string(),
            ports: Vec::new(),
            sidecar: true,
            command,
            env: Vec::new(),
        }
    }

    /// The labels the Pod is registered with.
    fn pod_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        if self.sidecar {
            labels.insert("security.istio.io/tlsMode".into(), "istio".into());
        }
        labels
    }

    fn pod_yaml(&self, ip: Ipv4Addr) -> String {
        let ports: Vec<_> = self
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "containerPort": p.port}))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.pod_labels(),
                "annotations": {
                    model_address_annotation(): ip.to_string(),
                    "sidecar.istio.io/inject": self.sidecar.to_string(),
                },
            },
            "spec": {
                "serviceAccountName": self.service_account,
                "containers": [{"name": "app", "ports": ports}],
            },
            "status": {"podIP": ip.to_string()},
        })
        .to_string()
    }

    fn service_yaml(&self, app: &str) -> String {
        let ports: Vec<_> = self
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "port": p.port, "targetPort": p.port}))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": app, "namespace": self.namespace, "labels": {"app": app, "service": app}},
            "spec": {"selector": {"app": app}, "ports": ports},
        })
        .to_string()
    }
}

/// The registry's address annotation (kept here so the mesh crate needs no model dependency).
fn model_address_annotation() -> &'static str {
    "bowline.io/address"
}

/// A started pod. Dropping it kills its processes (kill_on_drop); [`RunningPod::stop`] also
/// unregisters it and removes its namespace.
pub struct RunningPod {
    pub spec: PodSpec,
    pub pod: Pod,
    sidecar: Option<Child>,
    app: Child,
    client: ControlClient,
    run_dir: RunDir,
    node: Node,
}

impl RunningPod {
    /// Starts `spec` in the mesh `mesh`; on error, what was made is removed again.
    pub async fn start(
        mesh: &MeshState,
        node: &Node,
        run_dir: &RunDir,
        spec: PodSpec,
    ) -> Result<RunningPod, Error> {
        if spec.command.is_empty() {
            return Err(Error::Invalid("a pod needs a command".into()));
        }
        let id = format!("{}/{}", spec.namespace, spec.name);
        if let Some(old) = run_dir.pod(&spec.namespace, &spec.name)? {
            if alive(old.owner) {
                return Err(Error::PodExists(id));
            }
        }
        let capture = spec.sidecar.then(Capture::default);
        let (n, name, ns) = (node.clone(), spec.name.clone(), spec.namespace.clone());
        let pod = blocking(move || {
            // A pod of that name left by a crashed owner is replaced.
            n.delete_pod(&name, &ns)?;
            n.create_pod(&name, &ns, capture.as_ref())
        })
        .await??;
        let client = ControlClient::new(mesh.control);
        let mut partial = Partial {
            node: node.clone(),
            pod: pod.clone(),
            client: client.clone(),
            registered: None,
            secrets: run_dir.pod_secrets(&spec.namespace, &spec.name),
        };
        if !spec.sidecar {
            legacy_dns(mesh, &pod, &spec.namespace)?;
        }
        let registered = register(&client, &spec, pod.ip).await?;
        partial.registered = Some(registered);
        let sidecar = if spec.sidecar {
            Some(start_sidecar(mesh, run_dir, &pod, &spec).await?)
        } else {
            None
        };
        let app = start_app(&pod, &spec).await?;
        let state = PodState {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            ip: pod.ip,
            netns: pod.netns.clone(),
            sidecar: spec.sidecar,
            owner: std::process::id() as i32,
        };
        run_dir.write_pod(&state)?;
        std::mem::forget(partial);
        tracing::info!(pod = %id, ip = %pod.ip, sidecar = spec.sidecar, "pod running");
        Ok(RunningPod {
            spec,
            pod,
            sidecar,
            app,
            client,
            run_dir: run_dir.clone(),
            node: node.clone(),
        })
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.pod.ip
    }

    /// Resolves when the app exits (or, for a pod with a sidecar, when the sidecar does).
    pub async fn wait(&mut self) -> Result<ExitStatus, String> {
        match &mut self.sidecar {
            Some(sidecar) => tokio::select! {
                s = self.app.wait() => s.map_err(|e| e.to_string()),
                s = sidecar.wait() => Err(format!("the sidecar exited ({})", match s {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                })),
            },
            None => self.app.wait().await.map_err(|e| e.to_string()),
        }
    }

    /// Stops the app and the sidecar, unregisters the Pod and removes the namespace.
    pub async fn stop(mut self) -> Result<(), Error> {
        terminate(&mut self.app, "app").await;
        if let Some(s) = &mut self.sidecar {
            terminate(s, "sidecar").await;
        }
        let yaml = self.spec.pod_yaml(self.pod.ip);
        let client = self.client.clone();
        if let Err(e) = blocking(move || client.delete("bowline-run", &yaml)).await? {
            tracing::warn!(error = %e, "could not unregister the pod");
        }
        let (n, name, ns) = (
            self.node.clone(),
            self.spec.name.clone(),
            self.spec.namespace.clone(),
        );
        blocking(move || n.delete_pod(&name, &ns)).await??;
        let _ = std::fs::remove_dir_all(netns_etc(&self.pod.netns));
        let _ = std::fs::remove_dir_all(
            self.run_dir
                .pod_secrets(&self.spec.namespace, &self.spec.name),
        );
        self.run_dir
            .remove_pod(&self.spec.namespace, &self.spec.name);
        Ok(())
    }
}

/// Undoes a half-made pod when start fails (dropped without `forget`).
struct Partial {
    node: Node,
    pod: Pod,
    client: ControlClient,
    registered: Option<String>,
    secrets: std::path::PathBuf,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(yaml) = &self.registered {
            let _ = self.client.delete("bowline-run", yaml);
        }
        if let Err(e) = self.node.delete_pod(&self.pod.name, &self.pod.namespace) {
            tracing::warn!(error = %e, "could not remove a half-made pod");
        }
        let _ = std::fs::remove_dir_all(netns_etc(&self.pod.netns));
        let _ = std::fs::remove_dir_all(&self.secrets);
    }
}

/// Per-namespace files `ip netns exec` mounts over /etc (how a pod gets its own resolv.conf).
fn netns_etc(netns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(netns)
}

/// A pod without a sidecar has no DNS proxy: point its resolver at the bridge's relay, with
/// Kubernetes' search list, so it resolves mesh names as a pod using kube-dns would.
fn legacy_dns(mesh: &MeshState, pod: &Pod, namespace: &str) -> Result<(), Error> {
    let Some(relay) = mesh.dns_relay else {
        return Ok(());
    };
    let dir = netns_etc(&pod.netns);
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let path = dir.join("resolv.conf");
    std::fs::write(
        &path,
        crate::names::legacy_resolv_conf(relay.ip(), namespace),
    )
    .map_err(Error::io(format!("writing {}", path.display())))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Invalid(format!("a blocking task failed: {e}")))
}

/// Applies the Pod (and the Service when missing); returns the Pod YAML for unregistering.
async fn register(client: &ControlClient, spec: &PodSpec, ip: Ipv4Addr) -> Result<String, Error> {
    let pod_yaml = spec.pod_yaml(ip);
    let service = spec
        .labels
        .get("app")
        .filter(|_| !spec.ports.is_empty())
        .map(|app| (app.clone(), spec.service_yaml(app)));
    let (client, yaml, ns) = (client.clone(), pod_yaml.clone(), spec.namespace.clone());
    blocking(move || {
        if let Some((app, svc)) = service {
            if !client.exists("Service", &ns, &app)? {
                client.apply("bowline-run", &svc)?;
            }
        }
        client.apply("bowline-run", &yaml)
    })
    .await??;
    Ok(pod_yaml)
}

async fn start_sidecar(
    mesh: &MeshState,
    run_dir: &RunDir,
    pod: &Pod,
    spec: &PodSpec,
) -> Result<Child, Error> {
    let xds = mesh.xds.ok_or_else(|| {
        Error::Invalid("the running mesh has no discovery server: restart `bowline up`".into())
    })?;
    let client = ControlClient::new(mesh.control);
    let (c, ns, sa) = (
        client.clone(),
        spec.namespace.clone(),
        spec.service_account.clone(),
    );
    let grant = blocking(move || c.token(&ns, &sa)).await??;
    let dir = run_dir.pod_secrets(&spec.namespace, &spec.name);
    let (token_file, root_cert) = blocking(move || proxy_secrets(&dir, &grant)).await??;
    let args = SidecarArgs {
        namespace: spec.namespace.clone(),
        labels: spec.pod_labels(),
        service_account: spec.service_account.clone(),
        pod_ip: pod.ip,
        source: ConfigSource::Xds {
            addr: xds,
            root_cert,
            token_file,
            node_name: spec.name.clone(),
        },
        dns_upstream: mesh.dns_relay,
    };
    let program = mesh.bowline.display().to_string();
    let mut cmd: tokio::process::Command =
        node::pod_command(pod, &program, Some(PROXY_UID))?.into();
    cmd.args(args.argv())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    crate::up::quiet(&mut cmd);
    let mut child = cmd.spawn().map_err(Error::io("starting the sidecar"))?;
    let health = SocketAddr::from((pod.ip, HEALTH_PORT));
    let what = format!("the sidecar of {}/{}", spec.namespace, spec.name);
    // Ready once it serves and has acknowledged the control plane's first push (as Istio's
    // agent holds readiness until Envoy has its first config): the app starts after that.
    let node = format!("{}.{}", spec.name, spec.namespace);
    let ready = wait_for(
        &what,
        || {
            let (client, node) = (client.clone(), node.clone());
            async move {
                blocking(move || {
                    http_status(health, "/healthz/ready") == Some(200) && client.synced(&node)
                })
                .await
                .unwrap_or(false)
            }
        },
        READY_TIMEOUT,
    );
    tokio::select! {
        r = ready => r.map(|()| child),
        s = child.wait() => Err(Error::Exited(what, match s {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        })),
    }
}

/// Copies the token (0600) and the root certificate into `dir`, owned by the proxy uid, so
/// the sidecar reads them without the control plane's state being opened to that uid.
fn proxy_secrets(
    dir: &std::path::Path,
    grant: &crate::client::TokenGrant,
) -> Result<(std::path::PathBuf, std::path::PathBuf), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let owner = |p: &std::path::Path| {
        nix::unistd::chown(
            p,
            Some(nix::unistd::Uid::from_raw(PROXY_UID)),
            Some(nix::unistd::Gid::from_raw(PROXY_UID)),
        )
        .map_err(|e| Error::Invalid(format!("chown {}: {e}", p.display())))
    };
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io(format!("chmod {}", dir.display())))?;
    owner(dir)?;
    let mut out = Vec::new();
    for (from, name) in [
        (&grant.token_file, "istio-token"),
        (&grant.root_cert_file, "root-cert.pem"),
    ] {
        let bytes =
            std::fs::read(from).map_err(Error::io(format!("reading {}", from.display())))?;
        let to = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&to)
            .map_err(Error::io(format!("creating {}", to.display())))?;
        file.write_all(&bytes)
            .map_err(Error::io(format!("writing {}", to.display())))?;
        owner(&to)?;
        out.push(to);
    }
    let root = out.pop().unwrap_or_default();
    let token = out.pop().unwrap_or_default();
    Ok((token, root))
}

async fn start_app(pod: &Pod, spec: &PodSpec) -> Result<Child, Error> {
    let mut cmd: tokio::process::Command = node::pod_command(pod, &spec.command[0], None)?.into();
    cmd.args(&spec.command[1..])
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(Error::io(format!("starting {}", spec.command[0])))?;
    let what = format!(
        "{}/{} ({})",
        spec.namespace,
        spec.name,
        spec.command.join(" ")
    );
    let ports: Vec<u16> = spec.ports.iter().map(|p| p.port).collect();
    let netns_pod = pod.clone();
    let ready = wait_for(
        &what,
        move || {
            let (pod, ports) = (netns_pod.clone(), ports.clone());
            async move {
                // From inside the pod over loopback, which the capture leaves alone: the app
                // itself, not the sidecar's inbound listener.
                blocking(move || {
                    node::in_pod(&pod, move || {
                        ports.iter().all(|p| {
                            TcpStream::connect_timeout(
                                &SocketAddr::from(([127, 0, 0, 1], *p)),
                                Duration::from_millis(200),
                            )
                            .is_ok()
                        })
                    })
                    .unwrap_or(false)
                })
                .await
                .unwrap_or(false)
            }
        },
        READY_TIMEOUT,
    );
    tokio::select! {
        r = ready => r.map(|()| child),
        s = child.wait() => Err(Error::Exited(what, match s {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        })),
    }
}

/// The status of `GET path` on `addr`, or `None` when there is no HTTP answer.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_with_a_default_name() {
        assert_eq!(
            "9080".parse::<PortSpec>().unwrap(),
            PortSpec {
                port: 9080,
                name: "http".into()
            }
        );
        assert_eq!("9000/tcp".parse::<PortSpec>().unwrap().name, "tcp");
        assert!("0/http".parse::<PortSpec>().is_err());
        assert!("80/a b".parse::<PortSpec>().is_err());
    }

    #[test]
    fn the_pod_carries_address_identity_and_tls_mode() {
        let mut spec = PodSpec::new("reviews-v1", "default", vec!["x".into()]);
        spec.labels.insert("app".into(), "reviews".into());
        spec.service_account = "bookinfo-reviews".into();
        spec.ports.push("9080/http".parse().unwrap());
        let pod: serde_json::Value =
            serde_json::from_str(&spec.pod_yaml(Ipv4Addr::new(10, 88, 0, 4))).unwrap();
        assert_eq!(
            pod["metadata"]["labels"]["security.istio.io/tlsMode"],
            "istio"
        );
        assert_eq!(
            pod["metadata"]["annotations"]["bowline.io/address"],
            "10.88.0.4"
        );
        assert_eq!(pod["spec"]["serviceAccountName"], "bookinfo-reviews");
        assert_eq!(
            pod["spec"]["containers"][0]["ports"][0]["containerPort"],
            9080
        );
        let svc: serde_json::Value = serde_json::from_str(&spec.service_yaml("reviews")).unwrap();
        assert_eq!(svc["spec"]["selector"]["app"], "reviews");
        assert_eq!(svc["spec"]["ports"][0]["name"], "http");
        spec.sidecar = false;
        let pod: serde_json::Value =
            serde_json::from_str(&spec.pod_yaml(Ipv4Addr::new(10, 88, 0, 4))).unwrap();
        assert!(pod["metadata"]["labels"]
            .get("security.istio.io/tlsMode")
            .is_none());
    }
}
