//! The generated bindings, one module per world. Not public API: the crate root re-exports the
//! types a policy author needs.

#![allow(missing_docs, missing_debug_implementations, clippy::all)]

pub mod coordinator_world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.1.0",
        world: "coordinator-policy",
        pub_export_macro: true,
        export_macro_name: "__export_coordinator_world",
        default_bindings_module: "luciole_guest_sdk::__private::coordinator_world",
        runtime_path: "luciole_guest_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq],
        generate_unused_types: true,
    });
}

pub mod placement_world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.1.0",
        world: "placement-policy",
        pub_export_macro: true,
        export_macro_name: "__export_placement_world",
        default_bindings_module: "luciole_guest_sdk::__private::placement_world",
        runtime_path: "luciole_guest_sdk::__private::wit_bindgen::rt",
        with: {
            "luciole:policy/types@0.1.0": crate::bindings::coordinator_world::luciole::policy::types,
            "luciole:policy/log@0.1.0": crate::bindings::coordinator_world::luciole::policy::log,
        },
    });
}

pub mod migration_world {
    wit_bindgen::generate!({
        path: "../wit/since_v0.1.0",
        world: "migration-policy",
        pub_export_macro: true,
        export_macro_name: "__export_migration_world",
        default_bindings_module: "luciole_guest_sdk::__private::migration_world",
        runtime_path: "luciole_guest_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq, Hash],
        with: {
            "luciole:policy/types@0.1.0": crate::bindings::coordinator_world::luciole::policy::types,
            "luciole:policy/log@0.1.0": crate::bindings::coordinator_world::luciole::policy::log,
        },
    });
}

pub use coordinator_world::luciole::policy::types::{PolicyError, PolicyInfo, Uid};
pub use migration_world::exports::luciole::policy::migration as migration_types;
