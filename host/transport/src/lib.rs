//! QUIC with mutual TLS between the members of one cluster.
//!
//! A cluster has one certificate authority ([`ClusterCa`]); each member gets a certificate from
//! it that carries the member's id as a URI subject alternative name
//! (`luciole://member/<32 hex digits>`). Both sides of every connection present a certificate
//! and verify the other's against the cluster CA (TLS 1.3 only, ALPN [`ALPN`], no 0-RTT), and the
//! peer's member id is taken from its verified certificate ([`Connection::peer`]) — never from a
//! message — so the membership core's rule "the sender is the authenticated connection" holds.
//! Messages travel in [`frame`]s: a version byte, a length and a postcard payload, refused past
//! a size limit before the payload is read. A [`Mesh`] carries one message type between the
//! members: a connection per peer, one ordered stream per direction, bounded queues with
//! counters, and bad input closing only its own connection.

mod endpoint;
pub mod frame;
pub mod mesh;
mod pki;

pub use endpoint::{
    ALPN, CONNECT_TIMEOUT, Connection, Endpoint, EndpointStats, IDLE_TIMEOUT, KEEP_ALIVE,
    TransportError,
};
pub use mesh::{Inbound, Mesh, MeshStats};
pub use pki::{ClusterCa, MemberIdentity, member_id_of};
