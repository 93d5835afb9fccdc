//! The calling shape every protocol core has, so that the simulator and the node's driver run
//! the same cores: messages and timeouts in; messages to send, events and the next timeout out.
//! A core never reads a clock, a socket or a file: its driver passes the time in, carries its
//! messages and acts on its events.

use std::fmt;

use crate::MemberId;

/// Milliseconds on the calling node's own clock: monotonic, from an arbitrary origin. Two nodes'
/// values are not comparable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// This time plus `ms`, saturating.
    pub fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A sans-IO protocol core, as its drivers see it.
pub trait Core {
    /// What the nodes of this protocol send each other.
    type Message: Clone + fmt::Debug;
    /// What the core tells its own node (a view installed, an eviction, …).
    type Event;

    /// A message from `from` arrived at `now`. `from` is the authenticated sender (the
    /// transport's verified peer), never a field of the message.
    fn handle_message(&mut self, now: Millis, from: MemberId, message: Self::Message);
    /// `now` reached the time [`Core::poll_timeout`] asked for (or later).
    fn handle_timeout(&mut self, now: Millis);
    /// The next message to send, and to whom.
    fn poll_transmit(&mut self) -> Option<(MemberId, Self::Message)>;
    /// The next event for the node.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When the core next needs [`Core::handle_timeout`].
    fn poll_timeout(&self) -> Option<Millis>;
}
