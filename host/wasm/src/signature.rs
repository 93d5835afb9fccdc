//! Which exported function of a component has the wrong type, by name: the generated bindings
//! check every function of an interface at once and say only that one of them differs.

use wasmtime::Store;
use wasmtime::component::{ComponentNamedList, Func, Instance, InstancePre, Lift, Lower};

use crate::bindings::v0_1::migration::exports::luciole::policy::migration as wm;
use crate::bindings::v0_1::types as wt;
use crate::inspect::PolicyKind;
use crate::instance::HostState;

/// The first function of `kind`'s interface (exported as `interface`) whose type differs from
/// the contract, as "`NAME`: what differs"; `None` if all match or the component cannot be
/// instantiated for another reason.
pub(crate) fn mismatch(
    store: &mut Store<HostState>,
    pre: &InstancePre<HostState>,
    kind: PolicyKind,
    interface: &str,
) -> Option<String> {
    let instance = pre.instantiate(&mut *store).ok()?;
    let mut probe = Probe { store, instance, interface, found: None };
    match kind {
        PolicyKind::Coordinator => {
            probe.check::<(), (wt::PolicyInfo,)>("describe");
            probe.check::<(wt::View, u32), (Result<wt::Uid, wt::PolicyError>,)>("choose");
        }
        PolicyKind::Placement => {
            probe.check::<(), (wt::PolicyInfo,)>("describe");
            probe.check::<(wt::View, wt::Bubbles), (Result<Vec<u32>, wt::PolicyError>,)>("place");
        }
        PolicyKind::Migration => {
            probe.check::<(), (wt::PolicyInfo,)>("describe");
            probe.check::<(wm::Migration, wm::Load), (wm::Admission,)>("on-request");
            probe.check::<(wm::Migration, wm::Load), (wm::Admission,)>("on-prepare");
            probe.check::<(wm::Status, wm::Admission), (wm::Outcome,)>("on-vote");
            probe.check::<(wm::Status,), (wm::TimeoutAction,)>("on-timeout");
            probe.check::<(wt::View, Vec<wm::Status>), (Vec<wm::PendingAction>,)>("on-view-change");
        }
    }
    probe.found
}

struct Probe<'a> {
    store: &'a mut Store<HostState>,
    instance: Instance,
    interface: &'a str,
    found: Option<String>,
}

impl Probe<'_> {
    fn func(&mut self, name: &str) -> Option<Func> {
        let iface = self.instance.get_export_index(&mut *self.store, None, self.interface)?;
        let index = self.instance.get_export_index(&mut *self.store, Some(&iface), name)?;
        self.instance.get_func(&mut *self.store, index)
    }

    fn check<P, R>(&mut self, name: &str)
    where
        P: ComponentNamedList + Lower,
        R: ComponentNamedList + Lift,
    {
        if self.found.is_some() {
            return;
        }
        let Some(func) = self.func(name) else {
            self.found = Some(format!("`{name}` is not exported"));
            return;
        };
        if let Err(e) = func.typed::<P, R>(&*self.store) {
            self.found = Some(format!("`{name}` has the wrong type: {e:#}"));
        }
    }
}
