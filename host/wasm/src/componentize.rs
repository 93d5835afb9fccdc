//! Turning a core wasm module built with the guest SDK (for `wasm32-unknown-unknown`) into a
//! component. Rust's standard library on `wasm32-wasip2` imports a dozen WASI interfaces even
//! for code that does no I/O; on `wasm32-unknown-unknown` it imports nothing, so we build there
//! and wrap the module ourselves with `wit-component`.

use anyhow::{Context, bail};

/// Wraps a core module into a component, using the component-type metadata that `wit-bindgen`
/// embedded in it. Fails with a clear message if the input is not a core module or has no
/// metadata (not built with the guest SDK or `wit-bindgen`).
pub fn componentize(core_module: &[u8]) -> anyhow::Result<Vec<u8>> {
    if core_module.len() < 8 || &core_module[..4] != b"\0asm" {
        bail!("not a WebAssembly file (bad magic number)");
    }
    if wasmparser::Parser::is_component(core_module) {
        bail!("already a component; nothing to do");
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core_module)
        .context("reading the module's component metadata (was it built with the guest SDK?)")?
        .encode()
        .context("encoding the component")
}
