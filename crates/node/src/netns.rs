//! Doing things inside a pod's network namespace: running a program there (as the proxy's uid or
//! any other), or running a closure on a thread that has joined the namespace.
//!
//! Programs are started through `ip netns exec` (and `setpriv` to drop to another uid) rather than
//! with `setns` in a `pre_exec` hook: no `unsafe` code runs between fork and exec, the program gets
//! the namespace's own /sys and any per-namespace files under `/etc/netns/<name>/` (how a pod will get
//! its own resolv.conf), and it is exactly what an operator types to debug a pod. std applies
//! `uid()` before `pre_exec` hooks run, so a hook could not setns after dropping root anyway.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::process::{Child, Command};

use nix::sched::CloneFlags;

use crate::sys::{SysError, Tool};

/// Errors entering a namespace or starting a program in one.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("could not open network namespace {netns}: {source}")]
    Open {
        netns: String,
        source: std::io::Error,
    },
    #[error("could not enter network namespace {netns}: {source}")]
    Enter { netns: String, source: nix::Error },
    #[error("the thread running in network namespace {0} panicked")]
    Panicked(String),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("could not start {program} in network namespace {netns}: {source}")]
    Spawn {
        netns: String,
        program: String,
        source: std::io::Error,
    },
}

/// Where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A command that runs `program` inside network namespace `netns`, as `uid` (with the same gid
/// and no supplementary groups) when given, else as the caller. Set arguments, environment and
/// stdio on it as on any `Command`; it converts to `tokio::process::Command` as well.
pub fn command(
    netns: &str,
    program: impl AsRef<OsStr>,
    uid: Option<u32>,
) -> Result<Command, NetnsError> {
    let mut cmd = Command::new(Tool::Ip.path()?);
    cmd.args(["netns", "exec", netns]);
    if let Some(uid) = uid {
        cmd.arg(Tool::Setpriv.path()?)
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg("--");
    }
    cmd.arg(program);
    Ok(cmd)
}

/// Starts `argv` inside `netns` (see [`command`]).
pub fn spawn(netns: &str, argv: &[&str], uid: Option<u32>) -> Result<Child, NetnsError> {
    let (program, args) = argv.split_first().ok_or_else(|| NetnsError::Spawn {
        netns: netns.to_string(),
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let mut cmd = command(netns, program, uid)?;
    cmd.args(args);
    tracing::debug!(netns, ?argv, ?uid, "starting in pod");
    cmd.spawn().map_err(|source| NetnsError::Spawn {
        netns: netns.to_string(),
        program: program.to_string(),
        source,
    })
}

/// Runs `f` on a new thread that has joined network namespace `netns`, and returns its result.
///
/// A network namespace belongs to a thread, not a process, so only that thread moves, and it ends
/// when `f` returns: no thread of the caller is ever left in a pod's namespace. Sockets `f`
/// creates stay in the pod's namespace wherever they are used afterwards, which is how a test (or
/// an in-process proxy) listens inside a pod.
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = std::path::Path::new(NETNS_DIR).join(netns);
    let file = std::fs::File::open(&path).map_err(|source| NetnsError::Open {
        netns: netns.to_string(),
        source,
    })?;
    let name = netns.to_string();
    let handle = std::thread::Builder::new()
        .name(format!("netns {netns}"))
        .spawn(move || {
            nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                NetnsError::Enter {
                    netns: name,
                    source,
                }
            })?;
            Ok(f())
        })
        .map_err(|source| NetnsError::Spawn {
            netns: netns.to_string(),
            program: "thread".to_string(),
            source,
        })?;
    handle
        .join()
        .map_err(|_| NetnsError::Panicked(netns.to_string()))?
}
