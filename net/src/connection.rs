//! One client connection, served entirely on the shard that accepted it. The reader
//! reads and decodes requests and starts each handler as a local task (so requests
//! pipeline); the writer sends the answers strictly in request order. Bounds: requests in
//! flight (channel depth) and request bytes in flight (a semaphore acquired before a
//! frame's body is allocated). A request that cannot be decoded ends the connection after
//! the answers to the requests before it are written.

use std::rc::Rc;

use bytes::Bytes;
use futures_lite::io::{AsyncWriteExt, BufReader};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};
use glommio::task::JoinHandle;

use crate::broker::Broker;
use crate::codec::{decode_header, CodecError};
use crate::dispatch::{decode_request, handle};
use crate::frame::{read_frame_body, read_frame_size, FrameError};
use crate::limits::CONNECTION_READ_BUFFER_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("socket write failed")]
    Write {
        #[source]
        source: std::io::Error,
    },
}

/// A request being handled, and its share of the in-flight byte bound, held until its
/// answer is written so a slow reader of large answers also slows the requests.
type Pending = (JoinHandle<Result<Option<Bytes>, CodecError>>, StaticPermit);

pub async fn serve(broker: Rc<Broker>, stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let (reader, writer) = futures_lite::io::split(stream);
    let (pending_tx, pending_rx) = glommio::channels::local_channel::new_bounded::<Pending>(
        broker.config.in_flight_requests_per_connection,
    );
    let writer_task = glommio::spawn_local(write_responses(writer, pending_rx)).detach();
    enum Ended {
        Reader(Result<(), ConnectionError>),
        Writer(Option<Result<(), ConnectionError>>),
    }
    let reader = async { Ended::Reader(read_requests(&broker, reader, pending_tx).await) };
    // The writer ending first (a write or encode failure) drops the reader too, so both
    // socket halves go and the peer sees the close instead of waiting for an answer.
    let writer = async move { Ended::Writer(writer_task.await) };
    match futures_lite::future::or(reader, writer).await {
        Ended::Reader(result) => match &result {
            Ok(()) => tracing::debug!(?peer, "connection closed by peer"),
            Err(e) => tracing::info!(?peer, error = %e, "closing connection"),
        },
        Ended::Writer(result) => {
            if let Some(Err(e)) = result {
                tracing::warn!(?peer, error = %e, "closing connection: writer failed");
            }
        }
    }
}

async fn read_requests<R: futures_lite::AsyncRead + Unpin>(
    broker: &Rc<Broker>,
    reader: R,
    pending: glommio::channels::local_channel::LocalSender<Pending>,
) -> Result<(), ConnectionError> {
    let mut reader = BufReader::with_capacity(CONNECTION_READ_BUFFER_BYTES, reader);
    let in_flight = Rc::new(Semaphore::new(
        broker.config.in_flight_bytes_per_connection as u64,
    ));
    loop {
        let Some(size) =
            read_frame_size(&mut reader, broker.config.socket_request_max_bytes).await?
        else {
            return Ok(());
        };
        // Config validation guarantees size <= in-flight bound, so this always completes.
        let Ok(permit) = in_flight.acquire_static_permit(size as u64).await else {
            return Ok(());
        };
        let frame = read_frame_body(&mut reader, size, &broker.buffers).await?;
        let request = decode_request(decode_header(frame)?)?;
        let broker = broker.clone();
        let task = glommio::spawn_local(async move {
            crate::admin::requests::timed(request.api_key, handle(&broker, request)).await
        })
        .detach();
        if pending.send((task, permit)).await.is_err() {
            // The writer is gone (socket write failed); stop reading.
            return Ok(());
        }
    }
}

async fn write_responses<W: futures_lite::AsyncWrite + Unpin>(
    mut writer: W,
    pending: glommio::channels::local_channel::LocalReceiver<Pending>,
) -> Result<(), ConnectionError> {
    while let Some((task, _permit)) = pending.recv().await {
        match task.await {
            Some(Ok(Some(bytes))) => {
                writer
                    .write_all(&bytes)
                    .await
                    .map_err(|source| ConnectionError::Write { source })?;
            }
            Some(Ok(None)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(()),
        }
    }
    writer
        .flush()
        .await
        .map_err(|source| ConnectionError::Write { source })?;
    writer
        .close()
        .await
        .map_err(|source| ConnectionError::Write { source })
}
