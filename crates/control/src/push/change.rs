//! What changed between two push epochs, as far as the compile is concerned: everything, or
//! only endpoints (of which hosts). An endpoint-only change lets each proxy shape patch the
//! clusters of those hosts into its last push instead of compiling again (see
//! `model::recompile_clusters`), which is the difference between milliseconds and most of a
//! second per change with ten thousand services.

use std::collections::BTreeSet;
use std::sync::Arc;

use api::Kind;
use model::registry::REGISTRY_KINDS;
use model::SharedRegistry;

use crate::store::ConfigSnapshot;

#[derive(Debug, PartialEq)]
pub enum Change {
    /// Compile every shape again.
    Full,
    /// Only the endpoints of these hosts moved since the epoch before (its registry is kept
    /// for the check some proxies need, see `model::recompile_clusters`).
    Endpoints {
        hosts: BTreeSet<String>,
        before: Arc<SharedRegistry>,
    },
}

/// What an epoch's registry was built from.
pub struct RegistryInputs<'a> {
    pub config: &'a ConfigSnapshot,
    pub registered_version: u64,
    pub registry: &'a SharedRegistry,
}

/// Above this many changed registry resources, building the registry anew is as cheap.
const MAX_PATCHED_RESOURCES: usize = 64;

/// The registry of `now`, patched from the one `was` built when the only registry inputs that
/// changed are ServiceEntries whose endpoints moved (see `Registry::with_endpoints_of`);
/// `None` when it must be built anew.
pub fn patched_registry(
    was: RegistryInputs<'_>,
    now: &ConfigSnapshot,
    registered_version: u64,
) -> Option<(SharedRegistry, BTreeSet<String>)> {
    if was.registered_version != registered_version
        || was.config.mesh.trust_domain() != now.mesh.trust_domain()
    {
        return None;
    }
    let mut changed = Vec::new();
    let empty = Default::default();
    for kind in REGISTRY_KINDS {
        let a = was.config.resources.get(&kind).unwrap_or(&empty);
        let b = now.resources.get(&kind).unwrap_or(&empty);
        if a.len() != b.len() {
            return None;
        }
        for ((ka, ea), (kb, eb)) in a.iter().zip(b) {
            if ka != kb {
                return None;
            }
            if !Arc::ptr_eq(ea, eb) {
                changed.push((&ea.resource, &eb.resource));
                if changed.len() > MAX_PATCHED_RESOURCES {
                    return None;
                }
            }
        }
    }
    let mut fresh = Vec::new();
    let (registry, hosts) =
        was.registry
            .registry
            .with_endpoints_of(&changed, now.mesh.trust_domain(), &mut fresh)?;
    let ids: BTreeSet<String> = changed.iter().map(|(_, r)| r.id()).collect();
    let mut warnings: Vec<_> = was
        .registry
        .warnings
        .iter()
        .filter(|w| !ids.contains(&w.resource))
        .cloned()
        .collect();
    warnings.extend(fresh);
    Some((SharedRegistry { registry, warnings }, hosts))
}

/// How `now` (with its registry) differs from the epoch before it. `moved` is what
/// [`patched_registry`] found, when it built `now_registry`: the registries need no comparing.
pub fn classify(
    was: &ConfigSnapshot,
    was_registry: &Arc<SharedRegistry>,
    now: &ConfigSnapshot,
    now_registry: &SharedRegistry,
    moved: Option<BTreeSet<String>>,
) -> Change {
    if !Arc::ptr_eq(&was.mesh, &now.mesh) && was.mesh != now.mesh {
        return Change::Full;
    }
    if !same_outside_registry(was, now) {
        return Change::Full;
    }
    match moved.or_else(|| {
        now_registry
            .registry
            .endpoint_changes(&was_registry.registry)
    }) {
        Some(hosts) => Change::Endpoints {
            hosts,
            before: was_registry.clone(),
        },
        None => Change::Full,
    }
}

/// Whether every resource the compile reads directly (all but the registry's inputs) is the
/// same object in both: the store keeps an unchanged file's decoded entries, so identity is
/// enough, and a false "changed" only costs a full compile.
fn same_outside_registry(was: &ConfigSnapshot, now: &ConfigSnapshot) -> bool {
    let direct = |kind: &&Kind| !REGISTRY_KINDS.contains(kind);
    let kinds: BTreeSet<&Kind> = was
        .resources
        .keys()
        .chain(now.resources.keys())
        .filter(direct)
        .collect();
    kinds.into_iter().all(
        |kind| match (was.resources.get(kind), now.resources.get(kind)) {
            (Some(a), Some(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, ea), (kb, eb))| ka == kb && Arc::ptr_eq(ea, eb))
            }
            (Some(m), None) | (None, Some(m)) => m.is_empty(),
            (None, None) => true,
        },
    )
}
