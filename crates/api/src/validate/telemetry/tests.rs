//! Telemetry validation cases the conformance data does not cover.

use crate::validate::authorization::tests::{outcome, Outcome};

fn telemetry(spec: &str) -> Outcome {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    outcome(&format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: t\n  namespace: ns\nspec:\n{spec}"
    ))
}

#[test]
fn access_log_filters_are_cel() {
    let ok = telemetry("accessLogging:\n- providers:\n  - name: envoy\n  filter:\n    expression: response.code >= 400 || has(request.headers.x)");
    assert!(ok.ok(), "{ok:?}");
    assert!(
        telemetry("accessLogging:\n- filter:\n    expression: 'response.code >='")
            .error_has("accessLogging[0].filter.expression: must be a valid CEL expression")
    );
    // cel-go refuses an empty expression, so an empty filter is refused too.
    assert!(telemetry("accessLogging:\n- filter: {}").error_has("must be a valid CEL expression"));
    assert!(!telemetry("accessLogging:\n- providers:\n  - {}").ok());
}

#[test]
fn custom_tags() {
    assert!(telemetry("tracing:\n- customTags:\n    a:\n      literal:\n        value: x\n    b:\n      header:\n        name: x-b\n        defaultValue: none\n    c:\n      formatter:\n        value: '%REQ(x-c)%'").ok());
    let two = telemetry("tracing:\n- customTags:\n    a:\n      literal:\n        value: x\n      environment:\n        name: POD");
    assert!(two.error_has("customTags.a: only one of literal, environment, header or formatter"));
    assert!(
        telemetry("tracing:\n- customTags:\n    a:\n      literal: {}")
            .error_has("customTags.a.literal.value: literal tag value may not be empty")
    );
    assert!(
        telemetry("tracing:\n- customTags:\n    a:\n      formatter:\n        value: ''")
            .error_has("formatter tag value may not be empty")
    );
    assert!(
        telemetry("tracing:\n- customTags:\n    a:\n      header: {}")
            .error_has("header tag name may not be empty")
    );
    assert!(
        telemetry("tracing:\n- customTags:\n    '':\n      environment:\n        name: X")
            .error_has("tag name may not be empty")
    );
}

#[test]
fn tracing_ranges_and_warnings() {
    assert!(telemetry("tracing:\n- randomSamplingPercentage: -0.5")
        .error_has("randomSamplingPercentage must be in range"));
    let o = telemetry("tracing:\n- randomSamplingPercentage: 100\n  match:\n    mode: SERVER\n  enableIstioTags: false\n  disableContextPropagation: true");
    assert!(o.ok() && o.warnings.is_empty(), "{o:?}");
    assert!(!telemetry("tracing:\n- match:\n    mode: BOTH").ok());
}

#[test]
fn metric_overrides() {
    assert!(telemetry(
        "metrics:\n- overrides:\n  - match:\n      metric: REQUEST_COUNT\n      customMetric: mine"
    )
    .error_has("match: only one of metric or customMetric"));
    assert!(
        telemetry("metrics:\n- overrides:\n  - tagOverrides:\n      t: {}").error_has(
            "tagOverrides.t.value: tagOverrides.value must be set when operation is UPSERT"
        )
    );
    assert!(telemetry("metrics:\n- overrides:\n  - tagOverrides:\n      t:\n        operation: REMOVE\n        value: ''")
        .error_has("must not be set when operation is REMOVE"));
    let empty_name =
        telemetry("metrics:\n- overrides:\n  - tagOverrides:\n      '':\n        value: x");
    assert!(empty_name.ok() && empty_name.warning_has("tagOverrides.name may not be empty"));
    assert!(!telemetry("metrics:\n- overrides:\n  - match:\n      metric: ALL").ok());
}

#[test]
fn reporting_interval() {
    assert!(telemetry("metrics:\n- reportingInterval: 1.5ms").ok());
    assert!(telemetry("metrics:\n- reportingInterval: 0s")
        .error_has("reportingInterval: must be a valid duration greater than 1ms"));
    assert!(telemetry("metrics:\n- reportingInterval: 999us").error_has("greater than 1ms"));
    assert!(!telemetry("metrics:\n- reportingInterval: soon").ok());
}
