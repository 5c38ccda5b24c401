//! Support for istio.io's tasks run end to end on the local mesh: `bowline demo SAMPLE` (or
//! `bowline up`) as a child, extra workloads through `bowline run`, config through
//! `bowline apply -f`, clients through `bowline exec sleep -- curl` or the ingress on 127.0.0.1.
//!
//! Only one mesh runs on a machine (bridge bowline0, host ports 8080/15014), so every test holds
//! a file lock for as long as its mesh lives, and tears the mesh down on drop, panics included:
//! SIGTERM to `bowline demo`/`up` (which removes its pods, namespaces and rules), and the node
//! network's cleanup by tag if it does not stop in time.
//!
//! Tests need root, iproute2, iptables, setpriv and curl. Without root they say so and pass,
//! except under `CI=true`, where they fail: they must run there.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

pub const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
pub const INGRESS: &str = "127.0.0.1:8080";

/// Whether this machine can run the mesh; otherwise says why (and fails under CI).
pub fn can_run() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let curl = Command::new("curl").arg("--version").output().is_ok();
    if root && curl {
        return true;
    }
    let why = if root { "curl is missing" } else { "not root" };
    assert!(
        std::env::var("CI").is_err(),
        "CI is set but this mesh test cannot run: {why}"
    );
    eprintln!("note: {why}; this mesh test did not run (run it as root, with curl)");
    false
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Istio's samples beside the repo (`../shared/istio-samples/samples`), when present.
pub fn istio_samples() -> Option<PathBuf> {
    [
        "../../../shared/istio-samples/samples",
        "../../../../shared/istio-samples/samples",
    ]
    .iter()
    .map(|c| Path::new(env!("CARGO_MANIFEST_DIR")).join(c))
    .find(|p| p.exists())
}

/// Our copy of a task config.
pub fn task(file: &str) -> PathBuf {
    repo().join("examples/mesh/tasks").join(file)
}

/// A running mesh, torn down on drop.
pub struct Mesh {
    child: Option<Child>,
    runs: Vec<(String, Child)>,
    pub config_dir: tempfile::TempDir,
    pub logs: tempfile::TempDir,
    cleanup: bool,
    _lock: Flock<File>,
}

fn lock() -> Flock<File> {
    std::fs::create_dir_all("/run/bowline").expect("/run/bowline");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/bowline/mesh-tests.lock")
        .expect("lock file");
    Flock::lock(f, FlockArg::LockExclusive).expect("lock")
}

impl Mesh {
    /// `bowline demo SAMPLE`, returned once it printed that it is ready.
    pub fn demo(sample: &str) -> Mesh {
        Self::start(&["demo", sample])
    }

    /// `bowline up` alone.
    pub fn up() -> Mesh {
        Self::start(&["up"])
    }

    fn start(args: &[&str]) -> Mesh {
        let lock = lock();
        let config_dir = tempfile::tempdir().expect("tempdir");
        let logs = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(BOWLINE)
            .args(args)
            .arg("--config-dir")
            .arg(config_dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start bowline");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let want = if args[0] == "demo" {
            "Press Ctrl-C"
        } else {
            "add workloads"
        };
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut seen = String::new();
            for line in lines.by_ref().map_while(Result::ok) {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(want) {
                    let _ = tx.send(Ok(seen.clone()));
                    break;
                }
            }
            let _ = tx.send(Err(seen));
            for _ in lines {}
        });
        let mesh = Mesh {
            child: Some(child),
            runs: Vec::new(),
            config_dir,
            logs,
            cleanup: true,
            _lock: lock,
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(out)) => eprintln!("{out}"),
            Ok(Err(out)) => panic!("bowline {args:?} stopped before it was ready:\n{out}"),
            Err(_) => panic!("bowline {args:?} was not ready within 120 s"),
        }
        mesh
    }

    /// `bowline run` in the background; returns once the pod's record exists (its sidecar and
    /// app are ready). The app's stderr goes to a file in `logs` named after the pod.
    pub fn run(&mut self, ns: &str, name: &str, args: &[&str], cmd: &[&str], env: &[(&str, &str)]) {
        let log = File::create(self.logs.path().join(format!("{ns}.{name}.log"))).expect("log");
        let child = Command::new(BOWLINE)
            .args(["run", "--name", name, "-n", ns])
            .args(args)
            .arg("--")
            .args(cmd)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("bowline run");
        self.runs.push((format!("{ns}/{name}"), child));
        let record = PathBuf::from(format!("/run/bowline/mesh/pods/{ns}.{name}.json"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !record.exists() {
            if let Some((_, c)) = self.runs.last_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "bowline run {ns}/{name} exited: {status}: {}",
                        self.log(ns, name)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "pod {ns}/{name} not running in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A demo app in its own pod: `bowline demo-app KIND` with the sample's labels.
    pub fn run_app(
        &mut self,
        ns: &str,
        name: &str,
        kind: &str,
        version: &str,
        port: &str,
        sidecar: bool,
    ) {
        let labels = format!("app={kind},version={version}");
        let mut args = vec![
            "--labels",
            &labels,
            "--port",
            port,
            "--service-account",
            kind,
        ];
        if !sidecar {
            args.push("--no-sidecar");
        }
        let p = port.split('/').next().unwrap_or(port).to_string();
        self.run(
            ns,
            name,
            &args,
            &[
                BOWLINE,
                "demo-app",
                kind,
                "--version",
                version,
                "--port",
                &p,
            ],
            &[("RUST_LOG", "demo=debug")],
        );
    }

    /// A `sleep` client pod in `ns`.
    pub fn run_sleep(&mut self, ns: &str, sidecar: bool) {
        let mut args = vec!["--labels", "app=sleep", "--service-account", "sleep"];
        if !sidecar {
            args.push("--no-sidecar");
        }
        self.run(ns, "sleep", &args, &["sleep", "infinity"], &[]);
    }

    pub fn log(&self, ns: &str, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{ns}.{name}.log")))
            .unwrap_or_default()
    }

    /// `bowline apply -f` (asserting success).
    pub fn apply(&self, file: &Path) {
        let out = bowline(&["apply", "-f", &file.display().to_string()]);
        assert!(
            out.status.success(),
            "apply {}: {}",
            file.display(),
            text(&out)
        );
    }

    pub fn delete(&self, file: &Path) {
        let out = bowline(&["delete", "-f", &file.display().to_string()]);
        assert!(
            out.status.success(),
            "delete {}: {}",
            file.display(),
            text(&out)
        );
    }
}

impl Mesh {
    /// SIGKILL to `bowline up` and every `bowline run`: a crash, leaving pods, rules and host
    /// children behind for the next `up` to clean. Drop then only releases the test lock.
    pub fn kill_hard(&mut self) {
        self.cleanup = false;
        for (_, c) in &mut self.runs {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.runs.clear();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for (_, c) in &mut self.runs {
            term(c, Duration::from_secs(15));
        }
        if let Some(mut c) = self.child.take() {
            term(&mut c, Duration::from_secs(30));
        }
        // Whatever a killed mesh left behind.
        if !self.cleanup {
            return;
        }
        if let Err(e) = node::cleanup_all() {
            eprintln!("cleanup: {e}");
        }
    }
}

fn term(c: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

pub fn bowline(args: &[&str]) -> Output {
    Command::new(BOWLINE)
        .args(args)
        .output()
        .expect("run bowline")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The outcome of one curl: the HTTP status (0 when none) and curl's exit code.
#[derive(Debug, Clone, PartialEq)]
pub struct Curl {
    pub status: u16,
    pub exit: i32,
    pub body: String,
    pub seconds: f64,
}

/// `curl` from inside pod `ns/pod` (its traffic captured by that pod's sidecar).
pub fn curl_in(ns: &str, pod: &str, url: &str, extra: &[&str]) -> Curl {
    let mut args = vec![
        "exec", pod, "-n", ns, "--", "curl", "-s", "-m", "20", "-o", "-",
    ];
    args.extend(["-w", "\n%{http_code} %{time_total}"]);
    args.extend(extra);
    args.push(url);
    parse_curl(&bowline(&args))
}

/// `curl` on the host, e.g. to the ingress gateway.
pub fn curl_host(url: &str, extra: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{time_total}",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    parse_curl(&out)
}

fn parse_curl(out: &Output) -> Curl {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut parts = tail.split_whitespace();
    Curl {
        status: parts.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        seconds: parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0),
        exit: out.status.code().unwrap_or(-1),
        body: body.to_string(),
    }
}

/// Polls `f` until it returns true (config pushes are asynchronous), or fails with `what`.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Bookinfo's product page through the ingress, as `user` when given.
pub fn productpage(user: Option<&str>) -> Curl {
    let cookie = user.map(|u| format!("session={u}"));
    let mut extra = Vec::new();
    if let Some(c) = &cookie {
        extra.extend(["-H".to_string(), format!("Cookie: {c}")]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    curl_host(&format!("http://{INGRESS}/productpage"), &extra)
}

/// Which reviews version rendered a product page: v1 no stars, v2 black, v3 red.
pub fn reviews_version(page: &str) -> &'static str {
    if page.contains("color=\"red\"") {
        "v3"
    } else if page.contains("color=\"black\"") {
        "v2"
    } else if page.contains("glyphicon-star") {
        "v?"
    } else {
        "v1"
    }
}
