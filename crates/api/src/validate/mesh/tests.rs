use super::*;
use crate::validate::{Finding, Severity};

fn run(text: &str) -> Vec<Finding> {
    let mesh = match load_mesh_config("mesh.yaml", text) {
        Ok(m) => m,
        Err(p) => panic!("{p:?}"),
    };
    let mut r = Report::default();
    validate(&mesh, &mut r);
    r.findings
}

fn errors(f: &[Finding]) -> Vec<(String, String)> {
    f.iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.path.clone(), f.message.clone()))
        .collect()
}

fn warnings(f: &[Finding]) -> Vec<(String, String)> {
    f.iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| (f.path.clone(), f.message.clone()))
        .collect()
}

/// Loading `text` fails with one problem at `path` whose message contains `msg`: the networking
/// messages are typed, so their shape is checked by the decoder.
#[track_caller]
fn load_error(text: &str, path: &str, msg: &str) {
    match load_mesh_config("mesh.yaml", text) {
        Ok(m) => panic!("loaded {m:?}"),
        Err(p) => assert!(
            p.iter().any(|p| p.path == path && p.message.contains(msg)),
            "no problem at {path} containing {msg:?} in {p:#?}"
        ),
    }
}

/// `findings` holds one of `severity` at `path` whose message contains `text`.
#[track_caller]
fn has(findings: &[Finding], severity: Severity, path: &str, text: &str) {
    assert!(
        findings
            .iter()
            .any(|f| f.severity == severity && f.path == path && f.message.contains(text)),
        "no {severity} at {path} containing {text:?} in {findings:#?}"
    );
}

#[test]
fn defaults_are_valid() {
    assert!(run("").is_empty());
    let mut r = Report::default();
    validate(&MeshConfig::istio_default(), &mut r);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

/// The shape of Istio's own `TestValidateMeshConfig`, written as a mesh.yaml: every field that
/// Istio rejects there is rejected here, at its path.
#[test]
fn istio_invalid_mesh_config() {
    let f = run(r#"
proxyListenPort: 0
connectTimeout: -1s
defaultConfig:
  configPath: ""
  binaryPath: ""
  serviceCluster: ""
  drainDuration: 0s
  discoveryAddress: ""
  proxyAdminPort: 0
  statusPort: 0
trustDomain: ""
trustDomainAliases: ["a.$b", "a/b", ""]
extensionProviders:
- name: default
  envoyExtAuthzHttp:
    service: foo/ext-authz
    port: 999999
meshMTLS:
  ecdhCurves: [P-256]
tlsDefaults:
  ecdhCurves: [P-256, P-256, invalid]
defaultInboundHttpRetryPolicy:
  attempts: 2
  retryOn: not-a-policy
  perTryTimeout: 1s
"#);
    let e = errors(&f);
    let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "proxyListenPort",
            "connectTimeout",
            "defaultConfig.configPath",
            "defaultConfig.binaryPath",
            "defaultConfig.serviceCluster",
            "defaultConfig.drainDuration",
            "defaultConfig.discoveryAddress",
            "defaultConfig.proxyAdminPort",
            "defaultConfig.statusPort",
            "trustDomain",
            "trustDomainAliases[0]",
            "trustDomainAliases[1]",
            "trustDomainAliases[2]",
            "meshMTLS.ecdhCurves",
            "defaultInboundHttpRetryPolicy.retryOn",
        ],
        "{e:#?}"
    );
    has(
        &f,
        Severity::Error,
        "proxyListenPort",
        "invalid proxy listen port",
    );
    has(
        &f,
        Severity::Error,
        "connectTimeout",
        "invalid connect timeout: duration must be greater than 1ms",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.serviceCluster",
        "service cluster must be specified",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.drainDuration",
        "invalid drain duration: duration must be greater than 1ms",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.discoveryAddress",
        "discovery address must be set to the proxy discovery service",
    );
    has(
        &f,
        Severity::Error,
        "trustDomain",
        "trustDomain: empty domain name not allowed",
    );
    has(
        &f,
        Severity::Error,
        "trustDomainAliases[1]",
        "trust domain name \"a/b\" invalid",
    );
    has(
        &f,
        Severity::Error,
        "defaultInboundHttpRetryPolicy.retryOn",
        "invalid default inbound http retry policy: \"not-a-policy\" is not a valid retryOn policy",
    );
    has(
        &f,
        Severity::Warning,
        "tlsDefaults.ecdhCurves",
        "detected unrecognized ECDH curves: [invalid]",
    );
    has(
        &f,
        Severity::Warning,
        "tlsDefaults.ecdhCurves",
        "detected duplicate ECDH curves: [P-256]",
    );
    has(
        &f,
        Severity::Warning,
        "defaultInboundHttpRetryPolicy.perTryTimeout",
        "perTryTimeout is ignored by the default inbound http retry policy",
    );
    // Istio only logs extension provider problems.
    has(
        &f,
        Severity::Warning,
        "extensionProviders[0].envoyExtAuthzHttp.port",
        "invalid extension provider default: port number 999999",
    );
    has(
        &f,
        Severity::Warning,
        "extensionProviders[0].envoyExtAuthzHttp.service",
        "short names (non FQDN) are not allowed",
    );
}

#[test]
fn timeouts() {
    let f = run("connectTimeout: 2h\n");
    assert_eq!(
        errors(&f),
        [(
            "connectTimeout".to_string(),
            "invalid connect timeout: time 2h0m0s must be >1ms and <1h0m0s".to_string()
        )]
    );
    assert!(run("connectTimeout: 1h\n").is_empty());
    has(
        &run("connectTimeout: 1500us\n"),
        Severity::Error,
        "connectTimeout",
        "only durations to ms precision are supported",
    );
    has(
        &run("protocolDetectionTimeout: 1500us\n"),
        Severity::Error,
        "protocolDetectionTimeout",
        "invalid protocol detection timeout: only durations to ms precision are supported",
    );
    assert!(run("protocolDetectionTimeout: 0s\n").is_empty());
    assert!(run("protocolDetectionTimeout: 100ms\n").is_empty());
    has(
        &run("defaultConfig:\n  drainDuration: 1500ms\n"),
        Severity::Error,
        "defaultConfig.drainDuration",
        "drain time only supports durations to seconds precision",
    );
}

#[test]
fn proxy_config_addresses_and_tracers() {
    let f = run(r#"
defaultConfig:
  discoveryAddress: istiod
  statsdUdpAddress: "10.0.0.1:99999"
  envoyMetricsServiceAddress: "bad_host:80"
  envoyMetricsService:
    address: "::1:80"
  envoyAccessLogService:
    address: "als.istio-system:9000"
  controlPlaneAuthPolicy: INHERIT
  proxyAdminPort: 70000
"#);
    has(&f, Severity::Error, "defaultConfig.discoveryAddress", "invalid discovery address: unable to split \"istiod\": address istiod: missing port in address");
    has(
        &f,
        Severity::Error,
        "defaultConfig.statsdUdpAddress",
        "invalid statsd udp address \"10.0.0.1:99999\": port number 99999",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.envoyMetricsServiceAddress",
        "\"bad_host\" is not a valid hostname or an IP address",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.envoyMetricsService.address",
        "too many colons in address",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.controlPlaneAuthPolicy",
        "unrecognized control plane auth policy \"INHERIT\"",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.proxyAdminPort",
        "invalid proxy admin port",
    );
    assert_eq!(errors(&f).len(), 6, "{f:#?}");

    assert!(
        run("defaultConfig:\n  tracing:\n    zipkin:\n      address: $(HOST_IP):9411\n").is_empty()
    );
    assert!(run("defaultConfig:\n  discoveryAddress: \"[::1]:15012\"\n").is_empty());
    has(
        &run("defaultConfig:\n  tracing:\n    zipkin: {}\n"),
        Severity::Error,
        "defaultConfig.tracing.zipkin.address",
        "invalid zipkin config: unable to split",
    );
    has(
        &run("defaultConfig:\n  tracing:\n    datadog:\n      address: datadog\n"),
        Severity::Error,
        "defaultConfig.tracing.datadog.address",
        "invalid datadog config",
    );
    let f = run("defaultConfig:\n  tracing:\n    lightstep:\n      address: ls.example.com:443\n");
    assert_eq!(
        errors(&f),
        [(
            "defaultConfig.tracing.lightstep.accessToken".to_string(),
            "invalid lightstep config: access token is required".to_string()
        )]
    );
    has(
        &run("defaultConfig:\n  tracing:\n    lightstep:\n      accessToken: t\n"),
        Severity::Error,
        "defaultConfig.tracing.lightstep.address",
        "address is required",
    );
    // Stackdriver and OpenCensus tracers have nothing to check.
    assert!(run("defaultConfig:\n  tracing:\n    stackdriver: {debug: true}\n").is_empty());
}

#[test]
fn tracing_tls_settings() {
    let f = run(r#"
defaultConfig:
  tracing:
    zipkin: {address: "zipkin:9411"}
    tlsSettings:
      mode: MUTUAL
"#);
    has(
        &f,
        Severity::Error,
        "defaultConfig.tracing.tlsSettings.clientCertificate",
        "invalid tracing TLS config: client certificate required for mutual tls",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.tracing.tlsSettings.privateKey",
        "private key required for mutual tls",
    );
    let f = run(r#"
defaultConfig:
  tracing:
    tlsSettings:
      mode: SIMPLE
      credentialName: configmap://ns/name
      caCertificates: /etc/ca.pem
"#);
    has(
        &f,
        Severity::Error,
        "defaultConfig.tracing.tlsSettings.credentialName",
        "namespace must match the configuration namespace",
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.tracing.tlsSettings.credentialName",
        "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
    );
    // jsonpb reads `subjectAltNames: []` as no list at all, so only a non-empty one counts.
    has(
        &run("defaultConfig:\n  tracing:\n    tlsSettings: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [a]}\n"),
        Severity::Error,
        "defaultConfig.tracing.tlsSettings.insecureSkipVerify",
        "cannot specify CaCertificates or CredentialName or SubjectAltNames",
    );
    assert!(run(
        "defaultConfig:\n  tracing:\n    tlsSettings: {mode: SIMPLE, credentialName: tracing-ca}\n"
    )
    .is_empty());
    load_error(
        "defaultConfig:\n  tracing:\n    tlsSettings: {mode: SIMPLE, caCert: x}\n",
        "defaultConfig.tracing.tlsSettings.caCert",
        "unknown field",
    );
}

#[test]
fn private_keys_and_connection_settings() {
    let f = run("defaultConfig:\n  privateKeyProvider: {}\n");
    assert_eq!(errors(&f).len(), 2, "{f:#?}");
    has(
        &f,
        Severity::Error,
        "defaultConfig.privateKeyProvider",
        "private key provider configuration is required",
    );
    has(
        &run("defaultConfig:\n  privateKeyProvider:\n    cryptomb: {}\n"),
        Severity::Error,
        "defaultConfig.privateKeyProvider.cryptomb.pollDelay",
        "pollDelay is required",
    );
    has(
        &run("defaultConfig:\n  privateKeyProvider:\n    qat:\n      pollDelay: 0s\n"),
        Severity::Error,
        "defaultConfig.privateKeyProvider.qat.pollDelay",
        "pollDelay must be non zero",
    );
    assert!(
        run("defaultConfig:\n  privateKeyProvider:\n    qat:\n      pollDelay: 10ms\n").is_empty()
    );

    let f = run(r#"
defaultConfig:
  connectionSettings:
    listenerPerConnectionBufferLimitBytes: -1
    httpIdleTimeout: -1s
    httpMaxConcurrentStreams: 0
    http2InitialStreamWindowSize: 1024
    globalDownstreamConnectionLimit: 10
"#);
    let paths: Vec<String> = errors(&f).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "defaultConfig.connectionSettings.listenerPerConnectionBufferLimitBytes",
            "defaultConfig.connectionSettings.httpIdleTimeout",
            "defaultConfig.connectionSettings.httpMaxConcurrentStreams",
            "defaultConfig.connectionSettings.http2InitialStreamWindowSize",
        ]
    );
    has(
        &f,
        Severity::Error,
        "defaultConfig.connectionSettings.http2InitialStreamWindowSize",
        "invalid connection settings: http2_initial_stream_window_size must be at least 65535",
    );
}

#[test]
fn dns_auto_allocate_v1_is_deprecated() {
    let f = run("defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n");
    assert_eq!(errors(&f).len(), 0);
    has(
        &f,
        Severity::Warning,
        "defaultConfig.proxyMetadata.ISTIO_META_DNS_AUTO_ALLOCATE",
        "'ISTIO_META_DNS_AUTO_ALLOCATE' is deprecated",
    );
}

#[test]
fn service_settings_hosts() {
    let f = run("serviceSettings:\n- settings: {clusterLocal: true}\n  hosts: [\"*.foo.svc.cluster.local\", \"foo.*.com\"]\n");
    assert_eq!(
        errors(&f),
        [(
            "serviceSettings[0].hosts[1]".to_string(),
            "serviceSettings[0], host `foo.*.com`: domain name \"*.com\" invalid (label \"*\" invalid)".to_string()
        )]
    );
}

#[test]
fn trust_domains() {
    assert!(trust_domain("cluster.local").is_ok());
    assert!(trust_domain("cluster.local.").is_ok());
    assert!(trust_domain("Cluster.Local").is_ok());
    assert!(trust_domain("").is_err());
    assert!(trust_domain("a..b").is_err());
    assert!(trust_domain("spiffe://x").is_err());
    has(
        &run("trustDomain: td_1\n"),
        Severity::Error,
        "trustDomain",
        "trustDomain: trust domain name \"td_1\" invalid",
    );
}

#[test]
fn locality_settings() {
    has(
        &run("localityLbSetting:\n  distribute:\n  - from: a/*\n    to: {b/*: 100}\n  failover:\n  - {from: a, to: b}\n"),
        Severity::Error,
        "localityLbSetting",
        "can not simultaneously specify 'distribute' and 'failover'",
    );
    has(
        &run("localityLbSetting:\n  distribute:\n  - from: a/*\n    to: {b/*: 60, c/*: 30}\n"),
        Severity::Error,
        "localityLbSetting.distribute[0].to",
        "total locality weight 90 != 100",
    );
    has(
        &run("localityLbSetting:\n  distribute:\n  - from: a/*\n    to: {b/*: 0, c/*: 100}\n"),
        Severity::Error,
        "localityLbSetting.distribute[0].to",
        "locality weight must be in range [1, 100]",
    );
    has(
        &run("localityLbSetting:\n  distribute:\n  - {from: a/*, to: {b/*: 100}}\n  - {from: a/b, to: {c/*: 100}}\n"),
        Severity::Error,
        "localityLbSetting.distribute",
        "locality a/b overlap with previous specified ones",
    );
    let f = run("localityLbSetting:\n  failover:\n  - {from: us-east, to: us-east}\n  - {from: us/east, to: \"eu*\"}\n");
    has(
        &f,
        Severity::Error,
        "localityLbSetting.failover[0]",
        "must specify different regions",
    );
    has(
        &f,
        Severity::Error,
        "localityLbSetting.failover[1]",
        "locality lb failover only specify region",
    );
    has(
        &f,
        Severity::Error,
        "localityLbSetting.failover[1]",
        "should not contain '*' wildcard",
    );
    has(
        &run("localityLbSetting:\n  failover: [{from: a, to: b}]\n  failoverPriority: [topology.kubernetes.io/zone]\n"),
        Severity::Error,
        "localityLbSetting.failoverPriority[0]",
        "can not simultaneously set 'failover' and topology label 'topology.kubernetes.io/zone'",
    );
    assert!(run("localityLbSetting:\n  enabled: true\n  failoverPriority: [topology.istio.io/network, topology.kubernetes.io/region]\n").is_empty());
    load_error(
        "localityLbSetting:\n  enabled: true\n  failover: [{form: a}]\n",
        "localityLbSetting.failover[0].form",
        "unknown field",
    );

    let f = run("zoneAwareLbSetting:\n  enabled: true\n  failoverPriority: [topology.istio.io/subzone, version]\n  failover: [{from: a, to: a}]\n");
    has(
        &f,
        Severity::Error,
        "zoneAwareLbSetting.failoverPriority[0]",
        "must not use topology label 'topology.istio.io/subzone'",
    );
    has(
        &f,
        Severity::Error,
        "zoneAwareLbSetting.failover[0]",
        "zone aware lb failover settings must specify different regions",
    );
    assert_eq!(errors(&f).len(), 2);
    assert!(run("zoneAwareLbSetting:\n  enabled: true\n  minClusterSize: \"3\"\n").is_empty());
}

#[test]
fn default_traffic_policy() {
    assert!(run("defaultTrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: 100}\n  outlierDetection: {maxEjectionPercent: 50}\n").is_empty());
    has(
        &run("defaultTrafficPolicy:\n  connectionPool: {}\n"),
        Severity::Error,
        "defaultTrafficPolicy.connectionPool",
        "connection pool must have at least one field",
    );
    let f = run(r#"
defaultTrafficPolicy:
  connectionPool:
    tcp:
      maxConnections: -1
      idleTimeout: 0s
      tcpKeepalive: {time: 100us}
    http:
      http2MaxRequests: -5
      h2UpgradePolicy: UPGRADE
      useClientProtocol: true
  outlierDetection:
    maxEjectionPercent: 101
    consecutiveLocalOriginFailures: 3
    interval: 0s
"#);
    let paths: Vec<String> = errors(&f).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "defaultTrafficPolicy.connectionPool.http.http2MaxRequests",
            "defaultTrafficPolicy.connectionPool.http.useClientProtocol",
            "defaultTrafficPolicy.connectionPool.tcp.maxConnections",
            "defaultTrafficPolicy.connectionPool.tcp.tcpKeepalive.time",
            "defaultTrafficPolicy.outlierDetection.interval",
            "defaultTrafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            "defaultTrafficPolicy.outlierDetection.maxEjectionPercent",
        ],
        "{f:#?}"
    );
    load_error(
        "defaultTrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: many}\n",
        "defaultTrafficPolicy.connectionPool.tcp.maxConnections",
        "invalid type",
    );
}

#[test]
fn inbound_retry_policy() {
    assert!(run("defaultInboundHttpRetryPolicy: {}\n").is_empty());
    assert!(run("defaultInboundHttpRetryPolicy:\n  attempts: 3\n  retryOn: reset-before-request,503\n  backoff: 50ms\n").is_empty());
    has(
        &run("defaultInboundHttpRetryPolicy:\n  attempts: -1\n"),
        Severity::Error,
        "defaultInboundHttpRetryPolicy.attempts",
        "attempts cannot be negative",
    );
    has(
        &run("defaultInboundHttpRetryPolicy:\n  retryOn: reset\n"),
        Severity::Error,
        "defaultInboundHttpRetryPolicy",
        "http retry policy configured when attempts are set to 0 (disabled)",
    );
    has(
        &run("defaultInboundHttpRetryPolicy:\n  backoff: 50ms\n"),
        Severity::Error,
        "defaultInboundHttpRetryPolicy.backoff",
        "backoff configured when attempts are set to 0 (disabled)",
    );
    has(
        &run("defaultInboundHttpRetryPolicy:\n  attempts: 3\n  backoff: 999ns\n"),
        Severity::Error,
        "defaultInboundHttpRetryPolicy.backoff",
        "duration must be greater than 1ms",
    );
    let f = run("defaultInboundHttpRetryPolicy:\n  attempts: 3\n  retryIgnorePreviousHosts: true\n  retryRemoteLocalities: true\n");
    assert!(errors(&f).is_empty(), "{f:#?}");
    assert_eq!(warnings(&f).len(), 2);
    // The outbound default retry policy is not validated by Istio, only decoded.
    assert!(run("defaultHttpRetryPolicy:\n  attempts: 0\n  retryOn: bogus\n").is_empty());
    load_error(
        "defaultHttpRetryPolicy:\n  atempts: 3\n",
        "defaultHttpRetryPolicy.atempts",
        "unknown field",
    );
}

#[test]
fn extension_providers_only_warn() {
    let f = run(r#"
extensionProviders:
- name: ""
  prometheus: {}
- name: dup
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
- name: dup
  skywalking: {service: sw.istio-system.svc.cluster.local}
- name: nothing
- name: sds
  sds: {name: x, service: sds.ns.svc, port: 1}
- name: authz
  envoyExtAuthzHttp:
    service: authz.foo.svc.cluster.local
    port: 8000
    pathPrefix: check
    statusOnError: "418"
- name: grpc
  envoyExtAuthzGrpc: {service: 10.0.0.1, port: 0, statusOnError: abc}
- name: otel
  opentelemetry:
    service: otel/otel.observability.svc.cluster.local
    port: 4317
    grpc: {}
    http: {path: /v1/traces}
- name: ls
  lightstep: {service: ls.example.com, port: 443}
- name: two
  zipkin: {service: z.ns.svc, port: 9411}
  datadog: {service: d.ns.svc, port: 8126}
- name: logs
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat: {text: "%START_TIME%", labels: {a: b}}
"#);
    assert!(errors(&f).is_empty(), "{f:#?}");
    let w = |p: &str, t: &str| has(&f, Severity::Warning, p, t);
    w(
        "extensionProviders[0].name",
        "empty extension provider name",
    );
    w(
        "extensionProviders[2].name",
        "duplicate extension provider name dup",
    );
    w(
        "extensionProviders[2].skywalking.port",
        "invalid extension provider dup: invalid service port: port number 0",
    );
    w(
        "extensionProviders[3]",
        "unsupported provider: no provider type is set",
    );
    w("extensionProviders[4].sds", "unsupported provider: sds");
    w(
        "extensionProviders[5].envoyExtAuthzHttp.pathPrefix",
        "pathPrefix should begin with `/` but found \"check\"",
    );
    w(
        "extensionProviders[5].envoyExtAuthzHttp.statusOnError",
        "unsupported statusOnError value 418",
    );
    w(
        "extensionProviders[6].envoyExtAuthzGrpc.port",
        "invalid service port",
    );
    w(
        "extensionProviders[6].envoyExtAuthzGrpc.statusOnError",
        "invalid statusOnError value abc",
    );
    w(
        "extensionProviders[7].opentelemetry",
        "OpenTelemetryTracingProvider cannot specify both grpc and http",
    );
    w(
        "extensionProviders[8].lightstep.accessToken",
        "access token is required",
    );
    w(
        "extensionProviders[9]",
        "only one of zipkin, datadog may be set; Istio uses datadog",
    );
    w(
        "extensionProviders[10].envoyFileAccessLog.logFormat",
        "only one of text, labels may be set",
    );
    assert_eq!(warnings(&f).len(), 13, "{f:#?}");
}

#[test]
fn oneofs_set_twice_warn() {
    let f = run("defaultConfig:\n  serviceCluster: a\n  tracingServiceName: CANONICAL_NAME_ONLY\n  tracing:\n    zipkin: {address: \"z:9411\"}\n    datadog: {address: bad}\n");
    has(
        &f,
        Severity::Warning,
        "defaultConfig",
        "only one of serviceCluster, tracingServiceName may be set; Istio uses tracingServiceName",
    );
    has(
        &f,
        Severity::Warning,
        "defaultConfig.tracing",
        "only one of zipkin, datadog may be set",
    );
    // Only the tracer Istio keeps is validated.
    has(
        &f,
        Severity::Error,
        "defaultConfig.tracing.datadog.address",
        "invalid datadog config",
    );
    assert_eq!(errors(&f).len(), 1, "{f:#?}");
    has(
        &run("caCertificates:\n- pem: x\n  spiffeBundleUrl: https://x\n"),
        Severity::Warning,
        "caCertificates[0]",
        "only one of pem, spiffeBundleUrl may be set",
    );
}

#[test]
fn networking_fields_are_decoded() {
    load_error(
        "tcpKeepalive: {time: 10s, probs: 3}\n",
        "tcpKeepalive.probs",
        "unknown field",
    );
    load_error(
        "tcpKeepalive: {probes: -3}\n",
        "tcpKeepalive.probes",
        "invalid value",
    );
    load_error(
        "outboundTrafficPolicy:\n  mode: ALLOW_ANY_DYNAMIC_DNS\n  tls: {mode: SIMPEL}\n",
        "outboundTrafficPolicy.tls.mode",
        "unknown variant",
    );
    load_error(
        "configSources:\n- address: xds://a:1\n  tlsSettings: {sni: [x]}\n",
        "configSources[0].tlsSettings.sni",
        "invalid type",
    );
    load_error(
        "defaultConfig:\n  envoyAccessLogService:\n    address: als:9000\n    tcpKeepalive: {interval: 1s, bogus: 1}\n",
        "defaultConfig.envoyAccessLogService.tcpKeepalive.bogus",
        "unknown field",
    );
}
