//! Unit tests for VirtualService rules the conformance cases do not reach: the CRD's oneOfs and
//! duration rules, decoding, gateway-bound hosts, JWT claim routing, SNI hosts, L4 matches, header
//! rules, retry vocabulary, regex syntax and the unreachable-rule warnings.

use crate::resource::{load_str, Decoded};
use crate::validate::Report;

/// Validate a VirtualService whose `spec` is `spec` (YAML, unindented), with extra metadata lines.
fn run_with(meta: &str, spec: &str) -> Result<Report, String> {
    let indent = |s: &str, n: usize| {
        s.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect::<String>()
    };
    let doc = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: t\n  namespace: default\n{}spec:\n{}",
        indent(meta, 2),
        indent(spec, 2)
    );
    match load_str("t.yaml", &doc).pop() {
        Some(Decoded::Resource(r)) => Ok(r.validate()),
        Some(Decoded::Invalid(p)) => Err(p
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")),
        _ => Err("no document".into()),
    }
}

fn run(spec: &str) -> Report {
    match run_with("", spec) {
        Ok(r) => r,
        Err(e) => panic!("did not decode: {e}\n{spec}"),
    }
}

fn errors(spec: &str) -> Vec<String> {
    run(spec)
        .errors()
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect()
}

fn warnings(spec: &str) -> Vec<String> {
    run(spec)
        .warnings()
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect()
}

#[track_caller]
fn assert_valid(spec: &str) {
    let e = errors(spec);
    assert!(e.is_empty(), "expected valid, got {e:?}\n{spec}");
}

#[track_caller]
fn assert_error(spec: &str, want: &str) {
    let e = errors(spec);
    assert!(
        e.iter().any(|m| m.contains(want)),
        "expected an error containing {want:?}, got {e:?}\n{spec}"
    );
}

#[track_caller]
fn assert_warning(spec: &str, want: &str) {
    let r = run(spec);
    let e: Vec<_> = r.errors().collect();
    assert!(e.is_empty(), "expected valid, got {e:?}");
    let w = warnings(spec);
    assert!(
        w.iter().any(|m| m.contains(want)),
        "expected a warning containing {want:?}, got {w:?}\n{spec}"
    );
}

/// A VirtualService for `a.example.com` with one HTTP rule whose extra lines are `rule`.
fn http_rule(rule: &str) -> String {
    let rule: String = rule.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "hosts: [a.example.com]\nhttp:\n- route:\n  - destination: {{host: a.example.com}}\n{rule}"
    )
}

#[test]
fn string_match_is_a_oneof() {
    assert_error(
        &http_rule("match:\n- uri: {exact: /a, prefix: /b}"),
        "spec.http[0].match[0].uri: only one of exact, prefix, regex may be set",
    );
    assert_error(
        &http_rule("match:\n- withoutHeaders: {x: {regex: '*', exact: a}}"),
        "only one of exact, prefix, regex",
    );
    assert_error(
        &http_rule("corsPolicy:\n  allowOrigins: [{exact: a, regex: b}]"),
        "only one of",
    );
}

#[test]
fn redirect_rules() {
    let redirect = |body: &str| format!("hosts: [a.example.com]\nhttp:\n- redirect: {body}");
    assert_error(
        &redirect("{uri: /a, port: 8080, derivePort: FROM_REQUEST_PORT}"),
        "only one of port, derivePort",
    );
    assert_valid(&redirect("{derivePort: FROM_PROTOCOL_DEFAULT}"));
    // An explicit zero still selects the port branch of the oneof.
    assert_valid(&redirect("{port: 0}"));
    assert_error(
        &redirect("{port: 70000}"),
        "redirect.port: port number 70000",
    );
    assert_error(&redirect("{scheme: ftp}"), "invalid redirect scheme");
    assert!(run_with("", &redirect("{derivePort: SOMETIMES}")).is_err());
}

#[test]
fn fault_rules() {
    assert_error(
        &http_rule("fault: {abort: {http2Error: PROTOCOL_ERROR}}"),
        "HTTP/2 abort fault injection not supported yet",
    );
    assert_error(
        &http_rule("fault: {abort: {httpStatus: 503, grpcStatus: UNAVAILABLE}}"),
        "only one of httpStatus, grpcStatus, http2Error",
    );
    assert_warning(
        &http_rule("fault: {abort: {percentage: {value: 5}}}"),
        "abort configured, but error type not set",
    );
    assert_error(
        &http_rule("fault: {delay: {exponentialDelay: 1s}}"),
        "exponentialDelay not supported yet",
    );
    assert_error(
        &http_rule("fault: {delay: {fixedDelay: 1s, exponentialDelay: 1s}}"),
        "only one of fixedDelay, exponentialDelay",
    );
    assert_valid(&http_rule("fault: {delay: {percentage: {value: 10}}}"));
    assert_error(&http_rule("fault: {}"), "must have an abort and/or a delay");
    assert_error(
        &http_rule("fault: {abort: {httpStatus: 503, percentage: {value: 0.00001}}}"),
        "neither 0.0, nor in range",
    );
}

#[test]
fn direct_response_body() {
    let dr = |body: &str| format!("hosts: [a.example.com]\nhttp:\n- directResponse: {body}");
    assert_valid(&dr("{status: 200, body: {bytes: aGVsbG8=}}"));
    assert_error(
        &dr("{status: 200, body: {string: a, bytes: aGVsbG8=}}"),
        "only one of string, bytes",
    );
    assert_error(&dr("{status: 200, body: {bytes: 'not base64!'}}"), "base64");
    let big = "x".repeat(1024 * 1024 + 1);
    assert_error(
        &dr(&format!("{{status: 200, body: {{string: {big}}}}}")),
        "must be less than 1MB",
    );
    assert_error(&dr("{body: {string: a}}"), "HTTP status 0 is not in range");
}

#[test]
fn durations_follow_istio_and_the_crd() {
    assert_valid(&http_rule("timeout: 1m"));
    assert_valid(&http_rule("timeout: 1.5s"));
    assert_error(&http_rule("timeout: 0s"), "greater than 1ms");
    assert_error(&http_rule("timeout: 1500us"), "ms precision");
    assert_error(
        &http_rule("corsPolicy: {maxAge: 1500ms}"),
        "accurate only to seconds precision",
    );
    assert!(run_with("", &http_rule("timeout: 5")).is_err());
}

#[test]
fn retry_on_vocabulary() {
    let retry = |on: &str| http_rule(&format!("retries: {{attempts: 3, retryOn: '{on}'}}"));
    assert_valid(&retry(
        "5xx,gateway-error,reset,retriable-4xx,cancelled,unavailable",
    ));
    assert_valid(&retry("503,429,+502"));
    assert_error(
        &retry("5xx, reset"),
        "\" reset\" is not a valid retryOn policy",
    );
    assert_error(&retry("5xx,"), "\"\" is not a valid retryOn policy");
    assert_error(&retry("599"), "\"599\" is not a valid retryOn policy");
    assert_valid(&http_rule(
        "retries: {attempts: 0, retryIgnorePreviousHosts: true}",
    ));
}

#[test]
fn header_manipulation() {
    assert_valid(&http_rule(
        "headers: {request: {set: {Host: a, x-a: '%REQ(x-b)%'}, remove: [x-c]}}",
    ));
    assert_error(
        &http_rule("headers: {request: {set: {':path': /a}}}"),
        "header cannot have \":\" prefix",
    );
    assert_error(
        &http_rule("headers: {request: {remove: [':authority']}}"),
        "header cannot have \":\" prefix",
    );
    assert_error(
        &http_rule("headers: {response: {set: {host: a}}}"),
        "cannot set Host header",
    );
    assert_error(
        &http_rule("headers: {response: {add: {x-a: \"a\\nb\"}}}"),
        "header value configuration",
    );
    assert_error(
        &http_rule("headers: {request: {set: {host: a}, add: {':authority': b}}}"),
        "authority header cannot be set multiple times",
    );
    assert_error(
        &http_rule("match:\n- headers: {'bad header': {exact: a}}"),
        "not a valid header name",
    );
    assert_valid(&http_rule("match:\n- headers: {':authority': {exact: a}}"));
}

#[test]
fn hosts_and_gateways() {
    let base = "http:\n- route:\n  - destination: {host: b.example.com}";
    assert_valid(&format!("hosts: ['*']\ngateways: [ns/gw]\n{base}"));
    assert_error(
        &format!("hosts: ['*']\ngateways: [ns/gw, mesh]\n{base}"),
        "wildcard host * is not allowed",
    );
    assert_valid(&format!("hosts: [10.0.0.1]\n{base}"));
    assert_error(
        &format!("hosts: ['*.example.com', a.example.com]\n{base}"),
        "spec.hosts[1]: duplicate hosts",
    );
    assert_error(
        &format!("hosts: [a.example.com]\ngateways: ['ns/gw.x']\n{base}"),
        "invalid value for gateway name",
    );
    assert_warning(
        &format!("hosts: [a.example.com]\ngateways: [gw.ns]\n{base}"),
        "prefer the <namespace>/<name> format: \"ns/gw\"",
    );
    // Like Istio, a bare gateway name ends the check of the list.
    assert_valid(&format!(
        "hosts: [a.example.com]\ngateways: [mesh, 'bad/na_me']\n{base}"
    ));
    assert_error(
        "hosts: [a.example.com]\nhttp:\n- route:\n  - destination: {host: b}\n  match:\n  - gateways: ['*/gw']",
        "invalid value for namespace",
    );
}

#[test]
fn gateway_semantics_annotation() {
    let spec = "hosts: [a.example.com]\ngateways: ['ns/gw.with.dots']\nhttp:\n- route:\n  - destination: {host: 'not a host'}";
    let plain = run_with("", spec).map(|r| r.has_errors());
    assert_eq!(plain, Ok(true));
    let converted = run_with(
        "annotations: {internal.istio.io/route-semantics: gateway}",
        spec,
    )
    .map(|r| r.has_errors());
    assert_eq!(converted, Ok(false));
}

#[test]
fn delegates() {
    assert_error(
        "tls:\n- match: [{sniHosts: [a.example.com]}]\n  route: [{destination: {host: a}}]",
        "delegate virtual service must have no tls route specified",
    );
    assert_valid("http:\n- match: [{sourceNamespace: foo}]\n  route: [{destination: {host: a}}]");
    assert_error(
        "hosts: [a.example.com]\nhttp:\n- delegate: {name: d}\n  redirect: {uri: /a}",
        "root HTTP route must not specify redirect",
    );
}

#[test]
fn jwt_claim_routing_needs_a_gateway() {
    let spec = |gw: &str| {
        format!("hosts: [a.example.com]\n{gw}http:\n- match:\n  - withoutHeaders: {{'@request.auth.claims.sub': {{exact: a}}}}\n  route: [{{destination: {{host: a}}}}]")
    };
    assert_valid(&spec("gateways: [ns/gw]\n"));
    assert_error(&spec(""), "JWT claim based routing");
}

#[test]
fn tls_routes() {
    let tls = |hosts: &str, m: &str| {
        format!("hosts: {hosts}\ntls:\n- match: {m}\n  route: [{{destination: {{host: a}}}}]")
    };
    assert_valid(&tls("['*.example.com']", "[{sniHosts: [a.example.com]}]"));
    assert_error(
        &tls("[a.example.com]", "[{sniHosts: [b.example.com]}]"),
        "is not a compatible subset",
    );
    assert_error(
        &tls("[a.example.com]", "[{sniHosts: []}]"),
        "at least one SNI host",
    );
    assert_error(
        &tls("[a.example.com]", "[]"),
        "at least one match condition",
    );
    assert_valid(&tls(
        "['outbound_.80_._.a.example.com']\ngateways: [ns/gw]",
        "[{sniHosts: ['outbound_.80_._.a.example.com']}]",
    ));
    assert_error(
        &tls(
            "[a.example.com]",
            "[{sniHosts: [a.example.com], destinationSubnets: [10.0.0.0/33]}]",
        ),
        "not a valid CIDR block",
    );
}

#[test]
fn tcp_matches() {
    let tcp = |m: &str| {
        format!(
            "hosts: [a.example.com]\ntcp:\n- match: [{m}]\n  route: [{{destination: {{host: a}}}}]"
        )
    };
    assert_valid(&tcp(
        "{port: 0, sourceSubnet: anything, destinationSubnets: [10.0.0.0/8, '::1']}",
    ));
    assert_error(&tcp("{destinationSubnets: [10.0.0.300]}"), "not a valid IP");
    assert_error(&tcp("{sourceLabels: {'-bad': a}}"), "invalid tag key");
    assert_error(&tcp("{port: 70000}"), "port number 70000");
    assert!(run_with("", &tcp("{port: -1}")).is_err());
}

#[test]
fn http_match_fields() {
    assert_error(
        &http_rule("match: [{sourceNamespace: Not_A_Label}]"),
        "sourceNamespace match",
    );
    assert_error(&http_rule("match: [{port: 70000}]"), "port number 70000");
    assert_error(
        &http_rule("match: [{uri: {regex: '(a'}}]"),
        "missing closing )",
    );
    let long = "a".repeat(1025);
    assert_error(
        &http_rule(&format!("match: [{{uri: {{regex: {long}}}}}]")),
        "regex is too large",
    );
    assert_error(
        &http_rule("match: [{authority: {regex: 'a{1001}'}}]"),
        "invalid repeat count",
    );
    assert_valid(&http_rule(
        "match: [{uri: {regex: '\\Q/a.b\\E.*'}, queryParams: {q: {regex: 'x{'}}}]",
    ));
}

#[test]
fn destinations() {
    assert_error(
        &http_rule("mirror: {host: '*'}"),
        "invalid destination host *",
    );
    assert_error(
        &http_rule("mirrors: [{destination: {host: a, subset: Bad_Subset}}]"),
        "subset name is invalid",
    );
    // Istio adds weights as int32 and so wraps around to zero here.
    assert_error(
        "hosts: [a.example.com]\nhttp:\n- route:\n  - {destination: {host: a}, weight: 2147483647}\n  - {destination: {host: b}, weight: 2147483647}\n  - {destination: {host: c}, weight: 2}",
        "total destination weight = 0",
    );
    assert!(run_with(
        "",
        "hosts: [a]\nhttp:\n- route:\n  - {destination: {host: a}, weight: 2147483648}"
    )
    .is_err());
}

#[test]
fn decoding() {
    assert!(run_with("", &http_rule("bogus: 1")).is_err());
    assert_warning(
        &http_rule("mirror_percent: 5\nmirror: {host: b}"),
        "deprecated setting",
    );
    assert!(run_with("", &http_rule("mirror_percent: 5\nmirrorPercent: 5")).is_err());
    assert_valid(&http_rule(
        "corsPolicy: {unmatchedPreflights: IGNORE, allowMethods: ['*'], allowHeaders: ['*']}",
    ));
    assert!(run_with("", &http_rule("corsPolicy: {unmatchedPreflights: MAYBE}")).is_err());
}

#[test]
fn unreachable_rules() {
    let two_catch_alls = "hosts: [a.example.com]\nhttp:\n- route: [{destination: {host: a}}]\n- name: second\n  route: [{destination: {host: b}}]";
    assert_warning(
        two_catch_alls,
        "rule \"second\" not used (only the last rule can have no matches)",
    );
    let after_catch_all = "hosts: [a.example.com]\nhttp:\n- route: [{destination: {host: a}}]\n- match: [{uri: {exact: /a}}]\n  route: [{destination: {host: b}}]";
    assert_warning(
        after_catch_all,
        "rule #1 not used (route without matches defined before)",
    );
    let duplicate = "hosts: [a.example.com]\nhttp:\n- match: [{uri: {exact: /a}, name: x}]\n  route: [{destination: {host: a}}]\n- match: [{uri: {exact: /a}, name: y}]\n  route: [{destination: {host: b}}]";
    let w = warnings(duplicate);
    assert!(
        w.iter()
            .any(|m| m.starts_with("spec.http[1].match[0]: ")
                && m.contains("match \"y\" is not used")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("rule #1 not used (all matches used by prior rules)")),
        "{w:?}"
    );
    let tcp = "hosts: [a.example.com]\ntcp:\n- match: [{port: 80}]\n  route: [{destination: {host: a}}]\n- match: [{port: 80}]\n  route: [{destination: {host: b}}]";
    assert_warning(
        tcp,
        "rule #1 match #0 is not used (duplicate/overlapping match in rule #0)",
    );
    let different = "hosts: [a.example.com]\nhttp:\n- match: [{uri: {prefix: /a}, headers: {x: {exact: b}}}]\n  route: [{destination: {host: a}}]\n- match: [{uri: {prefix: /ab}}]\n  route: [{destination: {host: b}}]";
    assert!(warnings(different).is_empty());
}
