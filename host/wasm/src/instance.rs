//! One policy instance: its own `Store`, fuel per call, a memory cap, one call at a time, and
//! faults classified so that the slot can quarantine and fall back.

use std::fmt;
use std::sync::{Arc, Mutex};

use wasmtime::component::InstancePre;
use wasmtime::{ResourceLimiter, Store, Trap};

use crate::bindings::v0_1::{coordinator, log, migration, placement, types};
use crate::engine::{LoadedPolicy, PolicyMeta};
use crate::inspect::PolicyKind;
use luciole_proto::check::Violation;
use luciole_proto::limits::{POLICY_LOG_BYTES_MAX, POLICY_LOGS_PER_CALL_MAX};

/// A policy call that went wrong in a way that disqualifies the version.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The policy, as `name@version`.
    pub policy: String,
    /// What went wrong.
    pub reason: FaultReason,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultReason {
    /// Ran out of fuel (an endless or too-long computation).
    OutOfFuel,
    /// Tried to grow memory past the cap.
    MemoryLimit,
    /// Trapped (panic, unreachable, stack overflow, bad memory access, …).
    Trap(String),
    /// Answered something unsafe.
    Violation(Violation),
    /// Declined a smoke call or answered it wrongly (swap only).
    Smoke(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {}: ", self.policy)?;
        match &self.reason {
            FaultReason::OutOfFuel => f.write_str("ran out of fuel"),
            FaultReason::MemoryLimit => f.write_str("hit the memory cap"),
            FaultReason::Trap(t) => write!(f, "trapped: {t}"),
            FaultReason::Violation(v) => write!(f, "unsafe answer: {v}"),
            FaultReason::Smoke(s) => write!(f, "failed the smoke call: {s}"),
        }
    }
}

impl FaultReason {
    /// A short stable name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OutOfFuel => "fuel",
            Self::MemoryLimit => "memory",
            Self::Trap(_) => "trap",
            Self::Violation(_) => "violation",
            Self::Smoke(_) => "smoke",
        }
    }
}

/// Store data: the sandbox's bookkeeping. Nothing of the host is reachable from here.
pub(crate) struct HostState {
    policy: Arc<str>,
    memory_bytes_max: usize,
    memory_denied: bool,
    logs_in_call: u32,
    logs_dropped: u64,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes_max;
        self.memory_denied |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<log::Field>) {
        if self.logs_in_call >= POLICY_LOGS_PER_CALL_MAX {
            self.logs_dropped += 1;
            return;
        }
        self.logs_in_call += 1;
        let message = truncate(&message, POLICY_LOG_BYTES_MAX);
        let mut rendered = String::new();
        for f in fields.iter().take(16) {
            rendered.push_str(truncate(&f.key, 64));
            rendered.push('=');
            rendered.push_str(truncate(&f.value, 256));
            rendered.push(' ');
        }
        let policy = &*self.policy;
        match level {
            log::Level::Trace => tracing::trace!(policy, fields = %rendered, "{message}"),
            log::Level::Debug => tracing::debug!(policy, fields = %rendered, "{message}"),
            log::Level::Info => tracing::info!(policy, fields = %rendered, "{message}"),
            log::Level::Warn => tracing::warn!(policy, fields = %rendered, "{message}"),
            log::Level::Error => tracing::error!(policy, fields = %rendered, "{message}"),
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Linked, not yet instantiated, per kind.
pub(crate) enum KindPre {
    Coordinator(coordinator::CoordinatorPolicyPre<HostState>),
    Placement(placement::PlacementPolicyPre<HostState>),
    Migration(migration::MigrationPolicyPre<HostState>),
}

impl KindPre {
    pub(crate) fn new(kind: PolicyKind, pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            PolicyKind::Coordinator => {
                Self::Coordinator(coordinator::CoordinatorPolicyPre::new(pre)?)
            }
            PolicyKind::Placement => Self::Placement(placement::PlacementPolicyPre::new(pre)?),
            PolicyKind::Migration => Self::Migration(migration::MigrationPolicyPre::new(pre)?),
        })
    }
}

/// Instantiated bindings, per kind.
pub(crate) enum Bindings {
    Coordinator(coordinator::CoordinatorPolicy),
    Placement(placement::PlacementPolicy),
    Migration(migration::MigrationPolicy),
}

struct Inner {
    store: Store<HostState>,
    bindings: Bindings,
}

/// A live policy instance. Calls are serialised: one at a time per instance.
pub(crate) struct Instance {
    meta: Arc<PolicyMeta>,
    fuel_per_call: u64,
    inner: Mutex<Inner>,
}

impl Instance {
    pub(crate) fn new(policy: &LoadedPolicy) -> wasmtime::Result<Self> {
        let config = policy.engine.config();
        let state = HostState {
            policy: policy.meta.label().into(),
            memory_bytes_max: config.memory_bytes_max,
            memory_denied: false,
            logs_in_call: 0,
            logs_dropped: 0,
        };
        let mut store = Store::new(policy.engine.engine(), state);
        store.limiter(|s| s);
        // Instantiation runs start functions: meter them like a call.
        store.set_fuel(config.fuel_per_call)?;
        let bindings = match &policy.pre {
            KindPre::Coordinator(p) => Bindings::Coordinator(p.instantiate(&mut store)?),
            KindPre::Placement(p) => Bindings::Placement(p.instantiate(&mut store)?),
            KindPre::Migration(p) => Bindings::Migration(p.instantiate(&mut store)?),
        };
        Ok(Self {
            meta: policy.meta.clone(),
            fuel_per_call: config.fuel_per_call,
            inner: Mutex::new(Inner { store, bindings }),
        })
    }

    pub(crate) fn meta(&self) -> &Arc<PolicyMeta> {
        &self.meta
    }

    /// Runs one call with a fresh fuel budget; traps become classified faults.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<T>,
    ) -> Result<T, Fault> {
        // A poisoned lock means a host panic mid-call; the store may be inconsistent.
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| self.fault(FaultReason::Trap("instance poisoned".into())))?;
        let Inner { store, bindings } = &mut *inner;
        store.data_mut().memory_denied = false;
        store.data_mut().logs_in_call = 0;
        store
            .set_fuel(self.fuel_per_call)
            .map_err(|e| self.fault(FaultReason::Trap(e.to_string())))?;
        f(store, bindings).map_err(|e| {
            let reason = if store.data().memory_denied {
                FaultReason::MemoryLimit
            } else if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
                FaultReason::OutOfFuel
            } else {
                FaultReason::Trap(format!("{e:#}"))
            };
            self.fault(reason)
        })
    }

    pub(crate) fn fault(&self, reason: FaultReason) -> Fault {
        Fault { policy: self.meta.label(), reason }
    }

    /// Calls the kind's `describe`.
    pub(crate) fn describe(&self) -> Result<(String, String), Fault> {
        let info = self.call(|store, b| match b {
            Bindings::Coordinator(b) => b.luciole_policy_coordinator().call_describe(store),
            Bindings::Placement(b) => b.luciole_policy_placement().call_describe(store),
            Bindings::Migration(b) => b.luciole_policy_migration().call_describe(store),
        })?;
        Ok((info.name, info.version))
    }
}
