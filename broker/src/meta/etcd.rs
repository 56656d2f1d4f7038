//! [`EtcdStore`]: the cluster-mode [`MetadataStore`], on etcd's v3 API.
//!
//! The trait was shaped after etcd, so the mapping is direct: a key's
//! `create_revision` and `mod_revision` are etcd's, a transaction is one etcd
//! `Txn` (so it commits at one store revision), and a watch is an etcd prefix
//! watch. Two details need care:
//!
//! - `Compare::ModRevision(key, 0)` ("the key does not exist") becomes
//!   `version(key) == 0`. etcd would also accept `mod_revision == 0` for a
//!   missing key (it compares against a zero-valued key), but `version == 0`
//!   says "absent" in etcd's own words and is what etcd's clients use.
//! - etcd refuses a transaction that writes the same key twice (two puts, or a
//!   put inside a deleted prefix) with "duplicate key given in txn request";
//!   the embedded store refuses the same transactions, so both accept
//!   exactly the same ones (`tests/tests/etcd_store.rs` runs one suite
//!   against both).
//!
//! Connection loss: the underlying gRPC channel reconnects by itself, so a
//! call made after etcd is back succeeds without rebuilding the store. While
//! etcd is unreachable every call fails after the request timeout with
//! [`Error::Metadata`] naming the endpoints, and open [`Watch`]es end with an
//! error (their owners re-read with `range` and watch again).
//!
//! Leases are etcd's own: etcd expires them and deletes their keys.
//! etcd reports a dead or unknown lease as "requested lease not found" (on a
//! put or revoke) or as a keep-alive answer with TTL 0; all of these become
//! [`Error::LeaseExpired`], except that revoking a dead lease succeeds.
//! Elections (controller) come next, on the same [`etcd_client::Client`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    ResponseHeader, Txn, TxnOp, WatchClient, WatchOptions,
};
use tokio::sync::mpsc;

use super::{
    Compare, KeyValue, LeaseId, MetadataStore, Op, TxnOutcome, Watch, WatchEvent, lease_ttl_seconds,
};
use crate::{Error, Result};

/// How long one KV call (or the start of a watch) may take before it fails.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Events a watcher may leave unread before the forwarding task waits for it
/// (etcd then buffers on its side).
const WATCH_BUFFER: usize = 256;

/// HTTP/2 keep-alive: notices a silently dead connection (network partition)
/// so watches fail instead of hanging. etcd refuses pings more often than
/// every 5 s (`--grpc-keepalive-min-time`).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Metadata in an etcd cluster, shared by every broker.
pub struct EtcdStore {
    client: Client,
    /// The endpoints as given, comma-separated, for error messages.
    endpoints: String,
    request_timeout: Duration,
    /// The highest store revision any response has shown us. A watch starts
    /// right after it: `watch` cannot ask etcd for the current revision (it is
    /// not async), and starting from what we last saw never misses a change
    /// made after the call.
    seen_revision: Arc<AtomicI64>,
    /// Where watch tasks run: `watch` may be called outside a runtime context.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// TLS to etcd, as etcdctl's `--cacert`, `--cert` and `--key`: the CA
/// etcd's certificate must chain to, and the client certificate etcd's
/// `--client-cert-auth` asks for. Endpoints then use `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: PathBuf,
    /// Client certificate chain and key (PEM).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl EtcdTls {
    fn options(&self) -> Result<etcd_client::TlsOptions> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                Error::Metadata(format!(
                    "cannot read the etcd TLS {what} {}: {e}",
                    path.display()
                ))
            })
        };
        let mut options = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read("CA", &self.ca)?));
        if let Some((cert, key)) = &self.identity {
            options = options.identity(etcd_client::Identity::from_pem(
                read("certificate", cert)?,
                read("key", key)?,
            ));
        }
        Ok(options)
    }
}

impl EtcdStore {
    /// Connect to etcd (`http://host:port` or `host:port` endpoints) and check
    /// that it answers within `connect_timeout`.
    pub async fn connect(endpoints: &[String], connect_timeout: Duration) -> Result<Self> {
        Self::connect_with_tls(endpoints, connect_timeout, None).await
    }

    /// [`EtcdStore::connect`], over TLS when `tls` is given.
    pub async fn connect_with_tls(
        endpoints: &[String],
        connect_timeout: Duration,
        tls: Option<&EtcdTls>,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::Metadata(
                "no etcd endpoints given; pass at least one, e.g. http://127.0.0.1:2379".into(),
            ));
        }
        let joined = endpoints.join(",");
        let unreachable = |e: &dyn std::fmt::Display| {
            Error::Metadata(format!(
                "cannot reach etcd at {joined} within {connect_timeout:?}: {e}; \
                 check that etcd is running there and the endpoints are right"
            ))
        };
        let mut options = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        if let Some(tls) = tls {
            if let Some(plain) = endpoints.iter().find(|e| e.starts_with("http://")) {
                return Err(Error::Metadata(format!(
                    "etcd TLS is configured but endpoint {plain} is http://; use https://"
                )));
            }
            options = options.with_tls(tls.options()?);
        }
        // The client connects lazily: a request is what proves etcd is there.
        // It also tells us the current revision for the first watch.
        let probe = async {
            let client = Client::connect(endpoints, Some(options)).await?;
            let response = client
                .kv_client()
                .get("/", Some(GetOptions::new().with_count_only()))
                .await?;
            Ok::<_, etcd_client::Error>((client, response))
        };
        // etcd that answers "unavailable" (no leader, leader changed) or not
        // at all is there but busy: retriable, and start-up waits for it.
        // A refused connection or a failed TLS handshake is what a wrong
        // endpoint or TLS setting looks like: said at once.
        let busy = |e: &dyn std::fmt::Display| match unreachable(e) {
            Error::Metadata(m) => Error::MetadataUnavailable(m),
            other => other,
        };
        let (client, response) = match tokio::time::timeout(connect_timeout, probe).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(e @ etcd_client::Error::GRpcStatus(_))) if transient(&e) => {
                return Err(busy(&e));
            }
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => return Err(busy(&"no answer")),
        };
        let revision = response.header().map_or(0, ResponseHeader::revision);
        tracing::info!(endpoints = %joined, revision, "connected to etcd");
        Ok(EtcdStore {
            client,
            endpoints: joined,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            seen_revision: Arc::new(AtomicI64::new(revision)),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Replace [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The endpoints this store talks to, comma-separated.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Metadata(format!("etcd at {}: {what}: {e}", self.endpoints))
    }

    /// etcd could not be reached or had no quorum: retriable.
    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::MetadataUnavailable(format!("etcd at {}: {what}: {e}", self.endpoints))
    }

    /// Run one etcd call under the request timeout.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        self.call_on_lease(what, None, call).await
    }

    /// [`Self::call`] for a call that names `lease`: etcd's "lease not
    /// found" becomes [`Error::LeaseExpired`].
    async fn call_on_lease<T>(
        &self,
        what: &str,
        lease: Option<LeaseId>,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => match lease {
                Some(lease) if lease_not_found(&e) => {
                    Err(Error::LeaseExpired { lease: lease.get() })
                }
                _ if transient(&e) => Err(self.unavailable(what, e)),
                _ => Err(self.error(what, e)),
            },
            Err(_) => Err(self.no_answer(what)),
        }
    }

    /// No answer within the request timeout.
    fn no_answer(&self, what: &str) -> Error {
        self.unavailable(
            what,
            format_args!(
                "no answer within {:?}; is etcd running and reachable?",
                self.request_timeout
            ),
        )
    }

    /// [`Self::call`] for a read, tried once more at once when the member
    /// it went to failed under it (killed, cut off): the client's balancer
    /// has dropped that connection and sends the retry to another member,
    /// so losing one member of three stays invisible. A read changes
    /// nothing, so repeating it is safe; writes are not repeated (one may
    /// have been applied). A timeout is not retried either: etcd as a whole
    /// is not answering.
    async fn read<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(self.request_timeout, call()).await {
            Ok(Err(e)) if transient(&e) => self.call(what, call()).await,
            Ok(Err(e)) => Err(self.error(what, e)),
            Ok(Ok(response)) => Ok(response),
            Err(_) => Err(self.no_answer(what)),
        }
    }

    /// Remember a response's revision; returns it.
    fn saw(&self, header: Option<&ResponseHeader>) -> i64 {
        let revision = header.map_or(0, ResponseHeader::revision);
        self.seen_revision.fetch_max(revision, Ordering::Relaxed);
        revision
    }
}

/// Errors that say etcd is unreachable or without a leader right now, not
/// that the request was wrong: the transport failed, or etcd answered
/// UNAVAILABLE ("no leader", "leader changed", "request timed out") or
/// DEADLINE_EXCEEDED.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ) || connection_lost(status)
        }
        _ => false,
    }
}

/// tonic's UNKNOWN "transport error": the connection to the member went
/// away mid-request (that member was killed or cut off). Another member
/// may well answer.
fn connection_lost(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.code() == tonic::Code::Unknown
        && (status.message() == "transport error"
            || status
                .source()
                .is_some_and(|s| s.is::<tonic::transport::Error>()))
}

/// etcd's ways of saying a lease is dead or unknown.
fn lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            status.message().contains("requested lease not found")
        }
        // etcd-client's own check of the first keep-alive answer (TTL 0).
        etcd_client::Error::LeaseKeepAliveError(message) => message.contains("lease not found"),
        _ => false,
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(kv)?,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        // etcd: lease 0 means "no lease".
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

fn key_string(kv: &etcd_client::KeyValue) -> Result<String> {
    String::from_utf8(kv.key().to_vec()).map_err(|e| {
        Error::Metadata(format!(
            "etcd key {:?} is not UTF-8 ({e}); something other than Runnel wrote it",
            String::from_utf8_lossy(kv.key())
        ))
    })
}

fn compare(compare: Compare) -> etcd_client::Compare {
    match compare {
        // See the module docs: "absent" is version 0.
        Compare::ModRevision(key, 0) => etcd_client::Compare::version(key, CompareOp::Equal, 0),
        Compare::ModRevision(key, revision) => {
            etcd_client::Compare::mod_revision(key, CompareOp::Equal, revision)
        }
    }
}

fn txn_op(op: Op) -> TxnOp {
    match op {
        Op::Put(key, value) => TxnOp::put(key, value, None),
        Op::PutWithLease(key, value, lease) => {
            TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease.get())))
        }
        Op::Delete(key) => TxnOp::delete(key, None),
        Op::DeletePrefix(prefix) => TxnOp::delete(prefix, Some(DeleteOptions::new().with_prefix())),
    }
}

#[async_trait]
impl MetadataStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self
            .read("get", || {
                let mut kv = self.client.kv_client();
                async move { kv.get(key, None).await }
            })
            .await?;
        self.saw(response.header());
        response.kvs().first().map(key_value).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        // etcd returns a range in key order unless asked otherwise.
        let response = self
            .read("range", || {
                let mut kv = self.client.kv_client();
                async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        self.saw(response.header());
        response.kvs().iter().map(key_value).collect()
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome> {
        // etcd does not say which lease it did not find; with several, we
        // name the first.
        let lease = ops.iter().find_map(|op| match op {
            Op::PutWithLease(_, _, lease) => Some(*lease),
            _ => None,
        });
        let txn = Txn::new()
            .when(compares.into_iter().map(compare).collect::<Vec<_>>())
            .and_then(ops.into_iter().map(txn_op).collect::<Vec<_>>());
        let mut kv = self.client.kv_client();
        let response = self.call_on_lease("txn", lease, kv.txn(txn)).await?;
        Ok(TxnOutcome {
            succeeded: response.succeeded(),
            revision: self.saw(response.header()),
        })
    }

    fn watch(&self, prefix: &str) -> Watch {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let task = WatchTask {
            client: self.client.watch_client(),
            prefix: prefix.to_owned(),
            start_revision: self.seen_revision.load(Ordering::Relaxed) + 1,
            endpoints: self.endpoints.clone(),
            start_timeout: self.request_timeout,
            seen_revision: self.seen_revision.clone(),
            tx,
        };
        self.runtime.spawn(task.run());
        Watch::from_channel(prefix, rx)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let mut leases = self.client.lease_client();
        let response = self
            .call("grant lease", leases.grant(lease_ttl_seconds(ttl), None))
            .await?;
        self.saw(response.header());
        Ok(LeaseId(response.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let mut leases = self.client.lease_client();
        // etcd-client's `keep_alive` opens the stream with one renewal and
        // checks the answer but does not return its TTL; a second renewal on
        // the same stream reports it. Dropping the stream ends it.
        let round = async {
            let (mut keeper, mut stream) = leases.keep_alive(lease.get()).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match self.call_on_lease("keep-alive", Some(lease), round).await? {
            Some(response) if response.ttl() > 0 => {
                self.saw(response.header());
                Ok(Duration::from_secs(response.ttl().unsigned_abs()))
            }
            Some(_) => Err(Error::LeaseExpired { lease: lease.get() }),
            None => Err(self.error(
                "keep-alive",
                format_args!("lease {lease}: etcd closed the keep-alive stream"),
            )),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut leases = self.client.lease_client();
        match self
            .call_on_lease("revoke lease", Some(lease), leases.revoke(lease.get()))
            .await
        {
            Ok(response) => {
                self.saw(response.header());
                Ok(())
            }
            // Already gone, keys and all: what revoking asks for.
            Err(Error::LeaseExpired { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Forwards one etcd prefix watch into a [`Watch`]'s channel; stops when the
/// [`Watch`] is dropped (dropping the etcd stream cancels the server side).
struct WatchTask {
    client: WatchClient,
    prefix: String,
    start_revision: i64,
    endpoints: String,
    start_timeout: Duration,
    seen_revision: Arc<AtomicI64>,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

impl WatchTask {
    async fn run(mut self) {
        if let Err(e) = self.forward().await {
            // The watcher may be gone already; then nobody needs to know.
            let _ = self
                .tx
                .send(Err(Error::Metadata(format!(
                    "etcd at {}: watch on {}: {e}; re-read and watch again",
                    self.endpoints, self.prefix
                ))))
                .await;
        }
    }

    /// Ok(()) when the watcher went away; Err(reason) when the watch broke.
    async fn forward(&mut self) -> Result<(), String> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.start_revision);
        let start = tokio::time::timeout(
            self.start_timeout,
            self.client.watch(self.prefix.clone(), Some(options)),
        );
        let mut stream = tokio::select! {
            _ = self.tx.closed() => return Ok(()),
            started = start => match started {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(format!("starting: {e}")),
                Err(_) => return Err(format!(
                    "starting: no answer within {:?}; is etcd running and reachable?",
                    self.start_timeout
                )),
            },
        };
        loop {
            let message = tokio::select! {
                _ = self.tx.closed() => return Ok(()),
                message = stream.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => return Err("stream ended (connection to etcd lost?)".into()),
                Err(e) => return Err(e.to_string()),
            };
            if response.canceled() {
                return Err(format!(
                    "cancelled by etcd: {} (compacted up to revision {})",
                    response.cancel_reason(),
                    response.compact_revision()
                ));
            }
            if let Some(header) = response.header() {
                self.seen_revision
                    .fetch_max(header.revision(), Ordering::Relaxed);
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let event = match event.event_type() {
                    EventType::Put => key_value(kv).map(WatchEvent::Put),
                    EventType::Delete => key_string(kv).map(|key| WatchEvent::Delete {
                        key,
                        // etcd stamps a deletion with the deleting revision.
                        mod_revision: kv.mod_revision(),
                    }),
                }
                .map_err(|e| e.to_string())?;
                if self.tx.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_without_a_leader_is_transient_and_a_refusal_is_not() {
        let status = |s| etcd_client::Error::GRpcStatus(s);
        assert!(transient(&status(tonic::Status::unavailable(
            "etcdserver: leader changed"
        ))));
        assert!(transient(&status(tonic::Status::deadline_exceeded(
            "context deadline exceeded"
        ))));
        assert!(!transient(&status(tonic::Status::invalid_argument(
            "etcdserver: too many operations in txn request"
        ))));
        assert!(!transient(&status(tonic::Status::permission_denied(
            "etcdserver: permission denied"
        ))));
        assert!(!transient(&etcd_client::Error::InvalidArgs("bad".into())));
    }

    #[test]
    fn a_member_lost_mid_request_is_transient() {
        // What tonic reports when the member's connection drops (chaos
        // `kill-etcd`): clients must be told to retry, not of a server error.
        let lost = etcd_client::Error::GRpcStatus(tonic::Status::unknown("transport error"));
        assert!(transient(&lost));
        let other = etcd_client::Error::GRpcStatus(tonic::Status::unknown("etcdserver: boom"));
        assert!(!transient(&other));
    }
}
