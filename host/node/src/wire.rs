//! What nodes send each other: membership, batches of migration messages numbered per peer,
//! and clock readings with a summary of what the sender hosts.

use luciole_proto::membership::node::Envelope;
use luciole_proto::migration::Message;
use serde::{Deserialize, Serialize};

/// One frame's message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// A membership message.
    Membership(Envelope),
    /// Migration messages for one peer, in order, numbered `first`, `first + 1`, … in the
    /// sender's `session` ([`luciole_proto::order`]).
    Migrations {
        /// The sender's session (random, new at each start).
        session: u64,
        /// The number of the first message.
        first: u64,
        /// The messages.
        messages: Vec<Message>,
    },
    /// A clock reading, asking for one back.
    Ping {
        /// The sender's wall clock, ms since the Unix epoch.
        sent_ms: u64,
        /// What the sender hosts, for every member's live page.
        summary: Summary,
    },
    /// The answer to a ping.
    Pong {
        /// The ping's `sent_ms`, returned.
        ping_ms: u64,
        /// The answerer's wall clock when it answered.
        sent_ms: u64,
    },
}

/// What a node tells its peers about itself every second: enough for any member's web page
/// to draw the whole world from local state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The view epoch it is in (0 if none).
    pub epoch: u64,
    /// Entities it owns.
    pub entities: u64,
    /// Entities it owns per bubble: (bubble, count), bubbles with none left out.
    pub per_bubble: Vec<(u64, u32)>,
    /// Migrations it committed as their source, in all.
    pub commits: u64,
    /// Of them, in the last whole second.
    pub commits_per_s: f64,
}

/// The node's side of the network: the mesh, and a switch that cuts this node off from every
/// peer (both ways) to simulate a network partition in tests. The switch is flipped only by
/// SIGUSR1, and only when the node was started with `LUCIOLE_FAULT_SIGNALS=1`.
#[derive(Clone, Debug)]
pub struct Link {
    mesh: luciole_transport::Mesh<Wire>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    /// Over `mesh`, connected.
    pub fn new(mesh: luciole_transport::Mesh<Wire>) -> Self {
        Self { mesh, cut: Default::default() }
    }

    /// Whether the node is cut off.
    pub fn is_cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Cuts the node off, or reconnects it; returns whether it is now cut off.
    pub fn toggle(&self) -> bool {
        !self.cut.fetch_xor(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues `message` for `to` reliably and in order (see [`luciole_transport::Mesh::send`]);
    /// `None` when dropped (or cut off).
    pub fn send(
        &self,
        to: luciole_proto::MemberId,
        addr: Option<std::net::SocketAddr>,
        message: &Wire,
    ) -> Option<usize> {
        if self.is_cut() {
            return None;
        }
        self.mesh.send(to, addr, message)
    }

    /// Sends `message` as a datagram when a connection is open (see
    /// [`luciole_transport::Mesh::send_unreliable`]).
    pub fn send_unreliable(
        &self,
        to: luciole_proto::MemberId,
        addr: Option<std::net::SocketAddr>,
        message: &Wire,
    ) -> Option<usize> {
        if self.is_cut() {
            return None;
        }
        self.mesh.send_unreliable(to, addr, message)
    }
}
