//! The system tools this crate drives (`ip`, `iptables`, `iptables-restore`, `setpriv`) and the
//! privilege check that runs before any of them, so that a user without root gets one clear error
//! instead of a dozen "Operation not permitted" lines from half-built namespaces.
//!
//! We shell out to iproute2 and iptables rather than speak netlink ourselves: they are what an
//! operator uses to look at the result (`ip netns`, `iptables-save`), their error messages are
//! known, and the rule syntax is the one Istio's own `istio-iptables` emits, so ours can be
//! compared with it line by line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Errors from running system tools.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error(
        "the node network needs root, or the capabilities CAP_NET_ADMIN and CAP_SYS_ADMIN \
         (missing: {missing}): run as root (for example `sudo bowline up`), or grant them with \
         `setcap cap_net_admin,cap_sys_admin+ep <path to bowline>`"
    )]
    NotPrivileged { missing: String },
    #[error("`{program}` is not installed: install it with `apt-get install -y {package}`")]
    MissingTool {
        program: &'static str,
        package: &'static str,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output from `{command}`: {detail}")]
    Output { command: String, detail: String },
}

impl SysError {
    /// Whether the tool failed because the object it was asked about does not exist; deletions
    /// treat that as success so that cleanup can run any number of times.
    pub fn is_not_found(&self) -> bool {
        match self {
            SysError::Failed { stderr, .. } => {
                stderr.contains("Cannot find device")
                    || stderr.contains("No such file or directory")
                    || stderr.contains("does not exist")
                    || stderr.contains("No chain/target/match by that name")
                    || stderr.contains("Bad rule")
            }
            _ => false,
        }
    }

    /// Whether the tool failed because the object already exists (a concurrent creator won).
    pub fn is_exists(&self) -> bool {
        matches!(self, SysError::Failed { stderr, .. } if stderr.contains("File exists") || stderr.contains("already exists"))
    }
}

/// A tool and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ip,
    Iptables,
    IptablesRestore,
    IptablesSave,
    Setpriv,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Ip => "ip",
            Tool::Iptables => "iptables",
            Tool::IptablesRestore => "iptables-restore",
            Tool::IptablesSave => "iptables-save",
            Tool::Setpriv => "setpriv",
        }
    }

    pub fn package(self) -> &'static str {
        match self {
            Tool::Ip => "iproute2",
            Tool::Iptables | Tool::IptablesRestore | Tool::IptablesSave => "iptables",
            Tool::Setpriv => "util-linux",
        }
    }

    /// The tool's full path. `sudo` and cron often leave `/usr/sbin` out of PATH, where iproute2
    /// and iptables live, so the sbin directories are searched as well.
    pub fn path(self) -> Result<PathBuf, SysError> {
        let program = self.program();
        let from_env = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&from_env)
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|dir| dir.join(program))
            .find(|p| is_executable(p))
            .ok_or(SysError::MissingTool {
                program,
                package: self.package(),
            })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails with [`SysError::NotPrivileged`] unless this process holds CAP_NET_ADMIN (links,
/// addresses, routes, iptables) and CAP_SYS_ADMIN (a named network namespace is a bind mount).
pub fn require_privileges() -> Result<(), SysError> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| effective & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SysError::NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

/// Runs `tool args...`, feeding `stdin` if given, and returns its standard output. A non-zero exit
/// is an error carrying the tool's own message.
pub fn run(tool: Tool, args: &[&str], stdin: Option<&str>) -> Result<String, SysError> {
    let path = tool.path()?;
    let command = format!("{} {}", tool.program(), args.join(" "));
    tracing::debug!(%command, "running");
    let mut child = Command::new(&path)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SysError::Spawn {
            command: command.clone(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits early closes its end; its exit status then says why, so a write
        // error here is not the error to report.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| SysError::Spawn {
        command: command.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SysError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `tool args...` and parses its standard output as JSON (iproute2's `-j`).
pub fn run_json(tool: Tool, args: &[&str]) -> Result<serde_json::Value, SysError> {
    let out = run(tool, args, None)?;
    if out.trim().is_empty() {
        // `ip -j netns list` prints nothing at all when there are no namespaces.
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_str(&out).map_err(|e| SysError::Output {
        command: format!("{} {}", tool.program(), args.join(" ")),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_exists_are_recognised_from_stderr() {
        let failed = |stderr: &str| SysError::Failed {
            command: "ip".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        };
        assert!(failed("Cannot find device \"x\"").is_not_found());
        assert!(failed("RTNETLINK answers: File exists").is_exists());
        assert!(!failed("RTNETLINK answers: Operation not permitted").is_not_found());
    }

    #[test]
    fn missing_tool_names_the_package() {
        let e = SysError::MissingTool {
            program: "iptables",
            package: "iptables",
        };
        assert!(e.to_string().contains("apt-get install -y iptables"));
    }
}
