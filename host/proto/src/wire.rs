//! What nodes send each other over the transport, one per frame: membership, batches of
//! migration messages numbered per peer ([`crate::order`]), and clock readings with a summary
//! of what the sender hosts.

use crate::membership::node::Envelope;
use crate::migration::Message;
use serde::{Deserialize, Serialize};

/// One frame's message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// A membership message.
    Membership(Envelope),
    /// Migration messages for one peer, in order, numbered `first`, `first + 1`, … in the
    /// sender's `session` ([`crate::order`]).
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
