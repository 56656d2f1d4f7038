//! An in-memory stand-in for the broker: just enough of the `Broker` and
//! `Admin` services, on a loopback port, to drive the client end to end
//! (batching, routing, long-poll fetches, error mapping) without the real
//! broker. It follows the proto's conventions: whole-request problems are a
//! status with `runnel-error-code`, per-partition ones an `Error` in the
//! result. The real broker's own tests live in `tests/`.
//!
//! [`MockBroker::start_cluster`] starts several mocks that share one log
//! (as if perfectly replicated) and one view of who leads what: a partition
//! answers only on its leader (others say `NOT_LEADER_OR_FOLLOWER`), so a
//! test moves leadership with [`MockBroker::set_leader`] and kills a broker
//! with [`MockBroker::stop`]. Faults for retries are queued with
//! [`MockBroker::fail_produce`]. Batches with a producer id are
//! de-duplicated by sequence number as a Kafka leader does.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use runnel_proto::batch::{batches, records, set_base_offset, validate_batch};
use runnel_proto::error_code::METADATA_KEY;
use runnel_proto::v1::admin_server::{Admin, AdminServer};
use runnel_proto::v1::broker_server::{Broker, BrokerServer};
use runnel_proto::v1::*;
use tokio::sync::Notify;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Partition {
    /// (base offset, batch bytes), in log order.
    batches: Vec<(i64, Bytes)>,
    log_start: i64,
    next: i64,
    /// Idempotent producers: id → (next expected sequence, appended
    /// (base sequence, base offset) pairs).
    producers: HashMap<i64, (i32, Vec<(i32, i64)>)>,
}

/// Who is in the cluster and who leads what; shared by its mocks.
#[derive(Default)]
struct ClusterView {
    brokers: Vec<(i32, SocketAddr)>,
    /// Leader per topic-partition; absent = broker 1.
    leaders: HashMap<(String, u32), i32>,
    next_producer_id: i64,
}

/// A fault for the next produce request a broker receives.
#[derive(Debug, Clone, Copy)]
pub struct ProduceFault {
    /// The code every partition of the request answers.
    pub code: ErrorCode,
    /// Append the records first (a lost acknowledgement).
    pub append: bool,
    /// Answer only after this long (a leader that is paused or cut off
    /// until the client's request would time out).
    pub delay: Duration,
}

struct Topic {
    id: String,
    partitions: Vec<Partition>,
    configs: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    topics: BTreeMap<String, Topic>,
    next_id: u64,
}

/// Handle to a running mock broker.
#[derive(Clone)]
pub struct MockBroker {
    pub id: i32,
    state: Arc<Mutex<State>>,
    view: Arc<Mutex<ClusterView>>,
    appended: Arc<Notify>,
    pub addr: SocketAddr,
    /// Produce requests received, to check batching.
    produce_requests: Arc<Mutex<u64>>,
    /// Every partition's `records` as received, (topic, partition, bytes).
    received: Arc<Mutex<Vec<(String, u32, Bytes)>>>,
    faults: Arc<Mutex<VecDeque<ProduceFault>>>,
    /// Answer InitProducerId with UNIMPLEMENTED (an old broker).
    no_init_producer_id: Arc<AtomicBool>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

fn status(code: tonic::Code, error: ErrorCode, message: String) -> Status {
    let mut s = Status::new(code, message);
    s.metadata_mut()
        .insert(METADATA_KEY, error.as_str_name().parse().unwrap());
    s
}

fn unknown_topic(name: &str) -> Status {
    status(
        tonic::Code::NotFound,
        ErrorCode::UnknownTopicOrPartition,
        format!("unknown topic {name:?}"),
    )
}

fn partition_error(code: ErrorCode, message: String) -> Option<Error> {
    Some(Error {
        code: code as i32,
        message,
    })
}

impl MockBroker {
    /// Serve on `127.0.0.1:0` until the test's runtime ends: a one-broker
    /// cluster, broker id 1.
    pub async fn start() -> MockBroker {
        Self::start_cluster(1).await.remove(0)
    }

    /// `n` brokers, ids 1..=n, sharing one log and one leadership view;
    /// broker 1 leads every partition until told otherwise.
    pub async fn start_cluster(n: i32) -> Vec<MockBroker> {
        let state: Arc<Mutex<State>> = Arc::default();
        let view: Arc<Mutex<ClusterView>> = Arc::default();
        let appended = Arc::new(Notify::new());
        let mut listeners = Vec::new();
        for id in 1..=n {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            view.lock().unwrap().brokers.push((id, addr));
            listeners.push((id, addr, listener));
        }
        let mut mocks = Vec::new();
        for (id, addr, listener) in listeners {
            let (stop, mut stopped) = tokio::sync::watch::channel(false);
            let mock = MockBroker {
                id,
                state: state.clone(),
                view: view.clone(),
                appended: appended.clone(),
                addr,
                produce_requests: Arc::default(),
                received: Arc::default(),
                faults: Arc::default(),
                no_init_producer_id: Arc::default(),
                stop: Arc::new(stop),
            };
            let service = mock.clone();
            tokio::spawn(async move {
                // A stopped broker answers UNAVAILABLE on connections
                // still open (graceful shutdown keeps them), as a dead one
                // fails them, and refuses new ones.
                let down = service.stop.subscribe();
                let up = move |request: Request<()>| {
                    if *down.borrow() {
                        Err(Status::unavailable("broker stopped"))
                    } else {
                        Ok(request)
                    }
                };
                tonic::transport::Server::builder()
                    .add_service(InterceptedService::new(
                        BrokerServer::new(service.clone())
                            .max_decoding_message_size(256 << 20)
                            .max_encoding_message_size(256 << 20),
                        up.clone(),
                    ))
                    .add_service(InterceptedService::new(AdminServer::new(service), up))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        },
                    )
                    .await
                    .unwrap();
            });
            mocks.push(mock);
        }
        mocks
    }

    /// Stop serving and close the port (a crashed broker). Returns once
    /// the port refuses connections.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(self.addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "mock did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Make broker `id` the leader of `topic`-`partition`.
    pub fn set_leader(&self, topic: &str, partition: u32, id: i32) {
        self.view
            .lock()
            .unwrap()
            .leaders
            .insert((topic.to_owned(), partition), id);
    }

    fn leader_of(&self, topic: &str, partition: u32) -> i32 {
        *self
            .view
            .lock()
            .unwrap()
            .leaders
            .get(&(topic.to_owned(), partition))
            .unwrap_or(&1)
    }

    fn not_leader(&self, topic: &str, partition: u32) -> Option<Error> {
        let leader = self.leader_of(topic, partition);
        (leader != self.id).then(|| Error {
            code: ErrorCode::NotLeaderOrFollower as i32,
            message: format!(
                "broker {} is not the leader of {topic}-{partition} (broker {leader} is)",
                self.id
            ),
        })
    }

    /// The next produce request to this broker answers with `fault`.
    pub fn fail_produce(&self, fault: ProduceFault) {
        self.faults.lock().unwrap().push_back(fault);
    }

    /// Answer InitProducerId with UNIMPLEMENTED from now on.
    pub fn disable_init_producer_id(&self) {
        self.no_init_producer_id.store(true, Ordering::SeqCst);
    }

    /// Every `records` this broker received for `topic`-`partition`, in
    /// order, retries included.
    pub fn received(&self, topic: &str, partition: u32) -> Vec<Bytes> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, p, _)| t == topic && *p == partition)
            .map(|(_, _, b)| b.clone())
            .collect()
    }

    /// Headers of the batches in the log of `topic`-`partition`.
    pub fn log_headers(
        &self,
        topic: &str,
        partition: u32,
    ) -> Vec<runnel_proto::batch::BatchHeader> {
        let st = self.state.lock().unwrap();
        st.topics[topic].partitions[partition as usize]
            .batches
            .iter()
            .map(|(_, b)| runnel_proto::batch::BatchHeader::parse(b).unwrap())
            .collect()
    }

    /// Values of the records in the log of `topic`-`partition`, in order.
    pub fn values(&self, topic: &str, partition: u32) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.topics[topic].partitions[partition as usize]
            .batches
            .iter()
            .flat_map(|(_, b)| records(b).unwrap().map(Result::unwrap))
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            .collect()
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn create(&self, name: &str, partitions: u32) {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = format!("id-{}", st.next_id);
        st.topics.insert(
            name.to_owned(),
            Topic {
                id,
                partitions: (0..partitions).map(|_| Partition::default()).collect(),
                configs: BTreeMap::new(),
            },
        );
    }

    /// Delete records before `offset` (as retention would).
    pub fn truncate_before(&self, topic: &str, partition: u32, offset: i64) {
        let mut st = self.state.lock().unwrap();
        let p = &mut st.topics.get_mut(topic).unwrap().partitions[partition as usize];
        p.batches.retain(|(base, b)| {
            let header = validate_batch(b).unwrap();
            base + i64::from(header.last_offset_delta) >= offset
        });
        p.log_start = offset;
    }

    /// Append `batch` as is (no validation), at the end of the log.
    pub fn inject(&self, topic: &str, partition: u32, batch: &[u8]) {
        let mut st = self.state.lock().unwrap();
        let p = &mut st.topics.get_mut(topic).unwrap().partitions[partition as usize];
        let header = runnel_proto::batch::BatchHeader::parse(batch).unwrap();
        let mut stamped = BytesMut::from(batch);
        set_base_offset(&mut stamped, p.next);
        p.batches.push((p.next, stamped.freeze()));
        p.next += i64::from(header.last_offset_delta) + 1;
        drop(st);
        self.appended.notify_waiters();
    }

    pub fn end_offset(&self, topic: &str, partition: u32) -> i64 {
        self.state.lock().unwrap().topics[topic].partitions[partition as usize].next
    }

    pub fn produce_requests(&self) -> u64 {
        *self.produce_requests.lock().unwrap()
    }

    fn describe(name: &str, t: &Topic) -> TopicDescription {
        TopicDescription {
            name: name.to_owned(),
            topic_id: t.id.clone(),
            partitions: t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionDescription {
                    partition: i as u32,
                    leader: 1,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    log_start_offset: p.log_start,
                    high_watermark: p.next,
                    log_end_offset: p.next,
                    size_bytes: p.batches.iter().map(|(_, b)| b.len() as u64).sum(),
                })
                .collect(),
            replication_factor: 1,
            configs: t
                .configs
                .iter()
                .map(|(k, v)| ConfigEntry {
                    name: k.clone(),
                    value: v.clone(),
                    source: ConfigSource::Topic as i32,
                })
                .collect(),
            internal: false,
        }
    }

    /// Append `data` (one or more batches) as a leader would: validate,
    /// de-duplicate an idempotent producer's batches by sequence, stamp
    /// offsets. Returns the base offset and a per-partition error.
    fn append(
        &self,
        topic: &str,
        partition: u32,
        data: &[u8],
    ) -> Result<(i64, Option<Error>), Status> {
        let corrupt = |e: runnel_proto::Error| {
            status(
                tonic::Code::InvalidArgument,
                ErrorCode::CorruptMessage,
                e.to_string(),
            )
        };
        let mut headers = Vec::new();
        for batch in batches(data) {
            let (_, slice) = batch.map_err(corrupt)?;
            headers.push((validate_batch(slice).map_err(corrupt)?, slice));
        }
        let mut st = self.state.lock().unwrap();
        let t = st
            .topics
            .get_mut(topic)
            .ok_or_else(|| unknown_topic(topic))?;
        let n = t.partitions.len();
        let part = t.partitions.get_mut(partition as usize).ok_or_else(|| {
            status(
                tonic::Code::NotFound,
                ErrorCode::UnknownTopicOrPartition,
                format!("{topic}-{partition}: topic has {n} partitions"),
            )
        })?;
        let Some((first, _)) = headers.first() else {
            return Ok((part.next, None));
        };
        if first.producer_id >= 0 {
            let (expected, appended) = part
                .producers
                .get(&first.producer_id)
                .map_or((0, &[][..]), |(e, a)| (*e, &a[..]));
            if first.base_sequence != expected {
                return Ok(
                    match appended.iter().find(|(s, _)| *s == first.base_sequence) {
                        Some((_, offset)) => (
                            *offset,
                            partition_error(ErrorCode::DuplicateSequenceNumber, "duplicate".into()),
                        ),
                        None => (
                            -1,
                            partition_error(
                                ErrorCode::OutOfOrderSequenceNumber,
                                format!(
                                    "expected sequence {expected}, got {}",
                                    first.base_sequence
                                ),
                            ),
                        ),
                    },
                );
            }
        }
        let base = part.next;
        for (header, slice) in headers {
            if header.producer_id >= 0 {
                let entry = part.producers.entry(header.producer_id).or_default();
                entry.1.push((header.base_sequence, part.next));
                entry.0 = header.base_sequence + header.records_count;
            }
            let mut stamped = BytesMut::from(slice);
            set_base_offset(&mut stamped, part.next);
            part.batches.push((part.next, stamped.freeze()));
            part.next += i64::from(header.records_count);
        }
        Ok((base, None))
    }

    /// Batches of `topic`-`partition` from `offset`, whole, up to `max` bytes
    /// (at least one batch).
    fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max: usize,
    ) -> Result<FetchPartitionResult, Status> {
        let st = self.state.lock().unwrap();
        let t = st.topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
        let p = t
            .partitions
            .get(partition as usize)
            .ok_or_else(|| unknown_topic(topic))?;
        let mut result = FetchPartitionResult {
            partition,
            error: None,
            high_watermark: p.next,
            log_start_offset: p.log_start,
            log_end_offset: p.next,
            records: Bytes::new(),
        };
        if offset < p.log_start || offset > p.next {
            result.error = partition_error(
                ErrorCode::OffsetOutOfRange,
                format!("offset {offset} is outside {}..{}", p.log_start, p.next),
            );
            return Ok(result);
        }
        let mut out = BytesMut::new();
        for (base, b) in &p.batches {
            let last = base
                + i64::from(
                    runnel_proto::batch::BatchHeader::parse(b)
                        .unwrap()
                        .last_offset_delta,
                );
            if last < offset {
                continue;
            }
            if !out.is_empty() && out.len() + b.len() > max {
                break;
            }
            out.extend_from_slice(b);
        }
        result.records = out.freeze();
        Ok(result)
    }
}

#[tonic::async_trait]
impl Broker for MockBroker {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        *self.produce_requests.lock().unwrap() += 1;
        let fault = self.faults.lock().unwrap().pop_front();
        if let Some(f) = fault {
            tokio::time::sleep(f.delay).await;
        }
        let request = request.into_inner();
        let mut topics = Vec::new();
        for t in request.topics {
            let mut results = Vec::new();
            for p in t.partitions {
                self.received.lock().unwrap().push((
                    t.topic.clone(),
                    p.partition,
                    p.records.clone(),
                ));
                let mut result = PartitionProduceResult {
                    partition: p.partition,
                    error: None,
                    base_offset: -1,
                    log_append_time_ms: -1,
                    log_start_offset: 0,
                };
                if let Some(e) = self.not_leader(&t.topic, p.partition) {
                    result.error = Some(e);
                    results.push(result);
                    continue;
                }
                if let Some(f) = fault
                    && !f.append
                {
                    result.error = partition_error(f.code, "injected fault".into());
                    results.push(result);
                    continue;
                }
                let (base, error) = self.append(&t.topic, p.partition, &p.records)?;
                result.base_offset = base;
                result.error = error;
                if let Some(f) = fault {
                    // Appended, but the answer says otherwise.
                    result.error = partition_error(f.code, "injected fault after append".into());
                    result.base_offset = -1;
                }
                if request.acks == Acks::None as i32 {
                    result.base_offset = -1;
                }
                results.push(result);
            }
            topics.push(TopicProduceResult {
                topic: t.topic,
                partitions: results,
            });
        }
        self.appended.notify_waiters();
        Ok(Response::new(ProduceResponse {
            topics,
            throttle_time_ms: 0,
        }))
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let request = request.into_inner();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(request.max_wait_ms));
        loop {
            let appended = self.appended.notified();
            let mut bytes = 0usize;
            let mut topics = Vec::new();
            for t in &request.topics {
                let mut results = Vec::new();
                for p in &t.partitions {
                    let max = if p.partition_max_bytes == 0 {
                        request.max_bytes
                    } else {
                        p.partition_max_bytes
                    };
                    let r = match self.not_leader(&t.topic, p.partition) {
                        Some(error) => FetchPartitionResult {
                            partition: p.partition,
                            error: Some(error),
                            ..Default::default()
                        },
                        None => self.read(&t.topic, p.partition, p.fetch_offset, max as usize)?,
                    };
                    bytes += r.records.len();
                    results.push(r);
                }
                topics.push(FetchTopicResult {
                    topic: t.topic.clone(),
                    partitions: results,
                });
            }
            let has_error = topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error.is_some());
            if bytes >= request.min_bytes.max(1) as usize
                || has_error
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(Response::new(FetchResponse {
                    topics,
                    throttle_time_ms: 0,
                }));
            }
            let _ = tokio::time::timeout_at(deadline, appended).await;
        }
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        let st = self.state.lock().unwrap();
        let mut topics = Vec::new();
        for t in request.into_inner().topics {
            let topic = st
                .topics
                .get(&t.topic)
                .ok_or_else(|| unknown_topic(&t.topic))?;
            let mut results = Vec::new();
            for p in t.partitions {
                let part = topic
                    .partitions
                    .get(p.partition as usize)
                    .ok_or_else(|| unknown_topic(&t.topic))?;
                if let Some(error) = self.not_leader(&t.topic, p.partition) {
                    results.push(ListOffsetsPartitionResult {
                        partition: p.partition,
                        error: Some(error),
                        offset: -1,
                        timestamp_ms: -1,
                        leader_epoch: 0,
                    });
                    continue;
                }
                let offset = match p.spec() {
                    OffsetSpec::Earliest => part.log_start,
                    OffsetSpec::Latest => part.next,
                    OffsetSpec::Timestamp => part
                        .batches
                        .iter()
                        .flat_map(|(_, b)| records(b).unwrap().map(Result::unwrap))
                        .find(|r| r.timestamp >= p.timestamp_ms)
                        .map_or(-1, |r| r.offset),
                };
                results.push(ListOffsetsPartitionResult {
                    partition: p.partition,
                    error: None,
                    offset,
                    timestamp_ms: -1,
                    leader_epoch: 0,
                });
            }
            topics.push(ListOffsetsTopicResult {
                topic: t.topic,
                partitions: results,
            });
        }
        Ok(Response::new(ListOffsetsResponse { topics }))
    }

    async fn metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let st = self.state.lock().unwrap();
        let wanted = request.into_inner().topics;
        let names: Vec<String> = if wanted.is_empty() {
            st.topics.keys().cloned().collect()
        } else {
            wanted
        };
        let topics = names
            .into_iter()
            .map(|name| match st.topics.get(&name) {
                Some(t) => TopicMetadata {
                    topic_id: t.id.clone(),
                    partitions: (0..t.partitions.len() as u32)
                        .map(|p| PartitionMetadata {
                            partition: p,
                            leader: self.leader_of(&name, p),
                            replicas: vec![1],
                            isr: vec![1],
                            ..Default::default()
                        })
                        .collect(),
                    name,
                    ..Default::default()
                },
                None => TopicMetadata {
                    error: partition_error(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("unknown topic {name:?}"),
                    ),
                    name,
                    ..Default::default()
                },
            })
            .collect();
        Ok(Response::new(MetadataResponse {
            cluster_id: "mock".into(),
            controller_id: 1,
            brokers: self
                .view
                .lock()
                .unwrap()
                .brokers
                .iter()
                .map(|(id, addr)| BrokerInfo {
                    id: *id,
                    host: addr.ip().to_string(),
                    port: u32::from(addr.port()),
                    rack: String::new(),
                    kafka_host: addr.ip().to_string(),
                    kafka_port: u32::from(addr.port()),
                })
                .collect(),
            topics,
        }))
    }

    async fn init_producer_id(
        &self,
        _: Request<InitProducerIdRequest>,
    ) -> Result<Response<InitProducerIdResponse>, Status> {
        if self.no_init_producer_id.load(Ordering::SeqCst) {
            return Err(Status::unimplemented("InitProducerId"));
        }
        let mut view = self.view.lock().unwrap();
        view.next_producer_id += 1;
        Ok(Response::new(InitProducerIdResponse {
            producer_id: 1000 + view.next_producer_id,
            producer_epoch: 3,
        }))
    }

    async fn delete_records(
        &self,
        _: Request<DeleteRecordsRequest>,
    ) -> Result<Response<DeleteRecordsResponse>, Status> {
        Err(Status::unimplemented("the mock broker keeps no log"))
    }
}

#[tonic::async_trait]
impl Admin for MockBroker {
    async fn create_topics(
        &self,
        request: Request<CreateTopicsRequest>,
    ) -> Result<Response<CreateTopicsResponse>, Status> {
        let request = request.into_inner();
        for t in &request.topics {
            if self.state.lock().unwrap().topics.contains_key(&t.name) {
                return Err(status(
                    tonic::Code::AlreadyExists,
                    ErrorCode::TopicAlreadyExists,
                    format!("topic {:?} already exists", t.name),
                ));
            }
        }
        let mut out = Vec::new();
        for t in request.topics {
            if !request.validate_only {
                self.create(&t.name, t.partitions.max(1));
                let mut st = self.state.lock().unwrap();
                st.topics
                    .get_mut(&t.name)
                    .unwrap()
                    .configs
                    .extend(t.configs);
            }
            let st = self.state.lock().unwrap();
            if let Some(topic) = st.topics.get(&t.name) {
                out.push(Self::describe(&t.name, topic));
            }
        }
        Ok(Response::new(CreateTopicsResponse { topics: out }))
    }

    async fn delete_topics(
        &self,
        request: Request<DeleteTopicsRequest>,
    ) -> Result<Response<DeleteTopicsResponse>, Status> {
        let mut st = self.state.lock().unwrap();
        let names = request.into_inner().names;
        for n in &names {
            if !st.topics.contains_key(n) {
                return Err(unknown_topic(n));
            }
        }
        for n in &names {
            st.topics.remove(n);
        }
        Ok(Response::new(DeleteTopicsResponse { deleted: names }))
    }

    async fn list_topics(
        &self,
        _: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        let st = self.state.lock().unwrap();
        let topics = st
            .topics
            .iter()
            .map(|(name, t)| TopicListing {
                name: name.clone(),
                topic_id: t.id.clone(),
                partitions: t.partitions.len() as u32,
                replication_factor: 1,
                internal: false,
            })
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn describe_topics(
        &self,
        request: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        let st = self.state.lock().unwrap();
        let mut topics = Vec::new();
        for n in request.into_inner().names {
            let t = st.topics.get(&n).ok_or_else(|| unknown_topic(&n))?;
            topics.push(Self::describe(&n, t));
        }
        Ok(Response::new(DescribeTopicsResponse { topics }))
    }

    async fn alter_partition_reassignments(
        &self,
        _request: Request<AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<AlterPartitionReassignmentsResponse>, Status> {
        // The mock keeps one copy of each log: nothing to move.
        Err(Status::unimplemented(
            "the mock broker has no replicas to move",
        ))
    }

    async fn list_partition_reassignments(
        &self,
        _request: Request<ListPartitionReassignmentsRequest>,
    ) -> Result<Response<ListPartitionReassignmentsResponse>, Status> {
        Ok(Response::new(ListPartitionReassignmentsResponse::default()))
    }

    async fn describe_cluster_configs(
        &self,
        _request: Request<DescribeClusterConfigsRequest>,
    ) -> Result<Response<DescribeClusterConfigsResponse>, Status> {
        Ok(Response::new(DescribeClusterConfigsResponse::default()))
    }

    async fn alter_cluster_configs(
        &self,
        _request: Request<AlterClusterConfigsRequest>,
    ) -> Result<Response<AlterClusterConfigsResponse>, Status> {
        Err(Status::unimplemented(
            "the mock broker has no dynamic configs",
        ))
    }

    async fn create_acls(
        &self,
        _request: Request<CreateAclsRequest>,
    ) -> Result<Response<CreateAclsResponse>, Status> {
        Err(Status::unimplemented("the mock broker has no ACLs"))
    }

    async fn describe_acls(
        &self,
        _request: Request<DescribeAclsRequest>,
    ) -> Result<Response<DescribeAclsResponse>, Status> {
        Err(Status::unimplemented("the mock broker has no ACLs"))
    }

    async fn delete_acls(
        &self,
        _request: Request<DeleteAclsRequest>,
    ) -> Result<Response<DeleteAclsResponse>, Status> {
        Err(Status::unimplemented("the mock broker has no ACLs"))
    }

    async fn alter_topic(
        &self,
        request: Request<AlterTopicRequest>,
    ) -> Result<Response<AlterTopicResponse>, Status> {
        let r = request.into_inner();
        let mut st = self.state.lock().unwrap();
        let t = st
            .topics
            .get_mut(&r.name)
            .ok_or_else(|| unknown_topic(&r.name))?;
        if r.partitions != 0 {
            if (r.partitions as usize) < t.partitions.len() {
                return Err(status(
                    tonic::Code::InvalidArgument,
                    ErrorCode::InvalidPartitions,
                    "partitions can only grow".into(),
                ));
            }
            while t.partitions.len() < r.partitions as usize {
                t.partitions.push(Partition::default());
            }
        }
        t.configs.extend(r.set_configs);
        for k in r.delete_configs {
            t.configs.remove(&k);
        }
        Ok(Response::new(AlterTopicResponse {
            topic: Some(Self::describe(&r.name, t)),
        }))
    }
}
