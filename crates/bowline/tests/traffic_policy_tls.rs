//! istio.io's TLS origination scenarios end to end: DestinationRule `tls` (SIMPLE, MUTUAL,
//! `sni`, `subjectAltNames`, `insecureSkipVerify`) from a real proxy to rustls backends with
//! certificates made by rcgen for each test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use testkit::misbehave::TlsBackend;
use testkit::TestProxy;

mod policy_support;
use policy_support::*;

struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test ca");
        let ca = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca,
            issuer,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A leaf for `name` signed by the CA: (cert DER, key DER), also written as `<file>.pem`
    /// and `<file>-key.pem`.
    fn leaf(
        &self,
        name: &str,
        file: &str,
    ) -> (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        std::fs::write(self.path(&format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{file}-key.pem")), key.serialize_pem()).unwrap();
        (
            cert.der().clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    fn server(&self, name: &str, require_client: bool) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.leaf(name, "server");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(v)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(vec![cert], key).unwrap())
    }
}

fn tls_yaml(backend: SocketAddr, tls: &str) -> String {
    format!(
        "{}---\n{}",
        service_entry(&[(backend, "")]),
        destination_rule(&format!("    tls:\n{tls}"))
    )
}

/// istio.io TLS origination (egress): `SIMPLE` with `caCertificates` and `sni`, `MUTUAL` with a
/// client certificate the server requires, and `insecureSkipVerify` against an unknown CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_simple_mutual_and_insecure_skip_verify() {
    let pki = Pki::new();
    let server = TlsBackend::start("secure", pki.server("backend.example", false)).await;
    let ca = pki.path("ca.pem");

    let simple = tls_yaml(
        server.addr,
        &format!("      mode: SIMPLE\n      caCertificates: {ca}\n      sni: backend.example\n"),
    );
    let (_p, addr) = start(&simple, "").await;
    let r = call(addr, "/").await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "secure".to_string()));
    assert_eq!(
        server.handshakes().last().cloned(),
        Some((Some("backend.example".into()), false))
    );

    let wrong_name = tls_yaml(
        server.addr,
        &format!("      mode: SIMPLE\n      caCertificates: {ca}\n      sni: other.example\n"),
    );
    let (_p, addr) = start(&wrong_name, "").await;
    let r = call(addr, "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());

    let san = tls_yaml(server.addr, &format!("      mode: SIMPLE\n      caCertificates: {ca}\n      sni: other.example\n      subjectAltNames: [backend.example]\n"));
    let (_p, addr) = start(&san, "").await;
    assert_eq!(
        call(addr, "/").await.status,
        StatusCode::OK,
        "subjectAltNames checked instead of SNI"
    );

    let mutual_server = TlsBackend::start("mutual", pki.server("backend.example", true)).await;
    pki.leaf("client.example", "client");
    let mutual = tls_yaml(
        mutual_server.addr,
        &format!(
            "      mode: MUTUAL\n      caCertificates: {ca}\n      sni: backend.example\n      clientCertificate: {}\n      privateKey: {}\n",
            pki.path("client.pem"),
            pki.path("client-key.pem")
        ),
    );
    let (_p, addr) = start(&mutual, "").await;
    let r = call(addr, "/").await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "mutual".to_string()));
    assert_eq!(mutual_server.handshakes().last().map(|h| h.1), Some(true));
    let no_cert = tls_yaml(
        mutual_server.addr,
        &format!("      mode: SIMPLE\n      caCertificates: {ca}\n      sni: backend.example\n"),
    );
    let (_p, addr) = start(&no_cert, "").await;
    assert_eq!(
        call(addr, "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "server requires a client cert"
    );

    let other_pki = Pki::new();
    let stranger = TlsBackend::start("stranger", other_pki.server("backend.example", false)).await;
    let verify = tls_yaml(
        stranger.addr,
        &format!("      mode: SIMPLE\n      caCertificates: {ca}\n      sni: backend.example\n"),
    );
    let (_p, addr) = start(&verify, "").await;
    assert_eq!(
        call(addr, "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "unknown CA refused"
    );
    let skip = tls_yaml(
        stranger.addr,
        "      mode: SIMPLE\n      sni: backend.example\n      insecureSkipVerify: true\n",
    );
    let (_p, addr) = start(&skip, "").await;
    let r = call(addr, "/").await;
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, "stranger".to_string())
    );
}

/// TLS origination on a TCP service (the proxy wraps the client's plain bytes in TLS), and a
/// DestinationRule whose certificate files are missing: its requests fail with 503 (UF) while
/// the rest of the configuration is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tls_origination_and_unusable_tls_files() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let server = TlsBackend::start("secure", pki.server("backend.example", false)).await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: db, namespace: default}}\nspec:\n  hosts: [db.default.svc.cluster.local]\n  addresses: [240.0.0.7]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{{number: 5433, name: tcp, protocol: TCP}}]\n  endpoints:\n  - address: {}\n    ports: {{tcp: {}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: db, namespace: default}}\nspec:\n  host: db.default.svc.cluster.local\n  trafficPolicy:\n    tls: {{mode: SIMPLE, caCertificates: {}, sni: backend.example}}\n",
        server.addr.ip(),
        server.addr.port(),
        pki.path("ca.pem")
    );
    let proxy = TestProxy::start(snapshot(&yaml, "")).await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr("240.0.0.7_5433"))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: db\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("secure"),
        "{reply}"
    );
    assert_eq!(
        server.handshakes().last().cloned(),
        Some((Some("backend.example".into()), false))
    );

    let missing = tls_yaml(
        server.addr,
        "      mode: SIMPLE\n      caCertificates: /nonexistent/ca.pem\n      sni: backend.example\n",
    );
    let (_p, addr) = start(&missing, "").await;
    let r = call(addr, "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("/nonexistent/ca.pem"), "{}", r.text());
}
