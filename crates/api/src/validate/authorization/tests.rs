//! AuthorizationPolicy validation cases the conformance data does not cover, and the YAML
//! helper the security and telemetry tests share.

use crate::resource::{load_str, Decoded};
use crate::validate::Severity;

/// What validating one YAML document gave: errors and warnings as `path: message`.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
    /// Whether some error's `path: message` contains `needle`.
    pub fn error_has(&self, needle: &str) -> bool {
        self.errors.iter().any(|e| e.contains(needle))
    }
    pub fn warning_has(&self, needle: &str) -> bool {
        self.warnings.iter().any(|e| e.contains(needle))
    }
}

pub(crate) fn outcome(yaml: &str) -> Outcome {
    let mut out = Outcome {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut docs = load_str("test.yaml", yaml);
    assert_eq!(docs.len(), 1, "one document expected");
    let problems = match docs.remove(0) {
        Decoded::Resource(r) => r.problems(),
        Decoded::Invalid(p) => p,
        Decoded::Other(..) => panic!("not a known kind"),
    };
    for p in problems {
        let line = format!("{}: {}", p.path, p.message);
        match p.severity {
            Severity::Error => out.errors.push(line),
            Severity::Warning => out.warnings.push(line),
        }
    }
    out
}

fn policy(meta_extra: &str, spec: &str) -> Outcome {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    outcome(&format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: ns\n{meta_extra}spec:\n{spec}"
    ))
}

fn spec(s: &str) -> Outcome {
    policy("", s)
}

fn dry_run(value: &str, action: &str) -> Outcome {
    policy(
        &format!("  annotations:\n    istio.io/dry-run: \"{value}\"\n"),
        &format!("action: {action}\nrules:\n- {{}}"),
    )
}

#[test]
fn dry_run_takes_go_booleans_on_allow_and_deny() {
    for v in ["1", "t", "TRUE", "False", "0"] {
        assert!(dry_run(v, "ALLOW").ok(), "{v}");
        assert!(dry_run(v, "DENY").ok(), "{v}");
    }
    for v in ["yes", "", "tRUE"] {
        assert!(dry_run(v, "ALLOW").error_has("invalid value"), "{v}");
    }
    assert!(dry_run("true", "AUDIT").error_has("only supports action ALLOW/DENY"));
}

#[test]
fn custom_action_rules() {
    let o = spec("action: CUSTOM\nprovider:\n  name: ext\nrules:\n- from:\n  - source:\n      serviceAccounts: [ns/sa]\n      trustDomains: [td]\n  when:\n  - key: source.trustDomain\n    values: [td]\n  - key: request.auth.claims[iss]\n    values: [x]");
    assert!(o.error_has("source.serviceAccounts: From.ServiceAccounts is currently not supported"));
    assert!(o.error_has("source.trustDomains: From.TrustDomains is currently not supported"));
    assert!(o.error_has("when[0].key: source.trustDomain is currently not supported"));
    assert!(o.error_has("when[1].key: request.auth.claims[iss] is currently not supported"));
    // IPs and operations are fine for an external authorizer.
    let ok = spec("action: CUSTOM\nprovider:\n  name: ext\nrules:\n- from:\n  - source:\n      ipBlocks: [10.0.0.0/8]\n  to:\n  - operation:\n      paths: [/admin]");
    assert!(ok.ok(), "{ok:?}");
    assert!(
        spec("action: CUSTOM\nprovider:\n  name: ext").error_has("CUSTOM action without `rules`")
    );
}

#[test]
fn empty_rules_are_absent_rules() {
    assert!(spec("action: DENY\nrules: []").error_has("DENY action without `rules`"));
    assert!(spec("action: AUDIT").ok());
    assert!(spec("action: ALLOW\nrules: []").ok());
    assert!(spec("action: DENY\nprovider:\n  name: x\nrules:\n- {}").error_has("found DENY"));
}

#[test]
fn source_values() {
    let o = spec("rules:\n- from:\n  - source:\n      trustDomains: [a/b, '*x*']\n      notTrustDomains: [a*b]\n      ipBlocks: [10.0.0.0/33, '::1/128', 'fe80::1%eth0']\n      notRemoteIpBlocks: ['1.2.3.4/08']");
    assert!(o.error_has("trustDomains[0]: trust domain must not contain '/'"));
    assert!(o.error_has("trustDomains[1]: at most one wildcard"));
    assert!(o.error_has("notTrustDomains[0]: wildcard is only allowed at the start or end"));
    assert!(o.error_has("ipBlocks[0]: bad CIDR range (10.0.0.0/33)"));
    assert!(!o.error_has("ipBlocks[1]"));
    assert!(!o.error_has("ipBlocks[2]"));
    assert!(o.error_has("notRemoteIpBlocks[0]: bad CIDR range"));

    let many: Vec<String> = (0..17).map(|i| format!("sa{i}")).collect();
    let o = spec(&format!(
        "rules:\n- from:\n  - source:\n      serviceAccounts: [{}]\n      notServiceAccounts: ['ns/*', a/b/c, /sa, 'ns/']",
        many.join(", ")
    ));
    assert!(o.error_has("serviceAccounts: may not have more than 16 values"));
    assert!(o.error_has("notServiceAccounts[0]: wildcard not allowed"));
    assert!(o.error_has("notServiceAccounts[1]: expected format"));
    assert!(o.error_has("notServiceAccounts[2]: expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace"));
    assert!(o.error_has("notServiceAccounts[3]: expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount"));
}

#[test]
fn operation_values() {
    let o = spec("rules:\n- to:\n  - operation:\n      ports: ['0', '65535', '65536', '+80']\n      paths: ['/{**}/{*}', '/a/{x}', '/a/{*}/b c', '/a/{*}/b', '/{**}']\n      notPaths: ['/x/*']");
    assert!(!o.error_has("ports[0]"));
    assert!(!o.error_has("ports[1]"));
    assert!(o.error_has("ports[2]: bad port (65536)"));
    assert!(o.error_has("ports[3]: bad port (+80)"));
    assert!(o.error_has("paths[0]: invalid or unsupported path {**}/{*}, found in Paths. {**} is not the last operator"));
    assert!(o.error_has("paths[1]: invalid or unsupported path a/{x}"));
    assert!(o.error_has(
        "paths[2]: invalid or unsupported path a/{*}/b c, found in Paths. Contains segment b c"
    ));
    assert!(!o.error_has("paths[3]"));
    assert!(!o.error_has("paths[4]"));
    assert!(!o.error_has("notPaths"));
}

#[test]
fn condition_keys_and_values() {
    let o = spec("rules:\n- when:\n  - key: destination.port\n    values: ['80', '99999']\n  - key: destination.labels[app]\n    values: [x]\n    notValues: [y]\n  - key: request.auth.claims[]\n    values: [x]\n  - key: experimental.envoy.filters.a[b]\n    values: [x]\n  - key: source.serviceAccount\n    values: [ns/sa, 'a/*']\n  - key: remote.ip\n    notValues: [1.2.3.4/24]\n  - key: destination.user\n    values: [u]");
    assert!(o.error_has(
        "when[0].values[1]: invalid `value` for `key` destination.port: bad port (99999)"
    ));
    assert!(o.error_has("when[1].key: invalid `key` destination.labels[app]: attribute destination.labels[app] is replaced by the workload selector"));
    assert_eq!(o.errors.iter().filter(|e| e.contains("when[1]")).count(), 1);
    assert!(o.error_has("when[2].key: invalid `key` request.auth.claims[]: bad key"));
    assert!(!o.error_has("when[3]"));
    assert!(o.error_has(
        "when[4].values[1]: invalid `value` for `key` source.serviceAccount: wildcard not allowed"
    ));
    assert!(!o.error_has("when[5]"));
    assert!(o.error_has("when[6].key: invalid `key` destination.user: deprecated attribute"));
}

#[test]
fn deny_warning_needs_http_only_rules() {
    let ports =
        spec("action: DENY\nrules:\n- to:\n  - operation:\n      ports: ['80']\n      paths: [/a]");
    assert!(ports.ok() && ports.warnings.is_empty(), "{ports:?}");
    let tcp_source = spec("action: DENY\nrules:\n- from:\n  - source:\n      namespaces: [ns]");
    assert!(tcp_source.warnings.is_empty(), "{tcp_source:?}");
    let when_only =
        spec("action: DENY\nrules:\n- when:\n  - key: request.headers[x]\n    values: [y]");
    assert!(when_only.warnings.is_empty(), "{when_only:?}");
    let http = spec("action: DENY\nrules:\n- from:\n  - source:\n      namespaces: [ns]\n  to:\n  - operation:\n      methods: [GET]");
    assert!(http.warning_has("spec.rules[0]: configured AuthorizationPolicy will deny all traffic"));
    let allow = spec("rules:\n- to:\n  - operation:\n      methods: [GET]");
    assert!(allow.warnings.is_empty());
}

#[test]
fn schema_limits() {
    let refs: String = (0..17)
        .map(|i| format!("\n- kind: Service\n  name: s{i}"))
        .collect();
    assert!(spec(&format!("targetRefs:{refs}"))
        .error_has("spec.targetRefs: Too many: 17: must have at most 16 items"));
    let long = "v".repeat(64);
    assert!(spec(&format!("selector:\n  matchLabels:\n    app: {long}"))
        .error_has("spec.selector.matchLabels.app: Too long: value of label \"app\" may not be longer than 63"));
    let long_name = "n".repeat(254);
    assert!(
        spec(&format!("targetRef:\n  kind: Service\n  name: {long_name}"))
            .error_has("spec.targetRef.name: Too long: may not be longer than 253")
    );
    assert!(spec("targetRef:\n  group: ''\n  kind: Service\n  name: svc").ok());
}

#[test]
fn unknown_fields_and_enums_are_refused() {
    assert!(!spec("action: MAYBE").ok());
    assert!(!spec("rules:\n- from:\n  - source:\n      principal: [x]").ok());
    assert!(!spec("rules:\n- when:\n  - key: source.ip\n    value: [1.2.3.4]").ok());
}
