//! Hostile test policy: never deploy. Exists so the tests can show the host survives it and
//! answers from the fallback within the same call.

//! Built with plain wit-bindgen against `luciole:policy@9.0.0` (a copy of the coordinator world
//! with the version changed), as a policy from the future would be.

#[allow(missing_docs, missing_debug_implementations, reason = "generated bindings")]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "coordinator-policy" });
}

use bindings::exports::luciole::policy::coordinator::{
    Guest, MemberId, PolicyError, PolicyInfo, View,
};

/// A well-behaved policy of the wrong version.
#[derive(Debug)]
pub struct Future;

impl Guest for Future {
    fn describe() -> PolicyInfo {
        PolicyInfo { name: "hostile-version".into(), version: "9.0.0".into() }
    }
    fn choose(view: View, _current: Option<MemberId>) -> Result<MemberId, PolicyError> {
        Ok(MemberId { hi: view.id_hi[0], lo: view.id_lo[0] })
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Future with_types_in bindings);
