//! Run-time log levels behind the admin API's `/logging`, as Envoy's: `GET` lists the levels,
//! `POST /logging?level=debug` sets every module, `POST /logging?http=debug` one module.
//!
//! The proxy library does not own the tracing subscriber (the binary does); the binary hands
//! the proxy a [`LogLevels`] whose `apply` swaps the subscriber's filter through a reload
//! handle. This module keeps the levels and turns them into filter directives.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The proxy's modules, named as `/logging` takes them; each is the tracing target
/// `proxy::<name>`.
pub const MODULES: &[&str] = &[
    "admin",
    "drain",
    "h1guard",
    "http",
    "listeners",
    "sni",
    "state",
    "tcp",
    "upstream",
];

/// Levels `/logging` accepts; Envoy's `critical` means `error` here.
pub const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "critical", "off"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    #[error("unknown level `{0}`; one of trace, debug, info, warn, error, critical, off")]
    Level(String),
    #[error("unknown logger `{0}`")]
    Module(String),
    #[error("the filter was refused: {0}")]
    Apply(String),
}

type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The default level and per-module overrides, and how to apply them.
pub struct LogLevels {
    state: Mutex<(String, BTreeMap<String, String>)>,
    apply: Apply,
}

impl LogLevels {
    /// `default` is the level in force at start; `apply` installs a filter directive string
    /// (`info,proxy::http=debug`).
    pub fn new(
        default: &str,
        apply: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        LogLevels {
            state: Mutex::new((default.to_string(), BTreeMap::new())),
            apply: Box::new(apply),
        }
    }

    /// `(logger, level)` for every module, the default first as `all`.
    pub fn levels(&self) -> Vec<(String, String)> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let (default, overrides) = &*state;
        let mut out = vec![("all".to_string(), default.clone())];
        for m in MODULES {
            let level = overrides.get(*m).unwrap_or(default);
            out.push((m.to_string(), level.clone()));
        }
        for (m, level) in overrides {
            if !MODULES.contains(&m.as_str()) {
                out.push((m.clone(), level.clone()));
            }
        }
        out
    }

    /// Sets every module (`None`, clearing overrides) or one module to `level`.
    pub fn set(&self, module: Option<&str>, level: &str) -> Result<(), LogError> {
        let level = match level.to_ascii_lowercase().as_str() {
            "critical" => "error".to_string(),
            l if LEVELS.contains(&l) => l.to_string(),
            _ => return Err(LogError::Level(level.to_string())),
        };
        let Ok(mut state) = self.state.lock() else {
            return Err(LogError::Apply("log state poisoned".into()));
        };
        let mut next = state.clone();
        match module {
            None => {
                next.0 = level;
                next.1.clear();
            }
            Some(m) => {
                let valid = MODULES.contains(&m)
                    || (m.contains("::")
                        && m.split("::").all(|p| {
                            !p.is_empty()
                                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        }));
                if !valid {
                    return Err(LogError::Module(m.to_string()));
                }
                next.1.insert(m.to_string(), level);
            }
        }
        (self.apply)(&directives(&next.0, &next.1)).map_err(LogError::Apply)?;
        *state = next;
        Ok(())
    }
}

/// `default,proxy::m=level,...` for a tracing filter.
pub fn directives(default: &str, overrides: &BTreeMap<String, String>) -> String {
    let mut out = default.to_string();
    for (m, level) in overrides {
        let target = if m.contains("::") {
            m.clone()
        } else {
            format!("proxy::{m}")
        };
        out.push_str(&format!(",{target}={level}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn levels_become_directives_and_bad_input_changes_nothing() {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let sink = applied.clone();
        let l = LogLevels::new("info", move |d| {
            sink.lock().unwrap().push(d.to_string());
            Ok(())
        });
        l.set(Some("http"), "debug").unwrap();
        l.set(Some("bowline::cmd"), "trace").unwrap();
        assert_eq!(
            applied.lock().unwrap().last().unwrap(),
            "info,bowline::cmd=trace,proxy::http=debug"
        );
        assert_eq!(
            l.set(Some("nope"), "debug"),
            Err(LogError::Module("nope".into()))
        );
        assert_eq!(l.set(None, "loud"), Err(LogError::Level("loud".into())));
        let levels = l.levels();
        assert!(levels.contains(&("http".into(), "debug".into())));
        assert!(levels.contains(&("tcp".into(), "info".into())));
        l.set(None, "critical").unwrap();
        assert_eq!(applied.lock().unwrap().last().unwrap(), "error");
        assert!(l.levels().iter().all(|(_, v)| v == "error"));
    }
}
