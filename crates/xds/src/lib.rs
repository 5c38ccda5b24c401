//! Bowline's control-plane protocol, both ends: gRPC streams with xDS's delta semantics that
//! carry each proxy's configuration, and Istio's certificate service.
//!
//! - [`resources`]: the resource types (one per snapshot section, a cluster's endpoints on
//!   their own), how a snapshot splits into them and is put back together, resource versions.
//! - [`server`]: the discovery service: authentication, per-stream subscriptions, per-resource
//!   diffs, nonces, ACK/NACK; the control plane plugs in through [`server::Provider`].
//! - [`certs`]: `CreateCertificate`, signed by the mesh CA for the identity the caller proved.
//! - [`client`]: the proxy's discovery client (reconnects with backoff, keeps the last config,
//!   ACKs/NACKs through the proxy's [`client::Applier`]) and the certificate call.
//! - [`status`], [`metrics`]: per-proxy sync state (`/debug/syncz`) and istiod's push metrics.
//! - [`serve`]: both services on one TLS listener; [`codec`]: prost's codec with encode buffers
//!   sized for the server's bounded responses.
//!
//! Messages are generated at build time from `proto/` by tonic's generator, with protox as the
//! protobuf compiler, so no system `protoc` is needed.

pub mod certs;
pub mod client;
pub mod codec;
pub mod metrics;
pub mod resources;
pub mod server;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ca::{Authenticator, CertificateAuthority};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use client::{Applier, Client, Connection, Rejection};
pub use metrics::XdsMetrics;
pub use resources::{Generated, SECTIONS};
pub use server::Provider;
pub use status::{ProxySync, SyncTable, TypeSync};

#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("bowline.discovery.v1");
}

#[allow(clippy::all, missing_docs)]
pub mod istio_auth {
    tonic::include_proto!("istio.v1.auth");
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS setup of the discovery server: {0}")]
    Tls(tonic::transport::Error),
    #[error("discovery server: {0}")]
    Serve(tonic::transport::Error),
}

/// Everything the discovery and certificate services need.
pub struct ServeOptions<P> {
    pub provider: Arc<P>,
    pub authenticator: Arc<dyn Authenticator>,
    pub ca: Arc<CertificateAuthority>,
    /// The serving certificate chain and its key, PEM.
    pub cert_chain_pem: String,
    pub key_pem: String,
    /// This instance's name, shown by `proxy-status`.
    pub control_plane: String,
    pub max_concurrent_pushes: usize,
    pub table: SyncTable,
    pub metrics: XdsMetrics,
}

/// Serves discovery and certificates with TLS on `listener` until `shutdown` resolves; open
/// streams are then ended so proxies reconnect elsewhere (or to the next instance).
pub async fn serve<P: Provider>(
    listener: TcpListener,
    opts: ServeOptions<P>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    use istio_auth::istio_certificate_service_server::IstioCertificateServiceServer;
    use pb::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;

    let (stop, stopped) = watch::channel(false);
    let discovery = server::Discovery::new(
        opts.provider,
        opts.authenticator.clone(),
        opts.table,
        opts.metrics,
        opts.control_plane,
        opts.max_concurrent_pushes,
        stopped,
    );
    let certs = certs::CertService::new(opts.ca, opts.authenticator);
    let tls =
        ServerTlsConfig::new().identity(Identity::from_pem(opts.cert_chain_pem, opts.key_pem));
    let server = Server::builder()
        .tls_config(tls)
        .map_err(ServeError::Tls)?
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(
            AggregatedDiscoveryServiceServer::new(discovery)
                .max_decoding_message_size(client::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(client::MAX_MESSAGE_BYTES),
        )
        .add_service(IstioCertificateServiceServer::new(certs));
    server
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await
        .map_err(ServeError::Serve)
}
