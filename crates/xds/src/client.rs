//! The proxy's side: a discovery client that connects over TLS (verifying the control plane's
//! certificate against the mesh root), authenticates with a bearer token, subscribes to every
//! type, applies what arrives through the proxy's [`Applier`] and answers each response with an
//! ACK or a NACK carrying the reason.
//!
//! What the client holds survives the stream: when the control plane goes away the proxy keeps
//! serving its last accepted config, reconnects with jittered exponential backoff, and tells the
//! new stream which versions it holds so only differences come back.
//!
//! Resources of one push arrive type by type. A set that does not assemble into a whole
//! snapshot yet (a cluster without its endpoints, a listener without its route table) is held
//! and acknowledged, as Envoy acknowledges a warming cluster, and applied once the rest arrives.

use std::sync::Arc;
use std::time::Duration;

use model::{ProxyIdentity, ProxySnapshot};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::{debug, info, warn};

use crate::istio_auth::istio_certificate_service_client::IstioCertificateServiceClient;
use crate::istio_auth::IstioCertificateRequest;
use crate::pb::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use crate::pb::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, ErrorDetail, Node};
use crate::resources::{
    assemble, section, Res, ResourceError, TypeResources, CLUSTER, ENDPOINTS, SECTIONS,
};
use crate::server::BoxFuture;

/// Largest message either side accepts: a full push to a proxy that sees every service of a
/// large mesh is tens of megabytes.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control plane address `{0}` is not HOST:PORT")]
    Address(String),
    #[error("connecting to the control plane at {address}: {}", chain(.source))]
    Connect {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("the control plane refused the call: {0}")]
    Status(#[from] tonic::Status),
    #[error("the token is not valid metadata")]
    Token,
    #[error("encoding the node metadata: {0}")]
    Node(serde_json::Error),
}

/// An error and its causes on one line: tonic's transport errors say little at the top.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// Where the control plane is and how to prove who we are.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `host:port`.
    pub address: String,
    /// The name the control plane's certificate must carry; the address's host by default.
    pub server_name: Option<String>,
    /// The mesh root certificate(s), PEM.
    pub root_cert_pem: String,
    /// The bootstrap token, sent as `authorization: Bearer`.
    pub token: String,
}

impl Connection {
    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let (host, _) = self
            .address
            .rsplit_once(':')
            .ok_or_else(|| ClientError::Address(self.address.clone()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.root_cert_pem))
            .domain_name(self.server_name.clone().unwrap_or_else(|| host.to_string()));
        let connect = |source| ClientError::Connect {
            address: self.address.clone(),
            source,
        };
        Ok(Endpoint::from_shared(format!("https://{}", self.address))
            .map_err(connect)?
            .tls_config(tls)
            .map_err(connect)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10)))
    }

    /// A TLS channel to the control plane (not yet authenticated: calls carry the token).
    pub async fn channel(&self) -> Result<Channel, ClientError> {
        self.endpoint()?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                address: self.address.clone(),
                source,
            })
    }

    /// Adds the bearer token to a call.
    pub fn authorize<T>(&self, req: &mut tonic::Request<T>) -> Result<(), ClientError> {
        let value = format!("Bearer {}", self.token.trim())
            .parse()
            .map_err(|_| ClientError::Token)?;
        req.metadata_mut().insert("authorization", value);
        Ok(())
    }
}

/// Asks the control plane's CA to sign `csr_pem`; returns the chain, leaf first.
pub async fn create_certificate(
    conn: &Connection,
    csr_pem: &str,
    ttl: Option<Duration>,
) -> Result<Vec<String>, ClientError> {
    let mut client = IstioCertificateServiceClient::new(conn.channel().await?);
    let mut req = tonic::Request::new(IstioCertificateRequest {
        csr: csr_pem.to_string(),
        validity_duration: ttl.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    });
    conn.authorize(&mut req)?;
    Ok(client
        .create_certificate(req)
        .await?
        .into_inner()
        .cert_chain)
}

/// Why the proxy did not take a snapshot.
#[derive(Debug)]
pub enum Rejection {
    /// Not whole yet (a reference to something not received): hold it and wait.
    Incomplete(String),
    /// Refused: the reason goes back to the control plane as a NACK.
    Invalid(String),
}

/// How the proxy takes a snapshot.
pub trait Applier: Send + Sync + 'static {
    fn apply(&self, snapshot: ProxySnapshot) -> BoxFuture<'_, Result<(), Rejection>>;
}

/// Reconnect delays: doubling from `initial` up to `max`, each drawn at random from its upper
/// half so that proxies cut off together do not come back together.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// What the client holds, by type (indexed like [`SECTIONS`]).
#[derive(Clone, Default)]
struct Held {
    /// Applied and serving.
    accepted: Vec<TypeResources>,
    /// Accepted plus what arrived but could not be applied yet.
    working: Vec<TypeResources>,
    version: String,
    /// Types that answered on this connection: nothing is assembled before each has, since a
    /// large push arrives as many responses and the first types alone make no whole config.
    answered: Vec<bool>,
}

/// A discovery client for one proxy.
pub struct Client {
    conn: Connection,
    proxy: ProxyIdentity,
    cluster: String,
    applier: Arc<dyn Applier>,
    backoff: Backoff,
    held: Held,
    rng: fastrand::Rng,
}

impl Client {
    pub fn new(
        conn: Connection,
        proxy: ProxyIdentity,
        cluster: &str,
        applier: Arc<dyn Applier>,
    ) -> Self {
        let empty = vec![TypeResources::new(); SECTIONS.len()];
        Client {
            conn,
            proxy,
            cluster: cluster.to_string(),
            applier,
            backoff: Backoff::default(),
            held: Held {
                accepted: empty.clone(),
                working: empty,
                version: String::new(),
                answered: vec![false; SECTIONS.len()],
            },
            rng: fastrand::Rng::new(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Follows the control plane for as long as the task runs.
    pub async fn run(mut self) {
        let mut delay = self.backoff.initial;
        loop {
            match self.session().await {
                Ok(received) => {
                    info!(address = %self.conn.address, "control plane stream ended; the last config keeps serving");
                    if received {
                        delay = self.backoff.initial;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "control plane unavailable; the last config keeps serving");
                }
            }
            let half = delay / 2;
            let jittered = half + half.mul_f64(self.rng.f64());
            debug!(delay_ms = jittered.as_millis() as u64, "reconnecting");
            tokio::time::sleep(jittered).await;
            delay = (delay * 2).min(self.backoff.max);
        }
    }

    /// One stream, until it ends. `Ok(true)` when at least one response arrived.
    async fn session(&mut self) -> Result<bool, ClientError> {
        let channel = self.conn.channel().await?;
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(SECTIONS.len() * 2);
        let node = Node {
            id: self.proxy.id.clone(),
            cluster: self.cluster.clone(),
            metadata_json: serde_json::to_vec(&self.proxy).map_err(ClientError::Node)?,
        };
        self.held.working = self.held.accepted.clone();
        self.held.answered = vec![false; SECTIONS.len()];
        for (i, s) in SECTIONS.iter().enumerate() {
            let req = DeltaDiscoveryRequest {
                node: (i == 0).then(|| node.clone()),
                type_url: s.type_url.to_string(),
                resource_names_subscribe: vec!["*".into()],
                initial_resource_versions: self.held.accepted[i]
                    .iter()
                    .map(|(n, r)| (n.clone(), r.version.clone()))
                    .collect(),
                ..Default::default()
            };
            // The channel holds every initial request: this cannot wait.
            let _ = tx.try_send(req);
        }
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        self.conn.authorize(&mut req)?;
        let mut inbound = client.delta_aggregated_resources(req).await?.into_inner();
        info!(address = %self.conn.address, "connected to the control plane");
        let mut received = false;
        while let Some(resp) = inbound.message().await? {
            received = true;
            let answer = self.on_response(resp).await;
            if tx.send(answer).await.is_err() {
                break;
            }
        }
        Ok(received)
    }

    /// Why `candidate` cannot be whole yet, found without decoding anything: a type that has
    /// not answered, or a cluster whose endpoints have not arrived.
    fn waiting(&self, candidate: &[TypeResources]) -> Option<String> {
        if let Some(i) = self.held.answered.iter().position(|a| !a) {
            return Some(format!("no {} response yet", SECTIONS[i].short));
        }
        let (cds, eds) = (section(CLUSTER)?.0, section(ENDPOINTS)?.0);
        candidate[cds]
            .keys()
            .find(|c| !candidate[eds].contains_key(*c))
            .map(|c| format!("no endpoints for cluster `{c}` yet"))
    }

    /// Takes one response in and says what to answer.
    async fn on_response(&mut self, resp: DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
        let mut answer = DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        };
        let nack = |answer: &mut DeltaDiscoveryRequest, message: String| {
            warn!(r#type = %answer.type_url, nonce = %answer.response_nonce, reason = %message, "rejected a response (NACK)");
            answer.error_detail = Some(ErrorDetail { code: 3, message });
        };
        let Some((i, s)) = section(&resp.type_url) else {
            nack(&mut answer, format!("unknown type {}", resp.type_url));
            return answer;
        };
        let mut candidate = self.held.working.clone();
        for r in resp.resources {
            candidate[i].insert(
                r.name,
                Res {
                    version: r.version,
                    body: r.body,
                },
            );
        }
        for name in &resp.removed_resources {
            candidate[i].remove(name);
        }
        let version = resp.system_version_info;
        self.held.answered[i] = true;
        if candidate == self.held.accepted {
            // Nothing new (a resync after reconnecting): the serving config is current.
            self.held.working = candidate;
            self.held.version = version;
            return answer;
        }
        if let Some(why) = self.waiting(&candidate) {
            debug!(r#type = s.short, %why, "holding until the rest of the push arrives");
            self.held.working = candidate;
            return answer;
        }
        match assemble(&version, &candidate) {
            Err(ResourceError::Incomplete(why)) => {
                debug!(r#type = s.short, %why, "holding until the rest of the push arrives");
                self.held.working = candidate;
            }
            Err(e) => nack(&mut answer, e.to_string()),
            Ok(snapshot) => {
                let (listeners, clusters) = (snapshot.listeners.len(), snapshot.clusters.len());
                match self.applier.apply(snapshot).await {
                    Ok(()) => {
                        info!(r#type = s.short, %version, listeners, clusters, "config applied");
                        self.held.accepted = candidate.clone();
                        self.held.working = candidate;
                        self.held.version = version;
                    }
                    Err(Rejection::Incomplete(why)) => {
                        debug!(r#type = s.short, %why, "holding until the rest of the push arrives");
                        self.held.working = candidate;
                    }
                    Err(Rejection::Invalid(why)) => {
                        self.held.working = self.held.accepted.clone();
                        nack(&mut answer, why);
                    }
                }
            }
        }
        answer
    }
}
