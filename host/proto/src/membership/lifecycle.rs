//! A node's whole membership life as one core: joining through seeds, then a member of the
//! views it installs, until it learns it was evicted. The simulator and the node's driver run
//! this, not its parts.

use std::collections::VecDeque;

use crate::core::{Core, Millis};
use crate::membership::join::Joiner;
use crate::membership::monitor::MonitorConfig;
use crate::membership::node::{Durable, Envelope, Event, MemberNode, ViewChange};
use crate::{Epoch, MemberId, MemberInfo};

/// How often a joiner asks its seed again, ms.
pub const JOIN_RETRY_MS: u64 = 1_000;

/// Where a node is in its membership life.
#[derive(Debug)]
pub enum Phase {
    /// Asking seeds to let it in.
    Joining(Box<Joiner>),
    /// A member of the views it installs (also after learning it was evicted: it keeps its
    /// last view and sends nothing that could act for the cluster).
    Member(Box<MemberNode>),
}

/// What the membership core tells its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A view is installed: the first one a joiner is admitted into, then every change.
    ViewInstalled {
        /// Its epoch.
        epoch: Epoch,
        /// The view and its difference from the one before.
        view: ViewChange,
    },
    /// This node learned it is no longer in the view.
    Evicted,
    /// This node no longer hears from enough of the view to act on it.
    QuorumLost,
    /// It does again.
    QuorumRegained,
}

/// One node's membership.
#[derive(Debug)]
pub struct Membership {
    me: MemberId,
    config: MonitorConfig,
    phase: Phase,
    events: VecDeque<MembershipEvent>,
    evicted: bool,
}

impl Membership {
    /// A node joining through `seeds` (asked in turn) with `info`, asking first at `now`; it
    /// takes `config` into the view.
    pub fn joining(
        me: MemberId,
        info: MemberInfo,
        seeds: Vec<MemberId>,
        config: MonitorConfig,
        now: Millis,
    ) -> Self {
        let joiner = Joiner::new(me, info, seeds, JOIN_RETRY_MS, now.0);
        Self::with(me, config, Phase::Joining(Box::new(joiner)))
    }

    /// A node that was a member up to view `last` joining again (after a restart, or after it
    /// learned it was evicted): as [`Membership::joining`], but it takes no view up to `last`
    /// (see [`Joiner::after`]).
    pub fn rejoining(
        me: MemberId,
        info: MemberInfo,
        seeds: Vec<MemberId>,
        config: MonitorConfig,
        now: Millis,
        last: Epoch,
    ) -> Self {
        let joiner = Joiner::new(me, info, seeds, JOIN_RETRY_MS, now.0).after(last);
        Self::with(me, config, Phase::Joining(Box::new(joiner)))
    }

    /// A member running `node`, made with `config` (a founding member, or a restarted one).
    pub fn member(node: MemberNode, config: MonitorConfig) -> Self {
        Self::with(node.me(), config, Phase::Member(Box::new(node)))
    }

    fn with(me: MemberId, config: MonitorConfig, phase: Phase) -> Self {
        Self { me, config, phase, events: VecDeque::new(), evicted: false }
    }

    /// Its id.
    pub fn me(&self) -> MemberId {
        self.me
    }

    /// Where it is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The member core, once admitted.
    pub fn node(&self) -> Option<&MemberNode> {
        match &self.phase {
            Phase::Member(n) => Some(n),
            Phase::Joining(_) => None,
        }
    }

    /// Where `member` listens, as far as this node knows: from the installed view (what the
    /// member brought into it), or for a joiner from the observers its seeds named.
    pub fn addr_of(&self, member: MemberId) -> Option<&str> {
        match &self.phase {
            Phase::Member(n) => n.view_change().info_of(member).map(|i| i.addr.as_str()),
            Phase::Joining(j) => j.addr_of(member),
        }
    }

    /// Leaves the view, if it is a member ([`MemberNode::leave`]); a joiner just stops.
    /// True when there is a view to leave.
    pub fn leave(&mut self, now: Millis) -> bool {
        match &mut self.phase {
            Phase::Member(n) if !self.evicted => {
                n.leave(now.0);
                true
            }
            _ => false,
        }
    }

    /// Whether it learned it was evicted.
    pub fn is_evicted(&self) -> bool {
        self.evicted
    }

    /// What must be on stable storage before this node's next transmit leaves
    /// ([`MemberNode::poll_persist`]): call after every `handle_*`, write it durably, then
    /// send. A joiner keeps nothing (it acts in no view yet).
    pub fn poll_persist(&mut self) -> Option<Durable> {
        match &mut self.phase {
            Phase::Member(n) => n.poll_persist(),
            Phase::Joining(_) => None,
        }
    }

    /// Moves a joiner that was admitted into its first view, and gathers the member's events.
    fn advance(&mut self, now: Millis) {
        if let Phase::Joining(j) = &self.phase
            && let Some((epoch, view)) = j.admitted()
        {
            let view = view.clone();
            let node = MemberNode::new(self.me, epoch, view.clone(), self.config, now.0);
            self.events.push_back(MembershipEvent::ViewInstalled { epoch, view });
            self.phase = Phase::Member(Box::new(node));
        }
        let Phase::Member(node) = &mut self.phase else { return };
        while let Some(e) = node.poll_event() {
            self.events.push_back(match e {
                Event::ViewInstalled { epoch, view, .. } => {
                    MembershipEvent::ViewInstalled { epoch, view }
                }
                Event::Evicted(_) => {
                    self.evicted = true;
                    MembershipEvent::Evicted
                }
                Event::QuorumLost => MembershipEvent::QuorumLost,
                Event::QuorumRegained => MembershipEvent::QuorumRegained,
            });
        }
    }
}

impl Core for Membership {
    type Message = Envelope;
    type Event = MembershipEvent;

    fn handle_message(&mut self, now: Millis, from: MemberId, message: Envelope) {
        match &mut self.phase {
            Phase::Joining(j) => j.handle_message(from, message),
            Phase::Member(n) => n.handle_message(now.0, from, message),
        }
        self.advance(now);
    }

    fn handle_timeout(&mut self, now: Millis) {
        match &mut self.phase {
            Phase::Joining(j) => j.handle_timeout(now.0),
            Phase::Member(n) => n.handle_timeout(now.0),
        }
        self.advance(now);
    }

    fn poll_transmit(&mut self) -> Option<(MemberId, Envelope)> {
        match &mut self.phase {
            Phase::Joining(j) => j.poll_transmit(),
            Phase::Member(n) => n.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Joining(j) => j.poll_timeout(),
            Phase::Member(n) => n.poll_timeout(),
        }
        .map(Millis)
    }
}
