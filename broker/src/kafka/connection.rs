//! One Kafka client connection: size-prefixed requests in, answers out in
//! request order.
//!
//! Kafka clients keep several requests in flight on a connection (five by
//! default) and match answers to requests by position, so answers must
//! leave in the order the requests came. The reader runs each request's
//! ordered part at once — for a produce, the appends, so records from one
//! connection reach the log in the order sent — and queues the rest (the
//! wait for acks=all, a long-poll fetch, a rebalance) as a future; the
//! writer awaits the queued futures one after another. Requests in flight
//! are bounded in number and in bytes, so a client cannot make the broker
//! buffer more than [`MAX_IN_FLIGHT_BYTES`] for it.
//!
//! A frame that cannot be a request (a size beyond
//! `socket.request.max.bytes`, a header or body that does not decode)
//! closes this connection, with the reason logged; nothing else is
//! affected and nothing was written.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};

use super::dispatch;
use crate::auth::{ANONYMOUS, Principal};
use crate::server::Context;

/// Requests read ahead of their answers (librdkafka and the Java client
/// send at most five by default).
pub const MAX_IN_FLIGHT_REQUESTS: usize = 32;

/// Bytes of requests read ahead of their answers, per connection.
pub const MAX_IN_FLIGHT_BYTES: usize = 128 << 20;

/// The framed answer to one request; `None` for requests Kafka does not
/// answer (produce with acks=0).
pub type Reply = Pin<Box<dyn Future<Output = Option<BytesMut>> + Send>>;

/// Bytes one read asks the socket for, at least: several pipelined
/// produce requests of librdkafka's default 16 KiB batches.
const READ_BUFFER: usize = 64 << 10;

/// Read until `buf` holds `want` bytes; `false` if the peer closed first.
/// Reads ask for at least [`READ_BUFFER`] bytes, so what follows the
/// frame being completed (the next requests) comes in the same read.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    want: usize,
) -> std::io::Result<bool> {
    while buf.len() < want {
        // The split-off bodies keep the old allocation alive; reserve
        // then starts a fresh one rather than moving what is in flight.
        buf.reserve((want - buf.len()).max(READ_BUFFER));
        if reader.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Why a connection is closed.
#[derive(Debug)]
pub struct Close(pub String);

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What every request on a connection shares.
pub struct Conn {
    pub ctx: Arc<Context>,
    pub peer: SocketAddr,
    /// The TLS client certificate's principal, or (after SASL) the
    /// authenticated one; anonymous otherwise.
    principal: Mutex<Principal>,
    /// The client's `client.id`, from its request headers (group members
    /// are described with it).
    client_id: Mutex<String>,
    /// The SASL mechanism chosen by SaslHandshake, until authenticated.
    sasl_mechanism: Mutex<Option<String>>,
    /// Set by a handler whose answer must be the connection's last (a
    /// failed SASL authentication).
    closing: std::sync::atomic::AtomicBool,
    /// Incremental fetch sessions (KIP-227). An async lock held for a
    /// whole session fetch, long poll included: a session's requests are
    /// answered one after another, as its epochs require.
    pub fetch_sessions: tokio::sync::Mutex<super::fetch_session::FetchSessions>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Who this connection's requests act as.
    pub fn principal(&self) -> Principal {
        self.principal.lock().clone()
    }

    /// The client id its last request named.
    pub fn client_id(&self) -> String {
        self.client_id.lock().clone()
    }

    pub fn set_client_id(&self, client_id: &str) {
        let mut current = self.client_id.lock();
        if *current != client_id {
            *current = client_id.to_owned();
        }
    }

    pub fn sasl_mechanism(&self) -> Option<String> {
        self.sasl_mechanism.lock().clone()
    }

    pub fn set_sasl_mechanism(&self, mechanism: Option<String>) {
        *self.sasl_mechanism.lock() = mechanism;
    }

    /// Close the connection once the current request is answered.
    pub fn close_after_answer(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// After a successful SASL exchange.
    pub fn set_principal(&self, principal: Principal) {
        *self.principal.lock() = principal;
    }
}

/// Serve one Kafka connection until the client closes it, it sends
/// something that is not a request, or the broker stops.
pub async fn serve<S>(ctx: Arc<Context>, stream: S, peer: SocketAddr, principal: Option<Principal>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let max_request = ctx.config.socket_request_max_bytes;
    let mut stopping = ctx.stopping.subscribe();
    let conn = Arc::new(Conn {
        ctx,
        peer,
        principal: Mutex::new(principal.unwrap_or_else(|| Principal(ANONYMOUS.to_owned()))),
        client_id: Mutex::new(String::new()),
        sasl_mechanism: Mutex::new(None),
        closing: false.into(),
        fetch_sessions: Default::default(),
    });
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (queue, mut answers) =
        mpsc::channel::<(Reply, tokio::sync::OwnedSemaphorePermit)>(MAX_IN_FLIGHT_REQUESTS);
    let writing = tokio::spawn(async move {
        while let Some((reply, permit)) = answers.recv().await {
            if let Some(frame) = reply.await
                && let Err(e) = writer.write_all(&frame).await
            {
                tracing::debug!(%peer, error = %e, "Kafka connection: write failed");
                return;
            }
            drop(permit);
        }
        let _ = writer.shutdown().await;
    });
    let budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES));
    // Requests are read into one buffer and split off it, so a read takes
    // whatever the socket holds (often several pipelined requests, one
    // syscall) and a request's body is a slice of it: no per-request
    // allocation to zero, no copy.
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let closed = loop {
        let filled = tokio::select! {
            filled = fill(&mut reader, &mut buf, 4) => filled,
            _ = stopping.wait_for(|s| *s) => break None,
        };
        match filled {
            Ok(true) => {}
            // The client closed the connection between requests.
            Ok(false) if buf.is_empty() => break None,
            Ok(false) => {
                break Some(Close(format!(
                    "the connection ended inside a request's size ({} of 4 bytes)",
                    buf.len()
                )));
            }
            Err(e) => break Some(Close(format!("read failed: {e}"))),
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if size < 0 || size as usize > max_request {
            break Some(Close(format!(
                "request size {size} is outside 0..={max_request} (socket.request.max.bytes)"
            )));
        }
        let size = size as usize;
        // A request bigger than the whole budget still gets in, alone.
        let permits = size.clamp(1, MAX_IN_FLIGHT_BYTES) as u32;
        let Ok(permit) = budget.clone().acquire_many_owned(permits).await else {
            break None;
        };
        match fill(&mut reader, &mut buf, 4 + size).await {
            Ok(true) => {}
            Ok(false) => {
                break Some(Close(format!(
                    "the connection ended inside a {size}-byte request ({} bytes came)",
                    buf.len() - 4
                )));
            }
            Err(e) => {
                break Some(Close(format!(
                    "the connection failed inside a {size}-byte request: {e}"
                )));
            }
        }
        buf.advance(4);
        let body = buf.split_to(size).freeze();
        match dispatch::dispatch(&conn, body).await {
            Ok(reply) => {
                if queue.send((reply, permit)).await.is_err() {
                    break None;
                }
                if conn.is_closing() {
                    break Some(Close("authentication failed".into()));
                }
            }
            Err(close) => break Some(close),
        }
    };
    if let Some(reason) = closed {
        tracing::warn!(peer = %conn.peer, %reason, "closing Kafka connection");
    }
    // Answers already queued are still written, then the socket closes.
    drop(queue);
    let _ = writing.await;
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    /// Two pipelined frames and the start of a third in one write: `fill`
    /// completes each frame from what one read brought, and reports the
    /// end of the stream inside the third.
    #[tokio::test]
    async fn pipelined_frames_split_off_one_buffer() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let mut wire = Vec::new();
        for body in [&b"first"[..], &[7u8; 70_000][..]] {
            wire.extend_from_slice(&(body.len() as i32).to_be_bytes());
            wire.extend_from_slice(body);
        }
        wire.extend_from_slice(&100i32.to_be_bytes());
        wire.extend_from_slice(b"trunc");
        client.write_all(&wire).await.unwrap();
        drop(client);

        let mut buf = BytesMut::new();
        let mut bodies = Vec::new();
        loop {
            assert!(fill(&mut server, &mut buf, 4).await.unwrap());
            let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if !fill(&mut server, &mut buf, 4 + size).await.unwrap() {
                assert_eq!(size, 100);
                assert_eq!(&buf[4..], b"trunc");
                break;
            }
            buf.advance(4);
            bodies.push(buf.split_to(size).freeze());
        }
        assert_eq!(bodies.len(), 2);
        assert_eq!(&bodies[0][..], b"first");
        assert!(bodies[1].len() == 70_000 && bodies[1].iter().all(|b| *b == 7));
    }
}
