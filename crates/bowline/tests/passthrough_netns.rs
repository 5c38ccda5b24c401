//! `loadBalancer.simple: PASSTHROUGH` with real capture: in a network namespace of its own, an
//! iptables REDIRECT (Istio's, minus everything but one destination) sends a client's
//! connection to the proxy, which forwards it to the address the client dialed (read back with
//! `SO_ORIGINAL_DST`), running as uid 1337 so its own connection is not captured again.
//!
//! Needs root (network namespaces, iptables); without it the test fails under `CI=true` and is
//! reported skipped otherwise.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model::LbPolicy;
use testkit::snap;

const BACKEND: &str = "10.99.0.1";
const CLUSTER: &str = "outbound|8080||passthrough.local";

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

/// An HTTP listener on the capture port whose every route goes to one PASSTHROUGH cluster.
fn snapshot() -> model::ProxySnapshot {
    let mut cluster = snap::cluster(CLUSTER, &[]);
    cluster.lb_policy = LbPolicy::Passthrough;
    let all = snap::route("all", vec![snap::prefix("/")], snap::forward_to(CLUSTER));
    let mut s = snap::http_snapshot(vec![snap::vhost("any", &["*"], vec![all])], vec![cluster]);
    s.listeners[0].port = 15001;
    s
}

#[test]
fn passthrough_forwards_to_the_original_destination() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root under CI"
        );
        eprintln!("skipped: needs root");
        return;
    }
    let ns = Netns(format!("blpt{}", std::process::id()));
    run(&["ip", "netns", "add", &ns.0]);
    run(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
    run(&[
        "ip",
        "-n",
        &ns.0,
        "addr",
        "add",
        &format!("{BACKEND}/32"),
        "dev",
        "lo",
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        &ns.0,
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        BACKEND,
        "--dport",
        "8080",
        "-m",
        "owner",
        "!",
        "--uid-owner",
        "1337",
        "-j",
        "REDIRECT",
        "--to-ports",
        "15001",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    std::fs::write(&file, serde_json::to_string(&snapshot()).unwrap()).unwrap();
    let bowline = env!("CARGO_BIN_EXE_bowline");
    let _backend = Kill(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, bowline, "demo-app", "helloworld"])
            .args(["--version", "original", "--port", "8080", "--bind", BACKEND])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _proxy = Kill(
        Command::new("ip")
            .args([
                "netns", "exec", &ns.0, "setpriv", "--reuid", "1337", "--regid", "1337",
            ])
            .args(["--clear-groups", bowline, "proxy", "--snapshot"])
            .arg(&file)
            // The namespace is private: Istio's own ports cannot collide with anything.
            .args([
                "--admin-addr",
                "127.0.0.1:15000",
                "--health-addr",
                "127.0.0.1:15021",
            ])
            .args(["--concurrency", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The client dials the backend's address; only the proxy's forwarding adds the header.
    let deadline = Instant::now() + Duration::from_secs(15);
    let out = loop {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "curl",
                "-s",
                "-D",
                "-",
                "--max-time",
                "2",
            ])
            .arg(format!("http://{BACKEND}:8080/hello"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("Hello version: original") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(out.contains("Hello version: original"), "{out}");
    // It went through the proxy: the passthrough cluster counted it.
    let stats = Command::new("ip")
        .args(["netns", "exec", &ns.0, "curl", "-s", "--max-time", "5"])
        .arg("http://127.0.0.1:15000/stats/prometheus")
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.contains(&format!(
            "bowline_http_requests_total{{cluster=\"{CLUSTER}\",code_class=\"2xx\"}}"
        )),
        "{stats}"
    );
}
