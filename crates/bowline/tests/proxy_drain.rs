//! SIGTERM drains for the configured period: in-flight requests finish, readiness turns 503,
//! new connections are refused, and a connection that never ends is cut when the period is up.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::client::{self, get};
use testkit::snap::*;
use testkit::{Backend, TcpEcho};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    testkit::free_port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_for_the_configured_period() {
    let backend = Backend::start("web").await;
    let echo = TcpEcho::start("db").await;
    let (http_port, tcp_port, admin, health) = (free_port(), free_port(), free_port(), free_port());
    let mut snapshot = http_snapshot(
        vec![vhost(
            "all",
            &["*"],
            vec![route("r", vec![], forward_to("web"))],
        )],
        vec![cluster("web", &[backend.addr]), cluster("db", &[echo.addr])],
    );
    snapshot.listeners[0].port = http_port;
    let mut tcp = listener(
        "tcp",
        model::ListenerKind::Tcp {
            clusters: weighted(&[("db", 1)]),
        },
    );
    tcp.port = tcp_port;
    snapshot.listeners.push(tcp);
    let dir = std::env::temp_dir().join(format!("bowline-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("snapshot.json");
    std::fs::write(&file, serde_json::to_string(&snapshot).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy", "--snapshot"])
        .arg(&file)
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--health-addr", &format!("127.0.0.1:{health}")])
        .args(["--concurrency", "1", "--drain-secs", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("bowline runs");
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
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));

    // A TCP stream that stays open, and a slow request in flight.
    let mut stream = tokio::net::TcpStream::connect(at(tcp_port)).await.unwrap();
    stream.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"db:hi");
    let slow = tokio::spawn(client::send(at(http_port), get("x", "/slow/700")));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let term = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let r = slow.await.unwrap();
    assert_eq!(r.text(), "web", "the in-flight request finishes");
    let r = client::send(at(health), get("h", "/healthz/ready")).await;
    assert_eq!(r.status, 503, "not ready while draining");
    assert!(
        tokio::net::TcpStream::connect(at(http_port)).await.is_err(),
        "no new connections while draining"
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(term.elapsed() < Duration::from_secs(10), "did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = term.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(1900),
        "the open stream kept the drain going for its period: {took:?}"
    );
    let n = stream.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "the stream was closed when the period ended");
    let _ = std::fs::remove_dir_all(&dir);
}
