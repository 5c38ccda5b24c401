//! Talking to a running control plane: which address (flag, then `BOWLINE_CONTROL_PLANE`, then
//! istiod's loopback monitoring port) and one HTTP/1.1 request per call.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const ENV: &str = "BOWLINE_CONTROL_PLANE";
/// Generous: an apply of many documents waits for each to be validated and written.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct ControlPlaneArg {
    /// Address of the running control plane's monitoring endpoint [env: BOWLINE_CONTROL_PLANE]
    /// [default: 127.0.0.1:15014]
    #[arg(long, value_name = "ADDR")]
    control_plane: Option<String>,
}

impl ControlPlaneArg {
    /// `host:port`, from the flag, the environment or the default; an `http://` prefix and a
    /// trailing `/` are tolerated since people paste URLs.
    pub fn addr(&self) -> String {
        let raw = self
            .control_plane
            .clone()
            .or_else(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| control::server::DEFAULT_MONITORING_ADDR.to_string());
        raw.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }
}

/// One request; the answer's status and body. An unreachable control plane is an error naming
/// the address, which `main` prints on one line with exit code 2.
pub fn call(addr: &str, method: Method, path: &str, body: String) -> Result<(StatusCode, Bytes)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let fut = request(addr, method, path, body);
    match runtime.block_on(async { tokio::time::timeout(TIMEOUT, fut).await }) {
        Ok(r) => r,
        Err(_) => bail!(
            "the control plane at {addr} did not answer within {}s",
            TIMEOUT.as_secs()
        ),
    }
}

async fn request(
    addr: &str,
    method: Method,
    path: &str,
    body: String,
) -> Result<(StatusCode, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| {
            format!("cannot reach the control plane at {addr} (is `bowline control` running?)")
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("talking to the control plane at {addr}"))?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr)
        .header(http::header::CONTENT_TYPE, "application/yaml")
        .body(Full::new(Bytes::from(body)))
        .context("building the request")?;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("talking to the control plane at {addr}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the control plane's answer from {addr}"))?
        .to_bytes();
    Ok((status, body))
}

/// A JSON answer, or an error carrying the control plane's own message.
pub fn call_json(
    addr: &str,
    method: Method,
    path: &str,
    body: String,
) -> Result<serde_json::Value> {
    let (status, bytes) = call(addr, method, path, body)?;
    if !status.is_success() {
        bail!(
            "the control plane at {addr} answered {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("the control plane at {addr} answered something other than JSON"))
}
