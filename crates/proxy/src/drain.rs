//! Graceful-then-forced shutdown.
//!
//! `Running` → `Draining`: listeners stop accepting, HTTP connections finish their in-flight
//! request and close (HTTP/1 sends `Connection: close`, HTTP/2 sends GOAWAY), readiness turns
//! 503. → `Forced` once every connection is gone or the drain period ends: whatever is left is
//! dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Forced,
}

/// Owned by the proxy handle; hands out [`DrainWatch`]es to connections.
#[derive(Clone)]
pub struct Drain {
    phase: Arc<watch::Sender<Phase>>,
    open: Arc<(AtomicUsize, Notify)>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: Arc::new(watch::Sender::new(Phase::Running)),
            open: Arc::new((AtomicUsize::new(0), Notify::new())),
        }
    }
}

impl Drain {
    pub fn watch(&self) -> DrainWatch {
        DrainWatch {
            phase: self.phase.subscribe(),
        }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Registers an open connection until the token drops.
    pub fn connection(&self) -> ConnToken {
        self.open.0.fetch_add(1, Ordering::AcqRel);
        ConnToken(self.open.clone())
    }

    pub fn open_connections(&self) -> usize {
        self.open.0.load(Ordering::Acquire)
    }

    /// Starts draining (idempotent).
    pub fn start(&self) {
        self.phase.send_if_modified(|p| {
            let changed = *p == Phase::Running;
            if changed {
                *p = Phase::Draining;
            }
            changed
        });
    }

    /// Drains for at most `period`, then forces the rest closed. Returns how many connections
    /// were still open when forced.
    pub async fn run(&self, period: Duration) -> usize {
        self.start();
        let wait_idle = async {
            loop {
                let notified = self.open.1.notified();
                if self.open_connections() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(period, wait_idle).await;
        let left = self.open_connections();
        self.phase.send_replace(Phase::Forced);
        left
    }
}

pub struct ConnToken(Arc<(AtomicUsize, Notify)>);

impl Drop for ConnToken {
    fn drop(&mut self) {
        if self.0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .1.notify_waiters();
        }
    }
}

/// A connection's or listener's view of the drain phase.
#[derive(Clone)]
pub struct DrainWatch {
    phase: watch::Receiver<Phase>,
}

impl DrainWatch {
    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&mut self, phase: Phase) {
        // An error means the proxy handle is gone: treat as forced.
        let _ = self.phase.wait_for(|p| *p >= phase).await;
    }

    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() >= Phase::Draining
    }
}
