//! PeerAuthentication for one workload: the mTLS mode of each inbound port, with Istio's
//! precedence. A policy selecting the workload beats its namespace's policy (no selector), which
//! beats the mesh policy (no selector, in the root namespace); `UNSET` inherits from the next
//! level, and PERMISSIVE is the default at the top. Port-level modes exist only on a selecting
//! policy and override its mode for that workload port; `UNSET` there inherits the workload's.
//!
//! Several policies at one level: Istio takes the oldest; files carry no creation time, so the
//! first by name is taken, with a warning.

use std::collections::BTreeMap;

use api::types::authentication::{MtlsMode, PeerAuthentication};
use api::{Resource, Spec};

use super::{labels_match, Cx};
use crate::snapshot::PeerMtls;

/// The modes that apply to the proxy's workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PeerModes {
    /// For every port without its own mode (and for the inbound passthrough).
    pub workload: PeerMtls,
    /// Port-level overrides, already inherited (never `UNSET`).
    pub ports: BTreeMap<u16, PeerMtls>,
}

impl PeerModes {
    pub fn port(&self, port: u16) -> PeerMtls {
        self.ports.get(&port).copied().unwrap_or(self.workload)
    }
}

pub(super) fn modes(cx: &mut Cx<'_>) -> PeerModes {
    let ns = cx.proxy.namespace.clone();
    let root = cx.mesh.root_namespace().to_string();
    let all: Vec<(&Resource, &PeerAuthentication)> = cx
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::PeerAuthentication(pa) => Some((*r, pa.as_ref())),
            _ => None,
        })
        .collect();
    let selects = |pa: &PeerAuthentication| {
        pa.selector
            .as_ref()
            .filter(|s| !s.match_labels.is_empty())
            .map(|s| labels_match(&s.match_labels, &cx.proxy.labels))
    };
    let (workload, w_extra) = pick(
        "workload",
        all.iter()
            .copied()
            .filter(|(r, pa)| r.namespace() == ns && selects(pa) == Some(true))
            .collect(),
    );
    let (namespace, n_extra) = pick(
        "namespace",
        all.iter()
            .copied()
            .filter(|(r, pa)| r.namespace() == ns && selects(pa).is_none())
            .collect(),
    );
    let (mesh, m_extra) = pick(
        "mesh",
        all.iter()
            .copied()
            .filter(|(r, pa)| r.namespace() == root && selects(pa).is_none())
            .collect(),
    );
    for (chosen, extra) in [(workload, w_extra), (namespace, n_extra), (mesh, m_extra)] {
        if let (Some((r, _)), Some((level, extra))) = (chosen, extra) {
            cx.warn(
                r,
                format!(
                    "more than one {level}-level PeerAuthentication applies; this one (first by name) wins over {}",
                    extra.join(", ")
                ),
            );
        }
    }
    let mode_of = |p: Option<(&Resource, &PeerAuthentication)>| {
        p.and_then(|(_, pa)| pa.mtls.as_ref())
            .map(|m| m.mode)
            .unwrap_or(MtlsMode::Unset)
    };
    let inherited = [mode_of(workload), mode_of(namespace), mode_of(mesh)]
        .into_iter()
        .find(|m| *m != MtlsMode::Unset)
        .unwrap_or(MtlsMode::Permissive);
    let workload_mode = convert(inherited);
    let mut ports = BTreeMap::new();
    if let Some((_, pa)) = workload {
        for (port, m) in pa.port_level_mtls.iter().flatten() {
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            let mode = match m.mode {
                MtlsMode::Unset => workload_mode,
                other => convert(other),
            };
            ports.insert(port, mode);
        }
    }
    PeerModes {
        workload: workload_mode,
        ports,
    }
}

type Found<'a> = Option<(&'a Resource, &'a PeerAuthentication)>;

/// The first policy of a level, and the names of the others when there are several.
fn pick<'a>(
    level: &str,
    found: Vec<(&'a Resource, &'a PeerAuthentication)>,
) -> (Found<'a>, Option<(String, Vec<String>)>) {
    let chosen = found.first().copied();
    let extra: Vec<String> = found.iter().skip(1).map(|(r, _)| r.id()).collect();
    (
        chosen,
        (!extra.is_empty()).then(|| (level.to_string(), extra)),
    )
}

fn convert(m: MtlsMode) -> PeerMtls {
    match m {
        MtlsMode::Strict => PeerMtls::Strict,
        MtlsMode::Disable => PeerMtls::Disable,
        MtlsMode::Permissive | MtlsMode::Unset => PeerMtls::Permissive,
    }
}
