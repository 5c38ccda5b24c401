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

fn check(mesh: &Mesh, all_v1: &Path, twenty: &Path) {
    mesh.apply(all_v1);
    eventually(
        "the gateway's TCP port answers",
        Duration::from_secs(20),
        || echo().as_deref() == Some("one"),
    );
    for _ in 0..20 {
        assert_eq!(echo().as_deref(), Some("one"));
    }
    mesh.apply(twenty);
    eventually("some connections reach v2", Duration::from_secs(20), || {
        twos(20) > 0
    });
    let n = twos(100);
    assert!(
        (10..=30).contains(&n),
        "{n} of 100 connections to v2, expected 20 ± 10"
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
