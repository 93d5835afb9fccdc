//! What a component is, read before anything is compiled: its policy kind, the API version it
//! was built against, and what it imports. Reading this costs a parse, not a compile, so bad
//! components are refused cheaply and with a clear reason.

use std::fmt;

use wasmparser::{Encoding, Parser, Payload};

/// The largest component accepted (a Python interpreter component is ~18 MB).
pub const COMPONENT_BYTES_MAX: usize = 64 << 20;

/// Custom section in which the guest SDK writes the API version (`"0.1.0"`).
pub const API_VERSION_SECTION: &str = "luciole:api-version";
/// The WIT package every policy implements.
pub const PACKAGE: &str = "luciole:policy";

/// Which decisions a policy makes: one world of the WIT package each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// World `coordinator-policy`.
    Coordinator,
    /// World `placement-policy`.
    Placement,
    /// World `migration-policy`.
    Migration,
}

impl PolicyKind {
    /// All kinds.
    pub const ALL: [PolicyKind; 3] = [Self::Coordinator, Self::Placement, Self::Migration];

    /// The exported interface's name (`coordinator`, `placement`, `migration`).
    pub fn interface(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Placement => "placement",
            Self::Migration => "migration",
        }
    }

    /// The WIT world's name.
    pub fn world(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator-policy",
            Self::Placement => "placement-policy",
            Self::Migration => "migration-policy",
        }
    }

    /// Whether every node must give the same answer to the same input (coordinator and
    /// placement), so that no state may carry from one call to the next.
    pub fn is_cluster_wide(self) -> bool {
        matches!(self, Self::Coordinator | Self::Placement)
    }

    /// Parses an interface name.
    pub fn from_interface(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.interface() == name)
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// A `luciole:policy` package version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl ApiVersion {
    /// The newest version this host implements.
    pub const CURRENT: ApiVersion = ApiVersion { major: 0, minor: 1, patch: 0 };

    /// Whether this host serves the version. Under semver 0.x the minor number is the breaking
    /// one, so 0.1.x is served and 0.2 or 1.0 are not.
    pub fn is_supported(self) -> bool {
        (self.major, self.minor) == (0, 1)
    }

    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('.').map(|p| p.parse::<u32>().ok());
        let v = ApiVersion { major: parts.next()??, minor: parts.next()??, patch: parts.next()?? };
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What a component declares about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The policy kind it exports.
    pub kind: PolicyKind,
    /// The API version it was built against.
    pub api_version: ApiVersion,
    /// Whether the version came from the SDK's custom section (else from the export names).
    pub version_from_section: bool,
    /// Every top-level import name.
    pub imports: Vec<String>,
    /// Every top-level export name.
    pub exports: Vec<String>,
    /// Size in bytes.
    pub size_bytes: usize,
    /// The initial linear memory of all its core modules together, in bytes: what an instance
    /// needs before it runs a single instruction (an interpreter's heap image, for JS and
    /// Python).
    pub memory_bytes_min: u64,
    /// What compiling and instantiating it will cost, counted from its sections. (When an
    /// engine loads a component whose artifact it cached, the bodies are not read again:
    /// nesting, locals and weight are 0.)
    pub shape: Shape,
}

/// The parts of a component that compile time, compile memory and the instance pool grow with.
/// Counted over every nested module and component; each is checked against
/// [`Shape::LIMITS`] before anything is compiled. The same type states the limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Core modules.
    pub modules: u32,
    /// Core instances (instantiations of modules, and instances made of exports).
    pub core_instances: u32,
    /// Nested component instances.
    pub component_instances: u32,
    /// Linear memories defined by its modules.
    pub memories: u32,
    /// Tables defined by its modules.
    pub tables: u32,
    /// Function bodies.
    pub functions: u32,
    /// Bytes of function bodies.
    pub code_bytes: u64,
    /// The deepest nesting of blocks, loops and ifs in any one function.
    pub nesting_max: u32,
    /// The most locals of any one function.
    pub locals_max: u32,
    /// The most bytes of any one function body.
    pub function_bytes_max: u32,
    /// The sum over functions of body bytes × deepest nesting: what compile time grows with
    /// (quadratic in the nesting of one function, linear in the number of functions).
    pub nesting_weight: u64,
}

/// The limits, as a [`Shape`] no component may exceed in any part.
pub type ShapeLimits = Shape;

impl Shape {
    /// The limits the node applies. Compile time grows with code size and, within a function,
    /// with the square of the nesting depth (a 503 KB component of 100,000 nested `if`s took
    /// minutes); the instance pool is shared by every policy of a node. They admit the
    /// JavaScript and Python interpreter components with room to spare (the Python one: 38
    /// modules, 108 core instances, 13,482 functions, nesting 781, weight 2.4 × 10⁸; the
    /// JavaScript one: 9.2 MB of code, weight 3.1 × 10⁸).
    pub const LIMITS: Shape = Shape {
        modules: 64,
        core_instances: 160,
        component_instances: 16,
        memories: 2,
        tables: 4,
        functions: 50_000,
        code_bytes: 16 << 20,
        nesting_max: 2_000,
        locals_max: 50_000,
        function_bytes_max: 2 << 20,
        nesting_weight: 1_500_000_000,
    };

    /// The first part of `shape` over these limits, as `(what, found, limit)`.
    pub fn exceeded(&self, shape: &Shape) -> Option<(&'static str, u64, u64)> {
        let parts = [
            ("core modules", shape.modules as u64, self.modules as u64),
            ("core instances", shape.core_instances as u64, self.core_instances as u64),
            (
                "component instances",
                shape.component_instances as u64,
                self.component_instances as u64,
            ),
            ("linear memories", shape.memories as u64, self.memories as u64),
            ("tables", shape.tables as u64, self.tables as u64),
            ("functions", shape.functions as u64, self.functions as u64),
            ("bytes of code", shape.code_bytes, self.code_bytes),
            ("nested blocks in one function", shape.nesting_max as u64, self.nesting_max as u64),
            ("locals in one function", shape.locals_max as u64, self.locals_max as u64),
            (
                "bytes in one function",
                shape.function_bytes_max as u64,
                self.function_bytes_max as u64,
            ),
            ("bytes × nesting depth of code", shape.nesting_weight, self.nesting_weight),
        ];
        parts.into_iter().find(|(_, found, limit)| found > limit)
    }
}

/// Why a component is refused before compiling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly file (bad magic number)")]
    NotWasm,
    /// A core module, not a component.
    #[error("a core wasm module, not a component: run `luciole policy componentize` on it first")]
    CoreModule,
    /// Larger than [`COMPONENT_BYTES_MAX`].
    #[error("component is {bytes} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Fails to parse.
    #[error("malformed component: {0}")]
    Malformed(String),
    /// Exports no policy interface.
    #[error(
        "exports no luciole:policy interface (coordinator, placement or migration); exports: {0}"
    )]
    NoPolicyExport(String),
    /// Exports more than one policy kind.
    #[error("exports more than one policy kind ({0}); one component implements one world")]
    SeveralKinds(String),
    /// An API version this host does not serve.
    #[error("API version {found} is not supported by this node (it serves {}.{}.x)", ApiVersion::CURRENT.major, ApiVersion::CURRENT.minor)]
    UnsupportedVersion {
        /// The version found.
        found: String,
    },
    /// The custom section and the export names disagree.
    #[error("API version section says {section} but the exports are version {exports}")]
    VersionMismatch {
        /// From the custom section.
        section: String,
        /// From the export names.
        exports: String,
    },
    /// Has more of something than the node's [`ShapeLimits`] allow.
    #[error("too many {what}: {found}, the limit is {limit}")]
    TooBig {
        /// What there is too much of.
        what: &'static str,
        /// How many it has.
        found: u64,
        /// The limit.
        limit: u64,
    },
    /// Imports something beyond `luciole:policy`.
    #[error(
        "forbidden import {0:?}: a policy may import only luciole:policy/log and luciole:policy/types"
    )]
    ForbiddenImport(String),
}

/// Reads kind, version, imports and shape of a component, and checks its shape against
/// [`Shape::LIMITS`].
pub fn inspect(bytes: &[u8]) -> Result<Inspection, InspectError> {
    inspect_with(bytes, &Shape::LIMITS)
}

/// [`inspect`] with other shape limits.
pub fn inspect_with(bytes: &[u8], limits: &ShapeLimits) -> Result<Inspection, InspectError> {
    inspect_bodies(bytes, limits, true)
}

/// [`inspect_with`]; with `bodies` false, function bodies are counted and sized but their
/// operators not read (nesting, locals and weight stay 0): for a component this node compiled
/// before (its artifact is cached), whose full shape passed then. Reading the operators costs
/// ~90 ms for the 9 MB of the JavaScript interpreter, seven times a cached load.
pub(crate) fn inspect_bodies(
    bytes: &[u8],
    limits: &ShapeLimits,
    bodies: bool,
) -> Result<Inspection, InspectError> {
    if bytes.len() > COMPONENT_BYTES_MAX {
        return Err(InspectError::TooLarge { bytes: bytes.len(), max: COMPONENT_BYTES_MAX });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(InspectError::NotWasm);
    }
    let raw = scan(bytes, bodies)?;
    if let Some((what, found, limit)) = limits.exceeded(&raw.shape) {
        return Err(InspectError::TooBig { what, found, limit });
    }
    let mut kinds = Vec::new();
    let mut export_version = None;
    for name in &raw.exports {
        if let Some((iface, version)) = policy_interface(name)
            && let Some(kind) = PolicyKind::from_interface(iface)
        {
            kinds.push(kind);
            export_version = Some(version.to_string());
        }
    }
    let kind = match kinds.as_slice() {
        [] => return Err(InspectError::NoPolicyExport(raw.exports.join(", "))),
        [k] => *k,
        many => {
            let names: Vec<_> = many.iter().map(|k| k.interface()).collect();
            return Err(InspectError::SeveralKinds(names.join(", ")));
        }
    };
    let export_version = export_version.unwrap_or_default();
    let version_text = match &raw.version_section {
        Some(section) if section.trim() != export_version => {
            return Err(InspectError::VersionMismatch {
                section: section.clone(),
                exports: export_version,
            });
        }
        Some(section) => section.trim().to_string(),
        None => export_version,
    };
    let api_version = ApiVersion::parse(&version_text)
        .filter(|v| v.is_supported())
        .ok_or(InspectError::UnsupportedVersion { found: version_text })?;
    for import in &raw.imports {
        let allowed =
            policy_interface(import).is_some_and(|(iface, _)| iface == "log" || iface == "types");
        if !allowed {
            return Err(InspectError::ForbiddenImport(import.clone()));
        }
    }
    Ok(Inspection {
        kind,
        api_version,
        version_from_section: raw.version_section.is_some(),
        imports: raw.imports,
        exports: raw.exports,
        size_bytes: bytes.len(),
        memory_bytes_min: raw.memory_bytes_min,
        shape: raw.shape,
    })
}

fn malformed(e: wasmparser::BinaryReaderError) -> InspectError {
    InspectError::Malformed(e.to_string())
}

/// Adds one function body to `shape`: its size, locals and deepest nesting. One pass over its
/// operators, no validation (the compiler validates).
fn measure(body: &wasmparser::FunctionBody<'_>, shape: &mut Shape) -> Result<(), InspectError> {
    use wasmparser::Operator;
    let bytes = u32::try_from(body.range().len()).unwrap_or(u32::MAX);
    shape.functions += 1;
    shape.code_bytes += bytes as u64;
    shape.function_bytes_max = shape.function_bytes_max.max(bytes);
    let mut locals = 0u32;
    for group in body.get_locals_reader().map_err(malformed)? {
        let (count, _) = group.map_err(malformed)?;
        locals = locals.saturating_add(count);
    }
    shape.locals_max = shape.locals_max.max(locals);
    let mut operators = body.get_operators_reader().map_err(malformed)?;
    let (mut depth, mut deepest) = (0u32, 0u32);
    while !operators.eof() {
        match operators.read().map_err(malformed)? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::TryTable { .. }
            | Operator::Try { .. } => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    shape.nesting_max = shape.nesting_max.max(deepest);
    shape.nesting_weight += bytes as u64 * deepest as u64;
    Ok(())
}

/// `luciole:policy/NAME@VERSION` → `(NAME, VERSION)`.
fn policy_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

struct Raw {
    imports: Vec<String>,
    exports: Vec<String>,
    version_section: Option<String>,
    memory_bytes_min: u64,
    shape: Shape,
}

fn scan(bytes: &[u8], bodies: bool) -> Result<Raw, InspectError> {
    let mut raw = Raw {
        imports: Vec::new(),
        exports: Vec::new(),
        version_section: None,
        memory_bytes_min: 0,
        shape: Shape::default(),
    };
    // Nesting depth: top-level imports and exports are the component's own.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(malformed)?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(InspectError::CoreModule);
                }
                if encoding == Encoding::Module {
                    raw.shape.modules += 1;
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(malformed)?;
                    raw.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    raw.exports.push(export.name.name.to_string());
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(malformed)?;
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let bytes = memory.initial.saturating_mul(page);
                    raw.memory_bytes_min = raw.memory_bytes_min.saturating_add(bytes);
                    raw.shape.memories += 1;
                }
            }
            Payload::TableSection(reader) => raw.shape.tables += reader.count(),
            Payload::InstanceSection(reader) => raw.shape.core_instances += reader.count(),
            Payload::ComponentInstanceSection(reader) => {
                raw.shape.component_instances += reader.count()
            }
            Payload::CodeSectionEntry(body) if bodies => measure(&body, &mut raw.shape)?,
            Payload::CodeSectionEntry(body) => {
                raw.shape.functions += 1;
                raw.shape.code_bytes += body.range().len() as u64;
            }
            Payload::CustomSection(s) if s.name() == API_VERSION_SECTION => {
                let text = String::from_utf8_lossy(s.data()).into_owned();
                raw.version_section = Some(text);
            }
            _ => {}
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
    use wit_parser::{ManglingAndAbi, Resolve};

    /// A component for `world` of `wit` whose functions all trap: enough to inspect.
    fn component(wit: &str, world: &str) -> Vec<u8> {
        let mut resolve = Resolve::default();
        let pkg = resolve.push_str("test.wit", wit).unwrap();
        let world = resolve.select_world(&[pkg], Some(world)).unwrap();
        let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
        embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8).unwrap();
        ComponentEncoder::default().module(&module).unwrap().encode().unwrap()
    }

    const COORDINATOR: &str = "
        package luciole:policy@0.1.0;
        interface coordinator { choose: func() -> u32; }
        interface placement { place: func() -> u32; }
        package evil:net { interface socket { connect: func(); } }
    ";

    #[test]
    fn an_import_outside_the_contract_is_forbidden() {
        let wit =
            format!("{COORDINATOR}\nworld w {{ import evil:net/socket; export coordinator; }}");
        let err = inspect(&component(&wit, "w")).unwrap_err();
        assert_eq!(err, InspectError::ForbiddenImport("evil:net/socket".into()));
    }

    #[test]
    fn a_component_of_no_policy_world_is_refused() {
        let wit =
            "package evil:thing@1.0.0; interface api { run: func(); } world w { export api; }";
        let err = inspect(&component(wit, "w")).unwrap_err();
        assert!(
            matches!(err, InspectError::NoPolicyExport(ref e) if e.contains("evil:thing/api")),
            "{err}"
        );
    }

    #[test]
    fn a_component_exporting_two_kinds_is_refused() {
        let wit = format!("{COORDINATOR}\nworld w {{ export coordinator; export placement; }}");
        let err = inspect(&component(&wit, "w")).unwrap_err();
        assert_eq!(err, InspectError::SeveralKinds("coordinator, placement".into()));
    }

    #[test]
    fn without_the_sdk_section_the_version_comes_from_the_export_names() {
        let wit = format!("{COORDINATOR}\nworld w {{ export coordinator; }}");
        let i = inspect(&component(&wit, "w")).unwrap();
        assert_eq!(
            (i.kind, i.api_version, i.version_from_section),
            (PolicyKind::Coordinator, ApiVersion::CURRENT, false)
        );
    }
}
