//! What the server knows about each connected proxy's sync state, per type: the last version
//! and nonce sent, the last acknowledged, and the reason of the last rejection. Read by the
//! control plane's `/debug/syncz` and `bowline proxy-status`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

/// One proxy's row.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySync {
    /// Istio's node id.
    pub proxy: String,
    pub namespace: String,
    pub role: String,
    pub service_account: String,
    pub cluster_id: String,
    pub control_plane: String,
    /// Seconds since the Unix epoch.
    pub connected_at: u64,
    /// By short type name (CDS, EDS, LDS, RDS...).
    pub types: BTreeMap<String, TypeSync>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSync {
    pub type_url: String,
    pub sent_version: String,
    pub sent_nonce: String,
    pub acked_version: String,
    pub acked_nonce: String,
    /// The reason the proxy gave for its last rejection, until it accepts a later response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nack: Option<String>,
    pub resources: usize,
    /// `["*"]` for every resource of the type, else the names subscribed to.
    pub subscribed: Vec<String>,
}

impl TypeSync {
    /// istioctl's words: SYNCED when the last response sent was acknowledged, NOT SENT when
    /// nothing was sent, STALE otherwise (in flight, or rejected).
    pub fn state(&self) -> &'static str {
        if self.sent_nonce.is_empty() {
            "NOT SENT"
        } else if self.acked_nonce == self.sent_nonce && self.nack.is_none() {
            "SYNCED"
        } else {
            "STALE"
        }
    }
}

/// Every connected proxy's row, by connection id.
#[derive(Clone, Default)]
pub struct SyncTable {
    rows: Arc<Mutex<BTreeMap<u64, ProxySync>>>,
}

impl SyncTable {
    pub fn snapshot(&self) -> Vec<ProxySync> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn insert(&self, conn: u64, row: ProxySync) {
        self.lock().insert(conn, row);
    }

    pub(crate) fn remove(&self, conn: u64) {
        self.lock().remove(&conn);
    }

    pub(crate) fn update(&self, conn: u64, short: &str, f: impl FnOnce(&mut TypeSync)) {
        if let Some(row) = self.lock().get_mut(&conn) {
            f(row.types.entry(short.to_string()).or_default());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ProxySync>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
