//! The control plane's API as the mesh uses it: apply YAML (`POST /apis/apply`), delete it, and
//! ask whether a resource exists (`GET /apis/get`), get a proxy's bootstrap token (`POST
//! /apis/token`) and whether a proxy is in sync (`GET /debug/syncz`). One blocking HTTP/1.1 request per call over
//! loopback: the mesh's own calls are few and small.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::Error;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The files of a bootstrap token grant.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub token_file: std::path::PathBuf,
    pub root_cert_file: std::path::PathBuf,
}

/// A client of the control plane at one address.
#[derive(Clone, Debug)]
pub struct ControlClient {
    addr: SocketAddr,
}

impl ControlClient {
    pub fn new(addr: SocketAddr) -> ControlClient {
        ControlClient { addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `yaml`; an error when any document is rejected, with the control plane's reason.
    pub fn apply(&self, input: &str, yaml: &str) -> Result<(), Error> {
        self.write("apply", input, yaml, false)
    }

    /// Deletes the resources named in `yaml`; ones already gone are fine.
    pub fn delete(&self, input: &str, yaml: &str) -> Result<(), Error> {
        self.write("delete", input, yaml, true)
    }

    fn write(&self, verb: &str, input: &str, yaml: &str, missing_ok: bool) -> Result<(), Error> {
        let path = format!("/apis/{verb}?input={}", encode(input));
        let answer = self.json("POST", &path, yaml)?;
        let mut problems = Vec::new();
        for r in answer
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let outcome = r.get("outcome").and_then(Value::as_str).unwrap_or("");
            let message = r.get("message").and_then(Value::as_str).unwrap_or("");
            match outcome {
                "notFound" if missing_ok => {}
                "rejected" | "notFound" => problems.push(message.to_string()),
                _ => tracing::debug!(%message, "control plane"),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.error(problems.join("; ")))
        }
    }

    /// Whether `kind` `namespace/name` exists in the control plane's accepted config.
    pub fn exists(&self, kind: &str, namespace: &str, name: &str) -> Result<bool, Error> {
        let path = format!(
            "/apis/get?kind={}&name={}&namespace={}",
            encode(kind),
            encode(name),
            encode(namespace)
        );
        let answer = self.json("GET", &path, "")?;
        Ok(answer
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| !items.is_empty()))
    }

    /// The bootstrap token of (`namespace`, `service_account`), issued on first use, and the
    /// root certificate the control plane's serving certificate chains to: their files, which
    /// only root may read.
    pub fn token(&self, namespace: &str, service_account: &str) -> Result<TokenGrant, Error> {
        let path = format!(
            "/apis/token?namespace={}&serviceAccount={}",
            encode(namespace),
            encode(service_account)
        );
        let answer = self.json("POST", &path, "")?;
        let file = |key: &str| {
            answer
                .get(key)
                .and_then(Value::as_str)
                .map(std::path::PathBuf::from)
                .ok_or_else(|| self.error(format!("/apis/token answered without {key}")))
        };
        Ok(TokenGrant {
            token_file: file("tokenFile")?,
            root_cert_file: file("rootCertFile")?,
        })
    }

    /// Whether the proxy named `pod.namespace` (Istio's node id `TYPE~IP~POD.NS~DOMAIN`) is
    /// connected and has acknowledged the last response of every type it was sent.
    pub fn synced(&self, name: &str) -> bool {
        let Ok(rows) = self.json("GET", "/debug/syncz", "") else {
            return false;
        };
        rows.as_array().into_iter().flatten().any(|row| {
            let id = row.get("proxy").and_then(Value::as_str).unwrap_or("");
            let types = row.get("types").and_then(Value::as_object);
            id.split('~').nth(2) == Some(name)
                && types.is_some_and(|t| {
                    !t.is_empty()
                        && t.values().all(|ty| {
                            let field = |k: &str| ty.get(k).and_then(Value::as_str).unwrap_or("");
                            !field("sentNonce").is_empty()
                                && field("sentNonce") == field("ackedNonce")
                                && ty.get("nack").is_none_or(Value::is_null)
                        })
                })
        })
    }

    /// Whether the control plane answers `/ready` with 200.
    pub fn ready(&self) -> bool {
        matches!(self.request("GET", "/ready", ""), Ok((200, _)))
    }

    fn json(&self, method: &str, path: &str, body: &str) -> Result<Value, Error> {
        let (status, body) = self.request(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(self.error(format!("{status}: {}", body.trim())));
        }
        serde_json::from_str(&body).map_err(|e| self.error(format!("answer is not JSON: {e}")))
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Result<(u16, String), Error> {
        let io = |e: std::io::Error| self.error(e.to_string());
        let mut conn = TcpStream::connect_timeout(&self.addr, TIMEOUT).map_err(io)?;
        conn.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        conn.write_all(head.as_bytes()).map_err(io)?;
        conn.write_all(body.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| self.error("truncated answer".into()))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.error("no status line".into()))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    fn error(&self, message: String) -> Error {
        Error::Control {
            addr: self.addr.to_string(),
            message,
        }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
