//! tcp-echo: Istio's TCP sample. Every line a client sends comes back prefixed with the
//! server's word (`hello` -> `one hello`), which is how Istio's TCP traffic-shifting task tells
//! v1 ("one") from v2 ("two"). One process may listen on several ports, as the sample does.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::server::Error;

/// The sample's first port; it also listens on 9001 and 9002 when asked to.
pub const PORT: u16 = 9000;

/// A longer line is echoed in pieces of this size, so a client without newlines cannot make
/// the server buffer without bound.
const MAX_LINE: u64 = 64 * 1024;

/// The word for a version label, as the sample's deployments set it.
pub fn word_for_version(version: Option<&str>) -> Option<&'static str> {
    match version {
        None => Some("hello"),
        Some("v1") => Some("one"),
        Some("v2") => Some("two"),
        Some(_) => None,
    }
}

pub struct EchoServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EchoServer {
    pub async fn start(addr: SocketAddr, word: &str) -> Result<EchoServer, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let prefix: Arc<[u8]> = format!("{word} ").into_bytes().into();
        let task = tokio::spawn(accept_loop(listener, prefix, stopped));
        info!(%addr, word, "tcp-echo listening");
        Ok(EchoServer { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes open connections after the line each is on.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            warn!(addr = %self.addr, "tcp-echo task ended abnormally: {e}");
        }
    }
}

async fn accept_loop(listener: TcpListener, prefix: Arc<[u8]>, mut stopped: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let prefix = prefix.clone();
                    let stopped = stopped.clone();
                    conns.spawn(async move {
                        if let Err(e) = echo(stream, &prefix, stopped).await {
                            debug!(%peer, "connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow with every client.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn echo(
    stream: TcpStream,
    prefix: &[u8],
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let mut limited = (&mut read).take(MAX_LINE);
        let n = tokio::select! {
            n = limited.read_until(b'\n', &mut line) => n?,
            _ = stopped.changed() => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        // The sample drops a last line that has no newline; echoing it too is kinder to
        // `printf hello | nc` and changes nothing for line-terminated clients.
        let mut out = Vec::with_capacity(prefix.len() + line.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(&line);
        write.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_pick_the_samples_words() {
        assert_eq!(word_for_version(None), Some("hello"));
        assert_eq!(word_for_version(Some("v1")), Some("one"));
        assert_eq!(word_for_version(Some("v2")), Some("two"));
        assert_eq!(word_for_version(Some("v3")), None);
    }
}
