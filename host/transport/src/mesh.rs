//! Messages between members over their QUIC connections: the node's driver hands a message to
//! [`Mesh::send`] and gets the members' messages from one bounded queue.
//!
//! - **One connection per peer** in use for sending: the one in the table, dialled on demand
//!   (with the address the caller gives) or accepted from the peer. Both sides may dial at
//!   once; each reads every connection it has, so nothing is lost to the race, and a peer may
//!   hold at most [`CONNECTIONS_PER_PEER_MAX`] connections here: more are closed.
//! - **One stream per direction**: the sender opens one unidirectional stream on the
//!   connection and writes its frames in order on it, so a peer's messages arrive in order.
//! - **Bounded queues, with backpressure and counters.** Each peer has an outbox of
//!   [`OUTBOX_FRAMES`] frames; when it is full (the peer reads too slowly, or is gone) the
//!   message is dropped and counted: membership treats a lost message as a lost datagram. The
//!   inbound queue is bounded too, and a full one stops the readers, which stops the peers'
//!   streams by QUIC flow control.
//! - **Bad input closes that connection and is counted**: a frame of another version, longer
//!   than the limit, or that does not decode. The node keeps serving everyone else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use luciole_proto::MemberId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::frame::{self, FrameError};
use crate::{Connection, Endpoint, EndpointStats};

/// Frames waiting for one peer; more are dropped (and counted).
pub const OUTBOX_FRAMES: usize = 1_024;
/// Messages received and not yet taken by the node; more wait in the peers' streams.
pub const INBOX_MESSAGES: usize = 4_096;
/// Most connections one peer may hold to this node at once.
pub const CONNECTIONS_PER_PEER_MAX: usize = 4;
/// After a failed dial, messages to that peer are dropped for this long before it is dialled
/// again.
pub const REDIAL_AFTER: Duration = Duration::from_millis(500);

/// QUIC application error codes this node closes connections with.
pub mod close_code {
    /// The node is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// The peer sent a frame that was refused (version, size, encoding).
    pub const BAD_FRAME: u32 = 1;
    /// The peer holds too many connections to this node.
    pub const TOO_MANY: u32 = 2;
}

/// A message from a member.
#[derive(Debug)]
pub struct Inbound<M> {
    /// The sender, from its verified certificate.
    pub from: MemberId,
    /// The message.
    pub message: M,
    /// The frame's size on the stream (header included).
    pub bytes: usize,
}

/// What the mesh did, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshStats {
    /// Messages received, and their frames' bytes.
    pub messages_in: u64,
    /// Bytes of received frames.
    pub bytes_in: u64,
    /// Messages written to a stream.
    pub messages_out: u64,
    /// Bytes of written frames.
    pub bytes_out: u64,
    /// Messages dropped because the peer's outbox was full.
    pub dropped_full: u64,
    /// Messages dropped because there was no connection and no way to make one (no address,
    /// or a dial that failed less than [`REDIAL_AFTER`] ago).
    pub dropped_unreachable: u64,
    /// Messages dropped because writing them failed (the connection broke).
    pub dropped_failed: u64,
    /// Dials that failed.
    pub dial_failures: u64,
    /// Frames refused (their connections closed).
    pub frames_refused: u64,
    /// Connections closed because their peer held too many.
    pub connections_over_limit: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// UDP payload bytes sent on every connection so far: what the wire carried, QUIC headers,
    /// acknowledgements, keep-alives and the handshake included (quinn's count).
    pub udp_sent_bytes: u64,
    /// UDP payload bytes received on every connection so far.
    pub udp_received_bytes: u64,
    /// What the endpoint's accept loop let in and kept out.
    pub endpoint: EndpointStats,
}

#[derive(Debug, Default)]
struct Counters {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    dropped_full: AtomicU64,
    dropped_unreachable: AtomicU64,
    dropped_failed: AtomicU64,
    dial_failures: AtomicU64,
    frames_refused: AtomicU64,
    connections_over_limit: AtomicU64,
    connections_open: AtomicU64,
}

/// One peer: the connection to send on, how many it holds here, its outbox.
#[derive(Debug, Default)]
struct Peer {
    conn: Option<Connection>,
    open: usize,
    outbox: Option<mpsc::Sender<Vec<u8>>>,
    addr: Option<SocketAddr>,
}

struct Inner<M> {
    endpoint: Endpoint,
    peers: Mutex<HashMap<MemberId, Peer>>,
    /// Every connection open, by quinn's stable id, for the UDP byte counts.
    open: Mutex<HashMap<usize, Connection>>,
    /// UDP bytes (sent, received) of connections already closed.
    closed_udp: Mutex<(u64, u64)>,
    counters: Counters,
    frame_max: usize,
    inbox: mpsc::Sender<Inbound<M>>,
}

impl<M> std::fmt::Debug for Inner<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("counters", &self.counters).finish_non_exhaustive()
    }
}

/// The members' messages of type `M` over QUIC.
pub struct Mesh<M> {
    inner: Arc<Inner<M>>,
}

impl<M> std::fmt::Debug for Mesh<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<M> Clone for Mesh<M> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<M: Serialize + DeserializeOwned + Send + 'static> Mesh<M> {
    /// Starts accepting on `endpoint` (call inside a tokio runtime); frames longer than
    /// `frame_max` bytes are refused. Returns the mesh and the queue of received messages.
    pub fn start(endpoint: Endpoint, frame_max: usize) -> (Self, mpsc::Receiver<Inbound<M>>) {
        let (inbox, rx) = mpsc::channel(INBOX_MESSAGES);
        let inner = Arc::new(Inner {
            endpoint,
            peers: Mutex::default(),
            open: Mutex::default(),
            closed_udp: Mutex::default(),
            counters: Counters::default(),
            frame_max,
            inbox,
        });
        tokio::spawn(accept_loop(inner.clone()));
        (Self { inner }, rx)
    }

    /// Queues `message` for `to`, dialling `addr` if there is no connection to it. Never
    /// waits: returns the frame's size, or `None` when the message was dropped (outbox full,
    /// peer unreachable, or the message too large: all counted).
    pub fn send(&self, to: MemberId, addr: Option<SocketAddr>, message: &M) -> Option<usize> {
        let c = &self.inner.counters;
        let Ok(frame) = frame::encode(message, self.inner.frame_max) else {
            c.dropped_failed.fetch_add(1, Relaxed);
            return None;
        };
        let len = frame.len();
        let outbox = {
            let mut peers = self.inner.peers.lock().ok()?;
            let peer = peers.entry(to).or_default();
            if addr.is_some() {
                peer.addr = addr;
            }
            match &peer.outbox {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::channel(OUTBOX_FRAMES);
                    let span = tracing::debug_span!("peer", id = %short(to));
                    let writer = writer(self.inner.clone(), to, rx);
                    tokio::spawn(tracing::Instrument::instrument(writer, span));
                    peer.outbox = Some(tx.clone());
                    tx
                }
            }
        };
        match outbox.try_send(frame) {
            Ok(()) => Some(len),
            Err(_) => {
                c.dropped_full.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Sends `message` to `to` as one QUIC datagram when a connection to it is open and the
    /// frame fits: unordered, never retransmitted, no stream bookkeeping — what a monitoring
    /// probe or its answer needs. Otherwise it goes as [`Mesh::send`] sends it. Returns the
    /// frame's size, or `None` when it was dropped (counted).
    pub fn send_unreliable(
        &self,
        to: MemberId,
        addr: Option<SocketAddr>,
        message: &M,
    ) -> Option<usize> {
        let c = &self.inner.counters;
        let conn = current(&self.inner, to).0;
        let Some(conn) = conn.filter(|c| c.quic().max_datagram_size().is_some()) else {
            return self.send(to, addr, message);
        };
        let Ok(frame) = frame::encode(message, self.inner.frame_max) else {
            c.dropped_failed.fetch_add(1, Relaxed);
            return None;
        };
        let len = frame.len();
        if conn.quic().max_datagram_size().is_some_and(|max| len > max) {
            return self.send(to, addr, message);
        }
        match conn.quic().send_datagram(frame.into()) {
            Ok(()) => {
                c.messages_out.fetch_add(1, Relaxed);
                c.bytes_out.fetch_add(len as u64, Relaxed);
                Some(len)
            }
            Err(_) => {
                c.dropped_failed.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Connects to the member at `addr` (or reuses a connection to it) and returns its id,
    /// from its certificate: how a node learns who its seeds are.
    pub async fn dial(&self, addr: SocketAddr) -> Result<MemberId, crate::TransportError> {
        let conn = self.inner.endpoint.connect(addr).await.inspect_err(|_| {
            self.inner.counters.dial_failures.fetch_add(1, Relaxed);
        })?;
        let peer = conn.peer();
        if let Ok(mut peers) = self.inner.peers.lock() {
            peers.entry(peer).or_default().addr = Some(addr);
        }
        register(&self.inner, conn);
        Ok(peer)
    }

    /// What the mesh did so far.
    pub fn stats(&self) -> MeshStats {
        let c = &self.inner.counters;
        let (mut udp_sent, mut udp_received) =
            self.inner.closed_udp.lock().map(|u| *u).unwrap_or_default();
        if let Ok(open) = self.inner.open.lock() {
            for conn in open.values() {
                let udp = conn.quic().stats();
                udp_sent += udp.udp_tx.bytes;
                udp_received += udp.udp_rx.bytes;
            }
        }
        MeshStats {
            messages_in: c.messages_in.load(Relaxed),
            bytes_in: c.bytes_in.load(Relaxed),
            messages_out: c.messages_out.load(Relaxed),
            bytes_out: c.bytes_out.load(Relaxed),
            dropped_full: c.dropped_full.load(Relaxed),
            dropped_unreachable: c.dropped_unreachable.load(Relaxed),
            dropped_failed: c.dropped_failed.load(Relaxed),
            dial_failures: c.dial_failures.load(Relaxed),
            frames_refused: c.frames_refused.load(Relaxed),
            connections_over_limit: c.connections_over_limit.load(Relaxed),
            connections_open: c.connections_open.load(Relaxed),
            udp_sent_bytes: udp_sent,
            udp_received_bytes: udp_received,
            endpoint: self.inner.endpoint.stats(),
        }
    }

    /// Closes every connection and stops accepting.
    pub fn close(&self) {
        self.inner.endpoint.close();
    }
}

/// Accepts members' connections and reads each.
async fn accept_loop<M: DeserializeOwned + Send + 'static>(inner: Arc<Inner<M>>) {
    while let Some(conn) = inner.endpoint.accept().await {
        register(&inner, conn);
    }
}

/// Takes `conn` into the peer table (as the one to send on) and reads it, unless its peer
/// holds too many connections here already.
fn register<M: DeserializeOwned + Send + 'static>(inner: &Arc<Inner<M>>, conn: Connection) -> bool {
    let peer = conn.peer();
    {
        let Ok(mut peers) = inner.peers.lock() else { return false };
        let p = peers.entry(peer).or_default();
        if p.open >= CONNECTIONS_PER_PEER_MAX {
            inner.counters.connections_over_limit.fetch_add(1, Relaxed);
            conn.quic().close(close_code::TOO_MANY.into(), b"too many connections");
            return false;
        }
        p.open += 1;
        p.conn = Some(conn.clone());
    }
    inner.counters.connections_open.fetch_add(1, Relaxed);
    if let Ok(mut open) = inner.open.lock() {
        open.insert(conn.quic().stable_id(), conn.clone());
    }
    let span =
        tracing::debug_span!("peer", id = %short(peer), addr = %conn.quic().remote_address());
    tracing::debug!(parent: &span, "connection open");
    tokio::spawn(tracing::Instrument::instrument(read_connection(inner.clone(), conn), span));
    true
}

/// Reads every stream the peer opens on `conn` until it closes, then forgets it.
async fn read_connection<M: DeserializeOwned + Send + 'static>(
    inner: Arc<Inner<M>>,
    conn: Connection,
) {
    tokio::spawn(read_datagrams(inner.clone(), conn.clone()));
    while let Ok(stream) = conn.quic().accept_uni().await {
        tokio::spawn(read_stream(inner.clone(), conn.clone(), stream));
    }
    inner.counters.connections_open.fetch_sub(1, Relaxed);
    tracing::debug!(reason = ?conn.quic().close_reason(), "connection closed");
    if let (Ok(mut open), Ok(mut closed)) = (inner.open.lock(), inner.closed_udp.lock()) {
        open.remove(&conn.quic().stable_id());
        let udp = conn.quic().stats();
        closed.0 += udp.udp_tx.bytes;
        closed.1 += udp.udp_rx.bytes;
    }
    if let Ok(mut peers) = inner.peers.lock()
        && let Some(p) = peers.get_mut(&conn.peer())
    {
        p.open = p.open.saturating_sub(1);
        if p.conn.as_ref().is_some_and(|c| c.quic().stable_id() == conn.quic().stable_id()) {
            p.conn = None;
        }
    }
}

/// Reads frames from one stream into the inbox; a refused frame closes the connection.
async fn read_stream<M: DeserializeOwned + Send + 'static>(
    inner: Arc<Inner<M>>,
    conn: Connection,
    mut stream: quinn::RecvStream,
) {
    loop {
        let read = match frame::read_sized::<M>(&mut stream, inner.frame_max).await {
            Ok(Some(read)) => Ok(read),
            Ok(None) | Err(FrameError::Stream(_)) => return,
            Err(e) => Err(e),
        };
        if !deliver(&inner, &conn, read).await {
            return;
        }
    }
}

/// Reads the datagrams of `conn` into the inbox, each one frame; a refused frame closes the
/// connection.
async fn read_datagrams<M: DeserializeOwned + Send + 'static>(
    inner: Arc<Inner<M>>,
    conn: Connection,
) {
    while let Ok(datagram) = conn.quic().read_datagram().await {
        let read = frame::decode_frame::<M>(&datagram, inner.frame_max);
        if !deliver(&inner, &conn, read).await {
            return;
        }
    }
}

/// Counts a frame read from `conn` and hands its message to the node, or counts a refused
/// frame and closes the connection. False when reading should stop.
async fn deliver<M>(
    inner: &Inner<M>,
    conn: &Connection,
    read: Result<(M, usize), FrameError>,
) -> bool {
    let c = &inner.counters;
    match read {
        Ok((message, bytes)) => {
            c.messages_in.fetch_add(1, Relaxed);
            c.bytes_in.fetch_add(bytes as u64, Relaxed);
            let inbound = Inbound { from: conn.peer(), message, bytes };
            inner.inbox.send(inbound).await.is_ok() // an error: the node stopped
        }
        Err(e) => {
            c.frames_refused.fetch_add(1, Relaxed);
            tracing::warn!("refused a frame, closing the connection: {e}");
            conn.quic().close(close_code::BAD_FRAME.into(), b"refused frame");
            false
        }
    }
}

/// Writes one peer's outbox to it, in order, on one stream of the connection in the table
/// (dialled when there is none).
async fn writer<M: DeserializeOwned + Send + 'static>(
    inner: Arc<Inner<M>>,
    to: MemberId,
    mut outbox: mpsc::Receiver<Vec<u8>>,
) {
    let c = &inner.counters;
    let mut stream: Option<(usize, quinn::SendStream)> = None;
    let mut failed_at: Option<Instant> = None;
    while let Some(frame) = outbox.recv().await {
        let conn = match current(&inner, to) {
            (Some(conn), _) => conn,
            (None, Some(addr)) if failed_at.is_none_or(|t| t.elapsed() >= REDIAL_AFTER) => {
                match dial_or_accept(&inner, to, addr).await {
                    Some(conn) => conn,
                    None => {
                        failed_at = Some(Instant::now());
                        c.dial_failures.fetch_add(1, Relaxed);
                        c.dropped_unreachable.fetch_add(1, Relaxed);
                        continue;
                    }
                }
            }
            _ => {
                c.dropped_unreachable.fetch_add(1, Relaxed);
                continue;
            }
        };
        failed_at = None;
        let id = conn.quic().stable_id();
        if stream.as_ref().is_none_or(|(sid, _)| *sid != id) {
            stream = conn.quic().open_uni().await.ok().map(|s| (id, s));
        }
        let Some((_, send)) = stream.as_mut() else {
            c.dropped_failed.fetch_add(1, Relaxed);
            continue;
        };
        if send.write_all(&frame).await.is_ok() {
            c.messages_out.fetch_add(1, Relaxed);
            c.bytes_out.fetch_add(frame.len() as u64, Relaxed);
        } else {
            c.dropped_failed.fetch_add(1, Relaxed);
            stream = None;
            forget(&inner, to, id);
        }
    }
}

/// The first 8 hex digits of a member id, for logs.
fn short(id: MemberId) -> String {
    format!("{:032x}", id.0)[..8].to_string()
}

/// How often a writer that is dialling looks whether its peer connected meanwhile.
const DIAL_LOOK: Duration = Duration::from_millis(20);

/// Dials `to` at `addr`; gives up early when `to` connects here meanwhile (then that
/// connection is used), so a slow dial — a peer not up yet answers nothing until the connect
/// timeout — never holds up messages once the peer is reachable.
async fn dial_or_accept<M: DeserializeOwned + Send + 'static>(
    inner: &Arc<Inner<M>>,
    to: MemberId,
    addr: SocketAddr,
) -> Option<Connection> {
    let dial = inner.endpoint.connect(addr);
    tokio::pin!(dial);
    loop {
        tokio::select! {
            dialled = &mut dial => {
                return match dialled {
                    Ok(conn) if conn.peer() == to && register(inner, conn.clone()) => Some(conn),
                    Ok(conn) => {
                        // Someone else answers at that address, or `to` holds too many.
                        conn.quic().close(close_code::SHUTDOWN.into(), b"not dialled");
                        current(inner, to).0
                    }
                    Err(_) => current(inner, to).0,
                };
            }
            _ = tokio::time::sleep(DIAL_LOOK) => {
                if let (Some(conn), _) = current(inner, to) {
                    return Some(conn);
                }
            }
        }
    }
}

/// The connection to send to `to` on, and its address.
fn current<M>(inner: &Inner<M>, to: MemberId) -> (Option<Connection>, Option<SocketAddr>) {
    let Ok(peers) = inner.peers.lock() else { return (None, None) };
    let Some(p) = peers.get(&to) else { return (None, None) };
    let live = p.conn.clone().filter(|c| c.quic().close_reason().is_none());
    (live, p.addr)
}

/// Stops sending on connection `id` to `to` (it broke); the next message dials again.
fn forget<M>(inner: &Inner<M>, to: MemberId, id: usize) {
    if let Ok(mut peers) = inner.peers.lock()
        && let Some(p) = peers.get_mut(&to)
        && p.conn.as_ref().is_some_and(|c| c.quic().stable_id() == id)
    {
        p.conn = None;
    }
}
