//! Reading a mesh config: a `mesh.yaml` (plain YAML of the MeshConfig message, as Helm's
//! `meshConfig` and `istioctl --meshConfigFile` take it), or the Kubernetes form, the `istio`
//! ConfigMap whose `data.mesh` holds that YAML as a string.
//!
//! Decoding is strict: an unknown field is an error with its path and line. Problems inside a
//! ConfigMap's `mesh` string point at their own line when the string is a literal block (`|`),
//! else at the `mesh:` key.

use serde_json::Value;

use super::MeshConfig;
use crate::resource::{clean_serde_message, Problem};
use crate::source::{parse_stream, Positions, RawDocument};
use crate::types::destination_rule::ZoneAwareLoadBalancerSetting;
use crate::validate::{Report, Severity};

const RESOURCE: &str = "MeshConfig";

/// A mesh config and enough of its source to place findings on lines.
#[derive(Debug, Clone)]
pub struct LoadedMesh {
    pub config: MeshConfig,
    pub file: String,
    lines: LineMap,
}

#[derive(Debug, Clone)]
enum LineMap {
    /// The mesh config is the document itself.
    Direct(Positions),
    /// The mesh config is the `data.mesh` string of a ConfigMap whose `mesh:` key is on
    /// `key_line`; `literal` when its lines map one to one onto the file's.
    Embedded {
        positions: Positions,
        key_line: usize,
        literal: bool,
    },
}

impl LoadedMesh {
    /// Line of a field path of the mesh config (`defaultConfig.drainDuration`).
    pub fn line_of(&self, path: &str) -> usize {
        match &self.lines {
            LineMap::Direct(p) => p.line_of(path),
            LineMap::Embedded {
                positions,
                key_line,
                literal,
            } => {
                if *literal {
                    key_line + positions.line_of(path)
                } else {
                    *key_line
                }
            }
        }
    }

    /// Istio's validation of this mesh config, as problems with file and line.
    pub fn problems(&self) -> Vec<Problem> {
        let mut r = Report::default();
        crate::validate::mesh::validate(&self.config, &mut r);
        r.findings
            .into_iter()
            .map(|f| Problem {
                file: self.file.clone(),
                line: self.line_of(&f.path),
                resource: Some(RESOURCE.into()),
                path: f.path,
                message: f.message,
                severity: f.severity,
            })
            .collect()
    }
}

/// Parse a mesh config file (or the `istio` ConfigMap). An empty file is the default mesh.
pub fn load_mesh_config(file: &str, text: &str) -> Result<MeshConfig, Vec<Problem>> {
    read_mesh_config(file, text).map(|m| m.config)
}

/// [`load_mesh_config`], keeping what is needed to put validation findings on lines.
pub fn read_mesh_config(file: &str, text: &str) -> Result<LoadedMesh, Vec<Problem>> {
    let fail = |line: usize, path: &str, message: String| Problem {
        file: file.to_string(),
        line,
        resource: Some(RESOURCE.into()),
        path: path.to_string(),
        message,
        severity: Severity::Error,
    };
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for d in parse_stream(file, text) {
        match d {
            Ok(doc) => docs.push(doc),
            Err(e) => {
                let mut p = Problem::from(e);
                p.resource = Some(RESOURCE.into());
                problems.push(p);
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let doc = match docs.len() {
        0 => {
            return Ok(LoadedMesh {
                config: MeshConfig::default(),
                file: file.to_string(),
                lines: LineMap::Direct(Positions::default()),
            })
        }
        1 => docs.remove(0),
        _ => match docs.iter().position(is_istio_config_map) {
            Some(i) => docs.swap_remove(i),
            None => {
                return Err(vec![fail(
                    docs[1].positions.line_of(""),
                    "",
                    "a mesh config file holds one document (or the istio ConfigMap among others)"
                        .into(),
                )])
            }
        },
    };
    let RawDocument {
        value, positions, ..
    } = doc;
    let Value::Object(obj) = &value else {
        return Err(vec![fail(
            positions.line_of(""),
            "",
            "a mesh config must be a mapping of MeshConfig fields".into(),
        )]);
    };
    match obj.get("kind") {
        None => decode(file, value, LineMap::Direct(positions)),
        Some(Value::String(k)) if k == "ConfigMap" => {
            let Some(mesh) = obj
                .get("data")
                .and_then(|d| d.as_object())
                .and_then(|d| d.get("mesh"))
            else {
                return Err(vec![fail(
                    positions.line_of("data"),
                    "data.mesh",
                    "the ConfigMap has no data.mesh key holding the mesh config".into(),
                )]);
            };
            let Value::String(inner) = mesh else {
                return Err(vec![fail(
                    positions.line_of("data.mesh"),
                    "data.mesh",
                    "data.mesh must be a string holding the mesh config YAML".into(),
                )]);
            };
            let key_line = positions.line_of("data.mesh");
            let literal = text
                .lines()
                .nth(key_line.saturating_sub(1))
                .and_then(|l| l.split_once("mesh:"))
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('|'));
            let wrap = |p: Problem| Problem {
                line: if literal { key_line + p.line } else { key_line },
                ..p
            };
            let mut inner_docs = Vec::new();
            for d in parse_stream(file, inner) {
                match d {
                    Ok(doc) => inner_docs.push(doc),
                    Err(e) => {
                        let mut p = wrap(Problem::from(e));
                        p.resource = Some(RESOURCE.into());
                        problems.push(p);
                    }
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            if inner_docs.len() > 1 {
                return Err(vec![fail(
                    key_line,
                    "data.mesh",
                    "data.mesh holds more than one YAML document".into(),
                )]);
            }
            let Some(inner_doc) = inner_docs.pop() else {
                return Ok(LoadedMesh {
                    config: MeshConfig::default(),
                    file: file.to_string(),
                    lines: LineMap::Direct(positions),
                });
            };
            let lines = LineMap::Embedded {
                positions: inner_doc.positions,
                key_line,
                literal,
            };
            if !inner_doc.value.is_object() {
                return Err(vec![fail(
                    key_line,
                    "data.mesh",
                    "data.mesh must hold a mapping of MeshConfig fields".into(),
                )]);
            }
            decode(file, inner_doc.value, lines)
        }
        Some(k) => Err(vec![fail(
            positions.line_of("kind"),
            "kind",
            format!(
                "expected MeshConfig fields or the istio ConfigMap, not a resource of kind {k}"
            ),
        )]),
    }
}

fn is_istio_config_map(d: &RawDocument) -> bool {
    let v = &d.value;
    v.get("kind").and_then(Value::as_str) == Some("ConfigMap")
        && v.pointer("/metadata/name").and_then(Value::as_str) == Some("istio")
        && v.pointer("/data/mesh").is_some()
}

fn decode(file: &str, value: Value, lines: LineMap) -> Result<LoadedMesh, Vec<Problem>> {
    let mut loaded = LoadedMesh {
        config: MeshConfig::default(),
        file: file.to_string(),
        lines,
    };
    match serde_path_to_error::deserialize::<_, MeshConfig>(&value) {
        Ok(config) => {
            loaded.config = config;
            Ok(loaded)
        }
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            Err(vec![Problem {
                file: file.to_string(),
                line: loaded.line_of(&path),
                resource: Some(RESOURCE.into()),
                message: clean_serde_message(&e.inner().to_string()),
                path,
                severity: Severity::Error,
            }])
        }
    }
}

/// `zoneAwareLbSetting`, read as jsonpb reads it: `minClusterSize` (a uint64) may also be a
/// string of digits. The rest decodes as the DestinationRule message does.
pub(super) fn zone_aware_lb<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ZoneAwareLoadBalancerSetting>, D::Error> {
    use serde::de::Error;
    use serde::Deserialize;
    let Some(mut v) = Option::<Value>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(size) = v.get_mut("minClusterSize") {
        if let Some(n) = size.as_str().and_then(|s| s.trim().parse::<u64>().ok()) {
            *size = Value::from(n);
        }
    }
    serde_path_to_error::deserialize(&v).map(Some).map_err(|e| {
        let inner = clean_serde_message(&e.inner().to_string());
        match e.path().to_string().as_str() {
            "." => D::Error::custom(inner),
            p => D::Error::custom(format!("{p}: {inner}")),
        }
    })
}
