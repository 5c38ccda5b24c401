//! PeerAuthentication and RequestAuthentication validation cases the conformance data does not
//! cover.

use crate::validate::authorization::tests::{outcome, Outcome};

fn peer(spec: &str) -> Outcome {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    outcome(&format!(
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: p\n  namespace: ns\nspec:\n{spec}"
    ))
}

fn request(spec: &str) -> Outcome {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    outcome(&format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: r\n  namespace: ns\nspec:\n{spec}"
    ))
}

/// One JWT rule with `extra` lines added.
fn rule(extra: &str) -> Outcome {
    let extra: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    request(&format!("jwtRules:\n- issuer: example.com\n{extra}"))
}

#[test]
fn peer_ports() {
    let sel = "selector:\n  matchLabels:\n    app: a\n";
    assert!(peer(&format!("{sel}portLevelMtls:\n  8080:\n    mode: STRICT")).ok());
    assert!(peer(&format!(
        "{sel}portLevelMtls:\n  '70000':\n    mode: STRICT"
    ))
    .error_has("spec.portLevelMtls.70000: port must be in range 1..65535"));
    assert!(!peer(&format!("{sel}portLevelMtls:\n  '-1':\n    mode: STRICT")).ok());
    assert!(!peer(&format!(
        "{sel}portLevelMtls:\n  '4294967296':\n    mode: STRICT"
    ))
    .ok());
    assert!(
        peer("selector: {}\nportLevelMtls:\n  '80':\n    mode: STRICT")
            .error_has("cannot have port level mTLS")
    );
    assert!(peer("mtls:\n  mode: DISABLE").ok());
    // PeerAuthentication has no targetRef.
    assert!(!peer("targetRef:\n  kind: Service\n  name: s").ok());
}

#[test]
fn jwks_and_jwks_uri_exclude_each_other() {
    let o = rule("jwksUri: https://example.com/keys\njwks: '{\"keys\":[]}'");
    assert!(o.error_has("spec.jwtRules[0]: only one of jwks or jwksUri can be set"));
    // The CRD also lists the proto spelling.
    assert!(rule("jwks_uri: https://example.com/keys").ok());
    assert!(!rule("jwks_uri: https://example.com/keys\njwksUri: https://example.com/keys").ok());
}

#[test]
fn jwks_uri_rules() {
    assert!(rule("jwksUri: HTTPS://example.com:8443/keys").ok());
    assert!(
        rule("jwksUri: ftp://example.com/keys").error_has("URI scheme \"ftp\" is not supported")
    );
    assert!(rule("jwksUri: ''").error_has("jwksUri"));
    let long = format!("jwksUri: https://example.com/{}", "a".repeat(2048));
    assert!(rule(&long).error_has("must be at most 2048 characters"));
}

#[test]
fn inline_jwks() {
    let ec_private = r#"jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB","d":"AQAB"},{"kty":"oct","k":"c2VjcmV0"}]}'"#;
    let o = rule(ec_private);
    assert!(o.ok(), "{o:?}");
    assert!(o.warning_has("jwks key at index 0 contains private key material"));
    assert!(o.warning_has("jwks key at index 1 contains private key material"));
    let public = r#"jwks: '{"kty":"OKP","crv":"Ed25519","x":"AQAB"}'"#;
    let o = rule(public);
    assert!(o.ok() && o.warnings.is_empty(), "{o:?}");
    assert!(rule(r#"jwks: '{"keys":[{"kty":"EC","x":"AQAB"}]}'"#).error_has("jwks parse error"));
}

#[test]
fn locations_claims_and_timeouts() {
    assert!(rule("presence: REQUIRED").ok());
    assert!(rule("timeout: 1.5s").ok());
    assert!(rule("timeout: 500us").error_has("timeout: duration must be greater than 1ms"));
    assert!(rule("timeout: 1500us").error_has("only durations to ms precision"));
    assert!(rule("outputClaimToHeaders:\n- header: x_claim-1\n  claim: sub").ok());
    assert!(
        rule("outputClaimToHeaders:\n- header: x.claim\n  claim: sub").error_has(
            "outputClaimToHeaders[0].header: header name x.claim is not a valid header name"
        )
    );
    let claims: String = (0..65).map(|i| format!("\n- c{i}")).collect();
    assert!(rule(&format!("spaceDelimitedClaims:{claims}"))
        .error_has("spaceDelimitedClaims: must have at most 64 items"));
    assert!(rule("fromHeaders:\n- name: x-jwt\n  prefix: 'Bearer '\nfromParams: [token]\nfromCookies: [session]\nforwardOriginalToken: true\noutputPayloadToHeader: x-payload").ok());
    assert!(!rule("fromHeaders:\n- prefix: x").ok());
}

#[test]
fn request_scope() {
    assert!(request(
        "targetRefs:\n- kind: Gateway\n  group: gateway.networking.k8s.io\n  name: gw"
    )
    .ok());
    assert!(request(
        "selector:\n  matchLabels:\n    app: a\ntargetRefs:\n- kind: Service\n  name: s"
    )
    .error_has("only one of targetRefs or workloadSelector"));
}
