//! Support for sidecar tests in real pods: a node network per test (own tag and /24 of
//! 10.89.0.0/16), `bowline proxy --capture` started inside a pod as uid 1337 (as the mesh runs
//! it), demo apps, a config directory and a mesh CA readable by the proxy's uid, and raw clients
//! that act from inside a pod.
//!
//! Tests using this need root, iproute2, iptables and setpriv. Without them they say so and
//! pass, except under `CI=true`, where they fail: they must run there.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use node::{Capture, Node, NodeConfig, Pod};

pub const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
pub const PROXY_UID: u32 = 1337;
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A node network with its pods' processes, removed when the test ends.
pub struct Mesh {
    pub node: Node,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ca: PathBuf,
    children: Vec<(String, Child)>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for (name, _) in &self.children {
                let log = self.dir.path().join(format!("{name}.log"));
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!("--- {name} (last lines, newest first)\n{}", tail.join("\n"));
                }
            }
        }
        if let Err(e) = self.node.cleanup_all() {
            eprintln!("cleanup of {} failed: {e}", self.node.tag().as_str());
        }
    }
}

fn can_run() -> Result<(), String> {
    node::sys::require_privileges().map_err(|e| e.to_string())?;
    for tool in [
        node::sys::Tool::Ip,
        node::sys::Tool::Iptables,
        node::sys::Tool::Setpriv,
    ] {
        tool.path().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The mesh for one test, or `None` (with a note) when this machine cannot run it; under
/// `CI=true` that is a failure instead.
pub fn mesh(tag: &str, third_octet: u8) -> Option<Mesh> {
    if let Err(why) = can_run() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the sidecar mesh tests cannot run: {why}");
        }
        let _ = writeln!(
            std::io::stderr(),
            "note: skipping a sidecar mesh test (run as root to include it): {why}"
        );
        return None;
    }
    let node = Node::new(&NodeConfig {
        tag: tag.to_string(),
        cidr: format!("10.89.{third_octet}.0/24").parse().expect("cidr"),
    })
    .expect("node config");
    node.cleanup_all().expect("initial cleanup");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    let ca = dir.path().join("ca");
    std::fs::create_dir(&config).expect("config dir");
    std::fs::create_dir(&ca).expect("ca dir");
    // The proxies run as uid 1337: they must read the config and the CA (a test CA).
    for d in [dir.path(), &config, &ca] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    ca::CertificateAuthority::open(
        ca::CaSource::SelfSigned { state_dir: &ca },
        ca::CaConfig::default(),
    )
    .expect("mesh CA");
    for entry in std::fs::read_dir(&ca).expect("ca dir") {
        let path = entry.expect("entry").path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    Some(Mesh {
        node,
        dir,
        config,
        ca,
        children: Vec::new(),
    })
}

impl Mesh {
    pub fn pod(&self, name: &str, capture: bool) -> Pod {
        self.node
            .create_pod(name, "default", capture.then(Capture::default).as_ref())
            .unwrap_or_else(|e| panic!("pod {name}: {e}"))
    }

    /// Writes `file` in the config directory (readable by the proxies).
    pub fn write(&self, file: &str, yaml: &str) {
        let path = self.config.join(file);
        std::fs::write(&path, yaml).expect("write config");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    pub fn remove(&self, file: &str) {
        let _ = std::fs::remove_file(self.config.join(file));
    }

    /// Starts `argv` in `pod` as `uid`, logging to `<name>.log` in the test directory.
    pub fn spawn(&mut self, name: &str, pod: &Pod, argv: &[&str], uid: Option<u32>) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let mut cmd = node::pod_command(pod, argv[0], uid).expect("pod command");
        cmd.args(&argv[1..])
            .env("RUST_LOG", "info,proxy=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.children.push((name.to_string(), child));
    }

    /// `bowline proxy --capture` for a workload in `pod`, as uid 1337, ready when this returns.
    pub fn sidecar(&mut self, name: &str, pod: &Pod, app: &str, sa: &str) {
        let config = self.config.display().to_string();
        let ca = self.ca.display().to_string();
        let labels = format!("app={app}");
        let ip = pod.ip.to_string();
        self.spawn(
            name,
            pod,
            &[
                BOWLINE,
                "proxy",
                "--config-dir",
                &config,
                "--role",
                "sidecar",
                "--capture",
                "--namespace",
                "default",
                "--labels",
                &labels,
                "--service-account",
                sa,
                "--pod-ip",
                &ip,
                "--ca-dir",
                &ca,
                "--concurrency",
                "1",
            ],
            Some(PROXY_UID),
        );
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok((200, _)) = admin(pod, "GET", "/certs") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sidecar {name} did not get ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `bowline proxy --role gateway` in `pod` (no capture, as root), with a workload
    /// certificate for the default gateway identity; ready when this returns.
    pub fn gateway(&mut self, name: &str, pod: &Pod) {
        let config = self.config.display().to_string();
        let ca = self.ca.display().to_string();
        self.spawn(
            name,
            pod,
            &[
                BOWLINE,
                "proxy",
                "--config-dir",
                &config,
                "--role",
                "gateway",
                "--namespace",
                "istio-system",
                "--labels",
                "istio=ingressgateway",
                "--ca-dir",
                &ca,
                "--concurrency",
                "1",
            ],
            None,
        );
        let deadline = Instant::now() + TIMEOUT;
        while !matches!(admin(pod, "GET", "/certs"), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "gateway {name} did not get ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `bowline demo-app KIND --port P...` in `pod`, as an ordinary (captured) process.
    pub fn app(&mut self, name: &str, pod: &Pod, kind: &str, ports: &[u16]) {
        let mut argv = vec![BOWLINE.to_string(), "demo-app".into(), kind.into()];
        for p in ports {
            argv.push("--port".into());
            argv.push(p.to_string());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.spawn(name, pod, &argv, None);
        for p in ports {
            let addr = SocketAddr::new(pod.ip.into(), *p);
            let deadline = Instant::now() + TIMEOUT;
            // From inside the pod itself, to its own address: never captured.
            while node::in_pod(pod, move || TcpStream::connect_timeout(&addr, TIMEOUT))
                .expect("enter pod")
                .is_err()
            {
                assert!(Instant::now() < deadline, "{name} did not listen on {p}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// An HTTP/1.1 exchange from inside `pod` on a new connection: status and body. A refused or
/// reset connection is the `Err`.
pub fn http(pod: &Pod, to: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_with(pod, to, host, path, "")
}

/// [`http`] with extra header lines (each ending in `\r\n`).
pub fn http_with(
    pod: &Pod,
    to: SocketAddr,
    host: &str,
    path: &str,
    headers: &str,
) -> std::io::Result<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    node::in_pod(pod, move || exchange(to, req.as_bytes())).expect("enter pod")
}

/// Writes `req` and reads the whole answer, parsed as HTTP/1.1.
pub fn exchange(to: SocketAddr, req: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&to, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(req)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidData, format!("not HTTP: {text:?}"))
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A request to the proxy's admin server in `pod` (127.0.0.1:15000).
pub fn admin(pod: &Pod, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    node::in_pod(pod, move || {
        exchange("127.0.0.1:15000".parse().expect("addr"), req.as_bytes())
    })
    .expect("enter pod")
}

/// Sends `line` on a new TCP connection from `pod` and returns the first line back.
pub fn tcp_line(pod: &Pod, to: SocketAddr, line: &str) -> std::io::Result<String> {
    let line = format!("{line}\n");
    node::in_pod(pod, move || {
        let mut s = TcpStream::connect_timeout(&to, TIMEOUT)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.write_all(line.as_bytes())?;
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    })
    .expect("enter pod")
}

/// True for the error a reset connection gives (curl's exit 56).
pub fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Polls `f` until it returns true, for config changes the proxies pick up from the directory.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Kubernetes Service `name` (cluster IP `vip`) over pods labelled `app: name`, and one pod
/// for it at `address` running a sidecar (`security.istio.io/tlsMode: istio`) as `sa`.
pub fn service(
    name: &str,
    vip: &str,
    ports: &[(&str, u16, u16)],
    address: &str,
    sa: &str,
) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p, t)| format!("{{name: {n}, port: {p}, targetPort: {t}}}"))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  clusterIP: {vip}
  ports: [{}]
---
apiVersion: v1
kind: Pod
metadata:
  name: {name}-1
  namespace: default
  labels: {{app: {name}, security.istio.io/tlsMode: istio}}
  annotations: {{bowline.io/address: "{address}"}}
spec: {{serviceAccountName: {sa}}}
"#,
        ports.join(", ")
    )
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
