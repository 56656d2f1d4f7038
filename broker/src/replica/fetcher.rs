//! Followers pulling from leaders (Kafka's replica fetcher threads).
//!
//! One task per leader broker this broker follows partitions of. It keeps
//! one `ReplicaFetch` gRPC stream open to that leader and sends one request
//! for all its partitions at a time: each names the follower's log end
//! offset (which tells the leader how far the follower has got), its leader
//! epoch and the epoch of its last batch. The answer brings records to
//! append, the leader's high watermark, or — when the logs diverged after a
//! leader change — the epoch end offset to truncate to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use runnel_proto::v1::replication_client::ReplicationClient;
use runnel_proto::v1::{
    ErrorCode, ReplicaFetchPartition, ReplicaFetchPartitionResult, ReplicaFetchRequest,
    ReplicaFetchResponse,
};
use tokio::sync::{Notify, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::epoch_cache::UNDEFINED_EPOCH;
use super::partition::{FollowerFetchState, Partition};
use crate::log::TopicPartition;
use crate::server::tls::{TlsSettings, broker_endpoint};

/// Broker id → advertised `host:port`, kept current by the metadata sync.
pub type BrokerAddresses = Arc<RwLock<HashMap<i32, String>>>;

/// Knobs of the follower fetch loop (Kafka's `replica.fetch.*`).
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// `replica.fetch.wait.max.ms`: how long the leader may park a fetch.
    pub max_wait: Duration,
    /// `replica.fetch.response.max.bytes`.
    pub max_bytes: u32,
    /// `replica.fetch.backoff.ms`: pause after an error.
    pub backoff: Duration,
    /// The listener's TLS: set, followers dial leaders with TLS too.
    pub tls: Option<Arc<TlsSettings>>,
}

/// Largest replication message either side accepts.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

struct Fetcher {
    partitions: Arc<Mutex<HashMap<TopicPartition, Arc<Partition>>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts, feeds and stops the per-leader fetch tasks.
pub struct FetcherManager {
    broker_id: i32,
    addresses: BrokerAddresses,
    settings: FetchSettings,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl std::fmt::Debug for FetcherManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetcherManager")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

impl FetcherManager {
    /// The TLS this broker uses towards other brokers, if any.
    pub fn inter_broker_tls(&self) -> Option<&TlsSettings> {
        self.settings.tls.as_deref()
    }

    pub fn new(broker_id: i32, addresses: BrokerAddresses, settings: FetchSettings) -> Self {
        FetcherManager {
            broker_id,
            addresses,
            settings,
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Fetch `part` from `leader` from now on.
    pub fn add(&self, leader: i32, part: Arc<Partition>) {
        let mut fetchers = self.fetchers.lock();
        let fetcher = fetchers.entry(leader).or_insert_with(|| {
            let partitions = Arc::new(Mutex::new(HashMap::new()));
            let wake = Arc::new(Notify::new());
            let task = tokio::spawn(
                FetchLoop {
                    broker_id: self.broker_id,
                    leader,
                    addresses: self.addresses.clone(),
                    settings: self.settings.clone(),
                    partitions: partitions.clone(),
                    wake: wake.clone(),
                    delayed: HashMap::new(),
                }
                .run(),
            );
            Fetcher {
                partitions,
                wake,
                task,
            }
        });
        fetcher.partitions.lock().insert(part.tp.clone(), part);
        fetcher.wake.notify_one();
    }

    /// Stop fetching `tp` (from whichever leader).
    pub fn remove(&self, tp: &TopicPartition) {
        for fetcher in self.fetchers.lock().values() {
            fetcher.partitions.lock().remove(tp);
        }
    }

    /// Partitions being fetched, per leader (for tests and metrics).
    pub fn assignments(&self) -> HashMap<i32, usize> {
        self.fetchers
            .lock()
            .iter()
            .map(|(l, f)| (*l, f.partitions.lock().len()))
            .collect()
    }

    /// Stop every fetch task (shutdown).
    pub fn shutdown(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            f.task.abort();
        }
    }
}

/// An open `ReplicaFetch` stream.
struct Session {
    requests: mpsc::Sender<ReplicaFetchRequest>,
    responses: Streaming<ReplicaFetchResponse>,
}

struct FetchLoop {
    broker_id: i32,
    leader: i32,
    addresses: BrokerAddresses,
    settings: FetchSettings,
    partitions: Arc<Mutex<HashMap<TopicPartition, Arc<Partition>>>>,
    wake: Arc<Notify>,
    /// Partitions backing off after an error, until when.
    delayed: HashMap<TopicPartition, Instant>,
}

impl FetchLoop {
    async fn run(mut self) {
        let mut session: Option<Session> = None;
        loop {
            let wanted = self.wanted();
            if wanted.is_empty() {
                // Nothing to fetch: wait for a partition or a backoff to end.
                let _ = tokio::time::timeout(self.settings.backoff, self.wake.notified()).await;
                continue;
            }
            if session.is_none() {
                match self.connect().await {
                    Ok(s) => session = Some(s),
                    Err(e) => {
                        tracing::debug!(leader = self.leader, error = %e, "cannot reach leader for replication");
                        tokio::time::sleep(self.settings.backoff).await;
                        continue;
                    }
                }
            }
            let s = session.as_mut().expect("connected above");
            match self.round(s, &wanted).await {
                Ok(response) => self.handle(&wanted, response),
                Err(e) => {
                    tracing::debug!(leader = self.leader, error = %e, "replica fetch failed; reconnecting");
                    session = None;
                    tokio::time::sleep(self.settings.backoff).await;
                }
            }
        }
    }

    /// The partitions to ask for now and what to ask.
    fn wanted(&mut self) -> Vec<(Arc<Partition>, FollowerFetchState)> {
        let now = Instant::now();
        self.delayed.retain(|_, until| *until > now);
        self.partitions
            .lock()
            .values()
            .filter(|p| !self.delayed.contains_key(&p.tp))
            .filter_map(|p| {
                let state = p.follower_fetch_state()?;
                (state.leader == self.leader).then(|| (p.clone(), state))
            })
            .collect()
    }

    async fn connect(&self) -> Result<Session, String> {
        let address = self
            .addresses
            .read()
            .get(&self.leader)
            .cloned()
            .ok_or_else(|| format!("no address known for broker {}", self.leader))?;
        let endpoint = broker_endpoint(&address, self.settings.tls.as_deref())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(32 << 20));
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut client = ReplicationClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let (tx, rx) = mpsc::channel(1);
        let responses = client
            .replica_fetch(ReceiverStream::new(rx))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        Ok(Session {
            requests: tx,
            responses,
        })
    }

    async fn round(
        &self,
        session: &mut Session,
        wanted: &[(Arc<Partition>, FollowerFetchState)],
    ) -> Result<ReplicaFetchResponse, String> {
        let request = ReplicaFetchRequest {
            replica_id: self.broker_id,
            max_wait_ms: self.settings.max_wait.as_millis() as u32,
            max_bytes: self.settings.max_bytes,
            partitions: wanted
                .iter()
                .map(|(p, s)| ReplicaFetchPartition {
                    topic: p.tp.topic.clone(),
                    partition: p.tp.partition,
                    fetch_offset: s.fetch_offset,
                    current_leader_epoch: s.leader_epoch,
                    last_fetched_epoch: s.last_fetched_epoch,
                    log_start_offset: s.log_start_offset,
                })
                .collect(),
        };
        session
            .requests
            .send(request)
            .await
            .map_err(|_| "stream closed".to_owned())?;
        // The leader answers within max_wait; allow for a slow disk.
        let limit = self.settings.max_wait + Duration::from_secs(10);
        match tokio::time::timeout(limit, session.responses.next()).await {
            Err(_) => Err(format!("no answer within {limit:?}")),
            Ok(None) => Err("leader closed the stream".into()),
            Ok(Some(Err(status))) => Err(status.to_string()),
            Ok(Some(Ok(response))) => Ok(response),
        }
    }

    fn handle(
        &mut self,
        wanted: &[(Arc<Partition>, FollowerFetchState)],
        response: ReplicaFetchResponse,
    ) {
        let now_ms = crate::log::wall_clock_ms();
        for result in response.partitions {
            let Some((part, sent)) = wanted
                .iter()
                .find(|(p, _)| p.tp.topic == result.topic && p.tp.partition == result.partition)
            else {
                continue;
            };
            if let Err(e) = self.apply(part, sent, result, now_ms) {
                tracing::warn!(tp = %part.tp, leader = self.leader, error = %e, "replication failed; backing off");
                self.delay(&part.tp);
            }
        }
    }

    fn apply(
        &mut self,
        part: &Partition,
        sent: &FollowerFetchState,
        result: ReplicaFetchPartitionResult,
        now_ms: i64,
    ) -> crate::Result<()> {
        let epoch = sent.leader_epoch;
        let code = result.error.as_ref().map_or(ErrorCode::None, |e| {
            ErrorCode::try_from(e.code).unwrap_or(ErrorCode::UnknownServerError)
        });
        match code {
            ErrorCode::None => {}
            ErrorCode::OffsetOutOfRange => {
                if sent.fetch_offset < result.log_start_offset {
                    tracing::warn!(tp = %part.tp, fetch_offset = sent.fetch_offset, leader_log_start = result.log_start_offset,
                        "leader no longer has our offset; restarting the log at its start");
                    return part.restart_at(epoch, result.log_start_offset);
                }
                return part.truncate_to(epoch, result.log_end_offset);
            }
            // The leader has not caught up with the metadata yet, or we have
            // not: the metadata sync will move us; try again shortly.
            _ => {
                tracing::debug!(tp = %part.tp, ?code, message = ?result.error.map(|e| e.message), "replica fetch refused");
                self.delay(&part.tp);
                return Ok(());
            }
        }
        if let Some(diverging) = result.diverging_epoch {
            let offset = if diverging.epoch == UNDEFINED_EPOCH {
                // The leader knows no epoch this old: fall back to our HW.
                part.high_watermark()
            } else {
                let (_, own_end) = part.end_offset_for_epoch(diverging.epoch);
                diverging.end_offset.min(own_end)
            };
            tracing::info!(tp = %part.tp, leader = self.leader, epoch = diverging.epoch,
                leader_end_offset = diverging.end_offset, truncate_to = offset, "log diverged from the leader's; truncating");
            let before = (part.log().log_end_offset(), part.latest_epoch());
            part.truncate_to(epoch, offset)?;
            if (part.log().log_end_offset(), part.latest_epoch()) == before {
                // No progress: asking again at once would spin. The metadata
                // or the leader's log will have moved by the next try.
                tracing::warn!(tp = %part.tp, offset, "truncation changed nothing; backing off");
                self.delay(&part.tp);
            }
            return Ok(());
        }
        part.append_as_follower(epoch, &result.records, result.high_watermark, now_ms)?;
        // After the append: the HW it brought bounds how far we may follow.
        part.follow_leader_log_start(epoch, result.log_start_offset)
    }

    fn delay(&mut self, tp: &TopicPartition) {
        self.delayed
            .insert(tp.clone(), Instant::now() + self.settings.backoff);
    }
}
