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

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    let closed = loop {
        let size = tokio::select! {
            size = reader.read_i32() => size,
            _ = stopping.wait_for(|s| *s) => break None,
        };
        let size = match size {
            Ok(size) => size,
            // The client closed the connection between requests.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
            Err(e) => break Some(Close(format!("read failed: {e}"))),
        };
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
        let mut body = BytesMut::zeroed(size);
        if let Err(e) = reader.read_exact(&mut body).await {
            break Some(Close(format!(
                "the connection ended inside a {size}-byte request: {e}"
            )));
        }
        match dispatch::dispatch(&conn, Bytes::from(body)).await {
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
