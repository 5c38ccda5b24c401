//! `bowline control` with `bowline apply/delete/get` end to end: real processes, a temporary
//! config directory, an ephemeral monitoring port read from the control plane's first line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bowline");

struct ControlPlane {
    child: Child,
    addr: String,
    // Kept open so that the control plane never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ControlPlane {
    fn start(dir: &Path) -> ControlPlane {
        let mut child = Command::new(BIN)
            .args(["control", "--config-dir"])
            .arg(dir)
            .args(["--monitoring-addr", "127.0.0.1:0", "--debounce-ms", "50"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bowline runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reads stdout");
        let addr = line
            .trim()
            .strip_prefix("control plane: monitoring on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        ControlPlane {
            child,
            addr,
            _stdout: stdout,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("BOWLINE_CONTROL_PLANE", &self.addr)
            .output()
            .expect("bowline runs")
    }

    fn http_get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    fn configz(&self) -> Value {
        let (status, body) = self.http_get("/debug/configz");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("configz is JSON")
    }

    /// Poll configz until `cond` holds; the store acts on changes after its debounce.
    fn wait_configz(&self, within: Duration, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let z = self.configz();
            if cond(&z) {
                return z;
            }
            assert!(
                Instant::now() < deadline,
                "configz never showed {what} within {within:?}: {z:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        kill(pid, Signal::SIGTERM).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("reads");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

fn vs(name: &str, subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: bookinfo
spec:
  hosts:
  - {name}
  gateways:
  - bookinfo-gateway
  http:
  - route:
    - destination:
        host: {name}
        subset: {subset}
"
    )
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn vs_names(z: &Value) -> Vec<String> {
    z["resources"]["VirtualService"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn apply_get_delete_through_a_running_control_plane() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The directory does not exist yet: `control` creates it.
    let dir = tmp.path().join("config");
    let cp = ControlPlane::start(&dir);
    assert_eq!(cp.http_get("/ready").0, 200);

    let file = tmp.path().join("reviews.yaml");
    std::fs::write(&file, vs("reviews", "v1")).expect("writes");
    let f = file.to_str().expect("utf-8 path");

    let o = cp.cli(&["apply", "-f", f]);
    assert_eq!(
        out(&o).0,
        "virtualservice.networking.istio.io/reviews created\n"
    );
    assert!(o.status.success(), "{:?}", out(&o));
    let applied = Instant::now();
    cp.wait_configz(Duration::from_secs(1), "reviews", |z| {
        vs_names(z) == ["reviews"]
    });
    assert!(applied.elapsed() < Duration::from_secs(1));

    let o = cp.cli(&["apply", "-f", f]);
    assert_eq!(
        out(&o).0,
        "virtualservice.networking.istio.io/reviews unchanged\n"
    );
    assert!(o.status.success());

    std::fs::write(&file, vs("reviews", "v2")).expect("writes");
    let o = cp.cli(&["apply", "-f", f]);
    assert_eq!(
        out(&o).0,
        "virtualservice.networking.istio.io/reviews configured\n"
    );
    assert!(o.status.success());

    // get: the default namespace has nothing; -n and -A find it, with kubectl's vs columns.
    let o = cp.cli(&["get", "vs"]);
    assert!(o.status.success());
    assert_eq!(out(&o).0, "");
    assert!(out(&o)
        .1
        .contains("No resources found in default namespace."));
    let o = cp.cli(&["get", "virtualservices", "-n", "bookinfo"]);
    let (stdout, _) = out(&o);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "GATEWAYS", "HOSTS", "AGE"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..3],
        ["reviews", "[\"bookinfo-gateway\"]", "[\"reviews\"]"]
    );
    let o = cp.cli(&["get", "vs", "-A"]);
    assert!(out(&o).0.starts_with("NAMESPACE"), "{:?}", out(&o));
    assert!(out(&o).0.contains("bookinfo"));

    // -o json of one object: the object itself, the applied version.
    let o = cp.cli(&["get", "vs", "reviews", "-n", "bookinfo", "-o", "json"]);
    let obj: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(obj["kind"], "VirtualService");
    assert_eq!(
        obj["spec"]["http"][0]["route"][0]["destination"]["subset"],
        "v2"
    );
    let o = cp.cli(&["get", "vs", "nope", "-n", "bookinfo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("\"nope\" not found"), "{:?}", out(&o));

    let o = cp.cli(&["delete", "-f", f]);
    assert_eq!(
        out(&o).0,
        "virtualservice.networking.istio.io/reviews deleted\n"
    );
    assert!(o.status.success());
    cp.wait_configz(Duration::from_secs(1), "no VirtualService", |z| {
        vs_names(z).is_empty()
    });
    let o = cp.cli(&["delete", "-f", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("NotFound"), "{:?}", out(&o));
    let o = cp.cli(&["delete", "--ignore-not-found", "-f", f]);
    assert!(o.status.success());

    // A file with no objects is an error, as in kubectl.
    let empty = tmp.path().join("empty.yaml");
    std::fs::write(&empty, "# nothing here\n").expect("writes");
    let o = cp.cli(&["apply", "-f", empty.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o).1, "error: no objects passed to apply\n");

    let status = cp.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exits cleanly");
}

#[test]
fn a_bad_document_is_rejected_with_its_reason_and_the_rest_applied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start(tmp.path());
    let bad = vs("ratings", "v1").replace("subset: v1", "port:\n          number: 70000");
    let text = format!("{}---\n{bad}", vs("reviews", "v1"));
    let o = Command::new(BIN)
        .args(["apply", "-f", "-", "--control-plane", &cp.addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("piped").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("bowline runs");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "virtualservice.networking.istio.io/reviews created\n"
    );
    assert!(
        stderr.contains("virtualservice.networking.istio.io/ratings")
            && stderr.contains("<stdin>:")
            && stderr.contains("70000"),
        "{stderr}"
    );
    let z = cp.wait_configz(Duration::from_secs(1), "reviews", |z| {
        vs_names(z) == ["reviews"]
    });
    // Nothing of the rejected document reached the directory.
    assert_eq!(z["rejected"].as_array().map(Vec::len), Some(0), "{z:#}");
    let (status, metrics) = cp.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"bowline_config_writes_total{op="apply",outcome="rejected"} 1"#),
        "{metrics}"
    );
}

#[test]
fn a_broken_file_keeps_the_last_good_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("reviews.yaml");
    std::fs::write(&good, vs("reviews", "v1")).expect("writes");
    let cp = ControlPlane::start(tmp.path());
    assert_eq!(vs_names(&cp.configz()), ["reviews"]);

    // Not YAML at all, then a valid YAML file that breaks the resource already served.
    std::fs::write(tmp.path().join("junk.yaml"), "kind: [unclosed\n\t:").expect("writes");
    std::fs::write(
        &good,
        vs("reviews", "v1").replace("subset: v1", "port:\n          number: 0"),
    )
    .expect("writes");
    let z = cp.wait_configz(Duration::from_secs(2), "two rejections", |z| {
        z["rejected"].as_array().map(Vec::len) == Some(2)
    });
    assert_eq!(vs_names(&z), ["reviews"], "last good version kept: {z:#}");
    let kept = z["rejected"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["keptLastGood"] == true);
    assert!(kept, "{z:#}");

    let o = cp.cli(&["get", "vs", "-n", "bookinfo", "-o", "yaml"]);
    assert!(o.status.success());
    assert!(out(&o).0.contains("subset: v1"), "{:?}", out(&o));
    let (_, metrics) = cp.http_get("/metrics");
    assert!(
        metrics.contains(r#"bowline_config_documents{kind="VirtualService",state="accepted"} 1"#)
            && metrics
                .contains(r#"bowline_config_documents{kind="VirtualService",state="rejected"} 1"#),
        "{metrics}"
    );
    assert_eq!(cp.terminate().code(), Some(0));
}

#[test]
fn no_control_plane_is_one_line_and_exit_2() {
    // A port nothing listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binds")
        .to_string();
    for args in [
        vec!["get", "vs"],
        vec!["apply", "-f", "-"],
        vec!["delete", "-f", "-"],
    ] {
        let o = Command::new(BIN)
            .args(&args)
            .env("BOWLINE_CONTROL_PLANE", &addr)
            .stdin(Stdio::null())
            .output()
            .expect("bowline runs");
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("cannot reach the control plane") && stderr.contains(&addr),
            "{stderr}"
        );
    }
}
