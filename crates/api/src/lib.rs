//! Istio's configuration API, read exactly as Istio reads it.
//!
//! - [`source`]: YAML/JSON text to documents that remember the line of every field.
//! - [`resource`]: documents to typed resources ([`Kind`], [`Resource`]), strict about unknown
//!   fields, and [`Problem`]s that name file, line, resource and field path.
//! - [`types`]: the resource types, field for field as Istio's API reference has them.
//! - [`validate`]: Istio's validation rules, per kind.
//! - [`analyze`]: Istio's cross-resource analyzers (`istioctl analyze`).
//!
//! No IO: callers hand in text and get values back.

pub mod analyze;
pub mod meta;
pub mod protocol;
pub mod resource;
pub mod source;
pub mod types;
pub mod validate;

pub use meta::ObjectMeta;
pub use resource::{decode, load_str, Decoded, Kind, OtherObject, Problem, Resource, Spec};
pub use validate::{Report, Severity};
