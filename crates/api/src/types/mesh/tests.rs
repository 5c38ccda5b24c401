use super::load::read_mesh_config;
use super::*;
use crate::validate::Severity;

fn load(text: &str) -> MeshConfig {
    match load_mesh_config("mesh.yaml", text) {
        Ok(m) => m,
        Err(p) => panic!("{p:?}"),
    }
}

fn load_err(text: &str) -> crate::Problem {
    match load_mesh_config("mesh.yaml", text) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(mut p) => {
            assert_eq!(p.len(), 1, "{p:?}");
            p.remove(0)
        }
    }
}

#[test]
fn istio_documented_defaults() {
    let m = MeshConfig::default();
    assert_eq!(m.root_namespace(), "istio-system");
    assert_eq!(m.trust_domain(), "cluster.local");
    assert!(m.trust_domain_aliases().is_empty());
    assert!(m.auto_mtls());
    assert_eq!(m.outbound_policy(), OutboundTrafficPolicyMode::AllowAny);
    assert_eq!(m.inbound_policy(), InboundTrafficPolicyMode::Passthrough);
    assert_eq!(m.connect_timeout().as_nanos(), 10_000_000_000);
    assert_eq!(m.protocol_detection_timeout().as_nanos(), 0);
    assert_eq!(m.dns_refresh_rate().as_nanos(), 60_000_000_000);
    assert_eq!(m.hbone_idle_timeout().as_nanos(), 3_600_000_000_000);
    assert_eq!(m.access_log_encoding(), AccessLogEncoding::Text);
    assert_eq!(m.access_log_file(), "");
    assert!(m.tracing_enabled());
    assert!(m.prometheus_merge());
    assert!(!m.envoy_access_log_service_enabled());
    assert_eq!(m.proxy_listen_port(), 15001);
    assert_eq!(m.proxy_inbound_listen_port(), 15006);
    assert_eq!(m.proxy_http_port(), None);
    assert_eq!(m.ingress_class(), "istio");
    assert_eq!(m.ingress_service(), "istio-ingressgateway");
    assert_eq!(m.ingress_selector(), "ingressgateway");
    assert_eq!(m.ingress_controller_mode(), IngressControllerMode::Strict);
    assert_eq!(m.h2_upgrade_policy(), H2UpgradePolicy::DoNotUpgrade);
    assert_eq!(m.default_service_export_to(), ["*"]);
    assert_eq!(m.default_virtual_service_export_to(), ["*"]);
    assert_eq!(m.default_destination_rule_export_to(), ["*"]);
    assert_eq!(m.locality_lb_setting().enabled, Some(true));
    assert_eq!(m.path_normalization(), NormalizationType::Default);
    let names: Vec<String> = m
        .extension_providers()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["prometheus", "stackdriver", "envoy"]);
    let envoy = m
        .extension_provider("envoy")
        .and_then(|p| p.envoy_file_access_log);
    assert_eq!(envoy.map(|e| e.path), Some("/dev/stdout".to_string()));

    let pc = m.proxy_config();
    assert_eq!(pc.discovery_address(), "istiod.istio-system.svc:15012");
    assert_eq!(pc.drain_duration().as_nanos(), 45_000_000_000);
    assert_eq!(pc.termination_drain_duration().as_nanos(), 5_000_000_000);
    assert_eq!(pc.status_port(), 15020);
    assert_eq!(pc.proxy_admin_port(), 15000);
    assert_eq!(pc.stat_name_length(), 189);
    assert_eq!(pc.config_path(), "./etc/istio/proxy");
    assert_eq!(pc.binary_path(), "/usr/local/bin/envoy");
    assert_eq!(pc.service_cluster.as_deref(), Some("istio-proxy"));
    assert_eq!(
        pc.control_plane_auth_policy(),
        AuthenticationPolicy::MutualTls
    );
    assert_eq!(pc.tracing_sampling(), 1.0);
    assert!(!pc.hold_application_until_proxy_starts());
    assert_eq!(pc.concurrency, None);
    assert_eq!(pc.tracing, None);

    // The accessors of an empty config and the fully defaulted config agree.
    let full = MeshConfig::istio_default();
    assert_eq!(full, m.with_defaults());
    assert_eq!(full.root_namespace(), m.root_namespace());
    assert_eq!(full.proxy_config(), pc);
}

#[test]
fn present_but_empty_outbound_policy_is_registry_only() {
    // jsonpb semantics: the message is set, its mode is the enum's zero value.
    let m = load("outboundTrafficPolicy: {}\n");
    assert_eq!(m.outbound_policy(), OutboundTrafficPolicyMode::RegistryOnly);
    let m = load("outboundTrafficPolicy:\n  mode: ALLOW_ANY_DYNAMIC_DNS\n");
    assert_eq!(
        m.outbound_policy(),
        OutboundTrafficPolicyMode::AllowAnyDynamicDns
    );
}

const REALISTIC: &str = r#"# Mesh-wide settings, as Helm's meshConfig.
accessLogFile: /dev/stdout
accessLogEncoding: JSON
enableAutoMtls: false
enableTracing: true
rootNamespace: istio-config
trustDomain: example.com
trustDomainAliases:
- old.example.com
- example.com.
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
connectTimeout: 5s
defaultHttpRetryPolicy:
  attempts: 3
  perTryTimeout: 2s
  retryOn: gateway-error,connect-failure,refused-stream
defaultConfig:
  discoveryAddress: istiod.istio-config.svc:15012
  holdApplicationUntilProxyStarts: true
  concurrency: 2
  terminationDrainDuration: 30s
  proxyMetadata:
    ISTIO_META_DNS_CAPTURE: "true"
  tracing:
    sampling: 10.0
    zipkin:
      address: zipkin.istio-system:9411
    customTags:
      cluster:
        environment:
          name: CLUSTER_ID
          defaultValue: unknown
  image:
    imageType: distroless
  proxyStatsMatcher:
    inclusionRegexps:
    - .*outlier_detection.*
extensionProviders:
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
    maxTagLength: 256
- name: json-log
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels:
        start_time: "%START_TIME%"
        status: "%RESPONSE_CODE%"
- name: text-log
  envoyFileAccessLog:
    path: /var/log/access.log
    logFormat:
      text: "[%START_TIME%] %REQ(:METHOD)%\n"
- name: ext-authz
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    includeRequestHeadersInCheck: [x-ext-authz]
defaultProviders:
  tracing: [zipkin]
  accessLogging: [json-log]
localityLbSetting:
  enabled: true
  failover:
  - from: us-east
    to: us-west
meshMTLS:
  minProtocolVersion: TLSV1_3
tlsDefaults:
  ecdhCurves: [P-256, X25519]
serviceSettings:
- settings:
    clusterLocal: true
  hosts:
  - "*.kube-system.svc.cluster.local"
discoverySelectors:
- matchLabels:
    istio-discovery: enabled
- matchExpressions:
  - key: env
    operator: In
    values: [prod]
"#;

#[test]
fn realistic_mesh_config_loads() {
    let loaded = match read_mesh_config("mesh.yaml", REALISTIC) {
        Ok(l) => l,
        Err(p) => panic!("{p:?}"),
    };
    let problems = loaded.problems();
    assert!(problems.is_empty(), "{problems:?}");
    let m = loaded.config;
    assert_eq!(m.root_namespace(), "istio-config");
    assert_eq!(m.trust_domain(), "example.com");
    assert_eq!(
        m.trust_domain_aliases(),
        ["example.com.", "old.example.com"]
    );
    assert!(!m.auto_mtls());
    assert_eq!(m.outbound_policy(), OutboundTrafficPolicyMode::RegistryOnly);
    assert_eq!(m.access_log_encoding(), AccessLogEncoding::Json);
    assert_eq!(m.connect_timeout().as_nanos(), 5_000_000_000);
    assert_eq!(
        m.default_http_retry_policy.as_ref().map(|r| r.attempts),
        Some(3)
    );
    let pc = m.proxy_config();
    assert_eq!(pc.discovery_address(), "istiod.istio-config.svc:15012");
    // Unset fields keep Istio's defaults; set ones replace them.
    assert_eq!(pc.drain_duration().as_nanos(), 45_000_000_000);
    assert_eq!(pc.termination_drain_duration().as_nanos(), 30_000_000_000);
    assert_eq!(pc.concurrency, Some(2));
    assert!(pc.hold_application_until_proxy_starts());
    assert_eq!(pc.image_type(), "distroless");
    assert_eq!(pc.tracing_sampling(), 10.0);
    let tracing = pc.tracing.as_ref().expect("tracing");
    assert_eq!(
        tracing.zipkin.as_ref().map(|z| z.address.as_str()),
        Some("zipkin.istio-system:9411")
    );
    assert_eq!(
        tracing.custom_tags["cluster"]
            .environment
            .as_ref()
            .map(|e| e.default_value.as_str()),
        Some("unknown")
    );

    let zipkin = m.extension_provider("zipkin").expect("zipkin provider");
    assert_eq!(zipkin.kind(), Some(ProviderKind::Zipkin));
    assert_eq!(zipkin.zipkin.as_ref().map(|z| z.port), Some(9411));
    let json = m.extension_provider("json-log").expect("json-log");
    let labels = json
        .envoy_file_access_log
        .and_then(|f| f.log_format)
        .and_then(|f| f.labels)
        .expect("labels");
    assert_eq!(labels["status"], "%RESPONSE_CODE%");
    let text = m.extension_provider("text-log").expect("text-log");
    assert_eq!(
        text.envoy_file_access_log
            .and_then(|f| f.log_format)
            .and_then(|f| f.text)
            .as_deref(),
        Some("[%START_TIME%] %REQ(:METHOD)%\n")
    );
    // Built-ins stay, the user's providers follow.
    assert_eq!(m.extension_providers().len(), 7);
    assert_eq!(m.default_providers().access_logging, ["json-log"]);
    assert_eq!(
        m.mesh_mtls.as_ref().map(|t| t.min_protocol_version),
        Some(TlsProtocol::TlsV1_3)
    );
    assert_eq!(m.discovery_selectors.len(), 2);
    assert_eq!(m.discovery_selectors[1].match_expressions[0].operator, "In");
}

#[test]
fn unknown_fields_report_path_and_line() {
    let p = load_err("rootNamespace: istio-system\nenableAutoMTLS: true\n");
    assert_eq!(p.path, "enableAutoMTLS");
    assert_eq!(p.line, 2);
    assert_eq!(p.resource.as_deref(), Some("MeshConfig"));
    assert_eq!(p.file, "mesh.yaml");
    assert!(
        p.message.contains("unknown field `enableAutoMTLS`"),
        "{}",
        p.message
    );

    let p = load_err(
        "defaultConfig:\n  drainDuration: 45s\n  tracing:\n    zipkin:\n      adress: z:9411\n",
    );
    assert_eq!(p.path, "defaultConfig.tracing.zipkin.adress");
    assert_eq!(p.line, 5);

    let p = load_err(
        "extensionProviders:\n- name: a\n  envoyFileAccessLog:\n    path: /dev/stdout\n    format: x\n",
    );
    assert_eq!(p.path, "extensionProviders[0].envoyFileAccessLog.format");
    assert_eq!(p.line, 5);
}

#[test]
fn wrong_types_and_values_are_rejected_at_decode() {
    let p = load_err("outboundTrafficPolicy:\n  mode: ALLOW_ALL\n");
    assert_eq!(p.path, "outboundTrafficPolicy.mode");
    assert_eq!(p.line, 2);
    let p = load_err("accessLogEncoding: YAML\n");
    assert_eq!(p.path, "accessLogEncoding");
    let p = load_err(
        "extensionProviders:\n- name: z\n  zipkin:\n    service: z.ns.svc\n    port: -1\n",
    );
    assert_eq!(p.path, "extensionProviders[0].zipkin.port");
    assert_eq!(p.line, 5);
    assert!(p.message.contains("uint32"), "{}", p.message);
    let p = load_err("connectTimeout: 10\n");
    assert_eq!(p.path, "connectTimeout");
    let p = load_err("connectTimeout: ten seconds\n");
    assert_eq!(p.path, "connectTimeout");
    let p = load_err("defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: true\n");
    assert_eq!(p.path, "defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE");
    assert_eq!(p.line, 3);
    let p = load_err(
        "extensionProviders:\n- name: j\n  envoyFileAccessLog:\n    logFormat:\n      labels: [a]\n",
    );
    assert_eq!(
        p.path,
        "extensionProviders[0].envoyFileAccessLog.logFormat.labels"
    );
    let p = load_err("- rootNamespace: x\n");
    assert_eq!(p.line, 1);
    let p = load_err("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n");
    assert_eq!(p.path, "kind");
    let p = load_err("rootNamespace: [\n");
    assert!(p.message.starts_with("invalid YAML"), "{}", p.message);
}

#[test]
fn empty_file_is_the_default_mesh() {
    assert_eq!(load(""), MeshConfig::default());
    assert_eq!(load("# nothing here\n---\n"), MeshConfig::default());
}

#[test]
fn int64_wrappers_accept_strings() {
    let m = load("extensionProviders:\n- name: sd\n  stackdriver:\n    maxNumberOfAttributes: \"200\"\n    maxNumberOfAnnotations: 100\n");
    let sd = m.extension_providers[0]
        .stackdriver
        .clone()
        .unwrap_or_default();
    assert_eq!(sd.max_number_of_attributes, Some(200));
    assert_eq!(sd.max_number_of_annotations, Some(100));
    let p = load_err(
        "extensionProviders:\n- name: sd\n  stackdriver:\n    maxNumberOfAttributes: lots\n",
    );
    assert_eq!(
        p.path,
        "extensionProviders[0].stackdriver.maxNumberOfAttributes"
    );
}

#[test]
fn every_enum_spelling_round_trips() {
    let text = r#"ingressControllerMode: DEFAULT
h2UpgradePolicy: UPGRADE
inboundTrafficPolicy: {mode: LOCALHOST}
meshMTLS: {minProtocolVersion: TLSV1_2}
tlsDefaults: {minProtocolVersion: TLS_AUTO}
pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}
serviceScopeConfigs: [{scope: GLOBAL}]
serviceEntryVisibility: {defaultVisibility: VISIBILITY_UNSPECIFIED, policies: [{visibility: NAMESPACE}]}
configSources: [{address: "xds://a:1", subscribedResources: [SERVICE_REGISTRY]}]
defaultConfig:
  tracingServiceName: CANONICAL_NAME_AND_NAMESPACE
  interceptionMode: TPROXY
  controlPlaneAuthPolicy: NONE
  gatewayTopology: {forwardClientCertDetails: ALWAYS_FORWARD_ONLY, proxyProtocol: {}}
  tracing: {openCensusAgent: {address: "oc:55678", context: [W3C_TRACE_CONTEXT, GRPC_BIN, CLOUD_TRACE_CONTEXT, B3]}}
  proxyHeaders: {metadataExchangeHeaders: {mode: IN_MESH}, forwardedClientCert: SANITIZE_SET}
  connectionSettings:
    profile: EDGE
    httpHeadersWithUnderscoresAction: HEADERS_WITH_UNDERSCORES_DROP_HEADER
    httpPathWithEscapedSlashesAction: UNESCAPE_AND_FORWARD
extensionProviders:
- name: z
  zipkin: {service: z.ns.svc, port: 9411, traceContextOption: USE_B3_WITH_W3C_PROPAGATION, enable64bitTraceId: true}
- name: o
  opentelemetry: {service: o.ns.svc, port: 4317, serviceAttributeEnrichment: OTEL_SEMANTIC_CONVENTIONS}
"#;
    let m = load(text);
    assert_eq!(m.ingress_controller_mode(), IngressControllerMode::Default);
    assert_eq!(
        m.proxy_config().tracing_service_name,
        Some(TracingServiceName::CanonicalNameAndNamespace)
    );
    assert_eq!(
        m.mesh_mtls.as_ref().map(|t| t.min_protocol_version),
        Some(TlsProtocol::TlsV1_2)
    );
    assert!(m.extension_providers[0]
        .zipkin
        .as_ref()
        .is_some_and(|z| z.enable_64bit_trace_id));
    // What we read, we write back the same way.
    let again: MeshConfig =
        serde_json::from_value(serde_json::to_value(&m).expect("serialize")).expect("reparse");
    assert_eq!(again, m);
}

#[test]
fn proxy_config_merges_field_by_field() {
    let m = load(
        "defaultConfig:\n  tracingServiceName: CANONICAL_NAME_ONLY\n  proxyMetadata:\n    A: b\n  statusPort: 15021\n",
    );
    let pc = m.proxy_config();
    // Choosing the other member of the oneof drops the default service cluster.
    assert_eq!(pc.service_cluster, None);
    assert_eq!(pc.status_port(), 15021);
    assert_eq!(pc.proxy_admin_port(), 15000);
    assert_eq!(pc.proxy_metadata.get("A").map(String::as_str), Some("b"));

    let base = ProxyConfig {
        proxy_metadata: [("X".to_string(), "1".to_string())].into(),
        ..ProxyConfig::istio_default()
    };
    let over = ProxyConfig {
        proxy_metadata: [("Y".to_string(), "2".to_string())].into(),
        discovery_address: Some(String::new()),
        ..Default::default()
    };
    let merged = over.merged_over(&base);
    assert_eq!(merged.proxy_metadata.len(), 2);
    // Present-but-empty replaces the default, as jsonpb does.
    assert_eq!(merged.discovery_address.as_deref(), Some(""));
}

#[test]
fn extension_providers_merge_by_name() {
    let m = load(
        "extensionProviders:\n- name: envoy\n  envoyFileAccessLog:\n    path: /tmp/log\n- name: z\n  zipkin: {service: a.b, port: 1}\n- name: z\n  datadog: {service: a.b, port: 2}\n",
    );
    let all = m.extension_providers();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prometheus", "stackdriver", "envoy", "z"]);
    assert_eq!(
        all[2]
            .envoy_file_access_log
            .as_ref()
            .map(|f| f.path.as_str()),
        Some("/tmp/log")
    );
    // A later provider of the same name replaces the earlier one.
    assert_eq!(all[3].kind(), Some(ProviderKind::Datadog));
}

#[test]
fn tracing_sampling_follows_pilot() {
    let pc = |s: f64| ProxyConfig {
        tracing: Some(Tracing {
            sampling: s,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(pc(0.0).tracing_sampling(), 1.0);
    assert_eq!(pc(50.0).tracing_sampling(), 50.0);
    assert_eq!(pc(150.0).tracing_sampling(), 1.0);
}

#[test]
fn ingress_selector_falls_back_to_the_ingress_service() {
    let m = load("ingressService: my-gateway\n");
    assert_eq!(m.ingress_selector(), "my-gateway");
    let m = load("ingressService: my-gateway\ningressSelector: other\n");
    assert_eq!(m.ingress_selector(), "other");
}

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    rootNamespace: istio-system
    defaultConfig:
      discoveryAddress: istiod.istio-system.svc:15012
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
  meshNetworks: 'networks: {}'
";

#[test]
fn config_map_form() {
    let m = load(CONFIG_MAP);
    assert_eq!(m.outbound_policy(), OutboundTrafficPolicyMode::RegistryOnly);
    assert_eq!(
        m.proxy_config().discovery_address(),
        "istiod.istio-system.svc:15012"
    );

    // Lines of a literal block map onto the file's lines.
    let bad = CONFIG_MAP.replace("discoveryAddress", "discoveryAdress");
    let p = load_err(&bad);
    assert_eq!(p.path, "defaultConfig.discoveryAdress");
    assert_eq!(p.line, 10);

    let bad = CONFIG_MAP.replace("mode: REGISTRY_ONLY", "mode: NOPE");
    let loaded = read_mesh_config("cm.yaml", &bad);
    let p = loaded.expect_err("bad enum");
    assert_eq!(p[0].line, 12);
    assert_eq!(p[0].file, "cm.yaml");

    // Validation findings are placed the same way.
    let port = CONFIG_MAP.replace(
        "istiod.istio-system.svc:15012",
        "istiod.istio-system.svc:99999",
    );
    let loaded = read_mesh_config("cm.yaml", &port).expect("decodes");
    let problems = loaded.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "defaultConfig.discoveryAddress");
    assert_eq!(problems[0].line, 10);
    assert_eq!(problems[0].severity, Severity::Error);

    // A quoted string cannot be mapped line by line: problems point at the `mesh:` key.
    let quoted = "kind: ConfigMap\napiVersion: v1\nmetadata: {name: istio}\ndata:\n  mesh: \"rootNamespace: a\\nbogus: 1\\n\"\n";
    let p = load_err(quoted);
    assert_eq!(p.path, "bogus");
    assert_eq!(p.line, 5);

    let p =
        load_err("kind: ConfigMap\napiVersion: v1\nmetadata: {name: istio}\ndata:\n  other: x\n");
    assert_eq!(p.path, "data.mesh");
    assert_eq!(p.line, 4);

    // Among other documents, the istio ConfigMap is picked.
    let multi =
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\n{CONFIG_MAP}");
    assert_eq!(
        load(&multi).outbound_policy(),
        OutboundTrafficPolicyMode::RegistryOnly
    );
    let p = load_err("rootNamespace: a\n---\nrootNamespace: b\n");
    assert_eq!(p.line, 3);
}

/// Istio's own analyzer test data, read in place when the conformance data is on this machine.
#[test]
fn istio_testdata_mesh_configs_load() {
    let dir = std::path::Path::new("/work/shared/conformance/istio-analyzers/testdata");
    if !dir.is_dir() {
        return;
    }
    let mut files = vec![dir.join("common/meshconfig.yaml")];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.contains("mesh-cfg")
                || name == "telemetry-lightstep-meshconfig.yaml"
                || name == "mesh-with-automtls.yaml"
            {
                files.push(e.path());
            }
        }
    }
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let name = f.display().to_string();
        let loaded = match read_mesh_config(&name, &text) {
            Ok(l) => l,
            Err(p) => panic!("{name}: {p:?}"),
        };
        let problems = loaded.problems();
        assert!(
            problems.iter().all(|p| p.severity == Severity::Warning),
            "{name}: {problems:?}"
        );
        let m = loaded.config;
        match f.file_name().and_then(|n| n.to_str()) {
            Some("meshconfig.yaml") => assert_eq!(m.proxy_config().image_type(), "distroless"),
            Some("telemetry-lightstep-meshconfig.yaml") => {
                let ls = m.extension_provider("lightstep").and_then(|p| p.lightstep);
                assert_eq!(ls.map(|l| l.port), Some(443));
                assert!(problems.is_empty(), "{problems:?}");
            }
            Some("serviceentry-missing-addresses-protocol-mesh-cfg.yaml") => {
                // Istio warns that DNS auto allocation v1 is deprecated.
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(
                    problems[0].path,
                    "defaultConfig.proxyMetadata.ISTIO_META_DNS_AUTO_ALLOCATE"
                );
                assert_eq!(problems[0].line, 4);
            }
            Some("serviceentry-address-allocated-mesh-cfg.yaml") => {
                assert_eq!(
                    m.proxy_config()
                        .proxy_metadata
                        .get("ISTIO_META_DNS_CAPTURE")
                        .map(String::as_str),
                    Some("true")
                );
                assert!(problems.is_empty(), "{problems:?}");
            }
            Some("mesh-with-automtls.yaml") => assert!(m.auto_mtls()),
            _ => {}
        }
    }
}
