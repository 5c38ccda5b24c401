//! The workload certificate: issued by a [`CertProvider`] for a locally made key, with the
//! workload's SPIFFE ID as its only SAN, chaining to the mesh root (checked by openssl, not only
//! by our own code); rotation; and mesh mTLS between two proxies' identities, refusing a server
//! that is not one of the destination's service accounts.

use std::sync::Arc;
use std::time::Duration;

use ca::{CaConfig, CaSource, CertificateAuthority, Identity, TrustDomain};
use proxy::certs::{CertManager, CertProvider, LocalCa};
use proxy::mtls::MeshTls;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn open_ca(dir: &std::path::Path) -> CertificateAuthority {
    CertificateAuthority::open(CaSource::SelfSigned { state_dir: dir }, CaConfig::default())
        .expect("ca")
}

fn id(ns: &str, sa: &str) -> Identity {
    Identity::new(TrustDomain::default(), ns, sa).expect("identity")
}

async fn manager(dir: &std::path::Path, who: &Identity) -> Arc<CertManager> {
    let provider: Arc<dyn CertProvider> = Arc::new(LocalCa::new(open_ca(dir), who.clone()));
    CertManager::start(who.clone(), provider, Some(Duration::from_secs(3600)), 0.5)
        .await
        .expect("certificate issued")
}

fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

#[tokio::test]
async fn issued_certificate_has_the_spiffe_san_and_chains_to_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let who = id("shop", "web");
    let m = manager(dir.path(), &who).await;
    let current = m.store.current();
    assert_eq!(current.identity(), &who);
    assert_eq!(
        current.info().sans,
        ["URI:spiffe://cluster.local/ns/shop/sa/web"]
    );
    let lifetime = current
        .not_after()
        .duration_since(current.not_before())
        .expect("validity");
    // An hour asked for, plus the CA's minute of backdating.
    assert_eq!(lifetime, Duration::from_secs(3600 + 60));

    let root = open_ca(dir.path()).roots()[0].clone();
    let leaf = dir.path().join("leaf.pem");
    let roots = dir.path().join("root.pem");
    std::fs::write(&leaf, pem("CERTIFICATE", current.leaf())).expect("write");
    std::fs::write(&roots, pem("CERTIFICATE", &root)).expect("write");
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&roots)
        .arg(&leaf)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let described = m.describe();
    assert_eq!(described["serial"], current.info().serial.as_str());
    assert_eq!(
        described["root_fingerprints"][0],
        tls::info::fingerprint(&root).as_str()
    );

    // Rotation: a new key and serial for the same identity, swapped in.
    let before = current.info().serial.clone();
    m.rotate().await.expect("rotate");
    let after = m.store.current();
    assert_ne!(after.info().serial, before);
    assert_eq!(after.identity(), &who);
}

#[tokio::test]
async fn a_provider_certifying_another_identity_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let provider: Arc<dyn CertProvider> =
        Arc::new(LocalCa::new(open_ca(dir.path()), id("shop", "other")));
    let err = CertManager::start(id("shop", "web"), provider, None, 0.5)
        .await
        .expect_err("the CSR names shop/web, the provider signs for shop/other");
    assert!(err.to_string().contains("refused"), "{err}");
}

/// One mTLS exchange from `client` to `server`, the client accepting `sans`; returns what the
/// server learned about the caller.
async fn exchange(
    client: &MeshTls,
    server: Arc<MeshTls>,
    sans: &[String],
) -> Result<proxy::mtls::PeerInfo, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let (mut tls, peer) = server.accept(sock).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(peer)
    });
    let config = client.client_config(sans, false).expect("client config");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("outbound_.80_._.web.shop.svc.cluster.local").expect("sni");
    let result = async {
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        Ok::<_, String>(())
    }
    .await;
    let served = accept.await.expect("server task");
    result?;
    served
}

#[tokio::test]
async fn mesh_mtls_checks_the_servers_service_account_and_tells_the_server_who_called() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = manager(dir.path(), &id("shop", "web")).await;
    let caller = manager(dir.path(), &id("front", "ui")).await;

    let peer = exchange(
        &caller.mesh,
        web.mesh.clone(),
        &["spiffe://cluster.local/ns/shop/sa/web".into()],
    )
    .await
    .expect("the right service account is accepted");
    assert_eq!(peer.identity, id("front", "ui"));
    assert!(
        peer.xfcc
            .starts_with("By=spiffe://cluster.local/ns/shop/sa/web;Hash="),
        "{}",
        peer.xfcc
    );
    assert!(
        peer.xfcc
            .ends_with(";Subject=\"\";URI=spiffe://cluster.local/ns/front/sa/ui"),
        "{}",
        peer.xfcc
    );
    assert_eq!(peer.alpn, Some(tls::MeshAlpn::PeerExchange));

    let refused = exchange(
        &caller.mesh,
        web.mesh.clone(),
        &["spiffe://cluster.local/ns/shop/sa/db".into()],
    )
    .await
    .expect_err("a server that is not the destination's service account");
    assert!(
        refused.contains("shop/sa/web") || refused.contains("certificate"),
        "{refused}"
    );

    // After the caller rotates, the next handshake presents the new certificate: the hash the
    // server puts in XFCC changes, the identity does not.
    caller.rotate().await.expect("rotate the caller");
    let again = exchange(&caller.mesh, web.mesh.clone(), &[])
        .await
        .expect("after rotation");
    assert_eq!(again.identity, id("front", "ui"));
    assert_ne!(again.xfcc, peer.xfcc, "the new certificate's hash");

    // After the server rotates, new handshakes see the new certificate.
    let before = web.store.current().info().serial.clone();
    web.rotate().await.expect("rotate");
    exchange(&caller.mesh, web.mesh.clone(), &[])
        .await
        .expect("any mesh identity when the destination names none");
    assert_ne!(web.store.current().info().serial, before);
}

#[tokio::test]
async fn certificates_rotate_by_themselves_at_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let who = id("shop", "web");
    let provider: Arc<dyn CertProvider> = Arc::new(LocalCa::new(open_ca(dir.path()), who.clone()));
    // Two seconds of life, rotated when half of it is left: about every second.
    let m = CertManager::start(who, provider, Some(Duration::from_secs(2)), 0.5)
        .await
        .expect("issued");
    let due = m
        .rotation_due_at()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        due > Duration::from_millis(500) && due <= Duration::from_secs(1),
        "due in {due:?}"
    );
    let task = m.spawn_rotation();
    let mut serials = vec![m.store.current().info().serial.clone()];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while serials.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "rotated only {serials:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = m.store.current().info().serial.clone();
        if serials.last() != Some(&now) {
            serials.push(now);
        }
    }
    task.abort();
}

/// A remote CA answering as Istio's `CreateCertificate` does (PEM strings, leaf first, root
/// last); the "transport" here signs with a local CA and splits the PEM.
fn remote(ca: CertificateAuthority, who: Identity, roots: Option<String>) -> Arc<dyn CertProvider> {
    let ca = Arc::new(ca);
    let call = move |csr: String, ttl: Option<Duration>| {
        let (ca, who) = (ca.clone(), who.clone());
        let answer: proxy::certs::BoxFuture<'static, proxy::certs::RemoteAnswer> =
            Box::pin(async move {
                let issued = ca.sign_csr(&csr, &who, ttl).map_err(|e| e.to_string())?;
                let mut chain: Vec<String> = issued
                    .cert_chain_pem()
                    .split_inclusive("-----END CERTIFICATE-----\n")
                    .map(str::to_string)
                    .collect();
                if !chain.iter().any(|c| c == &issued.roots_pem()) {
                    chain.push(issued.roots_pem());
                }
                Ok(chain)
            });
        answer
    };
    Arc::new(proxy::certs::RemoteCa::new(call, roots))
}

#[tokio::test]
async fn a_remote_ca_answering_with_a_pem_chain_is_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let who = id("shop", "web");
    let root_pem = open_ca(dir.path()).roots_pem();
    for roots in [None, Some(root_pem)] {
        let provider = remote(open_ca(dir.path()), who.clone(), roots);
        let m = CertManager::start(who.clone(), provider, None, 0.5)
            .await
            .expect("issued from a PEM chain");
        assert_eq!(m.store.current().identity(), &who);
        assert_eq!(m.store.current().root_certs(), open_ca(dir.path()).roots());
    }
    // A transport failure is the provider's error, not a panic or a bad certificate.
    let failing = proxy::certs::RemoteCa::new(
        |_csr: String,
         _ttl: Option<Duration>|
         -> proxy::certs::BoxFuture<'static, proxy::certs::RemoteAnswer> {
            Box::pin(async { Err("connection refused".to_string()) })
        },
        None,
    );
    let err = CertManager::start(who, Arc::new(failing), None, 0.5)
        .await
        .expect_err("no answer");
    assert!(
        err.to_string().contains("unreachable: connection refused"),
        "{err}"
    );
}
