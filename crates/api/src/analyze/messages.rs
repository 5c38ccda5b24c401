//! The message codes Bowline's analyzers report. Codes, levels and type names are Istio's (users
//! search for them and suppress them by code); the wording of each message is ours.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        })
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $level:ident;)*) => {
        /// A message code from Istio's analysis catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
            pub fn code(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }
            pub fn level(self) -> Level {
                match self { $(Code::$variant => Level::$level,)* }
            }
            /// Istio's type name for the code, e.g. `ReferencedResourceNotFound`.
            pub fn type_name(self) -> &'static str {
                match self { $(Code::$variant => stringify!($variant),)* }
            }
            pub fn by_code(code: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.code() == code)
            }
        }
    };
}

codes! {
    InternalError = "IST0001", Error;
    Deprecated = "IST0002", Warning;
    ReferencedResourceNotFound = "IST0101", Error;
    NamespaceNotInjected = "IST0102", Info;
    PodMissingProxy = "IST0103", Warning;
    SchemaValidationError = "IST0106", Error;
    MisplacedAnnotation = "IST0107", Warning;
    UnknownAnnotation = "IST0108", Warning;
    ConflictingMeshGatewayVirtualServiceHosts = "IST0109", Error;
    ConflictingSidecarWorkloadSelectors = "IST0110", Error;
    MultipleSidecarsWithoutWorkloadSelectors = "IST0111", Error;
    VirtualServiceDestinationPortSelectorRequired = "IST0112", Error;
    PortNameIsNotUnderNamingConvention = "IST0118", Info;
    NoMatchingWorkloadsFound = "IST0127", Warning;
    NoServerCertificateVerificationDestinationLevel = "IST0128", Warning;
    NoServerCertificateVerificationPortLevel = "IST0129", Warning;
    VirtualServiceUnreachableRule = "IST0130", Warning;
    VirtualServiceIneffectiveMatch = "IST0131", Info;
    VirtualServiceHostNotFoundInGateway = "IST0132", Warning;
    ServiceEntryAddressesRequired = "IST0134", Warning;
    GatewayDuplicateCertificate = "IST0138", Warning;
    IngressRouteRulesNotAffected = "IST0140", Warning;
    ConflictingGateways = "IST0145", Error;
    JwtClaimBasedRoutingWithoutRequestAuthN = "IST0149", Error;
    ExternalNameServiceTypeInvalidPortName = "IST0150", Warning;
    EnvoyFilterUsesRelativeOperation = "IST0151", Warning;
    EnvoyFilterUsesReplaceOperationIncorrectly = "IST0152", Error;
    EnvoyFilterUsesAddOperationIncorrectly = "IST0153", Error;
    EnvoyFilterUsesRemoveOperationIncorrectly = "IST0154", Error;
    EnvoyFilterUsesRelativeOperationWithProxyVersion = "IST0155", Warning;
    InvalidTelemetryProvider = "IST0157", Warning;
    ConflictingTelemetryWorkloadSelectors = "IST0159", Error;
    MultipleTelemetriesWithoutWorkloadSelectors = "IST0160", Error;
    InvalidGatewayCredential = "IST0161", Error;
    GatewayPortNotDefinedOnService = "IST0162", Warning;
    ReferencedInternalGateway = "IST0165", Warning;
    IneffectivePolicy = "IST0167", Warning;
    NegativeConditionStatus = "IST0171", Warning;
    DestinationRuleSubsetNotSelectPods = "IST0173", Error;
    UnknownDestinationRuleHost = "IST0174", Warning;
    ConflictingServiceEntryProtocol = "IST0177", Warning;
    SchemaWarning = "IST0133", Warning;
}
