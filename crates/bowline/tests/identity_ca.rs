//! The mesh CA end to end, with real processes and certificates checked by the `openssl` CLI:
//! Istio's plug-in `cacerts` made with openssl as Istio's docs do (a root, an intermediate for
//! the cluster), `bowline control --cacerts` issuing both its own serving certificate and a
//! sidecar's workload certificate from that intermediate (seen with `openssl s_client` on the
//! wire); a plug-in key that is encrypted or belongs to another CA stopping start-up without a
//! self-signed root appearing; and the default self-signed root surviving a restart.
//!
//! The sidecar test needs root, network namespaces and iptables (see `mesh_support`); every test
//! needs the openssl CLI. Without them they say so and pass, except under `CI=true`, where they
//! fail.

mod mesh_support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_support::{admin, mesh, BOWLINE, PROXY_UID};
use serde_json::Value;

const RATINGS_ID: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-ratings";
const SLEEP_ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";

/// The openssl CLI, or `false` with a note; under `CI=true` its absence is a failure.
fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the openssl CLI is missing (apt-get install openssl)");
        }
        eprintln!("note: skipping: the openssl CLI is not installed");
    }
    found
}

/// Runs openssl in `dir`, failing the test with its stderr when it fails; stdout then stderr.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CA_EXT: &str = "[ca]\nbasicConstraints=critical,CA:TRUE\n\
    keyUsage=critical,keyCertSign,cRLSign,digitalSignature\n";

/// Istio's `cacerts` layout in `dir`, made as Istio's certificate Makefile does: a root CA,
/// then an intermediate for `cluster` signed by it (RSA keys as openssl writes them).
fn make_cacerts(dir: &Path, cluster: &str) {
    std::fs::create_dir_all(dir).expect("cacerts dir");
    std::fs::write(dir.join("ca.cnf"), CA_EXT).expect("ext file");
    openssl(dir, &["genrsa", "-out", "root-key.pem", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root-key.pem",
            "-subj",
            "/O=Istio/CN=Root CA",
            "-days",
            "3650",
            "-config",
            "ca.cnf",
            "-extensions",
            "ca",
            "-out",
            "root-cert.pem",
        ],
    );
    openssl(dir, &["genrsa", "-out", "ca-key.pem", "2048"]);
    let subj = format!("/O=Istio/CN=Intermediate CA/L={cluster}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            &subj,
            "-out",
            "cluster-ca.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "cluster-ca.csr",
            "-CA",
            "root-cert.pem",
            "-CAkey",
            "root-key.pem",
            "-CAcreateserial",
            "-days",
            "730",
            "-extfile",
            "ca.cnf",
            "-extensions",
            "ca",
            "-out",
            "ca-cert.pem",
        ],
    );
    let chain = read(&dir.join("ca-cert.pem")) + &read(&dir.join("root-cert.pem"));
    std::fs::write(dir.join("cert-chain.pem"), chain).expect("cert-chain.pem");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PEM certificates in `text`, in order.
fn pem_certs(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    text.split(BEGIN)
        .skip(1)
        .filter_map(|rest| rest.split_once(END))
        .map(|(body, _)| format!("{BEGIN}{body}{END}\n"))
        .collect()
}

/// `openssl x509 -noout -<field>` of a PEM file, without the `field=` prefix.
fn x509_field(dir: &Path, file: &str, field: &str) -> String {
    let out = openssl(dir, &["x509", "-in", file, "-noout", &format!("-{field}")]);
    let out = out.trim();
    out.split_once('=')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| out.to_string())
}

fn uri_sans(dir: &Path, file: &str) -> Vec<String> {
    openssl(
        dir,
        &["x509", "-in", file, "-noout", "-ext", "subjectAltName"],
    )
    .split([',', '\n'])
    .filter_map(|s| s.trim().strip_prefix("URI:").map(String::from))
    .collect()
}

/// `openssl verify -CAfile root [-untrusted inter] leaf`: the output, `Ok` when it passed.
fn verify(dir: &Path, root: &Path, untrusted: Option<&Path>, leaf: &str) -> Result<String, String> {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).arg("verify").arg("-CAfile").arg(root);
    if let Some(u) = untrusted {
        cmd.arg("-untrusted").arg(u);
    }
    let out = cmd.arg(leaf).output().expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains(&format!("{leaf}: OK")) {
        Ok(text)
    } else {
        Err(text)
    }
}

/// `openssl s_client -showcerts` against `addr` with `extra` arguments: its whole output, once
/// the server sent a certificate (the listener may still be starting: polled up to 20 s).
fn s_client(dir: &Path, addr: &str, extra: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(["s_client", "-connect", addr, "-showcerts"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("openssl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !pem_certs(&text).is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "s_client {addr} never got a certificate:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Collects a child's output as it arrives, so the pipe never fills.
fn drain(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().expect("log").push_str(&line);
            line.clear();
        }
    });
    log
}

fn control_command(config: &Path, state: &Path, xds_addr: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BOWLINE);
    cmd.args(["control", "--config-dir"])
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .args(["--monitoring-addr", "127.0.0.1:0", "--xds-addr", xds_addr])
        .args(["--debounce-ms", "20"])
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A running `bowline control --state-dir`, stopped on drop.
struct Control {
    child: Child,
    mon: String,
    xds_port: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Control {
    fn start(config: &Path, state: &Path, xds_addr: &str, extra: &[&str]) -> Control {
        let mut child = control_command(config, state, xds_addr, extra)
            .spawn()
            .expect("bowline runs");
        let log = drain(child.stderr.take().expect("stderr"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut read = |prefix: &str| {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            line.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}: {}", log.lock().expect("log")))
                .to_string()
        };
        let mon = read("control plane: monitoring on ");
        let xds = read("control plane: xds on ");
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let xds_port = xds
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("xds port");
        Control {
            child,
            mon,
            xds_port,
            log,
        }
    }

    /// `POST /apis/token`: the token file and the root certificate file of an identity.
    fn token(&self, ns: &str, sa: &str) -> (PathBuf, PathBuf) {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&self.mon).expect("monitoring endpoint");
        write!(
            s,
            "POST /apis/token?namespace={ns}&serviceAccount={sa} HTTP/1.1\r\nhost: x\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        )
        .expect("request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("response");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: Value = serde_json::from_str(body).expect("json");
        let path = |k: &str| PathBuf::from(v[k].as_str().expect("path"));
        (path("tokenFile"), path("rootCertFile"))
    }

    /// SIGTERM, then the exit status (a clean stop, not a kill).
    fn stop(mut self) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "control plane did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `bowline control` expecting it to exit on its own: the status and its stderr.
fn control_exit(config: &Path, state: &Path, extra: &[&str]) -> (ExitStatus, String) {
    let mut child = control_command(config, state, "127.0.0.1:0", extra)
        .spawn()
        .expect("bowline runs");
    let log = drain(child.stderr.take().expect("stderr"));
    let out = drain(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            // The drain threads finish with the pipes; give them a moment to take the last line.
            std::thread::sleep(Duration::from_millis(100));
            let text = log.lock().expect("log").clone();
            return (status, text);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bowline control kept running:\n{}\n{}",
                out.lock().expect("log"),
                log.lock().expect("log")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn no_root_in(state: &Path) -> bool {
    !state.join("root-cert.pem").exists() && !state.join("root-key.pem").exists()
}

/// A client certificate for `id` issued by the plug-in intermediate with openssl, as another
/// workload of the mesh would hold: the key and the leaf-plus-intermediate chain.
fn client_cert(cacerts: &Path, out: &Path, id: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(out).expect("client dir");
    let ext = format!(
        "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,\
         keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:{id}\n"
    );
    std::fs::write(out.join("leaf.cnf"), ext).expect("ext");
    openssl(
        out,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "key.pem",
        ],
    );
    openssl(
        out,
        &[
            "req", "-new", "-key", "key.pem", "-subj", "/O=sleep", "-out", "leaf.csr",
        ],
    );
    let ca_cert = cacerts.join("ca-cert.pem").display().to_string();
    let ca_key = cacerts.join("ca-key.pem").display().to_string();
    openssl(
        out,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.cnf",
            "-extensions",
            "leaf",
            "-out",
            "cert.pem",
        ],
    );
    (out.join("key.pem"), out.join("cert.pem"))
}

/// Copies `from` into `dir` readable by the sidecar's uid (tokens are owner-only on the host, as
/// a mounted secret would be the pod's own).
fn share(from: &Path, dir: &Path, name: &str) -> String {
    let to = dir.join(name);
    std::fs::copy(from, &to).expect("copy");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    to.display().to_string()
}

#[test]
fn plugin_cacerts_issue_the_sidecar_and_control_plane_certificates_seen_by_openssl() {
    if !have_openssl() {
        return;
    }
    let Some(mut m) = mesh("blidca1", 61) else {
        return;
    };
    let base = m.dir.path().to_path_buf();
    let cacerts = base.join("cacerts");
    make_cacerts(&cacerts, "cluster1");
    let pod = m.pod("ratings", true);
    let gw = pod.gateway.to_string();
    let control = Control::start(
        &m.config,
        &base.join("state"),
        "0.0.0.0:0",
        &[
            "--cacerts",
            &cacerts.display().to_string(),
            "--xds-san",
            &gw,
        ],
    );
    let (token, root) = control.token("default", "bookinfo-ratings");
    assert_eq!(
        root,
        cacerts.join("root-cert.pem"),
        "proxies trust the plug-in root"
    );
    let token = share(&token, &base, "ratings.token");
    let root = share(&root, &base, "root-cert.pem");
    let xds = format!("{gw}:{}", control.xds_port);
    let ip = pod.ip.to_string();
    m.spawn(
        "ratings-sidecar",
        &pod,
        &[
            BOWLINE,
            "proxy",
            "--xds-address",
            &xds,
            "--root-cert",
            &root,
            "--token-file",
            &token,
            "--workload-cert",
            "--capture",
            "--namespace",
            "default",
            "--labels",
            "app=ratings",
            "--service-account",
            "bookinfo-ratings",
            "--pod-ip",
            &ip,
            "--concurrency",
            "1",
        ],
        Some(PROXY_UID),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(admin(&pod, "GET", "/certs"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "the sidecar never got its certificate:\n{}",
            control.log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let intermediate = x509_field(&cacerts, "ca-cert.pem", "subject");
    let work = base.join("seen");
    std::fs::create_dir_all(&work).expect("work dir");

    // A mesh peer's mTLS handshake with the pod: captured to the inbound listener, which
    // answers with the workload certificate the control plane issued.
    let (key, cert) = client_cert(&cacerts, &base.join("sleep"), SLEEP_ID);
    let ca_cert = cacerts.join("ca-cert.pem").display().to_string();
    let root_file = cacerts.join("root-cert.pem").display().to_string();
    let out = s_client(
        &work,
        &format!("{ip}:9080"),
        &[
            "-alpn",
            "istio-peer-exchange,istio",
            "-cert",
            &cert.display().to_string(),
            "-key",
            &key.display().to_string(),
            "-cert_chain",
            &ca_cert,
            "-CAfile",
            &root_file,
        ],
    );
    let chain = pem_certs(&out);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert_eq!(chain.len(), 2, "leaf and intermediate, no root:\n{out}");
    assert_eq!(chain[1], read(&cacerts.join("ca-cert.pem")), "{out}");
    std::fs::write(work.join("workload.pem"), &chain[0]).expect("write");
    assert_eq!(x509_field(&work, "workload.pem", "issuer"), intermediate);
    assert_eq!(uri_sans(&work, "workload.pem"), [RATINGS_ID]);
    let ok = verify(
        &work,
        &cacerts.join("root-cert.pem"),
        Some(&cacerts.join("ca-cert.pem")),
        "workload.pem",
    );
    assert!(ok.is_ok(), "{ok:?}");

    // The control plane's own :15012-style serving certificate, from the same intermediate.
    let out = s_client(
        &work,
        &format!("127.0.0.1:{}", control.xds_port),
        &["-alpn", "h2", "-CAfile", &root_file],
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // Leaf, the intermediate, then (unlike a workload) the root as well: as cert_chain_pem.
    let chain = pem_certs(&out);
    assert!(chain.len() >= 2, "{out}");
    assert_eq!(chain[1], read(&cacerts.join("ca-cert.pem")), "{out}");
    std::fs::write(work.join("serving.pem"), &chain[0]).expect("write");
    assert_eq!(x509_field(&work, "serving.pem", "issuer"), intermediate);
    let ok = verify(
        &work,
        &cacerts.join("root-cert.pem"),
        Some(&cacerts.join("ca-cert.pem")),
        "serving.pem",
    );
    assert!(ok.is_ok(), "{ok:?}");
    // Nothing self-signed was made beside the plug-in CA.
    assert!(no_root_in(&base.join("state")));
}

#[test]
fn an_encrypted_plugin_key_stops_the_control_plane_naming_the_file() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cacerts = dir.path().join("cacerts");
    make_cacerts(&cacerts, "cluster1");
    let key = cacerts.join("ca-key.pem");
    openssl(
        &cacerts,
        &[
            "pkey",
            "-in",
            "ca-key.pem",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "ca-key.enc.pem",
        ],
    );
    std::fs::rename(cacerts.join("ca-key.enc.pem"), &key).expect("rename");
    assert!(read(&key).contains("ENCRYPTED PRIVATE KEY"));
    let state = dir.path().join("state");
    let (status, log) = control_exit(
        &dir.path().join("config"),
        &state,
        &["--cacerts", &cacerts.display().to_string()],
    );
    assert!(!status.success(), "{log}");
    assert!(log.contains(&key.display().to_string()), "{log}");
    assert_eq!(
        log.matches("the private key is encrypted").count(),
        1,
        "{log}"
    );
    assert!(
        no_root_in(&state),
        "a self-signed root appeared in {}",
        state.display()
    );
}

#[test]
fn a_plugin_key_of_another_ca_stops_the_control_plane_naming_the_file() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cacerts = dir.path().join("cacerts");
    make_cacerts(&cacerts, "cluster1");
    let other = dir.path().join("other");
    make_cacerts(&other, "cluster2");
    let key = cacerts.join("ca-key.pem");
    std::fs::copy(other.join("ca-key.pem"), &key).expect("copy");
    let state = dir.path().join("state");
    let (status, log) = control_exit(
        &dir.path().join("config"),
        &state,
        &["--cacerts", &cacerts.display().to_string()],
    );
    assert!(!status.success(), "{log}");
    assert!(log.contains(&key.display().to_string()), "{log}");
    assert_eq!(log.matches("is not the private key of").count(), 1, "{log}");
    assert!(
        no_root_in(&state),
        "a self-signed root appeared in {}",
        state.display()
    );
}

#[test]
fn a_missing_plugin_file_stops_the_control_plane_without_a_fallback_root() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cacerts = dir.path().join("cacerts");
    make_cacerts(&cacerts, "cluster1");
    let key = cacerts.join("ca-key.pem");
    std::fs::remove_file(&key).expect("remove");
    let state = dir.path().join("state");
    let (status, log) = control_exit(
        &dir.path().join("config"),
        &state,
        &["--cacerts", &cacerts.display().to_string()],
    );
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("cannot read {}", key.display())),
        "{log}"
    );
    // The I/O reason reads once, not repeated by the cause chain.
    assert_eq!(log.matches("No such file or directory").count(), 1, "{log}");
    assert!(
        no_root_in(&state),
        "a self-signed root appeared in {}",
        state.display()
    );
}

fn fingerprint(dir: &Path, file: &str) -> String {
    openssl(
        dir,
        &["x509", "-in", file, "-noout", "-fingerprint", "-sha256"],
    )
}

/// A certificate for `id` from the control plane's certificate service, authenticated by
/// `token`; the key is made and kept by openssl, the CA only sees the CSR.
async fn workload_cert(control: &Control, root: &Path, token: &Path, dir: &Path) -> Vec<String> {
    let san = format!("subjectAltName=URI:{SLEEP_ID}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-subj",
            "/O=sleep",
            "-addext",
            &san,
            "-out",
            "csr.pem",
        ],
    );
    let conn = xds::Connection {
        address: format!("127.0.0.1:{}", control.xds_port),
        server_name: None,
        root_cert_pem: read(root),
        token: read(token).trim().to_string(),
    };
    let chain = xds::client::create_certificate(&conn, &read(&dir.join("csr.pem")), None)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CreateCertificate: {e}\n{}",
                control.log.lock().expect("log")
            )
        });
    assert!(!chain.is_empty());
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_signed_root_is_kept_across_a_restart_and_old_certificates_still_verify() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, state) = (dir.path().join("config"), dir.path().join("state"));
    assert!(no_root_in(&state));

    let control = Control::start(&config, &state, "127.0.0.1:0", &[]);
    let (token, root) = control.token("default", "sleep");
    assert_eq!(root, state.join("root-cert.pem"));
    assert!(state.join("root-key.pem").exists());
    assert_eq!(
        std::fs::metadata(state.join("root-key.pem"))
            .expect("key")
            .permissions()
            .mode()
            & 0o077,
        0,
        "the root key is owner-only"
    );
    assert!(control
        .log
        .lock()
        .expect("log")
        .contains("created new self-signed mesh root"));
    let before = fingerprint(&state, "root-cert.pem");
    std::fs::copy(&root, dir.path().join("root-before.pem")).expect("copy");
    let first = dir.path().join("first");
    std::fs::create_dir(&first).expect("dir");
    let chain = workload_cert(&control, &root, &token, &first).await;
    std::fs::write(first.join("leaf.pem"), &chain[0]).expect("write");
    assert_eq!(uri_sans(&first, "leaf.pem"), [SLEEP_ID]);
    assert!(control.stop().success());

    let control = Control::start(&config, &state, "127.0.0.1:0", &[]);
    assert!(
        !control
            .log
            .lock()
            .expect("log")
            .contains("created new self-signed mesh root"),
        "{}",
        control.log.lock().expect("log")
    );
    assert_eq!(
        fingerprint(&state, "root-cert.pem"),
        before,
        "the root changed"
    );
    // The certificate issued before the restart verifies against the root after it.
    let ok = verify(&first, &state.join("root-cert.pem"), None, "leaf.pem");
    assert!(ok.is_ok(), "{ok:?}");
    // And what the restarted control plane issues and serves chains to the root from before.
    let root_before = dir.path().join("root-before.pem").display().to_string();
    let work = dir.path().to_path_buf();
    let xds = format!("127.0.0.1:{}", control.xds_port);
    let out = tokio::task::spawn_blocking(move || {
        s_client(&work, &xds, &["-alpn", "h2", "-CAfile", &root_before])
    })
    .await
    .expect("s_client");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let second = dir.path().join("second");
    std::fs::create_dir(&second).expect("dir");
    let chain = workload_cert(&control, &root, &token, &second).await;
    std::fs::write(second.join("leaf.pem"), &chain[0]).expect("write");
    let ok = verify(
        &second,
        &dir.path().join("root-before.pem"),
        None,
        "leaf.pem",
    );
    assert!(ok.is_ok(), "{ok:?}");
}
