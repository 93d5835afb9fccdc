//! One policy instance: its own `Store`, fuel per call, a memory cap, one call at a time, and
//! faults classified so that the slot can quarantine and fall back.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use wasmtime::component::{ComponentType, InstancePre, Lift, Linker, WasmList, WasmStr};
use wasmtime::{ResourceLimiter, Store, StoreContextMut, Trap};

use crate::bindings::v0_1::{coordinator, log, migration, placement};
use crate::engine::{LoadedPolicy, PolicyEngine, PolicyMeta, PoolShare};
use crate::inspect::{PolicyKind, Shape};
use luciole_proto::check::Violation;
use luciole_proto::limits::{
    POLICY_LIFT_BYTES_MAX, POLICY_LOG_BYTES_MAX, POLICY_LOGS_PER_CALL_MAX,
    TABLE_ELEMENTS_PER_POLICY_MAX,
};

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
    /// Handed the host more than [`POLICY_LIFT_BYTES_MAX`] in one host call or one answer.
    TooMuchData,
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
            FaultReason::TooMuchData => write!(
                f,
                "handed the host more than {} KiB in one call or answer",
                POLICY_LIFT_BYTES_MAX >> 10
            ),
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
            Self::TooMuchData => "data",
            Self::Trap(_) => "trap",
            Self::Violation(_) => "violation",
            Self::Smoke(_) => "smoke",
        }
    }
}

/// Fuel charged for every `log` call, kept or dropped, whatever the node's log filter: the
/// cost of a host call, so that the same call runs out at the same point on every node.
pub const LOG_FUEL_PER_CALL: u64 = 2_000;
/// Fuel charged per byte a `log` call hands the host (message and the fields read).
pub const LOG_FUEL_PER_BYTE: u64 = 1;
/// How wasmtime words a lift refused by the store's host-call limit (its error type is
/// private).
const LIFT_LIMIT_MESSAGE: &str = "fuel allocated for hostcalls has been exhausted";
/// Most fields of one log message that are read; further ones are not looked at.
const LOG_FIELDS_MAX: usize = 16;

/// Store data: the sandbox's bookkeeping. Nothing of the host is reachable from here.
pub(crate) struct HostState {
    policy: Arc<str>,
    memory_bytes_max: usize,
    /// Bytes of all linear memories of the instance together.
    memory_bytes: usize,
    /// Elements of all tables of the instance together.
    table_elements: usize,
    memory_denied: bool,
    logs_in_call: u32,
    logs_dropped: u64,
    /// The last message the current call logged at error level: a trap after it is reported
    /// with it (the guest helpers log an uncaught exception, then trap).
    last_error: Option<String>,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // One budget for the whole policy: a component with many memories gets no more.
        let total = self.memory_bytes.saturating_sub(current).saturating_add(desired);
        let ok = total <= self.memory_bytes_max;
        if ok {
            self.memory_bytes = total;
        }
        self.memory_denied |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_sub(current).saturating_add(desired);
        let ok = total <= TABLE_ELEMENTS_PER_POLICY_MAX;
        if ok {
            self.table_elements = total;
        }
        self.memory_denied |= !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        Shape::LIMITS.core_instances as usize
    }

    fn memories(&self) -> usize {
        Shape::LIMITS.memories as usize
    }

    fn tables(&self) -> usize {
        Shape::LIMITS.tables as usize
    }
}

/// A log field as the guest handed it: read in place, never copied whole.
#[derive(ComponentType, Lift)]
#[component(record)]
struct LogField {
    key: WasmStr,
    value: WasmStr,
}

/// Takes `fuel` from the call's budget; running out is the same trap as in guest code.
fn charge(store: &mut StoreContextMut<'_, HostState>, fuel: u64) -> wasmtime::Result<()> {
    let left = store.get_fuel()?;
    match left.checked_sub(fuel) {
        Some(left) => store.set_fuel(left),
        None => {
            store.set_fuel(0)?;
            Err(Trap::OutOfFuel.into())
        }
    }
}

/// The `luciole:policy/log` import. Strings are lifted in place (wasmtime bounds each lift by
/// the store's host-call limit, [`POLICY_LIFT_BYTES_MAX`]) and charged per byte, so a policy
/// pays for what it hands the host and nothing is copied beyond the kept 1 KiB.
pub(crate) fn add_log_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.instance("luciole:policy/types@0.1.0")?;
    linker.instance("luciole:policy/log@0.1.0")?.func_wrap(
        "log",
        |mut store: StoreContextMut<'_, HostState>,
         (level, message, fields): (log::Level, WasmStr, WasmList<LogField>)| {
            charge(&mut store, LOG_FUEL_PER_CALL)?;
            if store.data().logs_in_call >= POLICY_LOGS_PER_CALL_MAX {
                store.data_mut().logs_dropped += 1;
                return Ok(());
            }
            store.data_mut().logs_in_call += 1;
            let kept: Vec<LogField> =
                fields.iter(&mut store)?.take(LOG_FIELDS_MAX).collect::<wasmtime::Result<_>>()?;
            let (bytes, message, rendered) = {
                let text = message.to_str(&store)?;
                let mut bytes = text.len();
                let mut rendered = String::new();
                for f in &kept {
                    let (key, value) = (f.key.to_str(&store)?, f.value.to_str(&store)?);
                    bytes += key.len() + value.len();
                    rendered.push_str(truncate(&key, 64));
                    rendered.push('=');
                    rendered.push_str(truncate(&value, 256));
                    rendered.push(' ');
                }
                (bytes, truncate(&text, POLICY_LOG_BYTES_MAX).to_owned(), rendered)
            };
            charge(&mut store, bytes as u64 * LOG_FUEL_PER_BYTE)?;
            emit(&store.data().policy, level, &message, &rendered);
            if level == log::Level::Error {
                store.data_mut().last_error = Some(message);
            }
            Ok(())
        },
    )?;
    Ok(())
}

fn emit(policy: &str, level: log::Level, message: &str, fields: &str) {
    match level {
        log::Level::Trace => tracing::trace!(policy, fields, "{message}"),
        log::Level::Debug => tracing::debug!(policy, fields, "{message}"),
        log::Level::Info => tracing::info!(policy, fields, "{message}"),
        log::Level::Warn => tracing::warn!(policy, fields, "{message}"),
        log::Level::Error => tracing::error!(policy, fields, "{message}"),
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
#[derive(Clone)]
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

/// One instantiation: a store and what lives in it, holding its share of the instance pool.
struct Inner {
    store: Store<HostState>,
    bindings: Bindings,
    _share: PoolShare,
}

/// The instantiation a policy instance runs its next call on.
enum State {
    /// Never called since instantiation.
    Fresh(Inner),
    /// Called before: reused by per-node kinds, replaced before the next call by cluster-wide
    /// ones.
    Used(Inner),
    /// Nothing instantiated.
    Empty,
}

/// A store for one instantiation of `meta`, with the sandbox's limits.
pub(crate) fn new_store(
    engine: &PolicyEngine,
    meta: &PolicyMeta,
) -> wasmtime::Result<Store<HostState>> {
    let config = engine.config();
    let state = HostState {
        policy: meta.label().into(),
        memory_bytes_max: config.memory_bytes_max,
        memory_bytes: 0,
        table_elements: 0,
        memory_denied: false,
        logs_in_call: 0,
        logs_dropped: 0,
        last_error: None,
    };
    let mut store = Store::new(engine.engine_for(meta.size_bytes).0, state);
    store.limiter(|s| s);
    store.set_hostcall_fuel(POLICY_LIFT_BYTES_MAX);
    // Instantiation runs start functions: meter them like a call.
    store.set_fuel(config.fuel_per_call)?;
    Ok(store)
}

/// A live policy version. Calls are serialised: one at a time per instance.
///
/// Cluster-wide kinds (coordinator, placement) run every call on a fresh instantiation, so no
/// state carries from one call to the next and every node gives the same answer to the same
/// input, whatever calls it made before. [`Instance::prepare`] makes the next one ahead of the
/// call; a call that finds none makes it first. Per-node kinds (migration) keep theirs.
pub(crate) struct Instance {
    meta: Arc<PolicyMeta>,
    pre: KindPre,
    engine: PolicyEngine,
    fresh_per_call: bool,
    state: Mutex<State>,
    /// Calls that had to instantiate before running (no prepared instance was ready).
    pub(crate) inline_instantiations: AtomicU64,
    /// Fuel the last call used (of the per-call budget).
    pub(crate) last_fuel: AtomicU64,
}

impl Instance {
    /// Instantiates `policy`, ready for its first call.
    pub(crate) fn new(policy: &LoadedPolicy) -> wasmtime::Result<Self> {
        let this = Self {
            meta: policy.meta.clone(),
            pre: policy.pre.clone(),
            engine: policy.engine.clone(),
            fresh_per_call: policy.meta.kind.is_cluster_wide(),
            state: Mutex::new(State::Empty),
            inline_instantiations: AtomicU64::new(0),
            last_fuel: AtomicU64::new(0),
        };
        this.prepare()?;
        Ok(this)
    }

    fn instantiate(&self) -> wasmtime::Result<Inner> {
        let share = self.engine.reserve(self.meta.kind)?;
        let mut store = new_store(&self.engine, &self.meta)?;
        let bindings = match &self.pre {
            KindPre::Coordinator(p) => Bindings::Coordinator(p.instantiate(&mut store)?),
            KindPre::Placement(p) => Bindings::Placement(p.instantiate(&mut store)?),
            KindPre::Migration(p) => Bindings::Migration(p.instantiate(&mut store)?),
        };
        Ok(Inner { store, bindings, _share: share })
    }

    /// Makes the instantiation the next call runs on, unless it is ready. Off the deciding
    /// path: call it after a decision, or when the node is idle.
    pub(crate) fn prepare(&self) -> wasmtime::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Fresh(_))
            || (!self.fresh_per_call && matches!(*state, State::Used(_)))
        {
            return Ok(());
        }
        // The used one goes first: its pool share is free again before the next is taken.
        *state = State::Empty;
        *state = State::Fresh(self.instantiate()?);
        Ok(())
    }

    pub(crate) fn meta(&self) -> &Arc<PolicyMeta> {
        &self.meta
    }

    pub(crate) fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// Runs one call with a fresh fuel budget; traps become classified faults.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<T>,
    ) -> Result<T, Fault> {
        // A poisoned lock means a host panic mid-call; the store may be inconsistent.
        let mut state = self
            .state
            .lock()
            .map_err(|_| self.fault(FaultReason::Trap("instance poisoned".into())))?;
        let mut inner = match std::mem::replace(&mut *state, State::Empty) {
            State::Fresh(inner) => inner,
            State::Used(inner) if !self.fresh_per_call => inner,
            State::Used(_) | State::Empty => {
                self.inline_instantiations.fetch_add(1, Relaxed);
                self.instantiate()
                    .map_err(|e| self.fault(FaultReason::Trap(format!("instantiating: {e:#}"))))?
            }
        };
        let Inner { store, bindings, .. } = &mut inner;
        store.data_mut().memory_denied = false;
        store.data_mut().logs_in_call = 0;
        store.data_mut().last_error = None;
        let budget = self.engine.config().fuel_per_call;
        store.set_fuel(budget).map_err(|e| self.fault(FaultReason::Trap(e.to_string())))?;
        let result = f(store, bindings);
        let left = store.get_fuel().unwrap_or(0);
        self.last_fuel.store(budget.saturating_sub(left), Relaxed);
        let result = result.map_err(|e| {
            let reason = if store.data().memory_denied {
                FaultReason::MemoryLimit
            } else if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
                FaultReason::OutOfFuel
            } else if format!("{e:#}").contains(LIFT_LIMIT_MESSAGE) {
                FaultReason::TooMuchData
            } else if let Some(logged) = store.data_mut().last_error.take() {
                // What the policy said before it trapped is what its author needs; the wasm
                // backtrace of an interpreter is not.
                let trap = e.downcast_ref::<Trap>().map_or("a trap".to_string(), Trap::to_string);
                FaultReason::Trap(format!("{logged} (then: {trap})"))
            } else {
                FaultReason::Trap(format!("{e:#}"))
            };
            self.fault(reason)
        });
        // Kept until the next prepare or call: dropping a store is not the caller's cost.
        *state = State::Used(inner);
        result
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
