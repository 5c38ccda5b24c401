//! `conditions.ConditionAnalyzer`: status conditions that say something failed (a waypoint not
//! bound, a Gateway API route not accepted...), IST0171.

use serde_json::Value;

use super::{Analyzer, Code, Context, Message, Object};
use crate::resource::Kind;

pub struct NegativeConditions;

/// Condition types that are bad news when `False`, per kind.
fn negative_when_false(kind: &str, group: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Service")
        | ("networking.istio.io", "ServiceEntry")
        | ("networking.istio.io", "WorkloadEntry") => &["istio.io/WaypointBound"],
        ("security.istio.io", "AuthorizationPolicy") => &["ZtunnelAccepted", "WaypointAccepted"],
        ("gateway.networking.k8s.io", "Gateway" | "HTTPRoute" | "GRPCRoute") => {
            &["Accepted", "Programmed", "ResolvedRefs"]
        }
        _ => &[],
    }
}

impl Analyzer for NegativeConditions {
    fn name(&self) -> &'static str {
        "conditions.ConditionAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        let mut check = |obj: Object<'_>, kind: &str, group: &str, status: Option<&Value>| {
            let watched = negative_when_false(kind, group);
            if watched.is_empty() {
                return;
            }
            for c in conditions(kind, status) {
                let (t, st) = (str_of(c, "type"), str_of(c, "status"));
                let (reason, msg) = (str_of(c, "reason"), str_of(c, "message"));
                let negative = watched.contains(&t) && st == "False";
                // A waypoint that accepted only part of a policy says so with status True.
                let partial = kind == "AuthorizationPolicy"
                    && t == "WaypointAccepted"
                    && reason == "PartiallyInvalid";
                if negative || partial {
                    out.push(Message::new(
                        Code::NegativeConditionStatus,
                        &obj,
                        "status",
                        format!("condition {t} is {st} (reason {reason}): {msg}"),
                    ));
                }
            }
        };
        for r in cx.all() {
            if matches!(
                r.kind,
                Kind::Service
                    | Kind::ServiceEntry
                    | Kind::WorkloadEntry
                    | Kind::AuthorizationPolicy
            ) {
                check(
                    Object::Resource(r),
                    r.kind.name(),
                    r.kind.group(),
                    r.status.as_ref(),
                );
            }
        }
        for o in cx.others.iter().copied() {
            check(Object::Other(o), &o.kind, o.group(), o.value.get("status"));
        }
    }
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The conditions of an object's status: top-level `conditions`, or for routes each parent's.
fn conditions<'v>(kind: &str, status: Option<&'v Value>) -> Vec<&'v Value> {
    let Some(status) = status else {
        return Vec::new();
    };
    let list = |v: &'v Value| {
        v.get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    if matches!(kind, "HTTPRoute" | "GRPCRoute") {
        status
            .get("parents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(list)
            .collect()
    } else {
        list(status).collect()
    }
}
