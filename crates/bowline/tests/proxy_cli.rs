//! `bowline proxy` end to end: the real binary serves a snapshot file, answers through the
//! admin server, and drains on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::client::{self, get};
use testkit::snap::*;
use testkit::Backend;

fn free_port() -> u16 {
    testkit::free_port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_snapshot_file_and_drains_on_sigterm() {
    let backend = Backend::start("from-file").await;
    let (port, admin, health) = (free_port(), free_port(), free_port());
    let mut snapshot = http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("svc"))],
        )],
        vec![cluster("svc", &[backend.addr])],
    );
    snapshot.listeners[0].port = port;
    let dir = std::env::temp_dir().join(format!("bowline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("snapshot.json");
    std::fs::write(&file, serde_json::to_string(&snapshot).unwrap()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy", "--snapshot"])
        .arg(&file)
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--health-addr", &format!("127.0.0.1:{health}")])
        .args(["--concurrency", "1", "--drain-secs", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("bowline runs");
    // The binary logs "proxy ready" once listeners and admin are bound.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !line.contains("proxy ready") {
        line.clear();
        assert!(Instant::now() < deadline, "no ready line");
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "bowline exited early"
        );
    }

    let r = client::send(format!("127.0.0.1:{port}").parse().unwrap(), get("x", "/")).await;
    assert_eq!(r.text(), "from-file");
    let dump = client::send(
        format!("127.0.0.1:{admin}").parse().unwrap(),
        get("a", "/config_dump"),
    )
    .await;
    assert!(
        dump.text().contains("\"version\": \"test\""),
        "{}",
        dump.text()
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "bowline did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejects_an_invalid_snapshot_with_the_path_of_the_problem() {
    let dir = std::env::temp_dir().join(format!("bowline-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    let snapshot = http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("nowhere"))],
        )],
        vec![],
    );
    std::fs::write(&file, serde_json::to_string(&snapshot).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy", "--snapshot"])
        .arg(&file)
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("route_tables[0].virtual_hosts[0].routes[0].action.clusters[0]: unknown cluster `nowhere`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
