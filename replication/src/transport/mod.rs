//! The inter-broker transport on glommio: Sluice's own port, [`crate::wire`] frames on
//! plain TCP, pipelined. A [`PeerLink`] owns one outgoing connection to a peer broker and
//! writes every frame queued for it back to back, flushing once per round, without waiting
//! for answers (answers are frames the peer sends on its own link). [`serve`] accepts peer
//! connections and hands each validated frame to a handler.
//!
//! Loss is allowed by design: a full queue drops the frame and a broken connection loses
//! what was in flight; both protocols above (replica pushes and acks, Raft) resend. So a
//! replica or the controller never waits on a peer's socket.
//!
//! Runs on one shard: links, their queues and the accept loop are that shard's; nothing
//! here crosses threads.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::limits::{
    INBOUND_CONNECTIONS_MAX, LINK_QUEUE_FRAMES_MAX, LINK_RECONNECT_MS_MAX, LINK_RECONNECT_MS_MIN,
    LINK_WRITE_BATCH_FRAMES_MAX,
};
use crate::wire::{decode_raw, frame_len, FrameError, FrameKind, FRAME_HEADER_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("peer connection I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame from peer: {0}")]
    Frame(#[from] FrameError),
}

fn kind_of(header: &[u8]) -> Result<FrameKind, FrameError> {
    let k = u16::from_le_bytes([header[6], header[7]]);
    match k {
        1 => Ok(FrameKind::Replica),
        2 => Ok(FrameKind::Raft),
        3 => Ok(FrameKind::ControllerRequest),
        4 => Ok(FrameKind::RaftHardState),
        7 => Ok(FrameKind::Heartbeat),
        other => Err(FrameError::Invalid(format!("unknown frame kind {other}"))),
    }
}

/// Reads one whole frame into `buf` (reused between calls) and checks it: the length is
/// bounded before anything is allocated, the checksum before the frame is returned.
/// `Ok(None)` at a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameKind>, TransportError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut got = 0;
    while got < FRAME_HEADER_BYTES {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated(got).into());
        }
        got += n;
    }
    let total = frame_len(&header)?;
    let kind = kind_of(&header)?;
    buf.clear();
    buf.resize(total, 0);
    buf[..FRAME_HEADER_BYTES].copy_from_slice(&header);
    r.read_exact(&mut buf[FRAME_HEADER_BYTES..]).await?;
    decode_raw(kind, buf)?;
    Ok(Some(kind))
}

/// Accepts peer connections until the listener fails, reading frames from each and calling
/// `handler(kind, frame)` for every valid one. A connection that sends a bad frame is
/// closed (the peer's link reconnects).
pub async fn serve<H>(listener: TcpListener, handler: H)
where
    H: Fn(FrameKind, &[u8]) + Clone + 'static,
{
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "inter-broker accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.get() >= INBOUND_CONNECTIONS_MAX {
            tracing::warn!("inter-broker connection limit reached; refusing one");
            continue;
        }
        open.set(open.get() + 1);
        let (open, handler) = (open.clone(), handler.clone());
        glommio::spawn_local(async move {
            if let Err(e) = read_loop(stream, &handler).await {
                tracing::warn!(error = %e, "closing inter-broker connection");
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn read_loop<H: Fn(FrameKind, &[u8])>(
    mut stream: TcpStream,
    handler: &H,
) -> Result<(), TransportError> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some(kind) = read_frame(&mut stream, &mut buf).await? {
        handler(kind, &buf);
    }
    Ok(())
}

/// Counters of one link, for metrics and tests.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub sent_frames: Cell<u64>,
    pub dropped_frames: Cell<u64>,
    pub connects: Cell<u64>,
}

/// One outgoing connection to a peer broker with a bounded queue of frames.
pub struct PeerLink {
    tx: flume::Sender<Vec<u8>>,
    stats: Rc<LinkStats>,
}

impl PeerLink {
    /// Starts the link's writer task on the current shard; it connects (and reconnects with
    /// backoff) to `peer` on its own.
    pub fn spawn(peer: SocketAddr) -> PeerLink {
        let (tx, rx) = flume::bounded::<Vec<u8>>(LINK_QUEUE_FRAMES_MAX);
        let stats = Rc::new(LinkStats::default());
        let s = stats.clone();
        glommio::spawn_local(async move { write_loop(peer, rx, s).await }).detach();
        PeerLink { tx, stats }
    }

    /// Queues a frame; never waits. A full queue drops it (counted): the protocols resend.
    pub fn send(&self, frame: Vec<u8>) {
        if self.tx.try_send(frame).is_err() {
            self.stats
                .dropped_frames
                .set(self.stats.dropped_frames.get() + 1);
        }
    }

    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
}

async fn write_loop(peer: SocketAddr, rx: flume::Receiver<Vec<u8>>, stats: Rc<LinkStats>) {
    let mut backoff = LINK_RECONNECT_MS_MIN;
    let mut round: Vec<Vec<u8>> = Vec::with_capacity(LINK_WRITE_BATCH_FRAMES_MAX);
    loop {
        let mut stream = match TcpStream::connect(peer).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "inter-broker connect failed; retrying");
                glommio::timer::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(LINK_RECONNECT_MS_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stats.connects.set(stats.connects.get() + 1);
        backoff = LINK_RECONNECT_MS_MIN;
        loop {
            // Wait for one frame, then take whatever else is queued: one write round.
            let Ok(first) = rx.recv_async().await else {
                return; // the link was dropped
            };
            round.push(first);
            while round.len() < LINK_WRITE_BATCH_FRAMES_MAX {
                match rx.try_recv() {
                    Ok(f) => round.push(f),
                    Err(_) => break,
                }
            }
            let result = write_round(&mut stream, &round).await;
            let n = round.len() as u64;
            round.clear();
            match result {
                Ok(()) => stats.sent_frames.set(stats.sent_frames.get() + n),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "inter-broker write failed; reconnecting");
                    stats.dropped_frames.set(stats.dropped_frames.get() + n);
                    break;
                }
            }
        }
    }
}

async fn write_round<W: AsyncWrite + Unpin>(w: &mut W, frames: &[Vec<u8>]) -> std::io::Result<()> {
    for f in frames {
        w.write_all(f).await?;
    }
    w.flush().await
}
