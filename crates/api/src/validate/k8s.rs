//! The few checks Bowline makes on Kubernetes workload kinds: what it relies on to build the
//! registry (ports in range, label syntax).

use super::{at, fields, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::k8s::ServiceSpec;

pub fn validate_service(meta: &ObjectMeta, svc: &ServiceSpec, r: &mut Report) {
    fields::labels(r, "metadata.labels", &meta.labels);
    for (i, p) in svc.spec.ports.iter().enumerate() {
        r.check(at(&idx("spec.ports", i), "port"), fields::port(p.port));
    }
}
