//! Generated host bindings, one module per supported WIT version (the Zed extension host is the
//! model). A released version's module is never edited; a new version gets a new module and the
//! loader dispatches on the API version read from the component.

/// `luciole:policy@0.1.0`, from `wit/since_v0.1.0`.
pub mod v0_1 {
    /// The coordinator world; also the home of the shared `types` and `log` interfaces.
    pub mod coordinator {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "coordinator-policy",
        });
    }

    /// The placement world.
    pub mod placement {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "placement-policy",
            with: {
                "luciole:policy/types": super::coordinator::luciole::policy::types,
                "luciole:policy/log": super::coordinator::luciole::policy::log,
            },
        });
    }

    /// The migration world.
    pub mod migration {
        wasmtime::component::bindgen!({
            path: "../../wit/since_v0.1.0",
            world: "migration-policy",
            with: {
                "luciole:policy/types": super::coordinator::luciole::policy::types,
                "luciole:policy/log": super::coordinator::luciole::policy::log,
            },
        });
    }

    pub use coordinator::luciole::policy::log;
    pub use coordinator::luciole::policy::types;
}
