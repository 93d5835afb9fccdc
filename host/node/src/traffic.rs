//! Membership traffic by message kind: messages and frame bytes (header included), in and out,
//! as the transport carried them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use luciole_proto::membership::node::Message;

/// The message kinds, in [`kind`] order.
pub const KINDS: [&str; 18] = [
    "probe",
    "ack",
    "accuse",
    "rebut",
    "alerts",
    "vote",
    "join_request",
    "join_observers",
    "join_ask",
    "welcome",
    "view_request",
    "stale",
    "prepare",
    "promise",
    "accept",
    "accepted",
    "suspect",
    "leave",
];

/// `message`'s index in [`KINDS`].
pub fn kind(message: &Message) -> usize {
    match message {
        Message::Probe => 0,
        Message::Ack(_) => 1,
        Message::Accuse { .. } => 2,
        Message::Rebut(_) => 3,
        Message::Alerts { .. } => 4,
        Message::Vote(_) => 5,
        Message::JoinRequest => 6,
        Message::JoinObservers(_) => 7,
        Message::JoinAsk { .. } => 8,
        Message::Welcome(_) => 9,
        Message::ViewRequest => 10,
        Message::Stale => 11,
        Message::Prepare(_) => 12,
        Message::Promise { .. } => 13,
        Message::Accept { .. } => 14,
        Message::Accepted { .. } => 15,
        Message::Suspect(_) => 16,
        Message::Leave => 17,
    }
}

/// Counters per kind and direction.
#[derive(Debug, Default)]
pub struct Traffic {
    messages_in: [AtomicU64; KINDS.len()],
    bytes_in: [AtomicU64; KINDS.len()],
    messages_out: [AtomicU64; KINDS.len()],
    bytes_out: [AtomicU64; KINDS.len()],
}

impl Traffic {
    /// A message of `kind` arrived in a frame of `bytes`.
    pub fn received(&self, kind: usize, bytes: usize) {
        self.messages_in[kind].fetch_add(1, Relaxed);
        self.bytes_in[kind].fetch_add(bytes as u64, Relaxed);
    }

    /// A message of `kind` was queued to a peer in a frame of `bytes`.
    pub fn sent(&self, kind: usize, bytes: usize) {
        self.messages_out[kind].fetch_add(1, Relaxed);
        self.bytes_out[kind].fetch_add(bytes as u64, Relaxed);
    }

    /// Appends the counters in Prometheus text.
    pub fn render(&self, out: &mut String) {
        let series = [
            (
                "luciole_membership_messages_received_total",
                "Membership messages received.",
                &self.messages_in,
            ),
            (
                "luciole_membership_received_bytes_total",
                "Membership frame bytes received.",
                &self.bytes_in,
            ),
            (
                "luciole_membership_messages_sent_total",
                "Membership messages sent.",
                &self.messages_out,
            ),
            (
                "luciole_membership_sent_bytes_total",
                "Membership frame bytes sent.",
                &self.bytes_out,
            ),
        ];
        for (name, help, values) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, v) in KINDS.iter().zip(values.iter()) {
                let _ = writeln!(out, "{name}{{kind=\"{k}\"}} {}", v.load(Relaxed));
            }
        }
    }
}
