//! Subcommands: argument structs and the thin glue from them to the libraries.

pub mod analyze;
pub mod demo_app;
pub mod input;
pub mod proxy;
pub mod validate;
