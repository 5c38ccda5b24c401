//! Bowline's control plane: istiod's job, run by `bowline control`.
//!
//! - [`store`]: the config store. Watches a directory of Istio YAML (and, later, Kubernetes),
//!   validates every document on its own, keeps the last good version of each resource, and
//!   publishes immutable snapshots that wake their readers.
//!
//! - [`server`]: the HTTP endpoint on istiod's monitoring port (:15014): configz, readiness,
//!   metrics, and the apply/delete/get calls of the CLI.
//!
//! Still to come here: the service registry, the per-proxy compile and the push.

pub mod server;
pub mod store;
