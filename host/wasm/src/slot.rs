//! A policy slot: the policy of one kind on this node, with its fallbacks and hot swap.
//!
//! A slot holds a *lineup*: the active version, the last good version (the one active before
//! the last swap), and, always last, the built-in native default. A call goes down the lineup
//! until someone answers safely, all within the same call. A version that faults is quarantined
//! (by the digest of its bytes) and leaves the lineup; it is not tried again, and swapping it in
//! again is refused.
//!
//! Swapping builds and smoke-tests the new instance first, then replaces the lineup with one
//! atomic pointer store. Calls in flight keep the lineup they started with and finish on the old
//! instance; the next call sees the new one. Policies hold no state of their own (the host
//! passes all state in), so nothing is lost across a swap.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::engine::{LoadedPolicy, PolicyMeta};
use crate::instance::{Fault, FaultReason, Instance};
use crate::kinds::Kind;
use luciole_proto::check::Violation;
use luciole_proto::limits::POLICY_MESSAGE_BYTES_MAX;

/// Who answered a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnsweredBy {
    /// The active policy version.
    Active(Arc<PolicyMeta>),
    /// The last good version, because the active one faulted or declined.
    LastGood(Arc<PolicyMeta>),
    /// The built-in native default.
    Builtin,
}

/// A checked answer, with who gave it and what went wrong on the way.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    /// The answer; always safe.
    pub value: T,
    /// Who gave it.
    pub by: AnsweredBy,
    /// Faults of versions tried first (they are now quarantined).
    pub faults: Vec<Fault>,
    /// Versions tried first that declined, with their reason.
    pub declined: Vec<(String, String)>,
    /// Fuel the answering version's call used (about one unit per wasm instruction, host
    /// calls charged too); `None` when the built-in answered.
    pub fuel: Option<u64>,
}

/// Counters of a slot.
#[derive(Debug, Default)]
pub struct SlotStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls answered by the active version.
    pub by_active: AtomicU64,
    /// Calls answered by the last good version.
    pub by_last_good: AtomicU64,
    /// Calls answered by the built-in default.
    pub by_builtin: AtomicU64,
    /// Faults (each quarantines a version).
    pub faults: AtomicU64,
    /// Declines (policy errors).
    pub declined: AtomicU64,
    /// Successful swaps.
    pub swaps: AtomicU64,
}

/// Why a swap was refused. The old version stays active.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The component implements another kind.
    #[error("policy {policy} is a {got} policy, this slot holds {want} policies")]
    WrongKind {
        /// The policy.
        policy: String,
        /// Its kind.
        got: crate::PolicyKind,
        /// The slot's kind.
        want: crate::PolicyKind,
    },
    /// The version was quarantined earlier.
    #[error("policy {policy} ({digest}) is quarantined: {reason}")]
    Quarantined {
        /// The policy.
        policy: String,
        /// Short digest.
        digest: String,
        /// Why.
        reason: String,
    },
    /// Could not instantiate.
    #[error("instantiating {policy}: {error}")]
    Instantiate {
        /// The policy.
        policy: String,
        /// The error.
        error: String,
    },
    /// The smoke call failed.
    #[error("{0}")]
    Smoke(Fault),
}

/// What a swap did.
#[derive(Clone, Debug)]
pub struct SwapReport {
    /// The version now active.
    pub active: Arc<PolicyMeta>,
    /// The version now last good (the previously active one), if any.
    pub last_good: Option<Arc<PolicyMeta>>,
    /// Time to instantiate and smoke-test the new version.
    pub prepare_time: Duration,
}

struct Lineup {
    active: Option<Arc<Instance>>,
    last_good: Option<Arc<Instance>>,
}

/// The policy of one kind on this node. Shared by reference across threads.
pub struct PolicySlot<K: Kind> {
    lineup: ArcSwap<Lineup>,
    /// Serialises swaps and quarantines (never held during a call).
    changes: Mutex<()>,
    quarantine: Mutex<HashMap<[u8; 32], String>>,
    stats: SlotStats,
    /// Declines go to the log at the default level, at most one line per [`DECLINE_LOG_EVERY`].
    decline_log: Mutex<RateLimit>,
    _kind: PhantomData<K>,
}

/// At most one log line per slot about declines in this long (the line says how many).
pub const DECLINE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts events and says when one may be logged: the first at once, then at most one per
/// period, with how many happened since the last one logged.
#[derive(Debug, Default)]
struct RateLimit {
    logged_at: Option<Instant>,
    since: u64,
}

impl RateLimit {
    /// An event at `now`: the number of events to report, if a line is due.
    fn hit(&mut self, now: Instant, every: Duration) -> Option<u64> {
        self.since += 1;
        if self.logged_at.is_some_and(|t| now.saturating_duration_since(t) < every) {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

impl<K: Kind> std::fmt::Debug for PolicySlot<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySlot")
            .field("kind", &K::KIND)
            .field("active", &self.active().map(|m| m.label()))
            .finish()
    }
}

impl<K: Kind> Default for PolicySlot<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Kind> PolicySlot<K> {
    /// A slot answered by the built-in default until a policy is swapped in.
    pub fn new() -> Self {
        Self {
            lineup: ArcSwap::from_pointee(Lineup { active: None, last_good: None }),
            changes: Mutex::new(()),
            quarantine: Mutex::new(HashMap::new()),
            stats: SlotStats::default(),
            decline_log: Mutex::default(),
            _kind: PhantomData,
        }
    }

    /// The active version, if any (else the built-in default answers).
    pub fn active(&self) -> Option<Arc<PolicyMeta>> {
        self.lineup.load().active.as_ref().map(|i| i.meta().clone())
    }

    /// The last good version, if any.
    pub fn last_good(&self) -> Option<Arc<PolicyMeta>> {
        self.lineup.load().last_good.as_ref().map(|i| i.meta().clone())
    }

    /// Counters.
    pub fn stats(&self) -> &SlotStats {
        &self.stats
    }

    /// Quarantined digests and why.
    pub fn quarantined(&self) -> Vec<(String, String)> {
        let q = self.quarantine.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().map(|(d, r)| (hex::encode(&d[..6]), r.clone())).collect()
    }

    /// Makes `policy` the active version: instantiate, smoke-test, then one atomic store. The
    /// previously active version becomes the last good one. On error nothing changes.
    pub fn swap(&self, policy: &LoadedPolicy) -> Result<SwapReport, SwapError> {
        let started = Instant::now();
        let meta = policy.meta().clone();
        if meta.kind != K::KIND {
            return Err(SwapError::WrongKind {
                policy: meta.label(),
                got: meta.kind,
                want: K::KIND,
            });
        }
        if let Some(reason) = self.quarantine_reason(&meta.digest) {
            return Err(SwapError::Quarantined {
                policy: meta.label(),
                digest: meta.short_digest(),
                reason,
            });
        }
        let instance = policy.instantiate().map_err(|e| SwapError::Instantiate {
            policy: meta.label(),
            error: format!("{e:#}"),
        })?;
        let instance = Arc::new(instance);
        if let Err(fault) = crate::kinds::smoke(K::KIND, &instance) {
            // Remembered, so that trying it again costs nothing (not even a compile). The
            // caller reports the refusal; nothing answered from a fallback.
            let _changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            self.remember(&instance, &fault);
            return Err(SwapError::Smoke(fault));
        }
        // The smoke call used the instantiation; the first real call gets a fresh one.
        instance.prepare().map_err(|e| SwapError::Instantiate {
            policy: meta.label(),
            error: format!("{e:#}"),
        })?;
        let prepare_time = started.elapsed();
        let _changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.lineup.load_full();
        let last_good = old.active.clone().or_else(|| old.last_good.clone());
        let report = SwapReport {
            active: meta.clone(),
            last_good: last_good.as_ref().map(|i| i.meta().clone()),
            prepare_time,
        };
        self.lineup.store(Arc::new(Lineup { active: Some(instance), last_good }));
        self.stats.swaps.fetch_add(1, Relaxed);
        tracing::info!(kind = %K::KIND, policy = %meta.label(), digest = %meta.short_digest(), "policy swapped in");
        Ok(report)
    }

    /// Makes the instantiations the next calls run on, for the versions in the lineup that
    /// need one (cluster-wide kinds use a fresh one per call). Off the deciding path: after a
    /// decision, or when idle. A call that finds none ready instantiates first (slower, the
    /// same answer). An error here is logged; the next call meets it again as a fault.
    pub fn prepare(&self) {
        let lineup = self.lineup.load();
        for instance in [&lineup.active, &lineup.last_good].into_iter().flatten() {
            if let Err(e) = instance.prepare() {
                tracing::warn!(kind = %K::KIND, policy = %instance.meta().label(), error = %format!("{e:#}"), "could not prepare the next instantiation");
            }
        }
    }

    /// Goes back to the built-in default: both the active and the last good version leave the
    /// lineup (calls in flight finish on them).
    pub fn clear(&self) {
        let _changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.lineup.store(Arc::new(Lineup { active: None, last_good: None }));
    }

    /// Goes down the lineup until an answer passes `check`; the built-in answers last.
    ///
    /// `call` runs the policy (its `Ok(Err(message))` is a decline); `check` applies the safety
    /// invariants; `builtin` is the trusted native answer.
    pub(crate) fn decide<R, T>(
        &self,
        call: impl Fn(&Instance) -> Result<Result<R, String>, Fault>,
        check: impl Fn(R) -> Result<T, Violation>,
        builtin: impl FnOnce() -> T,
    ) -> Answer<T> {
        self.stats.calls.fetch_add(1, Relaxed);
        let lineup = self.lineup.load();
        let mut faults = Vec::new();
        let mut declined = Vec::new();
        let candidates = [(&lineup.active, true), (&lineup.last_good, false)];
        for (instance, is_active) in candidates {
            let Some(instance) = instance else { continue };
            let outcome = call(instance).and_then(|r| match r {
                Ok(raw) => {
                    check(raw).map(Ok).map_err(|v| instance.fault(FaultReason::Violation(v)))
                }
                Err(message) => Ok(Err(message)),
            });
            match outcome {
                Ok(Ok(value)) => {
                    let meta = instance.meta().clone();
                    let by = if is_active {
                        self.stats.by_active.fetch_add(1, Relaxed);
                        AnsweredBy::Active(meta)
                    } else {
                        self.stats.by_last_good.fetch_add(1, Relaxed);
                        AnsweredBy::LastGood(meta)
                    };
                    let fuel = Some(instance.last_fuel.load(Relaxed));
                    return Answer { value, by, faults, declined, fuel };
                }
                Ok(Err(message)) => {
                    self.stats.declined.fetch_add(1, Relaxed);
                    let message = crate::instance::truncate(&message, POLICY_MESSAGE_BYTES_MAX);
                    self.log_decline(instance, message);
                    declined.push((instance.meta().label(), message.to_string()));
                }
                Err(fault) => {
                    self.quarantine(instance, &fault);
                    faults.push(fault);
                }
            }
        }
        self.stats.by_builtin.fetch_add(1, Relaxed);
        Answer { value: builtin(), by: AnsweredBy::Builtin, faults, declined, fuel: None }
    }

    /// Logs a decline: at the default level, so an author sees their policy's errors (a
    /// JavaScript exception becomes a decline), at most once per [`DECLINE_LOG_EVERY`] per
    /// slot, saying how many since; the others at debug level.
    fn log_decline(&self, instance: &Instance, message: &str) {
        let mut log = self.decline_log.lock().unwrap_or_else(|p| p.into_inner());
        let (kind, policy) = (K::KIND, instance.meta().label());
        match log.hit(Instant::now(), DECLINE_LOG_EVERY) {
            Some(declines) => tracing::warn!(
                kind = %kind,
                policy = %policy,
                reason = message,
                declines,
                "policy declined; the next version in line answered (at most one such line per \
                 slot every 10 s)"
            ),
            None => {
                tracing::debug!(kind = %kind, policy = %policy, reason = message, "policy declined")
            }
        }
    }

    fn quarantine_reason(&self, digest: &[u8; 32]) -> Option<String> {
        let q = self.quarantine.lock().unwrap_or_else(|p| p.into_inner());
        q.get(digest).cloned()
    }

    /// Quarantines the version in this slot and in its engine (which then refuses to load
    /// those bytes again). Called with `changes` held.
    fn remember(&self, instance: &Instance, fault: &Fault) {
        let digest = instance.meta().digest;
        let mut quarantine = self.quarantine.lock().unwrap_or_else(|p| p.into_inner());
        quarantine.insert(digest, fault.to_string());
        instance.engine().refuse(digest, format!("quarantined: {fault}"));
    }

    /// Records the fault, quarantines the version and removes it from the lineup.
    fn quarantine(&self, instance: &Arc<Instance>, fault: &Fault) {
        self.stats.faults.fetch_add(1, Relaxed);
        let meta = instance.meta();
        tracing::warn!(
            kind = %K::KIND,
            policy = %meta.label(),
            digest = %meta.short_digest(),
            reason = fault.reason.kind(),
            detail = %fault,
            "policy quarantined; answering from the fallback"
        );
        let _changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.remember(instance, fault);
        let old = self.lineup.load_full();
        let keep = |i: &Option<Arc<Instance>>| i.clone().filter(|i| i.meta().digest != meta.digest);
        let mut rest = [keep(&old.active), keep(&old.last_good)].into_iter().flatten();
        self.lineup.store(Arc::new(Lineup { active: rest.next(), last_good: rest.next() }));
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    #[test]
    fn the_first_event_is_logged_then_one_line_per_period_with_the_count() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        assert_eq!(r.hit(t0, every), Some(1), "the first at once");
        assert_eq!(r.hit(t0 + Duration::from_secs(1), every), None);
        assert_eq!(r.hit(t0 + Duration::from_secs(9), every), None);
        assert_eq!(r.hit(t0 + Duration::from_secs(10), every), Some(3), "three since");
        assert_eq!(r.hit(t0 + Duration::from_secs(30), every), Some(1));
    }
}
