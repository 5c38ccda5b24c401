//! `service.PortNameAnalyzer`: Service ports whose protocol Istio cannot tell from the name or
//! `appProtocol` (IST0118), and ExternalName services with such ports (IST0150).

use super::{Analyzer, Code, Context, Message};
use crate::protocol::Protocol;
use crate::types::k8s::IntOrString;

pub struct PortName;

/// Labels that mark services made by a gateway controller rather than by users.
const MANAGED_BY_GATEWAY: [&str; 3] = [
    "istio.io-gateway-controller",
    "istio.io-mesh-controller",
    "istio.io-eastwest-controller",
];

impl Analyzer for PortName {
    fn name(&self) -> &'static str {
        "service.PortNameAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, svc) in cx.services() {
            // The control plane's own services name their ports as they please.
            if r.meta.labels.contains_key("istio")
                || r.meta.labels.get("release").is_some_and(|v| v == "istio")
            {
                continue;
            }
            if r.meta
                .labels
                .get("gateway.istio.io/managed")
                .is_some_and(|v| MANAGED_BY_GATEWAY.contains(&v.as_str()))
            {
                continue;
            }
            let external = svc.spec.type_.as_deref() == Some("ExternalName");
            for (i, p) in svc.spec.ports.iter().enumerate() {
                let name = p.name.as_deref().unwrap_or("");
                let proto = Protocol::of_port(
                    p.port,
                    name,
                    p.protocol.as_deref(),
                    p.app_protocol.as_deref(),
                );
                if proto != Protocol::Unknown && !(name == "tcp" && external) {
                    continue;
                }
                let path = format!("spec.ports[{i}]");
                let m = if external {
                    Message::new(
                        Code::ExternalNameServiceTypeInvalidPortName,
                        &r.into(),
                        &path,
                        "port name of an ExternalName service must name its protocol (http-, https-, tls-...); \
                         the proxy may not forward TCP traffic on this port correctly",
                    )
                } else {
                    let target = match &p.target_port {
                        Some(IntOrString::Int(n)) => n.to_string(),
                        Some(IntOrString::String(s)) => s.clone(),
                        None => p.port.to_string(),
                    };
                    Message::new(
                        Code::PortNameIsNotUnderNamingConvention,
                        &r.into(),
                        &path,
                        format!(
                            "port name {name:?} (port {}, targetPort {target}) does not follow Istio's naming \
                             convention <protocol>[-<suffix>] and has no appProtocol; its protocol will be sniffed",
                            p.port
                        ),
                    )
                };
                out.push(m);
            }
        }
    }
}
