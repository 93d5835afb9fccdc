//! The node's policies: every installed view goes to the coordinator and placement slots, on a
//! thread of their own so that a slow policy never delays membership.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use luciole_proto::placement::{Assignment, Bubble};
use luciole_proto::{BubbleId, MemberId, View};
use luciole_wasm::{
    Coordinator, EngineConfig, Kind, Migration, MigrationDecider, Placement, PolicyEngine,
    PolicySlot, PolicyView,
};

use crate::config::PolicyConfig;
use crate::status::{PolicyStatus, Shared};

/// The policy slots of a node.
pub struct Policies {
    coordinator: PolicySlot<Coordinator>,
    placement: PolicySlot<Placement>,
    /// The migration slot, only when a component was configured (the migration core runs
    /// the built-in policy natively otherwise).
    migration: Option<Arc<PolicySlot<Migration>>>,
    /// Loads the components; kept alive for the slots.
    engine: PolicyEngine,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies").finish_non_exhaustive()
    }
}

impl Policies {
    /// The built-in defaults, or the components `config` names (a component that does not
    /// load, or is of another kind, is an error: the node does not start).
    pub fn load(config: &PolicyConfig) -> anyhow::Result<Self> {
        let cache = match &config.cache_dir {
            Some(dir) => Some(luciole_wasm::ArtifactCache::new(dir)?),
            None => crate::policy::default_cache(),
        };
        let engine = PolicyEngine::new(EngineConfig { cache, ..EngineConfig::default() })?;
        let mut policies = Self {
            coordinator: PolicySlot::new(),
            placement: PolicySlot::new(),
            migration: None,
            engine,
        };
        if let Some(path) = &config.coordinator {
            load_into(&policies.engine, &policies.coordinator, path)?;
        }
        if let Some(path) = &config.placement {
            load_into(&policies.engine, &policies.placement, path)?;
        }
        if let Some(path) = &config.migration {
            let slot = Arc::new(PolicySlot::new());
            load_into(&policies.engine, &slot, path)?;
            policies.migration = Some(slot);
        }
        Ok(policies)
    }

    /// The migration policy for the migration core, when a component was configured.
    pub fn migration(&self) -> Option<MigrationDecider> {
        self.migration.clone().map(MigrationDecider)
    }

    /// Runs the policies on each view sent until the sender is dropped, keeping `shared`'s
    /// status current. Views that arrive while one is decided are skipped for the newest.
    pub fn serve(
        self,
        views: mpsc::Receiver<View>,
        me: MemberId,
        bubbles: u32,
        shared: Arc<Shared>,
        homes_out: tokio::sync::mpsc::UnboundedSender<crate::run::Placed>,
    ) {
        let bubbles: Vec<Bubble> =
            (0..u64::from(bubbles)).map(|b| Bubble::new(BubbleId(b))).collect();
        let mut placement: Vec<Assignment> = Vec::new();
        let (mut coordinator_total, mut placement_total) = (0u64, 0u64);
        while let Ok(mut view) = views.recv() {
            while let Ok(newer) = views.try_recv() {
                view = newer;
            }
            let view = PolicyView::new(view);
            let started = Instant::now();
            // No `current` coordinator: a node that joined has not seen the view before, and
            // every node must ask the policy the same question.
            let chosen = self.coordinator.choose(&view, None);
            let coordinator_us = started.elapsed().as_micros() as u64;
            let started = Instant::now();
            let placed = self.placement.place(&view, &bubbles, &placement);
            let placement_us = started.elapsed().as_micros() as u64;
            placement = placed.value;
            let homes = placement.iter().map(|a| (a.bubble, a.member)).collect();
            let _ = homes_out.send((view.view().epoch(), homes));
            let here: Vec<u64> =
                placement.iter().filter(|a| a.member == me).map(|a| a.bubble.0).collect();
            coordinator_total += coordinator_us;
            placement_total += placement_us;
            let policies = vec![
                slot_status(&self.coordinator, coordinator_us, coordinator_total),
                slot_status(&self.placement, placement_us, placement_total),
            ];
            if let Ok(mut s) = shared.status.lock() {
                s.coordinator = Some(format!("{:032x}", chosen.value.0));
                s.bubbles_here = here;
                s.bubbles_total = bubbles.len() as u64;
                s.policies = policies;
            }
        }
    }
}

fn load_into<K: Kind>(
    engine: &PolicyEngine,
    slot: &PolicySlot<K>,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let loaded = engine.load(&bytes).with_context(|| path.display().to_string())?;
    slot.swap(&loaded).with_context(|| path.display().to_string())?;
    Ok(())
}

fn slot_status<K: Kind>(
    slot: &PolicySlot<K>,
    last_call_us: u64,
    call_us_total: u64,
) -> PolicyStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let active = slot.active();
    let stats = slot.stats();
    PolicyStatus {
        kind: K::KIND.to_string(),
        active: active.as_ref().map(|m| m.label()).unwrap_or_else(|| "builtin".into()),
        digest: active.as_ref().map(|m| m.short_digest()),
        calls: stats.calls.load(Relaxed),
        faults: stats.faults.load(Relaxed),
        by_builtin: stats.by_builtin.load(Relaxed),
        last_call_us,
        call_us_total,
    }
}
