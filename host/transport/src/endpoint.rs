//! Endpoints and connections: quinn with rustls, both sides authenticated by the cluster CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use luciole_proto::MemberId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::pki::{MemberIdentity, SERVER_NAME, member_id_of};

/// The application protocol and its version, offered and required on every connection.
pub const ALPN: &[u8] = b"luciole/1";
/// Longest a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection silent this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive pings, well below the idle timeout.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// The round-trip time assumed before one is measured.
pub const INITIAL_RTT: Duration = Duration::from_millis(50);
/// Streams a peer may have open at once on one connection, per direction kind.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 16;

/// What went wrong in the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Making or reading certificates.
    #[error("certificates: {0}")]
    Pki(String),
    /// TLS settings.
    #[error("TLS settings: {0}")]
    Tls(String),
    /// Binding a socket.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Connecting to a peer (refused, timed out, its certificate not from our cluster, …).
    #[error("connecting to {addr}: {why}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        why: String,
    },
    /// A peer's verified certificate carries no (single) member id.
    #[error("the peer at {0} presented no member id")]
    NoMemberId(SocketAddr),
}

/// A member's QUIC endpoint: accepts connections from members of its cluster and connects to
/// them.
#[derive(Debug, Clone)]
pub struct Endpoint {
    quic: quinn::Endpoint,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
}

/// What an endpoint's accept loop let in and kept out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Connections from authenticated members.
    pub accepted: u64,
    /// Connection attempts that failed the handshake (no certificate, another cluster's,
    /// another protocol version) or carried no member id.
    pub refused: u64,
}

/// A connection to a member, whose id was taken from its verified certificate.
#[derive(Debug, Clone)]
pub struct Connection {
    quic: quinn::Connection,
    peer: MemberId,
}

impl Connection {
    /// The peer: from its certificate, verified against the cluster CA.
    pub fn peer(&self) -> MemberId {
        self.peer
    }

    /// The underlying QUIC connection.
    pub fn quic(&self) -> &quinn::Connection {
        &self.quic
    }

    fn verified(quic: quinn::Connection) -> Result<Self, TransportError> {
        let addr = quic.remote_address();
        let certs = quic
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or(TransportError::NoMemberId(addr))?;
        let peer = certs.first().and_then(member_id_of).ok_or(TransportError::NoMemberId(addr))?;
        Ok(Self { quic, peer })
    }
}

impl Endpoint {
    /// Binds `addr` (UDP) for `identity`'s member.
    pub fn bind(addr: SocketAddr, identity: &MemberIdentity) -> Result<Self, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(identity.ca.clone()).map_err(tls)?;
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(tls)?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![identity.cert.clone()], identity.key_der())
            .map_err(tls)?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        server.max_early_data_size = 0; // no 0-RTT: replayable
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![identity.cert.clone()], identity.key_der())
            .map_err(tls)?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        client.enable_early_data = false;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(IDLE_TIMEOUT.try_into().map_err(tls)?))
            .keep_alive_interval(Some(KEEP_ALIVE))
            // Members share a data centre: a lost first handshake packet (the peer's process
            // not up yet) is sent again after ~3 × this, not after the ~1 s that the default
            // 333 ms (made for the open internet) costs.
            .initial_rtt(INITIAL_RTT)
            // A peer opens one stream per direction for its messages: a few more are slack,
            // not a way to make this node keep thousands of readers.
            .max_concurrent_uni_streams(STREAMS_PER_CONNECTION_MAX.into())
            .max_concurrent_bidi_streams(STREAMS_PER_CONNECTION_MAX.into());
        let transport = Arc::new(transport);
        let server = QuicServerConfig::try_from(server).map_err(tls)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
        server.transport_config(transport.clone());
        let client = QuicClientConfig::try_from(client).map_err(tls)?;
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(transport);
        let mut quic = quinn::Endpoint::server(server, addr)
            .map_err(|source| TransportError::Bind { addr, source })?;
        quic.set_default_client_config(client);
        Ok(Self { quic, counts: Arc::default() })
    }

    /// Counts of the accept loop.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            accepted: self.counts.accepted.load(Relaxed),
            refused: self.counts.refused.load(Relaxed),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }

    /// Connects to the member at `addr`, within [`CONNECT_TIMEOUT`].
    pub async fn connect(&self, addr: SocketAddr) -> Result<Connection, TransportError> {
        let failed = |why: String| TransportError::Connect { addr, why };
        let connecting = self.quic.connect(addr, SERVER_NAME).map_err(|e| failed(e.to_string()))?;
        let quic = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| failed(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        Connection::verified(quic)
    }

    /// The next member to connect here, authenticated; `None` once the endpoint is closed.
    /// A peer that fails the handshake (no certificate, another cluster's, another protocol
    /// version) is counted as refused and skipped.
    pub async fn accept(&self) -> Option<Connection> {
        loop {
            let incoming = self.quic.accept().await?;
            match incoming.await.ok().and_then(|quic| Connection::verified(quic).ok()) {
                Some(c) => {
                    self.counts.accepted.fetch_add(1, Relaxed);
                    return Some(c);
                }
                None => {
                    self.counts.refused.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.quic.close(0u32.into(), b"closing");
    }
}

fn tls(e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls(e.to_string())
}
