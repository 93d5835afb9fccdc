//! The node's side of the network: the messages ([`luciole_proto::wire`]) and the switch that
//! cuts a node off in tests.

pub use luciole_proto::wire::{Summary, Wire};

/// Whether the test faults are on (`LUCIOLE_FAULT_SIGNALS=1`): SIGUSR1 cuts the node off, and
/// `LUCIOLE_FAULT_CLOCK_OFFSET_MS` skews its wall clock.
pub fn faults_enabled() -> bool {
    std::env::var_os("LUCIOLE_FAULT_SIGNALS").is_some_and(|v| v == "1")
}

/// The node's side of the network: the mesh, and a switch that cuts this node off from every
/// peer (both ways) to simulate a network partition in tests. The switch is flipped only by
/// SIGUSR1, and only when the node was started with `LUCIOLE_FAULT_SIGNALS=1`.
#[derive(Clone, Debug)]
pub struct Link {
    mesh: luciole_transport::Mesh<Wire>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    /// Over `mesh`, connected.
    pub fn new(mesh: luciole_transport::Mesh<Wire>) -> Self {
        Self { mesh, cut: Default::default() }
    }

    /// Whether the node is cut off.
    pub fn is_cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The switch: set, the node is cut off.
    pub fn switch(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.cut.clone()
    }

    /// Queues `message` for `to` reliably and in order (see [`luciole_transport::Mesh::send`]);
    /// `None` when dropped (or cut off).
    pub fn send(
        &self,
        to: luciole_proto::MemberId,
        addr: Option<std::net::SocketAddr>,
        message: &Wire,
    ) -> Option<usize> {
        self.open()?.send(to, addr, message)
    }

    /// Sends `message` as a datagram when a connection is open (see
    /// [`luciole_transport::Mesh::send_unreliable`]).
    pub fn send_unreliable(
        &self,
        to: luciole_proto::MemberId,
        addr: Option<std::net::SocketAddr>,
        message: &Wire,
    ) -> Option<usize> {
        self.open()?.send_unreliable(to, addr, message)
    }

    /// The mesh, unless the node is cut off.
    fn open(&self) -> Option<&luciole_transport::Mesh<Wire>> {
        (!self.is_cut()).then_some(&self.mesh)
    }
}
