//! Validation of AuthorizationPolicy: Istio's `ValidateAuthorizationPolicy` (with the
//! `istio.io/dry-run` annotation rules), the CRD schema limits and its CEL rule on sources.
//!
//! Its selector/targetRef checks are [`policy_scope`] (from `fields`, shared with the other policy
//! kinds).

pub mod values;

#[cfg(test)]
pub(crate) mod tests;

use super::{at, idx, Report};
use crate::meta::ObjectMeta;
use crate::types::authorization::*;

const DRY_RUN: &str = "istio.io/dry-run";
/// CRD `maxItems` of `rules` and of each rule's `from`.
const MAX_RULES: usize = 512;

pub fn validate(meta: &ObjectMeta, spec: &AuthorizationPolicy, r: &mut Report) {
    dry_run(meta, spec, r);
    policy_scope(
        r,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    action_and_provider(spec, r);
    if spec.rules.len() > MAX_RULES {
        r.error("spec.rules", format!("must have at most {MAX_RULES} items"));
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        self::rule(&idx("spec.rules", i), rule, spec.action, r);
    }
}

pub use super::fields::policy_scope;

/// `istio.io/dry-run` is only for ALLOW and DENY policies, and must be a Go boolean.
fn dry_run(meta: &ObjectMeta, spec: &AuthorizationPolicy, r: &mut Report) {
    let Some(value) = meta.annotations.get(DRY_RUN) else {
        return;
    };
    let path = at("metadata.annotations", DRY_RUN);
    let id = format!("{}/{}", meta.namespace_or_default(), meta.name);
    match spec.action {
        Action::Allow | Action::Deny => {
            const GO_BOOLS: [&str; 12] = [
                "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
            ];
            if !GO_BOOLS.contains(&value.as_str()) {
                r.error(
                    path,
                    format!("{id} has annotation {DRY_RUN} with invalid value ({value}): want true or false"),
                );
            }
        }
        other => r.error(
            path,
            format!(
                "the annotation {DRY_RUN} currently only supports action ALLOW/DENY, found action {} in {id}",
                other.name()
            ),
        ),
    }
}

fn action_and_provider(spec: &AuthorizationPolicy, r: &mut Report) {
    let never_triggered = |action: &str| {
        format!(
            "{action} action without `rules` is meaningless as it will never be triggered, \
             add an empty rule `{{}}` if you want it be triggered for every request"
        )
    };
    match spec.action {
        Action::Custom => {
            if spec.rules.is_empty() {
                r.error("spec.rules", never_triggered("CUSTOM"));
            } else if spec
                .provider
                .as_ref()
                .and_then(|p| p.name.as_deref())
                .unwrap_or("")
                .is_empty()
            {
                let path = if spec.provider.is_some() {
                    "spec.provider.name"
                } else {
                    "spec"
                };
                r.error(path, "`provider.name` must not be empty");
            }
            for (i, rule) in spec.rules.iter().enumerate() {
                custom_rule(&idx("spec.rules", i), rule, r);
            }
        }
        action => {
            if spec.provider.is_some() {
                r.error(
                    "spec.provider",
                    format!(
                        "`provider` must not be with non CUSTOM action, found {}",
                        action.name()
                    ),
                );
            }
            if action == Action::Deny && spec.rules.is_empty() {
                r.error("spec.rules", never_triggered("DENY"));
            }
        }
    }
}

/// The external authorizer sees no peer identity, JWT or namespace: rules of a CUSTOM policy
/// may not match on them.
fn custom_rule(path: &str, rule: &Rule, r: &mut Report) {
    let unsupported = |what: &str| format!("{what} is currently not supported with CUSTOM action");
    for (j, from) in rule.from.iter().flatten().enumerate() {
        let Some(src) = &from.source else { continue };
        let p = at(&idx(&at(path, "from"), j), "source");
        let fields: [(&str, &str, &Vec<String>); 10] = [
            ("namespaces", "From.Namespaces", &src.namespaces),
            ("notNamespaces", "From.NotNamespaces", &src.not_namespaces),
            (
                "serviceAccounts",
                "From.ServiceAccounts",
                &src.service_accounts,
            ),
            (
                "notServiceAccounts",
                "From.NotServiceAccounts",
                &src.not_service_accounts,
            ),
            ("trustDomains", "From.TrustDomains", &src.trust_domains),
            (
                "notTrustDomains",
                "From.NotTrustDomains",
                &src.not_trust_domains,
            ),
            ("principals", "From.Principals", &src.principals),
            ("notPrincipals", "From.NotPrincipals", &src.not_principals),
            (
                "requestPrincipals",
                "From.RequestPrincipals",
                &src.request_principals,
            ),
            (
                "notRequestPrincipals",
                "From.NotRequestPrincipals",
                &src.not_request_principals,
            ),
        ];
        for (field, name, list) in fields {
            if !list.is_empty() {
                r.error(at(&p, field), unsupported(name));
            }
        }
    }
    for (k, cond) in rule.when.iter().enumerate() {
        let key = cond.key.as_str();
        let identity = matches!(
            key,
            "source.namespace"
                | "source.serviceAccount"
                | "source.trustDomain"
                | "source.principal"
        );
        if identity || key.starts_with("request.auth.") {
            r.error(at(&idx(&at(path, "when"), k), "key"), unsupported(key));
        }
    }
}

fn rule(path: &str, rule: &Rule, action: Action, r: &mut Report) {
    let mut from_exists = false;
    let mut tcp_in_from = false;
    if let Some(from) = &rule.from {
        let fp = at(path, "from");
        if from.is_empty() {
            r.error(&fp, "`from` must not be empty");
        }
        if from.len() > MAX_RULES {
            r.error(&fp, format!("must have at most {MAX_RULES} items"));
        }
        for (j, f) in from.iter().enumerate() {
            let p = idx(&fp, j);
            match &f.source {
                None => r.error(&p, "`from.source` must not be nil"),
                Some(src) => {
                    from_exists = true;
                    tcp_in_from |= source(&at(&p, "source"), src, r);
                }
            }
        }
    }
    let mut to_exists = false;
    let mut tcp_in_to = false;
    if let Some(to) = &rule.to {
        let tp = at(path, "to");
        if to.is_empty() {
            r.error(&tp, "`to` must not be empty");
        }
        for (j, t) in to.iter().enumerate() {
            let p = idx(&tp, j);
            match &t.operation {
                None => r.error(&p, "`to.operation` must not be nil"),
                Some(op) => {
                    to_exists = true;
                    tcp_in_to |= operation(&at(&p, "operation"), op, r);
                }
            }
        }
    }
    for (k, cond) in rule.when.iter().enumerate() {
        condition(&idx(&at(path, "when"), k), cond, r);
    }
    // A DENY rule that only names HTTP attributes cannot match TCP traffic, and Istio then
    // denies all TCP traffic in scope rather than none.
    let http_only = (from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to);
    if action == Action::Deny && http_only {
        r.warning(
            path,
            "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope \
             due to the use of only HTTP attributes in a DENY rule; it is recommended to \
             explicitly specify the port",
        );
    }
}

/// Checks one source; returns whether it names anything a TCP connection has.
fn source(path: &str, src: &Source, r: &mut Report) -> bool {
    let has_sa = !src.service_accounts.is_empty() || !src.not_service_accounts.is_empty();
    let has_ns_or_principal = !src.principals.is_empty()
        || !src.not_principals.is_empty()
        || !src.namespaces.is_empty()
        || !src.not_namespaces.is_empty();
    if has_sa && has_ns_or_principal {
        r.error(
            path,
            "cannot set serviceAccounts with namespaces or principals",
        );
    }
    let lists: [(&str, &Vec<String>, Kind); 14] = [
        ("principals", &src.principals, Kind::Plain),
        ("notPrincipals", &src.not_principals, Kind::Plain),
        ("requestPrincipals", &src.request_principals, Kind::Plain),
        (
            "notRequestPrincipals",
            &src.not_request_principals,
            Kind::Plain,
        ),
        ("namespaces", &src.namespaces, Kind::Plain),
        ("notNamespaces", &src.not_namespaces, Kind::Plain),
        (
            "serviceAccounts",
            &src.service_accounts,
            Kind::ServiceAccount,
        ),
        (
            "notServiceAccounts",
            &src.not_service_accounts,
            Kind::ServiceAccount,
        ),
        ("ipBlocks", &src.ip_blocks, Kind::Ip),
        ("notIpBlocks", &src.not_ip_blocks, Kind::Ip),
        ("remoteIpBlocks", &src.remote_ip_blocks, Kind::Ip),
        ("notRemoteIpBlocks", &src.not_remote_ip_blocks, Kind::Ip),
        ("trustDomains", &src.trust_domains, Kind::TrustDomain),
        ("notTrustDomains", &src.not_trust_domains, Kind::TrustDomain),
    ];
    if lists.iter().all(|(_, l, _)| l.is_empty()) {
        r.error(path, "`from.source` must not be empty");
    }
    for (field, list, kind) in lists {
        check_list(&at(path, field), field, list, kind, r);
    }
    // Principals, namespaces, service accounts and IPs all exist for plain TCP (mTLS) traffic;
    // request principals and trust domains alone do not count, as in Istio.
    [
        &src.principals,
        &src.not_principals,
        &src.ip_blocks,
        &src.not_ip_blocks,
        &src.namespaces,
        &src.not_namespaces,
        &src.remote_ip_blocks,
        &src.not_remote_ip_blocks,
        &src.service_accounts,
        &src.not_service_accounts,
    ]
    .iter()
    .any(|l| !l.is_empty())
}

/// Checks one operation; returns whether it names ports (the only TCP attribute).
fn operation(path: &str, op: &Operation, r: &mut Report) -> bool {
    let lists: [(&str, &Vec<String>, Kind); 8] = [
        ("hosts", &op.hosts, Kind::Plain),
        ("notHosts", &op.not_hosts, Kind::Plain),
        ("ports", &op.ports, Kind::Port),
        ("notPorts", &op.not_ports, Kind::Port),
        ("methods", &op.methods, Kind::Plain),
        ("notMethods", &op.not_methods, Kind::Plain),
        ("paths", &op.paths, Kind::Path),
        ("notPaths", &op.not_paths, Kind::Path),
    ];
    if lists.iter().all(|(_, l, _)| l.is_empty()) {
        r.error(path, "`to.operation` must not be empty");
    }
    for (field, list, kind) in lists {
        check_list(&at(path, field), field, list, kind, r);
    }
    !op.ports.is_empty() || !op.not_ports.is_empty()
}

/// What a source or operation list holds, for its value checks.
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    ServiceAccount,
    TrustDomain,
    Ip,
    Port,
    Path,
}

fn check_list(path: &str, field: &str, list: &[String], kind: Kind, r: &mut Report) {
    // Istio names fields as in Go (`NotIpBlocks`); keep the YAML name, capitalised the same way.
    let mut go_name = field.to_string();
    if let Some(first) = go_name.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    if matches!(kind, Kind::ServiceAccount) && list.len() > values::MAX_SERVICE_ACCOUNTS {
        r.error(
            path,
            format!(
                "may not have more than {} values",
                values::MAX_SERVICE_ACCOUNTS
            ),
        );
    }
    for (i, v) in list.iter().enumerate() {
        let check = match kind {
            Kind::Plain => values::not_empty(&go_name, v),
            Kind::ServiceAccount => values::service_account(&go_name, v),
            Kind::TrustDomain => values::trust_domain(&go_name, v),
            Kind::Ip => values::not_empty(&go_name, v).and_then(|_| values::ip_or_cidr(v)),
            Kind::Port => values::not_empty(&go_name, v).and_then(|_| values::port(v)),
            Kind::Path => {
                values::not_empty(&go_name, v).and_then(|_| values::path_template(&go_name, v))
            }
        };
        r.check(idx(path, i), check);
    }
}

fn condition(path: &str, cond: &Condition, r: &mut Report) {
    let key = cond.key.as_str();
    if key.is_empty() {
        r.error(at(path, "key"), "`key` must not be empty");
        return;
    }
    if cond.values.is_empty() && cond.not_values.is_empty() {
        r.error(
            path,
            format!("at least one of `values` or `notValues` must be set for key {key}"),
        );
        return;
    }
    let mut key_reported = false;
    for (field, label, list) in [
        ("values", "value", &cond.values),
        ("notValues", "notValue", &cond.not_values),
    ] {
        match values::condition(key, list) {
            Ok(()) => {}
            Err((Some(i), e)) => r.error(
                idx(&at(path, field), i),
                format!("invalid `{label}` for `key` {key}: {e}"),
            ),
            // A bad key fails both lists the same way; say it once.
            Err((None, e)) if !key_reported => {
                key_reported = true;
                r.error(at(path, "key"), format!("invalid `key` {key}: {e}"));
            }
            Err((None, _)) => {}
        }
    }
}
