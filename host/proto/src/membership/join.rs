//! Joining through a seed: a node outside the view asks a seed member for its expected
//! observers, asks each of them to vouch for it (each broadcasts a `Join` alert, which the cut
//! detectors count like failures), and becomes a member when one of them welcomes it with the
//! view that admitted it. It asks again every `retry_ms` until then.

use std::collections::VecDeque;

use super::node::{Envelope, Message, ViewChange};
use crate::ids::{Epoch, MemberId};

/// Epoch a joiner puts on its messages: it has no view yet.
pub const NO_VIEW: Epoch = Epoch(0);

/// A node on its way into the view.
#[derive(Clone, Debug)]
pub struct Joiner {
    me: MemberId,
    seed: MemberId,
    retry_ms: u64,
    next_request_ms: u64,
    admitted: Option<(Epoch, ViewChange)>,
    /// The newest view whose observers were asked (answers about older views are ignored, so
    /// that several answers about one view cost one round of asks).
    asked_epoch: Option<Epoch>,
    out: VecDeque<(MemberId, Envelope)>,
}

impl Joiner {
    /// `me` joining through `seed`, asking first at `now_ms` and again every `retry_ms`.
    pub fn new(me: MemberId, seed: MemberId, retry_ms: u64, now_ms: u64) -> Self {
        Self {
            me,
            seed,
            retry_ms,
            next_request_ms: now_ms,
            admitted: None,
            asked_epoch: None,
            out: VecDeque::new(),
        }
    }

    /// A message arrived.
    pub fn handle_message(&mut self, envelope: Envelope) {
        if self.admitted.is_some() {
            return;
        }
        match envelope.message {
            Message::JoinObservers(observers)
                if observers.len() <= super::rings::RINGS_MAX
                    && self.asked_epoch.is_none_or(|e| e < envelope.epoch) =>
            {
                self.asked_epoch = Some(envelope.epoch);
                for (ring, observer) in observers {
                    self.send(observer, Message::JoinAsk(ring));
                }
            }
            Message::Welcome(view)
                if view.is_valid() && view.members.binary_search(&self.me).is_ok() =>
            {
                self.admitted = Some((envelope.epoch, view));
            }
            _ => {}
        }
    }

    /// Time passed: ask the seed (again) if not admitted yet.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.admitted.is_none() && now_ms >= self.next_request_ms {
            self.next_request_ms = now_ms + self.retry_ms;
            // A retry asks the observers of whatever view the seed has now, even the same one.
            self.asked_epoch = None;
            self.send(self.seed, Message::JoinRequest);
        }
    }

    /// The view that admitted this node, once one did: build its
    /// [`MemberNode`](super::node::MemberNode) from it.
    pub fn admitted(&self) -> Option<(Epoch, &ViewChange)> {
        self.admitted.as_ref().map(|(e, v)| (*e, v))
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(MemberId, Envelope)> {
        self.out.pop_front()
    }

    /// When [`Joiner::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.admitted.is_none().then_some(self.next_request_ms)
    }

    fn send(&mut self, to: MemberId, message: Message) {
        self.out.push_back((to, Envelope { epoch: NO_VIEW, from: self.me, message }));
    }
}
