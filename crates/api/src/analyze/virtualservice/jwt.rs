//! `virtualservice.JWTClaimRouteAnalyzer`: a VirtualService routing on JWT claims through a
//! gateway whose pods no RequestAuthentication applies to (IST0149); without one the claims are
//! never extracted and the routes never match.

use std::collections::BTreeMap;

use super::gateways::gateway_ref;
use crate::analyze::context::labels_match;
use crate::analyze::hosts::{pods, ISTIO_NAMESPACE, MESH_GATEWAY};
use crate::analyze::{Analyzer, Code, Context, Message};
use crate::types::virtual_service::VirtualService;
use crate::validate::virtual_service::headers::is_jwt_claim;

pub struct JwtClaimRoute;

impl Analyzer for JwtClaimRoute {
    fn name(&self) -> &'static str {
        "virtualservice.JWTClaimRouteAnalyzer"
    }

    fn analyze(&self, cx: &Context<'_>, out: &mut Vec<Message>) {
        // Selectors of RequestAuthentications by namespace; no selector selects every workload.
        let empty = BTreeMap::new();
        let mut authn: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
        for (r, ra) in cx.request_authentications() {
            let sel = ra.selector.as_ref().map_or(&empty, |s| &s.match_labels);
            authn.entry(r.namespace()).or_default().push(sel);
        }
        let pods = pods(cx);
        for (r, vs) in cx.virtual_services() {
            let Some(claim) = jwt_claim_key(vs) else {
                continue;
            };
            for gw in vs.gateways.iter().filter(|g| *g != MESH_GATEWAY) {
                let (ns, name) = gateway_ref(r.namespace(), gw);
                // A missing gateway is the GatewayAnalyzer's to report.
                let Some((_, spec)) = cx
                    .gateways()
                    .find(|(g, _)| g.namespace() == ns && g.name() == name)
                else {
                    continue;
                };
                for pod in pods
                    .iter()
                    .filter(|p| labels_match(&spec.selector, &p.labels))
                {
                    let covered = [ISTIO_NAMESPACE, pod.namespace]
                        .iter()
                        .flat_map(|n| authn.get(n).into_iter().flatten())
                        .any(|sel| labels_match(sel, &pod.labels));
                    if !covered {
                        out.push(Message::new(
                            Code::JwtClaimBasedRoutingWithoutRequestAuthN,
                            &r.into(),
                            "",
                            format!(
                                "routes on JWT claim {claim:?} through gateway {ns}/{name}, but no \
                                 RequestAuthentication applies to its pod {}",
                                pod.name
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// The first match key (header, then absent header) that routes on a JWT claim.
fn jwt_claim_key(vs: &VirtualService) -> Option<&str> {
    vs.http.iter().flat_map(|h| &h.matches).find_map(|m| {
        m.headers
            .keys()
            .chain(m.without_headers.keys())
            .find(|k| is_jwt_claim(k))
            .map(String::as_str)
    })
}
