//! Membership: who is in the view, agreed by every member.
//!
//! Built so far (the membership issue is in progress): the monitoring topology
//! ([`rings::Rings`], K pseudo-random rings, each member observed by its predecessors) and
//! multi-node cut detection ([`cut::CutDetector`], Rapid's high/low watermarks, so that many
//! simultaneous failures or joins become one proposed view change), and the fast path of
//! agreement on a cut ([`fast::FastRound`], decided by a ⌈3n/4⌉ quorum of identical proposals),
//! and monitoring ([`monitor::Monitor`]: probe, accuse after silence, rebut with a higher
//! incarnation, alert when an accusation stands), tied together by [`node::MemberNode`] in the
//! `handle_*` / `poll_*` shape with its messages, with joins through a seed ([`join::Joiner`])
//! and catching up a member that fell behind. `host/sim` runs members together on virtual time
//! from a seed, with faults. Not built yet: the classic consensus fallback.

pub mod classic;
pub mod cut;
pub mod fast;
pub mod join;
pub mod monitor;
pub mod node;
pub mod rings;
