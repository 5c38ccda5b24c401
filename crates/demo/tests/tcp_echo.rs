//! tcp-echo over loopback: line-by-line echo with the word prefixed, on several ports at once.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::closed_port;
use demo::bookinfo::Upstreams;
use demo::{Kind, Running, Spec};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

async fn tcp_echo(
    version: Option<&str>,
    word: Option<&str>,
    ports: usize,
) -> Result<Running, demo::Error> {
    let none = closed_port().await.to_string();
    let up = Upstreams {
        details: none.clone(),
        reviews: none.clone(),
        ratings: none,
    };
    let mut spec = Spec::new(Kind::TcpEcho);
    spec.version = version.map(str::to_owned);
    spec.word = word.map(str::to_owned);
    spec.ports = vec![0; ports];
    spec.bind = "127.0.0.1".parse().expect("ip");
    demo::start(&spec, &up).await
}

async fn exchange(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(send).await.expect("write");
    s.shutdown().await.expect("half-close");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("echo in time")
        .expect("read");
    out
}

#[tokio::test]
async fn one_process_echoes_on_every_port() {
    let app = tcp_echo(None, Some("one"), 3).await.expect("start");
    let addrs = app.local_addrs();
    assert_eq!(addrs.len(), 3);
    let ports: std::collections::HashSet<u16> = addrs.iter().map(SocketAddr::port).collect();
    assert_eq!(ports.len(), 3, "three distinct ports");
    for addr in addrs {
        assert_eq!(exchange(addr, b"hello\n").await, b"one hello\n");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn each_line_is_echoed_as_it_arrives() {
    let app = tcp_echo(None, Some("two"), 1).await.expect("start");
    let addr = app.local_addrs()[0];
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    for msg in ["first", "second line", ""] {
        write
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .expect("write");
        let got = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(got.as_deref(), Some(format!("two {msg}").as_str()));
    }
    app.shutdown().await;
}

#[tokio::test]
async fn versions_choose_the_word_and_word_overrides() {
    for (version, word, want) in [
        (None, None, "hello"),
        (Some("v1"), None, "one"),
        (Some("v2"), None, "two"),
        (Some("v2"), Some("custom"), "custom"),
    ] {
        let app = tcp_echo(version, word, 1).await.expect("start");
        let got = exchange(app.local_addrs()[0], b"x\n").await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("{want} x\n"),
            "{version:?} {word:?}"
        );
        app.shutdown().await;
    }
    assert!(tcp_echo(Some("v3"), None, 1).await.is_err());
}

#[tokio::test]
async fn unterminated_and_overlong_lines_are_still_echoed() {
    let app = tcp_echo(None, Some("w"), 1).await.expect("start");
    let addr = app.local_addrs()[0];
    assert_eq!(exchange(addr, b"a\nb").await, b"w a\nw b");
    let long = vec![b'x'; 64 * 1024 + 10];
    let got = exchange(addr, &long).await;
    assert_eq!(got.len(), long.len() + 2 * 2, "two pieces, each prefixed");
    assert!(got.starts_with(b"w xxx"));
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let app = tcp_echo(None, Some("w"), 1).await.expect("start");
    let addr = app.local_addrs()[0];
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"hi\n").await.expect("write");
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).await.expect("read");
    assert_eq!(&buf[..n], b"w hi\n");
    tokio::time::timeout(Duration::from_secs(5), app.shutdown())
        .await
        .expect("shutdown does not hang on an idle client");
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "server closed the connection");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
