//! Accepting connections: which protocol each one speaks.
//!
//! On the shared port a gRPC client opens with HTTP/2's client preface,
//! `PRI * HTTP/2.0\r\n...`, and a Kafka client with a request's 4-byte
//! big-endian size. "PRI " read as that size is 1.3 GB, far beyond any
//! request a broker accepts (`socket.request.max.bytes`), so the first four
//! bytes decide without ambiguity. They are only peeked: tonic reads the
//! preface itself. With TLS the handshake's ALPN decides instead: tonic's
//! clients (and every gRPC client) offer `h2`, Kafka clients offer nothing.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::connection;
use crate::auth::Principal;
use crate::auth::principal::common_name;
use crate::server::Context;
use crate::server::tls::{ReloadingTls, handshakes};

/// The HTTP/2 client preface's first four bytes.
const HTTP2_PREFACE: &[u8; 4] = b"PRI ";

/// A connection that has not sent its first four bytes by then is closed.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// gRPC and Kafka, told apart per connection.
    Both,
    /// gRPC only (`kafka.shared.listener=false`).
    Grpc,
    /// Kafka only (`kafka.listen`).
    Kafka,
}

/// The gRPC connections of a listener, for tonic's
/// `serve_with_incoming_shutdown`.
pub enum GrpcIncoming {
    Plain(ReceiverStream<io::Result<TcpStream>>),
    Tls(ReceiverStream<io::Result<TlsStream<TcpStream>>>),
}

impl std::fmt::Debug for GrpcIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GrpcIncoming::Plain(_) => "GrpcIncoming::Plain",
            GrpcIncoming::Tls(_) => "GrpcIncoming::Tls",
        })
    }
}

/// Accept connections on `listener` until the gRPC side is dropped (for a
/// Kafka-only listener: until shutdown). Kafka connections are served here;
/// gRPC ones are handed on.
pub fn accept(
    ctx: Arc<Context>,
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    protocols: Protocols,
) -> GrpcIncoming {
    let (tx, rx) = mpsc::channel(64);
    match tls {
        None => {
            tokio::spawn(accept_plain(ctx, listener, protocols, tx));
            GrpcIncoming::Plain(ReceiverStream::new(rx))
        }
        Some(tls) => {
            let (tls_tx, tls_rx) = mpsc::channel(64);
            let mut handshaken = handshakes(listener, move || tls.grpc());
            tokio::spawn(async move {
                let mut stopping = ctx.stopping.subscribe();
                loop {
                    let (stream, peer) = tokio::select! {
                        next = handshaken.recv() => match next {
                            Some(next) => next,
                            None => return,
                        },
                        _ = stopping.wait_for(|s| *s) => return,
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    if h2 && protocols != Protocols::Kafka {
                        if tls_tx.send(Ok(stream)).await.is_err() {
                            return;
                        }
                    } else if protocols != Protocols::Grpc {
                        // A verified client certificate names the principal
                        // (as `principal_of` does for gRPC).
                        let principal = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|leaf| common_name(leaf.as_ref()))
                            .map(|cn| Principal(format!("User:{cn}")));
                        tokio::spawn(connection::serve(ctx.clone(), stream, peer, principal));
                    } else {
                        tracing::debug!(%peer, "closing a TLS connection without ALPN h2 on a gRPC-only listener");
                    }
                }
            });
            drop(tx);
            GrpcIncoming::Tls(ReceiverStream::new(tls_rx))
        }
    }
}

async fn accept_plain(
    ctx: Arc<Context>,
    listener: TcpListener,
    protocols: Protocols,
    grpc: mpsc::Sender<io::Result<TcpStream>>,
) {
    let mut stopping = ctx.stopping.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if protocols != Protocols::Kafka && grpc.is_closed() {
            return;
        }
        // Nagle would hold small answers back behind delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let grpc = grpc.clone();
        tokio::spawn(async move {
            let kafka = match protocols {
                Protocols::Kafka => true,
                Protocols::Grpc => false,
                Protocols::Both => match speaks_kafka(&tcp, peer).await {
                    Some(kafka) => kafka,
                    None => return,
                },
            };
            if kafka {
                connection::serve(ctx, tcp, peer, None).await;
            } else {
                let _ = grpc.send(Ok(tcp)).await;
            }
        });
    }
}

/// Whether a plaintext connection on the shared port is a Kafka client;
/// `None` if it closed or stayed silent before saying.
async fn speaks_kafka(tcp: &TcpStream, peer: SocketAddr) -> Option<bool> {
    let mut first = [0u8; 4];
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
    loop {
        let peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await;
        match peeked {
            Ok(Ok(0)) => return None,
            Ok(Ok(n)) if n >= first.len() => return Some(&first != HTTP2_PREFACE),
            // Fewer than four bytes so far: peek returns at once while they
            // sit in the buffer, so wait a little for the rest.
            Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(2)).await,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection failed before its first bytes");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "connection sent nothing within {FIRST_BYTES_TIMEOUT:?}; closed");
                return None;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}
