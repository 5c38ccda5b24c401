//! Istio's mesh defaults (`DefaultMeshConfig` and `DefaultProxyConfig` in Istio's
//! `pkg/config/mesh`), the merge Istio applies when it reads a mesh config over them
//! (`ApplyMeshConfig`), and accessors that answer with the value in effect so that consumers never
//! re-implement a default.

use super::*;

pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
pub const DEFAULT_PROXY_LISTEN_PORT: i32 = 15001;
pub const DEFAULT_PROXY_INBOUND_LISTEN_PORT: i32 = 15006;
pub const DEFAULT_INGRESS_CLASS: &str = "istio";
pub const DEFAULT_INGRESS_SERVICE: &str = "istio-ingressgateway";
/// Selector value (`istio: ingressgateway`) of the default ingress gateway installation.
pub const DEFAULT_INGRESS_SELECTOR: &str = "ingressgateway";
pub const DEFAULT_CONNECT_TIMEOUT: &str = "10s";
pub const DEFAULT_PROTOCOL_DETECTION_TIMEOUT: &str = "0s";
pub const DEFAULT_DNS_REFRESH_RATE: &str = "60s";
/// Not in `DefaultMeshConfig`; applied by pilot when the field is unset.
pub const DEFAULT_HBONE_IDLE_TIMEOUT: &str = "1h";
pub const DEFAULT_EXPORT_TO: &str = "*";

pub const DEFAULT_CONFIG_PATH: &str = "./etc/istio/proxy";
pub const DEFAULT_BINARY_PATH: &str = "/usr/local/bin/envoy";
pub const DEFAULT_SERVICE_CLUSTER: &str = "istio-proxy";
pub const DEFAULT_DRAIN_DURATION: &str = "45s";
pub const DEFAULT_TERMINATION_DRAIN_DURATION: &str = "5s";
pub const DEFAULT_PROXY_ADMIN_PORT: i32 = 15000;
pub const DEFAULT_DISCOVERY_ADDRESS: &str = "istiod.istio-system.svc:15012";
pub const DEFAULT_STAT_NAME_LENGTH: i32 = 189;
pub const DEFAULT_STATUS_PORT: i32 = 15020;
/// Percent of requests traced when `tracing.sampling` is unset (pilot's `PILOT_TRACE_SAMPLING`).
pub const DEFAULT_TRACE_SAMPLING: f64 = 1.0;

/// Names of the extension providers Istio always defines.
pub const BUILTIN_PROVIDERS: [&str; 3] = ["prometheus", "stackdriver", "envoy"];

fn dur(text: &str) -> Duration {
    // Only called with the constants above, which are valid Go durations.
    Duration::parse(text).unwrap_or_else(|_| Duration::from_millis(0))
}

fn or_default<'a>(v: &'a Option<String>, default: &'a str) -> &'a str {
    v.as_deref().unwrap_or(default)
}

macro_rules! overlay {
    ($out:ident, $from:ident; opt: $($o:ident),* ; vec: $($v:ident),* ; map: $($m:ident),*) => {
        $( if $from.$o.is_some() { $out.$o = $from.$o.clone(); } )*
        $( if !$from.$v.is_empty() { $out.$v = $from.$v.clone(); } )*
        $( if !$from.$m.is_empty() { $out.$m = $from.$m.clone(); } )*
    };
}

impl ProxyConfig {
    /// Istio's `DefaultProxyConfig`.
    pub fn istio_default() -> ProxyConfig {
        ProxyConfig {
            config_path: Some(DEFAULT_CONFIG_PATH.into()),
            service_cluster: Some(DEFAULT_SERVICE_CLUSTER.into()),
            drain_duration: Some(dur(DEFAULT_DRAIN_DURATION)),
            termination_drain_duration: Some(dur(DEFAULT_TERMINATION_DRAIN_DURATION)),
            proxy_admin_port: Some(DEFAULT_PROXY_ADMIN_PORT),
            control_plane_auth_policy: Some(AuthenticationPolicy::MutualTls),
            discovery_address: Some(DEFAULT_DISCOVERY_ADDRESS.into()),
            binary_path: Some(DEFAULT_BINARY_PATH.into()),
            stat_name_length: Some(DEFAULT_STAT_NAME_LENGTH),
            status_port: Some(DEFAULT_STATUS_PORT),
            ..Default::default()
        }
    }

    /// This proxy config applied over `base` the way Istio does (`MergeProxyConfig`): every field
    /// set here replaces the base's, `proxyMetadata` is merged key by key, and setting either
    /// member of the `serviceCluster`/`tracingServiceName` oneof clears the other.
    pub fn merged_over(&self, base: &ProxyConfig) -> ProxyConfig {
        let mut out = base.clone();
        let from = self;
        overlay!(out, from;
            opt: config_path, binary_path, drain_duration, discovery_address,
                 discovery_refresh_delay, zipkin_address, statsd_udp_address,
                 envoy_metrics_service_address, proxy_admin_port, availability_zone,
                 control_plane_auth_policy, custom_config_file, stat_name_length, concurrency,
                 proxy_bootstrap_template_path, interception_mode, tracing, sds,
                 envoy_access_log_service, envoy_metrics_service, status_port, gateway_topology,
                 termination_drain_duration, mesh_id, readiness_probe, proxy_stats_matcher,
                 hold_application_until_proxy_starts, image, private_key_provider,
                 proxy_headers, file_flush_interval, file_flush_min_size_kb, stats_compression,
                 connection_settings;
            vec: extra_stat_tags, ca_certificates_pem;
            map: runtime_values);
        // jsonpb sets oneof members in declaration order, so tracingServiceName wins a tie.
        if from.tracing_service_name.is_some() {
            out.tracing_service_name = from.tracing_service_name;
            out.service_cluster = None;
        } else if from.service_cluster.is_some() {
            out.service_cluster = from.service_cluster.clone();
            out.tracing_service_name = None;
        }
        for (k, v) in &from.proxy_metadata {
            out.proxy_metadata.insert(k.clone(), v.clone());
        }
        out
    }

    pub fn config_path(&self) -> &str {
        or_default(&self.config_path, DEFAULT_CONFIG_PATH)
    }
    pub fn binary_path(&self) -> &str {
        or_default(&self.binary_path, DEFAULT_BINARY_PATH)
    }
    pub fn discovery_address(&self) -> &str {
        or_default(&self.discovery_address, DEFAULT_DISCOVERY_ADDRESS)
    }
    pub fn drain_duration(&self) -> Duration {
        self.drain_duration
            .clone()
            .unwrap_or_else(|| dur(DEFAULT_DRAIN_DURATION))
    }
    pub fn termination_drain_duration(&self) -> Duration {
        self.termination_drain_duration
            .clone()
            .unwrap_or_else(|| dur(DEFAULT_TERMINATION_DRAIN_DURATION))
    }
    pub fn proxy_admin_port(&self) -> i32 {
        self.proxy_admin_port.unwrap_or(DEFAULT_PROXY_ADMIN_PORT)
    }
    pub fn status_port(&self) -> i32 {
        self.status_port.unwrap_or(DEFAULT_STATUS_PORT)
    }
    pub fn stat_name_length(&self) -> i32 {
        self.stat_name_length.unwrap_or(DEFAULT_STAT_NAME_LENGTH)
    }
    pub fn control_plane_auth_policy(&self) -> AuthenticationPolicy {
        self.control_plane_auth_policy
            .unwrap_or(AuthenticationPolicy::MutualTls)
    }
    pub fn hold_application_until_proxy_starts(&self) -> bool {
        self.hold_application_until_proxy_starts.unwrap_or(false)
    }
    pub fn interception_mode(&self) -> InboundInterceptionMode {
        self.interception_mode.unwrap_or_default()
    }
    /// `image.imageType`, empty when unset (the injector then uses its global variant).
    pub fn image_type(&self) -> &str {
        self.image
            .as_ref()
            .and_then(|i| i.image_type.as_deref())
            .unwrap_or("")
    }
    /// Percent of requests traced, as pilot computes it: `tracing.sampling` when set (values
    /// over 100 fall back to 1.0), else [`DEFAULT_TRACE_SAMPLING`].
    pub fn tracing_sampling(&self) -> f64 {
        match self.tracing.as_ref().map(|t| t.sampling) {
            Some(s) if s > 100.0 => DEFAULT_TRACE_SAMPLING,
            Some(s) if s != 0.0 => s,
            _ => DEFAULT_TRACE_SAMPLING,
        }
    }
}

impl MeshConfig {
    /// Istio's `DefaultMeshConfig`: what a mesh with an empty `mesh` key runs with.
    pub fn istio_default() -> MeshConfig {
        MeshConfig {
            enable_tracing: Some(true),
            access_log_file: Some(String::new()),
            access_log_encoding: Some(AccessLogEncoding::Text),
            access_log_format: Some(String::new()),
            enable_envoy_access_log_service: Some(false),
            protocol_detection_timeout: Some(dur(DEFAULT_PROTOCOL_DETECTION_TIMEOUT)),
            ingress_service: Some(DEFAULT_INGRESS_SERVICE.into()),
            ingress_controller_mode: Some(IngressControllerMode::Strict),
            ingress_class: Some(DEFAULT_INGRESS_CLASS.into()),
            trust_domain: Some(DEFAULT_TRUST_DOMAIN.into()),
            enable_auto_mtls: Some(true),
            outbound_traffic_policy: Some(OutboundTrafficPolicy {
                mode: OutboundTrafficPolicyMode::AllowAny,
                tls: None,
            }),
            inbound_traffic_policy: Some(InboundTrafficPolicy {
                mode: InboundTrafficPolicyMode::Passthrough,
            }),
            locality_lb_setting: Some(default_locality_lb_setting()),
            default_config: Some(ProxyConfig::istio_default()),
            root_namespace: Some(DEFAULT_ROOT_NAMESPACE.into()),
            proxy_listen_port: Some(DEFAULT_PROXY_LISTEN_PORT),
            proxy_inbound_listen_port: Some(DEFAULT_PROXY_INBOUND_LISTEN_PORT),
            connect_timeout: Some(dur(DEFAULT_CONNECT_TIMEOUT)),
            default_service_export_to: Some(vec![DEFAULT_EXPORT_TO.into()]),
            default_virtual_service_export_to: Some(vec![DEFAULT_EXPORT_TO.into()]),
            default_destination_rule_export_to: Some(vec![DEFAULT_EXPORT_TO.into()]),
            dns_refresh_rate: Some(dur(DEFAULT_DNS_REFRESH_RATE)),
            enable_prometheus_merge: Some(true),
            default_providers: Some(DefaultProviders::default()),
            extension_providers: builtin_providers(),
            ..Default::default()
        }
    }

    /// The mesh config in effect: this one applied over [`MeshConfig::istio_default`] as Istio's
    /// `ApplyMeshConfig` does. Top-level fields set here replace the defaults whole;
    /// `defaultConfig` is merged field by field ([`ProxyConfig::merged_over`]);
    /// `extensionProviders` are merged by name into the built-in ones; `trustDomainAliases` are
    /// de-duplicated and sorted.
    pub fn with_defaults(&self) -> MeshConfig {
        let mut out = MeshConfig::istio_default();
        let from = self;
        overlay!(out, from;
            opt: proxy_listen_port, proxy_inbound_listen_port, proxy_http_port, connect_timeout,
                 hbone_idle_timeout, protocol_detection_timeout, tcp_keepalive, ingress_class,
                 ingress_service, ingress_controller_mode, ingress_selector, enable_tracing,
                 access_log_file, access_log_format, access_log_encoding,
                 enable_envoy_access_log_service, disable_envoy_listener_log,
                 outbound_traffic_policy, inbound_traffic_policy, enable_auto_mtls, trust_domain,
                 default_service_export_to, default_virtual_service_export_to,
                 default_destination_rule_export_to, root_namespace, locality_lb_setting,
                 zone_aware_lb_setting, dns_refresh_rate, h2_upgrade_policy,
                 inbound_cluster_stat_name, outbound_cluster_stat_name, enable_prometheus_merge,
                 verify_certificate_at_client, ca, default_providers, path_normalization,
                 default_http_retry_policy, default_inbound_http_retry_policy, mesh_mtls,
                 tls_defaults, default_traffic_policy, service_entry_visibility;
            vec: config_sources, ca_certificates, certificates, service_settings,
                 service_scope_configs, discovery_selectors;
            map: );
        out.default_config = Some(self.proxy_config());
        out.extension_providers = self.extension_providers();
        out.trust_domain_aliases = self.trust_domain_aliases();
        out
    }

    pub fn root_namespace(&self) -> &str {
        or_default(&self.root_namespace, DEFAULT_ROOT_NAMESPACE)
    }
    pub fn trust_domain(&self) -> &str {
        or_default(&self.trust_domain, DEFAULT_TRUST_DOMAIN)
    }
    /// The aliases, de-duplicated and sorted as Istio stores them.
    pub fn trust_domain_aliases(&self) -> Vec<String> {
        let mut v = self.trust_domain_aliases.clone();
        v.sort();
        v.dedup();
        v
    }
    pub fn auto_mtls(&self) -> bool {
        self.enable_auto_mtls.unwrap_or(true)
    }
    /// `ALLOW_ANY` when `outboundTrafficPolicy` is absent; `REGISTRY_ONLY` when it is present
    /// without a mode.
    pub fn outbound_policy(&self) -> OutboundTrafficPolicyMode {
        self.outbound_traffic_policy
            .as_ref()
            .map_or(OutboundTrafficPolicyMode::AllowAny, |p| p.mode)
    }
    pub fn inbound_policy(&self) -> InboundTrafficPolicyMode {
        self.inbound_traffic_policy
            .as_ref()
            .map_or(InboundTrafficPolicyMode::Passthrough, |p| p.mode)
    }
    pub fn proxy_listen_port(&self) -> i32 {
        self.proxy_listen_port.unwrap_or(DEFAULT_PROXY_LISTEN_PORT)
    }
    pub fn proxy_inbound_listen_port(&self) -> i32 {
        self.proxy_inbound_listen_port
            .unwrap_or(DEFAULT_PROXY_INBOUND_LISTEN_PORT)
    }
    /// The HTTP PROXY port, if one is configured (0 means none).
    pub fn proxy_http_port(&self) -> Option<i32> {
        self.proxy_http_port.filter(|p| *p != 0)
    }
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
            .clone()
            .unwrap_or_else(|| dur(DEFAULT_CONNECT_TIMEOUT))
    }
    /// Zero means no timeout.
    pub fn protocol_detection_timeout(&self) -> Duration {
        self.protocol_detection_timeout
            .clone()
            .unwrap_or_else(|| dur(DEFAULT_PROTOCOL_DETECTION_TIMEOUT))
    }
    pub fn hbone_idle_timeout(&self) -> Duration {
        self.hbone_idle_timeout
            .clone()
            .unwrap_or_else(|| dur(DEFAULT_HBONE_IDLE_TIMEOUT))
    }
    pub fn dns_refresh_rate(&self) -> Duration {
        self.dns_refresh_rate
            .clone()
            .unwrap_or_else(|| dur(DEFAULT_DNS_REFRESH_RATE))
    }
    pub fn ingress_class(&self) -> &str {
        or_default(&self.ingress_class, DEFAULT_INGRESS_CLASS)
    }
    pub fn ingress_service(&self) -> &str {
        or_default(&self.ingress_service, DEFAULT_INGRESS_SERVICE)
    }
    pub fn ingress_controller_mode(&self) -> IngressControllerMode {
        self.ingress_controller_mode
            .unwrap_or(IngressControllerMode::Strict)
    }
    /// The `istio:` label value the Ingress controller's gateway selects: `ingressSelector`, else
    /// a non-default `ingressService`, else `ingressgateway`.
    pub fn ingress_selector(&self) -> &str {
        match self.ingress_selector.as_deref() {
            Some(s) if !s.is_empty() => s,
            _ => match self.ingress_service() {
                "" | DEFAULT_INGRESS_SERVICE => DEFAULT_INGRESS_SELECTOR,
                svc => svc,
            },
        }
    }
    pub fn tracing_enabled(&self) -> bool {
        self.enable_tracing.unwrap_or(true)
    }
    /// Empty when access logging is off.
    pub fn access_log_file(&self) -> &str {
        or_default(&self.access_log_file, "")
    }
    pub fn access_log_format(&self) -> &str {
        or_default(&self.access_log_format, "")
    }
    pub fn access_log_encoding(&self) -> AccessLogEncoding {
        self.access_log_encoding.unwrap_or_default()
    }
    pub fn envoy_access_log_service_enabled(&self) -> bool {
        self.enable_envoy_access_log_service.unwrap_or(false)
    }
    pub fn prometheus_merge(&self) -> bool {
        self.enable_prometheus_merge.unwrap_or(true)
    }
    pub fn h2_upgrade_policy(&self) -> H2UpgradePolicy {
        self.h2_upgrade_policy.unwrap_or_default()
    }
    pub fn path_normalization(&self) -> NormalizationType {
        self.path_normalization
            .as_ref()
            .map_or(NormalizationType::Default, |p| p.normalization)
    }
    /// Default `exportTo` of ServiceEntries and Services; `["*"]` when unset or empty.
    pub fn default_service_export_to(&self) -> Vec<String> {
        export_to_or_public(&self.default_service_export_to)
    }
    pub fn default_virtual_service_export_to(&self) -> Vec<String> {
        export_to_or_public(&self.default_virtual_service_export_to)
    }
    pub fn default_destination_rule_export_to(&self) -> Vec<String> {
        export_to_or_public(&self.default_destination_rule_export_to)
    }
    /// The mesh-wide locality LB setting (`{"enabled": true}` when unset).
    pub fn locality_lb_setting(&self) -> LocalityLoadBalancerSetting {
        self.locality_lb_setting
            .clone()
            .unwrap_or_else(default_locality_lb_setting)
    }
    /// `defaultConfig` merged over Istio's default proxy config.
    pub fn proxy_config(&self) -> ProxyConfig {
        let base = ProxyConfig::istio_default();
        match &self.default_config {
            Some(pc) => pc.merged_over(&base),
            None => base,
        }
    }
    /// The built-in providers (`prometheus`, `stackdriver`, `envoy`) with this config's providers
    /// merged in by name: a same-named provider replaces the earlier one's settings in place, a
    /// new name is appended.
    pub fn extension_providers(&self) -> Vec<ExtensionProvider> {
        let mut out = builtin_providers();
        for p in &self.extension_providers {
            match out.iter_mut().find(|e| e.name == p.name) {
                Some(e) => *e = p.clone(),
                None => out.push(p.clone()),
            }
        }
        out
    }
    /// The provider in effect under `name`, built-ins included.
    pub fn extension_provider(&self, name: &str) -> Option<ExtensionProvider> {
        self.extension_providers()
            .into_iter()
            .find(|p| p.name == name)
    }
    pub fn default_providers(&self) -> DefaultProviders {
        self.default_providers.clone().unwrap_or_default()
    }
}

fn export_to_or_public(v: &Option<Vec<String>>) -> Vec<String> {
    match v {
        Some(v) if !v.is_empty() => v.clone(),
        _ => vec![DEFAULT_EXPORT_TO.to_string()],
    }
}

fn builtin_providers() -> Vec<ExtensionProvider> {
    vec![
        ExtensionProvider {
            name: BUILTIN_PROVIDERS[0].into(),
            prometheus: Some(PrometheusMetricsProvider {}),
            ..Default::default()
        },
        ExtensionProvider {
            name: BUILTIN_PROVIDERS[1].into(),
            stackdriver: Some(StackdriverProvider::default()),
            ..Default::default()
        },
        ExtensionProvider {
            name: BUILTIN_PROVIDERS[2].into(),
            envoy_file_access_log: Some(EnvoyFileAccessLogProvider {
                path: "/dev/stdout".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

/// Istio's default locality LB setting: enabled, nothing else set.
fn default_locality_lb_setting() -> LocalityLoadBalancerSetting {
    LocalityLoadBalancerSetting {
        enabled: Some(true),
        ..Default::default()
    }
}
