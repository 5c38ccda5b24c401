//! `bowline demo-app` as a user runs it: it serves, and SIGTERM stops it cleanly with exit 0.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A free port below Linux's ephemeral range (32768-60999): a port the OS handed out for `:0`
/// can be handed out again as the source port of the test's own `connect` while the server is
/// still starting, and the server's bind then fails.
fn free_port_outside_ephemeral_range(taken: &[u16]) -> u16 {
    let mut candidate = 20_000 + (std::process::id() % 10_000) as u16;
    loop {
        if !taken.contains(&candidate) && TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            return candidate;
        }
        candidate = 20_000 + (candidate - 20_000 + 7) % 10_000;
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bowline"))
        .arg("demo-app")
        .args(args)
        .args(["--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bowline starts")
}

/// One raw HTTP/1.0 exchange, retried until the server is up or 10 s pass.
fn http_get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
            let mut out = String::new();
            if s.read_to_string(&mut out).is_ok() && !out.is_empty() {
                return out;
            }
        }
        assert!(Instant::now() < deadline, "no answer on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm_and_wait(mut child: Child) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo-app did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_until_sigterm_then_exits_zero() {
    let port = free_port();
    let child = spawn(&["ratings", "--port", &port.to_string()]);
    let reply = http_get(port, "/ratings/0");
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
    assert!(reply.contains(r#""Reviewer1":5"#), "{reply}");
    let status = sigterm_and_wait(child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn tcp_echo_listens_on_every_port_given() {
    let first = free_port_outside_ephemeral_range(&[]);
    let ports = [first, free_port_outside_ephemeral_range(&[first])];
    let child = spawn(&[
        "tcp-echo",
        "--port",
        &ports[0].to_string(),
        "--port",
        &ports[1].to_string(),
        "--word",
        "one",
    ]);
    for port in ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) => assert!(Instant::now() < deadline, "port {port}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"hello\n").expect("write");
        // One read may return part of the line (the echo may arrive in more than one segment).
        let mut line = String::new();
        std::io::BufReader::new(&s)
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line, "one hello\n");
    }
    assert_eq!(sigterm_and_wait(child).code(), Some(0));
}

#[test]
fn unknown_app_or_version_is_a_usage_error() {
    for args in [
        &["nosuchapp"][..],
        &["reviews", "--version", "v9", "--port", "0"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bowline"))
            .arg("demo-app")
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:"), "{err}");
    }
}
