//! Listener sockets follow the snapshot: the manager binds listeners that appear, stops
//! accepting on those that go, and dispatches each accepted connection by the listener's kind
//! in the snapshot current at accept time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use model::runtime::RuntimeListenerKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::drain::Phase;
use crate::error::ProxyError;
use crate::http::ConnInfo;
use crate::Shared;

struct Bound {
    /// The address the snapshot asked for (port 0 allowed).
    requested: SocketAddr,
    local: SocketAddr,
    stop: watch::Sender<bool>,
}

/// The listeners currently bound, by name.
#[derive(Default)]
pub struct Listeners {
    bound: Mutex<HashMap<String, Bound>>,
}

impl Listeners {
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|b| b.local)
    }

    /// Makes the bound sockets match the current snapshot. Bind failures are collected and the
    /// rest still applied; the first is returned.
    pub async fn reconcile(&self, shared: &Arc<Shared>) -> Result<(), ProxyError> {
        let state = shared.store.load();
        let wanted: HashMap<&str, SocketAddr> = state
            .runtime
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l.addr))
            .collect();
        {
            let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
            bound.retain(|name, b| {
                let keep = wanted.get(name.as_str()) == Some(&b.requested);
                if !keep {
                    tracing::info!(listener = %name, addr = %b.local, "listener removed");
                    let _ = b.stop.send(true);
                }
                keep
            });
        }
        let mut first_err = None;
        for (name, addr) in wanted {
            if self.local_addr(name).is_some() {
                continue;
            }
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let local = listener.local_addr().unwrap_or(addr);
                    let (stop, stopped) = watch::channel(false);
                    tracing::info!(listener = %name, addr = %local, "listening");
                    tokio::spawn(accept_loop(shared.clone(), name.into(), listener, stopped));
                    self.bound.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        name.to_string(),
                        Bound {
                            requested: addr,
                            local,
                            stop,
                        },
                    );
                }
                Err(source) => {
                    tracing::error!(listener = %name, %addr, error = %source, "bind failed");
                    first_err.get_or_insert(ProxyError::Bind {
                        name: name.to_string(),
                        addr,
                        source,
                    });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// What the manager last reconciled: the store version and the bind failure, if any.
pub type Reconciled = (u64, Option<String>);

/// Follows the store: every published snapshot is reconciled, whoever published it, until the
/// proxy drains. The returned channel says which version the sockets match.
pub fn spawn_manager(
    listeners: Arc<Listeners>,
    shared: Arc<Shared>,
) -> watch::Receiver<Reconciled> {
    let mut versions = shared.store.subscribe();
    let (tx, rx) = watch::channel((*versions.borrow_and_update(), None));
    tokio::spawn(async move {
        let mut drain = shared.drain.watch();
        loop {
            tokio::select! {
                changed = versions.changed() => if changed.is_err() { break },
                _ = drain.reached(Phase::Draining) => break,
            }
            let version = *versions.borrow_and_update();
            let result = listeners.reconcile(&shared).await;
            tx.send_replace((version, result.err().map(|e| e.to_string())));
        }
    });
    rx
}

async fn accept_loop(
    shared: Arc<Shared>,
    name: Arc<str>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let mut drain = shared.drain.watch();
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    tokio::spawn(connection(
                        shared.clone(),
                        name.clone(),
                        port,
                        sock,
                        peer,
                        stopped.clone(),
                    ));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(listener = &*name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = drain.reached(Phase::Draining) => break,
            _ = async { let _ = stopped.wait_for(|s| *s).await; } => break,
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    name: Arc<str>,
    port: u16,
    sock: TcpStream,
    peer: SocketAddr,
    removed: watch::Receiver<bool>,
) {
    let _token = shared.drain.connection();
    let _counted = shared.metrics.connection(&name);
    let state = shared.store.load();
    let Some(listener) = state.runtime.listener(&name) else {
        return;
    };
    let info = ConnInfo::new(name.clone(), port, peer);
    match &listener.kind {
        RuntimeListenerKind::Http { h2_only, .. } => {
            let h2_only = *h2_only;
            // HTTP loads the state per request; do not pin this one for the connection.
            drop(state);
            crate::http::server::serve(shared, info, sock, h2_only, removed).await;
        }
        RuntimeListenerKind::Tcp { clusters } => {
            let mut sock = sock;
            crate::tcp::proxy(&shared, &state, clusters, &mut sock, None).await;
        }
        RuntimeListenerKind::AutoSniff { tcp, .. } => {
            if crate::tcp::sniff_http(&sock).await {
                drop(state);
                crate::http::server::serve(shared, info, sock, false, removed).await;
            } else {
                let mut sock = sock;
                crate::tcp::proxy(&shared, &state, tcp, &mut sock, None).await;
            }
        }
        RuntimeListenerKind::Capture { .. } => {
            let state = state.clone();
            crate::capture::serve(shared, state, info, sock, removed).await;
        }
        RuntimeListenerKind::TlsPassthrough { routes } => {
            crate::tcp::passthrough(&shared, state.clone(), routes, sock).await;
        }
    }
}
