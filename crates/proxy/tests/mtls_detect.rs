//! How an inbound connection is classified per PeerAuthentication mode from its first bytes:
//! mesh mTLS is a ClientHello offering Istio's ALPN markers; other TLS (the application's own)
//! and plain text pass under PERMISSIVE; STRICT takes only TLS; DISABLE takes everything as is.

use std::sync::Arc;

use model::snapshot::PeerMtls;
use proxy::mtls::{classify, Inbound};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A real ClientHello from rustls offering `alpn`.
fn client_hello(alpn: &[&str]) -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let mut conn = rustls::ClientConnection::new(
        Arc::new(config),
        "app.example.com".try_into().expect("name"),
    )
    .expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("hello");
    out
}

async fn classify_bytes(mode: PeerMtls, first: &[u8]) -> Inbound {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    client.write_all(first).await.expect("write");
    let verdict = classify(mode, &server, true).await;
    drop(client);
    verdict
}

#[tokio::test]
async fn modes_classify_mesh_tls_other_tls_and_plain_text() {
    let mesh = client_hello(&["istio-peer-exchange", "istio"]);
    let mesh_http = client_hello(&["istio-http/1.1", "istio-h2"]);
    let app_tls = client_hello(&["h2", "http/1.1"]);
    let no_alpn = client_hello(&[]);
    let plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let cases = [
        (PeerMtls::Permissive, &mesh, Inbound::Terminate),
        (PeerMtls::Permissive, &mesh_http, Inbound::Terminate),
        (PeerMtls::Permissive, &app_tls, Inbound::Plain),
        (PeerMtls::Permissive, &no_alpn, Inbound::Plain),
        (PeerMtls::Permissive, &plain, Inbound::Plain),
        (PeerMtls::Strict, &mesh, Inbound::Terminate),
        (PeerMtls::Strict, &plain, Inbound::Refuse),
        (PeerMtls::Disable, &mesh, Inbound::Plain),
        (PeerMtls::Disable, &plain, Inbound::Plain),
    ];
    for (mode, first, want) in cases {
        assert_eq!(
            classify_bytes(mode, first).await,
            want,
            "{mode:?} with {:?}",
            String::from_utf8_lossy(&first[..first.len().min(12)])
        );
    }
}

#[test]
fn alpn_is_read_from_a_complete_client_hello_only() {
    let hello = client_hello(&["istio", "h2"]);
    assert_eq!(
        proxy::sni::alpn(&hello),
        Some(vec!["istio".to_string(), "h2".to_string()])
    );
    assert_eq!(proxy::sni::alpn(&client_hello(&[])), Some(vec![]));
    for n in 0..hello.len() {
        assert_eq!(proxy::sni::alpn(&hello[..n]), None, "truncated at {n}");
    }
    assert_eq!(proxy::sni::alpn(b"GET / HTTP/1.1\r\n"), None);
}
