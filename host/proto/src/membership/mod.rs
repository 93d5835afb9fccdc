//! Membership: who is in the view, agreed by every member.
//!
//! Built so far (the membership issue is in progress): the monitoring topology
//! ([`rings::Rings`], K pseudo-random rings, each member observed by its predecessors) and
//! multi-node cut detection ([`cut::CutDetector`], Rapid's high/low watermarks, so that many
//! simultaneous failures or joins become one proposed view change). Not built yet: the
//! monitoring and gossip state machine (accuse, rebut with a higher incarnation), agreement on
//! a cut (fast path with a 3/4 quorum, classic consensus fallback), joins through seeds, and the
//! deterministic simulator that runs them.

pub mod cut;
pub mod rings;
