//! Bowline's control plane: istiod's job, run by `bowline control`.
//!
//! - [`store`]: the config store. Watches a directory of Istio YAML (and, later, Kubernetes),
//!   validates every document on its own, keeps the last good version of each resource, and
//!   publishes immutable snapshots that wake their readers.
//!
//! - [`server`]: the HTTP endpoint on istiod's monitoring port (:15014): configz, readiness,
//!   metrics, and the apply/delete/get calls of the CLI.
//!
//! - [`push`]: from the store's snapshots to each connected proxy: debounced push epochs,
//!   per-shape compile shared between identical proxies, WorkloadGroup auto-registration; the
//!   [`xds::Provider`] the discovery server runs on.
//! - [`mesh`]: the CA, bootstrap tokens and the discovery server on :15012, started together.

pub mod mesh;
pub mod push;
pub mod server;
pub mod store;
