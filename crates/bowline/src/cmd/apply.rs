//! `bowline apply -f` and `bowline delete -f`: send each file to the running control plane,
//! which validates every document exactly as its store will and writes the accepted ones into
//! its config directory. Lines are printed as kubectl prints them; exit 0 when every document
//! went through, 1 when any was rejected (or, for delete, not found), 2 when the control plane
//! cannot be reached or a file cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use http::Method;
use serde_json::Value;

use super::client::{call_json, ControlPlaneArg};

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Files or directories of YAML/JSON; `-` reads standard input
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    files: Vec<PathBuf>,
    #[command(flatten)]
    control_plane: ControlPlaneArg,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Files or directories naming the resources to delete; `-` reads standard input
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    files: Vec<PathBuf>,
    /// A resource that does not exist is not an error
    #[arg(long)]
    ignore_not_found: bool,
    #[command(flatten)]
    control_plane: ControlPlaneArg,
}

pub fn apply(args: ApplyArgs) -> Result<ExitCode> {
    send("apply", &args.files, &args.control_plane, false)
}

pub fn delete(args: DeleteArgs) -> Result<ExitCode> {
    send(
        "delete",
        &args.files,
        &args.control_plane,
        args.ignore_not_found,
    )
}

fn send(
    verb: &str,
    files: &[PathBuf],
    control_plane: &ControlPlaneArg,
    ignore_not_found: bool,
) -> Result<ExitCode> {
    // Every file is read before anything is sent, so that a typo in the last file name does not
    // leave the first files applied.
    let inputs = super::input::read_all(files)?;
    let addr = control_plane.addr();
    let mut failed = false;
    let mut documents = 0usize;
    for input in inputs {
        let path = format!(
            "/apis/{verb}?input={}",
            control::server::percent_encode(&input.name)
        );
        let answer = call_json(&addr, Method::POST, &path, input.text)?;
        let results = answer
            .get("results")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        documents += results.len();
        for r in results {
            let message = r.get("message").and_then(Value::as_str).unwrap_or("");
            match r.get("outcome").and_then(Value::as_str) {
                Some("notFound") if ignore_not_found => {}
                Some("rejected" | "notFound") => {
                    failed = true;
                    eprintln!("{message}");
                }
                _ => println!("{message}"),
            }
        }
    }
    if documents == 0 {
        // kubectl's answer to files holding no objects: an error, not silent success.
        eprintln!("error: no objects passed to {verb}");
        return Ok(ExitCode::from(1));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
