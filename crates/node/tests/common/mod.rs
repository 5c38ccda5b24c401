//! Shared test support: a node network per test (own tag, own /24 of 10.89.0.0/16, so tests run
//! in parallel without touching each other or a running mesh), the root check that fails under
//! CI instead of skipping, and small socket helpers that act from inside a pod.
//!
//! Every address used is a pod's, in a namespace the test made: nothing is sent elsewhere.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use node::{Node, NodeConfig, Pod};

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A node network removed again when the test ends, however it ends.
pub struct TestNode {
    pub node: Node,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Err(e) = self.node.cleanup_all() {
            eprintln!("cleanup of {} failed: {e}", self.node.tag().as_str());
        }
    }
}

/// The node network for one test, or `None` (with a note) when this machine cannot run it.
/// Under CI (`CI=true`) a missing privilege or tool is a failure: these tests must run there.
pub fn node(tag: &str, third_octet: u8) -> Option<TestNode> {
    if let Err(why) = can_run() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the node network tests cannot run: {why}");
        }
        // Straight to stderr: the harness captures eprintln! of passing tests, and a skip must
        // be seen.
        let _ = writeln!(
            std::io::stderr(),
            "note: skipping a node network test (run as root to include it): {why}"
        );
        return None;
    }
    let config = NodeConfig {
        tag: tag.to_string(),
        cidr: format!("10.89.{third_octet}.0/24")
            .parse()
            .expect("valid CIDR"),
    };
    let node = Node::new(&config).expect("valid node config");
    // Leftovers of an earlier run that crashed.
    node.cleanup_all().expect("initial cleanup");
    Some(TestNode { node })
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

/// A listener bound inside `pod`, non-blocking so that tests can ask "did anything arrive?".
pub fn listen(pod: &Pod, addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().expect("listen address");
    let l = node::in_pod(pod, move || TcpListener::bind(addr))
        .expect("enter pod")
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    l.set_nonblocking(true).expect("nonblocking");
    l
}

/// A TCP connection made from inside `pod`, optionally from a given source address.
pub fn connect(pod: &Pod, to: SocketAddr, from: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    node::in_pod(pod, move || {
        let s = match from {
            None => TcpStream::connect_timeout(&to, TIMEOUT)?,
            // std cannot bind a client socket before connecting, which Istio's inbound
            // passthrough does (to 127.0.0.6).
            Some(from) => connect_from(from, to)?,
        };
        s.set_read_timeout(Some(TIMEOUT))?;
        Ok(s)
    })
    .expect("enter pod")
}

fn connect_from(from: SocketAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(from),
    )?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

/// Waits for a connection on one of `listeners` and returns its name and the stream. Panics
/// when none arrives in time.
pub fn accept_any<'a>(listeners: &[(&'a str, &TcpListener)]) -> (&'a str, TcpStream) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        for (name, l) in listeners {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).expect("blocking");
                    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                    return (name, s);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept on {name}: {e}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "no connection arrived on any of {:?}",
            listeners.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that nothing is waiting on `l`.
pub fn assert_idle(name: &str, l: &TcpListener) {
    match l.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("unexpected connection on {name} from {peer}"),
        Err(e) => panic!("accept on {name}: {e}"),
    }
}

/// Serves one echo exchange on an accepted stream.
pub fn echo_once(mut s: TcpStream) {
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read");
    s.write_all(&buf[..n]).expect("write");
}

/// Sends `msg` and returns what comes back.
pub fn round_trip(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A UDP socket bound inside `pod`, owned by `fsuid` when given (as if the proxy made it).
pub fn udp(pod: &Pod, addr: &str, fsuid: Option<u32>) -> UdpSocket {
    let addr: SocketAddr = addr.parse().expect("udp address");
    let s = node::in_pod(pod, move || {
        // iptables' owner match reads the socket file's credentials, taken from the creating
        // thread's fsuid; setfsuid changes only this short-lived thread, never the process.
        if let Some(uid) = fsuid {
            nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
        }
        UdpSocket::bind(addr)
    })
    .expect("enter pod")
    .unwrap_or_else(|e| panic!("bind udp {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s
}

/// Runs a shell script in `pod` as `uid` and returns its standard output; panics on failure.
pub fn sh(pod: &Pod, uid: Option<u32>, script: &str) -> String {
    let out = node::pod_command(pod, "bash", uid)
        .expect("pod command")
        .args(["-c", script])
        .output()
        .expect("run bash in pod");
    assert!(
        out.status.success(),
        "`{script}` as {uid:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Output of a host command, for checking what is left in the kernel.
pub fn host(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
