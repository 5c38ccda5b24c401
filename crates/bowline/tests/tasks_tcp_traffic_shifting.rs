//! istio.io's "TCP Traffic Shifting" task: tcp-echo v1 and v2 behind the ingress gateway's TCP
//! port 31400; all connections answered by v1 ("one"), then about 80/20 between v1 and v2.

mod tasks_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use tasks_support::*;

/// One connection through the gateway: the word the echo server prefixed our line with.
fn echo() -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&"127.0.0.1:31400".parse().ok()?, Duration::from_secs(2))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"hello\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().next().map(str::to_string)
}

fn twos(n: usize) -> usize {
    (0..n).filter(|_| echo().as_deref() == Some("two")).count()
}

/// The gateway's row of `bowline proxy-status`: (push version, every type SYNCED).
fn gateway_sync() -> Option<(String, bool)> {
    let status = text(&bowline(&["proxy-status"]));
    let row = status
        .lines()
        .find(|l| l.starts_with("istio-ingressgateway.istio-system"))?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    let version = cols.get(cols.len().checked_sub(2)?)?.to_string();
    let synced = !row.contains("STALE") && !row.contains("NOT SENT");
    Some((version, synced))
}

/// Applies `file` and waits until the control plane has pushed it to the gateway and the
/// gateway acknowledged it: an apply is visible in the control plane at once, but reaches
/// proxies with the next push (as `kubectl apply` and istiod).
fn apply_to_gateway(mesh: &Mesh, file: &Path) {
    let before = gateway_sync().map(|(v, _)| v);
    mesh.apply(file);
    eventually(
        "the gateway has the push",
        Duration::from_secs(20),
        || matches!(gateway_sync(), Some((v, true)) if Some(&v) != before.as_ref()),
    );
}

fn check(mesh: &Mesh, all_v1: &Path, twenty: &Path) {
    apply_to_gateway(mesh, all_v1);
    eventually(
        "the gateway's TCP port answers",
        Duration::from_secs(20),
        || echo().as_deref() == Some("one"),
    );
    for _ in 0..20 {
        assert_eq!(echo().as_deref(), Some("one"));
    }
    apply_to_gateway(mesh, twenty);
    eventually("some connections reach v2", Duration::from_secs(20), || {
        twos(20) > 0
    });
    // Four standard deviations of a 20% draw over 300: a correct split fails about once in
    // 16 000 runs (±10 over 100 failed about once in 70).
    let n = twos(300);
    assert!(
        (32..=88).contains(&n),
        "{n} of 300 connections to v2, expected 60 ± 28"
    );
}

#[test]
fn tcp_traffic_shifting_through_the_gateway() {
    if !can_run() {
        return;
    }
    let mesh = Mesh::demo("tcp-echo");
    check(
        &mesh,
        &task("tcp-echo-all-v1.yaml"),
        &task("tcp-echo-20-v2.yaml"),
    );
    if let Some(samples) = istio_samples() {
        let dir = samples.join("tcp-echo");
        check(
            &mesh,
            &dir.join("tcp-echo-all-v1.yaml"),
            &dir.join("tcp-echo-20-v2.yaml"),
        );
    }
}
