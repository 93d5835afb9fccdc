//! What the host refuses before compiling, and what it reads from a good component.

use luciole_tests::{component, engine};
use luciole_wasm::inspect::{InspectError, inspect};
use luciole_wasm::{ApiVersion, LoadError, PolicyKind};

#[test]
fn a_reference_component_declares_its_kind_and_version_and_imports_only_the_contract() {
    for (name, kind) in [
        ("coordinator-lowest-id", PolicyKind::Coordinator),
        ("placement-rendezvous", PolicyKind::Placement),
        ("migration-standard", PolicyKind::Migration),
    ] {
        let i = inspect(&component(name)).unwrap();
        assert_eq!(i.kind, kind, "{name}");
        assert_eq!(i.api_version, ApiVersion::CURRENT);
        assert!(i.version_from_section, "{name}: the SDK writes the version section");
        assert!(i.imports.iter().all(|n| n.starts_with("luciole:policy/")), "{:?}", i.imports);
    }
}

#[test]
fn a_component_built_against_an_unknown_major_version_is_refused() {
    let err = inspect(&component("hostile-version")).unwrap_err();
    assert_eq!(err, InspectError::UnsupportedVersion { found: "9.0.0".into() });
    let err = engine().load(&component("hostile-version")).unwrap_err();
    assert!(matches!(err, LoadError::Inspect(InspectError::UnsupportedVersion { .. })), "{err}");
}

#[test]
fn garbage_core_modules_and_truncated_files_are_clear_errors() {
    assert_eq!(inspect(b"hello, world").unwrap_err(), InspectError::NotWasm);
    let core = b"\0asm\x01\0\0\0";
    assert_eq!(inspect(core).unwrap_err(), InspectError::CoreModule);
    let bytes = component("coordinator-lowest-id");
    let cut = &bytes[..bytes.len() / 2];
    assert!(matches!(inspect(cut).unwrap_err(), InspectError::Malformed(_)));
}

#[test]
fn a_version_section_that_contradicts_the_exports_is_refused() {
    // Append a top-level custom section claiming another version.
    let mut bytes = component("coordinator-lowest-id");
    let name = b"luciole:api-version";
    let data = b"0.1.7";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(data);
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    let err = inspect(&bytes).unwrap_err();
    assert!(matches!(err, InspectError::VersionMismatch { .. }), "{err}");
}
