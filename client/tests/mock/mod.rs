//! An in-memory stand-in for the broker: just enough of the `Broker` and
//! `Admin` services, on a loopback port, to drive the client end to end
//! (batching, routing, long-poll fetches, error mapping) without the real
//! broker. It follows the proto's conventions: whole-request problems are a
//! status with `runnel-error-code`, per-partition ones an `Error` in the
//! result. The real broker's own tests live in `tests/`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use runnel_proto::batch::{batches, records, set_base_offset, validate_batch};
use runnel_proto::error_code::METADATA_KEY;
use runnel_proto::v1::admin_server::{Admin, AdminServer};
use runnel_proto::v1::broker_server::{Broker, BrokerServer};
use runnel_proto::v1::*;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Partition {
    /// (base offset, batch bytes), in log order.
    batches: Vec<(i64, Bytes)>,
    log_start: i64,
    next: i64,
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
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
    pub addr: SocketAddr,
    /// Produce requests received, to check batching.
    produce_requests: Arc<Mutex<u64>>,
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
    /// Serve on `127.0.0.1:0` until the test's runtime ends.
    pub async fn start() -> MockBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mock = MockBroker {
            state: Arc::default(),
            appended: Arc::new(Notify::new()),
            addr,
            produce_requests: Arc::default(),
        };
        let service = mock.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(
                    BrokerServer::new(service.clone())
                        .max_decoding_message_size(256 << 20)
                        .max_encoding_message_size(256 << 20),
                )
                .add_service(AdminServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        mock
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
        let request = request.into_inner();
        let mut st = self.state.lock().unwrap();
        let mut topics = Vec::new();
        for t in request.topics {
            let topic = st
                .topics
                .get_mut(&t.topic)
                .ok_or_else(|| unknown_topic(&t.topic))?;
            let mut results = Vec::new();
            for p in t.partitions {
                let n = topic.partitions.len();
                let part = topic
                    .partitions
                    .get_mut(p.partition as usize)
                    .ok_or_else(|| {
                        status(
                            tonic::Code::NotFound,
                            ErrorCode::UnknownTopicOrPartition,
                            format!("{}-{}: topic has {n} partitions", t.topic, p.partition),
                        )
                    })?;
                let base = part.next;
                for batch in batches(&p.records) {
                    let (_, slice) = batch.map_err(|e| {
                        status(
                            tonic::Code::InvalidArgument,
                            ErrorCode::CorruptMessage,
                            e.to_string(),
                        )
                    })?;
                    let header = validate_batch(slice).map_err(|e| {
                        status(
                            tonic::Code::InvalidArgument,
                            ErrorCode::CorruptMessage,
                            e.to_string(),
                        )
                    })?;
                    let mut stamped = BytesMut::from(slice);
                    set_base_offset(&mut stamped, part.next);
                    part.batches.push((part.next, stamped.freeze()));
                    part.next += i64::from(header.records_count);
                }
                results.push(PartitionProduceResult {
                    partition: p.partition,
                    error: None,
                    base_offset: if request.acks == Acks::None as i32 {
                        -1
                    } else {
                        base
                    },
                    log_append_time_ms: -1,
                    log_start_offset: part.log_start,
                });
            }
            topics.push(TopicProduceResult {
                topic: t.topic,
                partitions: results,
            });
        }
        drop(st);
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
                    let r = self.read(&t.topic, p.partition, p.fetch_offset, max as usize)?;
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
                            leader: 1,
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
            brokers: vec![BrokerInfo {
                id: 1,
                host: self.addr.ip().to_string(),
                port: u32::from(self.addr.port()),
                rack: String::new(),
            }],
            topics,
        }))
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
