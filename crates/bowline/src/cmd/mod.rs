//! Subcommands: argument structs and the thin glue from them to the libraries.

pub mod analyze;
pub mod apply;
pub mod client;
pub mod control;
pub mod demo;
pub mod demo_app;
pub mod exec;
pub mod get;
pub mod input;
pub mod proxy;
pub mod proxy_config;
pub mod proxy_status;
pub mod proxy_xds;
pub mod run;
pub mod run_mesh;
pub mod up;
pub mod validate;
