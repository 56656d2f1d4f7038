//! The record accumulator: per-partition batches waiting to be sent.
//!
//! [`Producer::send`](crate::Producer::send) appends a record to its
//! partition's *open* batch. A batch is *sealed* (its bytes finished) when
//! the next record does not fit in `batch_size`, when it has lingered for
//! `linger`, on `flush()` and on `close()`. The sender task calls
//! [`Accumulator::drain`] to take sealed batches, grouped per broker into
//! requests of at most `max_request_size` bytes, and
//! [`Accumulator::request_done`] when a request is answered.
//!
//! A batch's header (and so its CRC) is written when it is first drained,
//! not when it is sealed: that is when an idempotent producer gives it its
//! sequence number, so a partition's sequences are dense in send order.
//! A batch that failed retriably comes back through
//! [`Accumulator::request_done`] into its partition's `retry` queue and
//! is sent again byte-identical (same sequence), after `retry_backoff`,
//! before any later batch of the partition.
//!
//! In flight: a broker takes up to `max_in_flight_requests` requests at
//! once, and so may one partition when the producer is idempotent (Kafka's
//! `max.in.flight.requests.per.connection`, 5). HTTP/2 runs a connection's
//! requests concurrently on the broker, so two requests carrying the same
//! partition can reach its log in either order; the sequence numbers put
//! them back in send order there (the leader holds a batch until its
//! predecessor is appended). Without idempotence there are no sequences,
//! so a partition with a request in flight is *muted* instead: its next
//! batches wait for the answer. Whatever piles up while a partition's slots
//! are taken goes out in its next request as several concatenated batches,
//! so a busy partition gets bigger requests instead of more of them.
//!
//! Compression (`compression`): a batch is compressed when its header is
//! written, at drain time, so `batch_size` and the memory accounting count
//! uncompressed bytes as Kafka's `batch.size` does, and a request is
//! filled by the batches' compressed sizes.
//!
//! Memory: every open batch holds permits for its capacity from a semaphore
//! of `buffer_memory` bytes until its request is answered, so a producer
//! that outruns the broker waits in `send` instead of growing without bound.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use runnel_proto::batch::{BatchBuilder, Compression};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::interceptor::ProducerInterceptor;
use crate::producer::ProducerRecord;
use crate::producer::delivery::{BatchResult, DeliveryFuture};
use crate::producer::partitioner::{Sticky, partition_for_key};

/// Bytes of a batch's fixed header (RecordBatch v2).
pub(crate) const BATCH_OVERHEAD: usize = 61;

/// Upper bound of the bytes a record adds to a batch: the varint fields at
/// their widest (length 5, attributes 1, timestamp delta 10, offset delta 5,
/// key and value lengths 5 each, header count 5) plus the payloads.
pub(crate) fn record_size_upper_bound(record: &ProducerRecord) -> usize {
    let payload = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    let headers: usize = record
        .headers
        .iter()
        .map(|(k, v)| 10 + k.len() + payload(v))
        .sum();
    36 + payload(&record.key) + payload(&record.value) + headers
}

/// The idempotent producer's id and epoch (from `InitProducerId`), stamped
/// into every batch header together with a per-partition sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// `sequence + records`, wrapping from `i32::MAX` to 0 as Kafka's
/// `DefaultRecordBatch.incrementSequence` does (the broker expects exactly
/// this after a wrap).
pub(crate) fn increment_sequence(sequence: i32, records: i32) -> i32 {
    if sequence > i32::MAX - records {
        records - (i32::MAX - sequence) - 1
    } else {
        sequence + records
    }
}

/// Whether sequence `a` comes after `b` in the wrapping sequence space
/// (`0..=i32::MAX`), taking the nearer way round.
pub(crate) fn sequence_ahead(a: i32, b: i32) -> bool {
    let space = i64::from(i32::MAX) + 1;
    let distance = (i64::from(a) - i64::from(b)).rem_euclid(space);
    distance > 0 && distance < space / 2
}

/// Knobs the accumulator needs, copied out of `ProducerConfig`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub batch_size: usize,
    pub linger: Duration,
    pub max_request_size: usize,
    pub max_in_flight: usize,
    pub buffer_memory: usize,
    /// Codec for every batch's records section.
    pub compression: Compression,
}

pub(crate) struct Accumulator {
    state: Mutex<State>,
    limits: Limits,
    /// Permits are bytes of batch capacity not yet acknowledged.
    memory: Arc<Semaphore>,
    /// Wakes the sender task: a batch was sealed or opened (a new linger
    /// deadline), a request finished (a partition unmuted), flush or close.
    pub sender_wake: Notify,
    /// Wakes `flush()` callers when a request finishes.
    completed: Notify,
    /// Producer interceptors, told every record's outcome through its
    /// batch's result; empty for most producers.
    interceptors: Arc<[Arc<dyn ProducerInterceptor>]>,
}

impl State {
    fn partition_mut(&mut self, topic: &str, partition: u32) -> Option<&mut PartitionQueue> {
        self.topics
            .get_mut(topic)
            .and_then(|tq| tq.partitions.get_mut(partition as usize))
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<Arc<str>, TopicQueues>,
    /// Id of the next batch; ids only grow.
    next_id: u64,
    /// Batches created but not yet acknowledged, by id (for `flush`).
    incomplete: BTreeSet<u64>,
    /// Open batches with a smaller id are sent without waiting for linger.
    flush_upto: u64,
    /// Set by `close`: new records are refused and everything is sent now.
    closed: bool,
    /// Requests in flight per broker id.
    in_flight: HashMap<i32, usize>,
}

struct TopicQueues {
    name: Arc<str>,
    partitions: Vec<PartitionQueue>,
    sticky: Sticky,
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    /// Full batches, oldest first, never sent: their headers are written
    /// when they are drained.
    sealed: VecDeque<OpenBatch>,
    /// Batches that were sent and failed retriably, oldest first. They go
    /// out again, unchanged, before anything in `sealed`.
    retry: VecDeque<SealedBatch>,
    /// When `retry` may be sent again (`retry_backoff` after the failure).
    retry_at: Option<Instant>,
    /// Requests carrying this partition that are outstanding.
    in_flight: usize,
    /// Sequence number of the next batch drained (idempotent producer).
    next_sequence: i32,
    /// The sequence after the last acknowledged batch: the leader has
    /// everything below it. A batch refused as out of order whose sequence
    /// is above this waits on a predecessor whose outcome is still open.
    acked_sequence: i32,
}

/// A batch still taking records (`open`), or full and waiting to be sent
/// (`sealed`); its header is not written yet.
struct OpenBatch {
    id: u64,
    builder: BatchBuilder,
    result: Arc<BatchResult>,
    created: Instant,
    memory: OwnedSemaphorePermit,
}

impl OpenBatch {
    /// Write the header: producer id, epoch and the partition's next
    /// sequence when idempotent (inside the CRC, so only now), Kafka's
    /// "no producer id" (-1, -1, -1) otherwise.
    fn build(self, stamp: Option<ProducerStamp>, next_sequence: &mut i32) -> SealedBatch {
        let count = self.builder.len() as u32;
        let (builder, base_sequence) = match stamp {
            Some(s) => {
                let sequence = *next_sequence;
                *next_sequence = increment_sequence(sequence, count as i32);
                (
                    self.builder
                        .producer(s.producer_id, s.producer_epoch, sequence),
                    sequence,
                )
            }
            None => (self.builder, -1),
        };
        let records = builder
            .build()
            .expect("an open batch has at least one record");
        SealedBatch {
            id: self.id,
            records,
            count,
            base_sequence,
            created: self.created,
            attempts: 0,
            result: self.result,
            _memory: self.memory,
        }
    }

    fn size(&self) -> usize {
        self.builder.size()
    }
}

/// A batch with its header written: its bytes and the result its records
/// wait on. Retries send exactly these bytes.
pub(crate) struct SealedBatch {
    pub id: u64,
    pub records: Bytes,
    pub count: u32,
    /// Sequence of the first record, -1 without idempotence.
    pub base_sequence: i32,
    /// When the first record was added: `delivery_timeout` counts from here.
    pub created: Instant,
    /// Sends that failed retriably so far.
    pub attempts: u32,
    pub result: Arc<BatchResult>,
    /// Returned to the buffer when the batch is dropped, after its request.
    _memory: OwnedSemaphorePermit,
}

/// The batches of one partition in one request.
pub(crate) struct PartitionBatches {
    pub topic: Arc<str>,
    pub partition: u32,
    /// In log order; sent concatenated as the partition's `records`.
    pub batches: Vec<SealedBatch>,
}

/// One produce request to one broker.
pub(crate) struct Request {
    pub broker: i32,
    pub partitions: Vec<PartitionBatches>,
    pub bytes: usize,
}

/// What [`Accumulator::drain`] found.
pub(crate) struct Drain {
    pub requests: Vec<Request>,
    /// When the oldest open batch that is not yet due will be due.
    pub next_due: Option<Instant>,
    /// Closed and nothing left to send or wait for: the sender may exit.
    pub finished: bool,
}

/// Outcome of [`Accumulator::try_append`].
pub(crate) enum Append {
    Appended(DeliveryFuture),
    /// The topic's partition count is not known yet.
    NeedTopic,
    /// The explicit partition is beyond the known partition count.
    NoSuchPartition {
        partitions: u32,
    },
    /// A new batch is needed and the buffer is full: wait for this many
    /// bytes and retry with the permit.
    NeedMemory(u32),
}

impl Accumulator {
    pub fn new(limits: Limits) -> Self {
        Accumulator {
            state: Mutex::default(),
            limits,
            memory: Arc::new(Semaphore::new(limits.buffer_memory)),
            sender_wake: Notify::new(),
            completed: Notify::new(),
            interceptors: Arc::new([]),
        }
    }

    /// Tell `chain` every record's outcome (`on_acknowledgement`).
    pub fn with_interceptors(mut self, chain: Arc<[Arc<dyn ProducerInterceptor>]>) -> Self {
        self.interceptors = chain;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("accumulator lock")
    }

    /// Wait for `bytes` of buffer to come free.
    pub async fn reserve(&self, bytes: u32) -> Result<OwnedSemaphorePermit> {
        self.memory
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Learn (or update) how many partitions `topic` has.
    pub fn set_partitions(&self, topic: &str, partitions: u32) {
        let mut st = self.lock();
        let tq = st
            .topics
            .entry(Arc::from(topic))
            .or_insert_with_key(|name| TopicQueues {
                name: name.clone(),
                partitions: Vec::new(),
                sticky: Sticky::default(),
            });
        // Partition counts only grow; a smaller answer is stale metadata.
        while tq.partitions.len() < partitions as usize {
            tq.partitions.push(PartitionQueue::default());
        }
    }

    /// Append `record` to its partition's open batch, sealing a full one
    /// and opening a new one as needed. `permit` is memory reserved after an
    /// earlier [`Append::NeedMemory`].
    pub fn try_append(
        &self,
        record: &ProducerRecord,
        timestamp: i64,
        permit: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<Append> {
        let mut guard = self.lock();
        let State {
            topics,
            next_id,
            incomplete,
            closed,
            ..
        } = &mut *guard;
        if *closed {
            return Err(Error::Closed);
        }
        let Some(tq) = topics.get_mut(&*record.topic) else {
            return Ok(Append::NeedTopic);
        };
        let n = tq.partitions.len() as u32;
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        // Empty for most records, and an empty Vec does not allocate.
        let headers: Vec<(&str, Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let keyless = record.partition.is_none() && key.is_none();
        let mut partition = match (record.partition, key) {
            (Some(p), _) if p >= n => return Ok(Append::NoSuchPartition { partitions: n }),
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => tq.sticky.partition(n),
        };

        // Into the open batch if it fits; a full batch is sealed, and a
        // keyless record then moves on to a new sticky partition, whose open
        // batch may have room (one move at most).
        let mut sealed = false;
        for _ in 0..2 {
            let pq = &mut tq.partitions[partition as usize];
            let Some(open) = &mut pq.open else { break };
            let record_size = open.builder.record_size(timestamp, key, value, &headers);
            if open.builder.size() + record_size <= self.limits.batch_size {
                let index = open.builder.len() as u32;
                if keyless {
                    tq.sticky
                        .record_added(partition, record_size, self.limits.batch_size, n);
                }
                let pq = &mut tq.partitions[partition as usize];
                let open = pq.open.as_mut().expect("checked above");
                open.builder.push(timestamp, key, value, &headers);
                open.result.record_added(timestamp);
                let result = open.result.clone();
                drop(guard);
                if sealed {
                    self.sender_wake.notify_one();
                }
                return Ok(Append::Appended(DeliveryFuture::new(
                    result,
                    record.topic.clone(),
                    partition,
                    index,
                    timestamp,
                )));
            }
            let full = pq.open.take().expect("checked above");
            pq.sealed.push_back(full);
            sealed = true;
            if !keyless {
                break;
            }
            tq.sticky.batch_done(partition, n);
            partition = tq.sticky.partition(n);
        }

        // A new batch, sized for a full batch or for this one big record.
        let pq = &mut tq.partitions[partition as usize];
        if let Some(full) = pq.open.take() {
            pq.sealed.push_back(full);
            sealed = true;
        }
        let capacity = self
            .limits
            .batch_size
            .max(BATCH_OVERHEAD + record_size_upper_bound(record));
        let needed = capacity.min(self.limits.buffer_memory) as u32;
        let memory = match permit.take() {
            Some(p) if p.num_permits() >= needed as usize => p,
            _ => match self.memory.clone().try_acquire_many_owned(needed) {
                Ok(p) => p,
                Err(_) => {
                    drop(guard);
                    if sealed {
                        self.sender_wake.notify_one();
                    }
                    return Ok(Append::NeedMemory(needed));
                }
            },
        };
        let mut builder =
            BatchBuilder::with_capacity(capacity).compression(self.limits.compression);
        let id = *next_id;
        *next_id += 1;
        incomplete.insert(id);
        if keyless {
            let record_size = builder.record_size(timestamp, key, value, &headers);
            tq.sticky
                .record_added(partition, record_size, self.limits.batch_size, n);
        }
        builder.push(timestamp, key, value, &headers);
        let result = Arc::new(BatchResult::with_interceptors(
            &self.interceptors,
            &tq.name,
            partition,
        ));
        result.record_added(timestamp);
        pq.open = Some(OpenBatch {
            id,
            builder,
            result: result.clone(),
            created: Instant::now(),
            memory,
        });
        drop(guard);
        // A new open batch means a new linger deadline for the sender.
        self.sender_wake.notify_one();
        Ok(Append::Appended(DeliveryFuture::new(
            result,
            record.topic.clone(),
            partition,
            0,
            timestamp,
        )))
    }

    /// Take everything that should be sent now, grouped into requests per
    /// broker (`leader` maps a partition to its broker id). Batches sent
    /// for the first time get their header now, stamped with `stamp` and
    /// the partition's next sequence when the producer is idempotent.
    ///
    /// With `retries_only`, batches never sent stay where they are: the
    /// producer is about to get a new producer id and must not give out
    /// sequences of the old one.
    pub fn drain(
        &self,
        now: Instant,
        leader: impl Fn(&str, u32) -> i32,
        stamp: Option<ProducerStamp>,
        retries_only: bool,
    ) -> Drain {
        struct BrokerDrain {
            current: Option<Request>,
            /// Requests this broker may still take.
            slots: usize,
        }
        let limits = self.limits;
        // Sequence numbers keep a partition's requests in order at the
        // leader; without them only one may be out at a time.
        let per_partition = if stamp.is_some() {
            limits.max_in_flight.max(1)
        } else {
            1
        };
        let mut guard = self.lock();
        let State {
            topics,
            flush_upto,
            closed,
            in_flight,
            incomplete,
            ..
        } = &mut *guard;
        let mut brokers: HashMap<i32, BrokerDrain> = HashMap::new();
        let mut requests = Vec::new();
        let mut next_due: Option<Instant> = None;
        let mut due_at = |at: Instant| next_due = Some(next_due.map_or(at, |t: Instant| t.min(at)));

        for tq in topics.values_mut() {
            for (partition, pq) in tq.partitions.iter_mut().enumerate() {
                let partition = partition as u32;
                if pq.in_flight >= per_partition {
                    continue;
                }
                let open_due = pq.open.as_ref().map(|b| {
                    let due = *closed || b.id < *flush_upto || now >= b.created + limits.linger;
                    if !due {
                        due_at(b.created + limits.linger);
                    }
                    due
                });
                // Retries go first and alone, once their backoff is over.
                let retrying = !pq.retry.is_empty();
                if retrying {
                    if let Some(at) = pq.retry_at.filter(|at| now < *at) {
                        due_at(at);
                        continue;
                    }
                } else if retries_only || (pq.sealed.is_empty() && open_due != Some(true)) {
                    continue;
                }
                let broker = leader(&tq.name, partition);
                let bd = brokers.entry(broker).or_insert_with(|| BrokerDrain {
                    current: None,
                    slots: limits
                        .max_in_flight
                        .saturating_sub(*in_flight.get(&broker).unwrap_or(&0)),
                });
                let first_len = match (pq.retry.front(), pq.sealed.front(), &pq.open) {
                    (Some(b), _, _) => b.records.len(),
                    (None, Some(b), _) => b.size(),
                    (None, None, Some(b)) => b.size(),
                    (None, None, None) => unreachable!("checked above"),
                };
                let has_room = bd.current.as_ref().is_some_and(|r| {
                    r.bytes == 0 || r.bytes + first_len <= limits.max_request_size
                });
                if !has_room {
                    if bd.slots == 0 {
                        // Wait for this broker's requests; request_done wakes us.
                        continue;
                    }
                    bd.slots -= 1;
                    if let Some(full) = bd.current.replace(Request {
                        broker,
                        partitions: Vec::new(),
                        bytes: 0,
                    }) {
                        requests.push(full);
                    }
                }
                let request = bd.current.as_mut().expect("ensured above");
                let fits =
                    |bytes: usize, len: usize| bytes == 0 || bytes + len <= limits.max_request_size;
                let mut batches = Vec::new();
                if retrying {
                    while let Some(front) = pq.retry.front() {
                        if !fits(request.bytes, front.records.len()) {
                            break;
                        }
                        request.bytes += front.records.len();
                        let batch = pq.retry.pop_front().expect("front exists");
                        let sequenced = batch.base_sequence >= 0;
                        batches.push(batch);
                        if sequenced {
                            // One per request: batches that went out in
                            // different requests may have had different
                            // fates (one written, its answer lost), and the
                            // leader refuses a partition's records that mix
                            // retries it has with ones it has not.
                            break;
                        }
                    }
                    pq.retry_at = None;
                } else {
                    if open_due == Some(true) {
                        // Sent by linger or flush: the sticky partition
                        // stays (KIP-794; see partitioner.rs).
                        let open = pq.open.take().expect("open_due is Some");
                        pq.sealed.push_back(open);
                    }
                    // Fitted by the uncompressed size (known before the
                    // work of compressing), counted by the bytes sent.
                    while let Some(front) = pq.sealed.front() {
                        if !fits(request.bytes, front.size()) {
                            break;
                        }
                        let batch = pq.sealed.pop_front().expect("front exists");
                        let batch = batch.build(stamp, &mut pq.next_sequence);
                        request.bytes += batch.records.len();
                        batches.push(batch);
                    }
                }
                if batches.is_empty() {
                    continue;
                }
                pq.in_flight += 1;
                request.partitions.push(PartitionBatches {
                    topic: tq.name.clone(),
                    partition,
                    batches,
                });
            }
        }
        requests.extend(brokers.into_values().filter_map(|b| b.current));
        requests.retain(|r| !r.partitions.is_empty());
        for r in &requests {
            *in_flight.entry(r.broker).or_default() += 1;
        }
        let finished = *closed && incomplete.is_empty() && in_flight.values().all(|n| *n == 0);
        Drain {
            requests,
            next_due,
            finished,
        }
    }

    /// A request to `broker` has been answered (or failed). `done` are
    /// partitions whose batches have their outcome; `retry` are partitions
    /// whose batches go back to the front of their queue, to be sent again
    /// no earlier than the given instant, in their partition's send order.
    /// Gives back the request's slots (broker and partitions) and wakes the
    /// sender and flushers.
    pub fn request_done(
        &self,
        broker: i32,
        done: Vec<PartitionBatches>,
        retry: Vec<(PartitionBatches, Instant)>,
    ) {
        {
            let mut st = self.lock();
            if let Some(n) = st.in_flight.get_mut(&broker) {
                *n = n.saturating_sub(1);
            }
            for pb in &done {
                for b in &pb.batches {
                    st.incomplete.remove(&b.id);
                }
                if let Some(pq) = st.partition_mut(&pb.topic, pb.partition) {
                    pq.in_flight = pq.in_flight.saturating_sub(1);
                }
            }
            for (pb, at) in retry {
                let ids: Vec<u64> = pb.batches.iter().map(|b| b.id).collect();
                match st.partition_mut(&pb.topic, pb.partition) {
                    Some(pq) => {
                        pq.in_flight = pq.in_flight.saturating_sub(1);
                        // Requests of one partition come back in any order:
                        // ids are the send order, so the retries keep it.
                        pq.retry.extend(pb.batches);
                        pq.retry.make_contiguous().sort_by_key(|b| b.id);
                        pq.retry_at = Some(pq.retry_at.map_or(at, |t| t.max(at)));
                    }
                    None => {
                        // Unreachable today (topics are never removed), but
                        // never leave a delivery future hanging.
                        for id in ids {
                            st.incomplete.remove(&id);
                        }
                        for b in pb.batches {
                            b.result.complete(Err(Error::Closed));
                        }
                    }
                }
            }
        }
        // `done` drops here, outside the lock, returning its memory.
        drop(done);
        self.sender_wake.notify_one();
        self.completed.notify_waiters();
    }

    /// Whether a request is in flight or a batch waits to be retried: batches
    /// whose outcome is open and that carry the current producer id.
    pub fn has_unresolved(&self) -> bool {
        let st = self.lock();
        st.in_flight.values().any(|n| *n > 0)
            || st
                .topics
                .values()
                .flat_map(|tq| &tq.partitions)
                .any(|pq| !pq.retry.is_empty())
    }

    /// Start every partition's sequence at 0 again, for a new producer id.
    pub fn reset_sequences(&self) {
        let mut st = self.lock();
        for pq in st.topics.values_mut().flat_map(|tq| &mut tq.partitions) {
            pq.next_sequence = 0;
            pq.acked_sequence = 0;
        }
    }

    /// `batches` of `topic`-`partition` were acknowledged. Answers of one
    /// partition's requests can arrive in any order (HTTP/2), while the
    /// leader appended them in sequence order, so the highest one counts.
    pub fn acknowledged(&self, topic: &str, partition: u32, batches: &[SealedBatch]) {
        let Some(last) = batches.iter().rfind(|b| b.base_sequence >= 0) else {
            return;
        };
        let after = increment_sequence(last.base_sequence, last.count as i32);
        let mut st = self.lock();
        if let Some(pq) = st.partition_mut(topic, partition)
            && sequence_ahead(after, pq.acked_sequence)
        {
            pq.acked_sequence = after;
        }
    }

    /// Whether `base_sequence` is the very next sequence the leader of
    /// `topic`-`partition` expects after everything acknowledged.
    pub fn is_next_sequence(&self, topic: &str, partition: u32, base_sequence: i32) -> bool {
        let mut st = self.lock();
        st.partition_mut(topic, partition)
            .is_none_or(|pq| pq.acked_sequence == base_sequence)
    }

    /// Send every batch that exists now without waiting for linger, and
    /// wait until all of them are acknowledged or failed.
    pub async fn flush(&self) {
        let upto = {
            let mut st = self.lock();
            st.flush_upto = st.next_id;
            st.next_id
        };
        self.sender_wake.notify_one();
        loop {
            let notified = self.completed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().incomplete.first().is_none_or(|id| *id >= upto) {
                return;
            }
            notified.await;
        }
    }

    /// Refuse new records and send everything now.
    pub fn close(&self) {
        self.lock().closed = true;
        self.sender_wake.notify_one();
    }

    /// Fail every batch not yet sent (the sender is gone).
    pub fn abort(&self, error: Error) {
        let mut st = self.lock();
        st.closed = true;
        for tq in st.topics.values_mut() {
            for pq in &mut tq.partitions {
                if let Some(open) = pq.open.take() {
                    open.result.complete(Err(error.clone()));
                }
                for b in pq.sealed.drain(..) {
                    b.result.complete(Err(error.clone()));
                }
                for b in pq.retry.drain(..) {
                    b.result.complete(Err(error.clone()));
                }
            }
        }
        st.incomplete.clear();
        drop(st);
        self.completed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::delivery::BatchAck;

    fn limits(batch_size: usize, linger_ms: u64) -> Limits {
        Limits {
            batch_size,
            linger: Duration::from_millis(linger_ms),
            max_request_size: 1024 * 1024,
            max_in_flight: 5,
            buffer_memory: 32 * 1024 * 1024,
            compression: Compression::None,
        }
    }

    fn acc(batch_size: usize, linger_ms: u64, partitions: u32) -> Accumulator {
        let acc = Accumulator::new(limits(batch_size, linger_ms));
        acc.set_partitions("t", partitions);
        acc
    }

    fn append(acc: &Accumulator, record: ProducerRecord) -> DeliveryFuture {
        match acc.try_append(&record, 1_000, &mut None).unwrap() {
            Append::Appended(f) => f,
            _ => panic!("expected the record to be appended"),
        }
    }

    fn record(partition: u32, value_len: usize) -> ProducerRecord {
        ProducerRecord::new("t", vec![b'x'; value_len]).partition(partition)
    }

    /// Acknowledge a drained request as the broker would, offsets from 0.
    fn ack(acc: &Accumulator, request: Request) {
        for pb in &request.partitions {
            let mut base = 0;
            for b in &pb.batches {
                b.result.complete(Ok(BatchAck {
                    base_offset: base,
                    log_append_time: -1,
                }));
                base += i64::from(b.count);
            }
        }
        acc.request_done(request.broker, request.partitions, Vec::new());
    }

    fn counts(request: &Request) -> Vec<(u32, Vec<u32>)> {
        let mut v: Vec<_> = request
            .partitions
            .iter()
            .map(|pb| (pb.partition, pb.batches.iter().map(|b| b.count).collect()))
            .collect();
        v.sort();
        v
    }

    #[tokio::test(start_paused = true)]
    async fn batch_waits_for_linger_then_drains() {
        let acc = acc(16 * 1024, 5, 1);
        let f = append(&acc, record(0, 100));
        append(&acc, record(0, 100));

        let now = Instant::now();
        let drain = acc.drain(now, |_, _| 1, None, false);
        assert!(drain.requests.is_empty(), "not due before linger");
        assert_eq!(drain.next_due, Some(now + Duration::from_millis(5)));

        tokio::time::advance(Duration::from_millis(5)).await;
        let mut drain = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert_eq!(drain.requests.len(), 1);
        assert_eq!(counts(&drain.requests[0]), vec![(0, vec![2])]);
        assert_eq!(drain.requests[0].broker, 1);
        ack(&acc, drain.requests.swap_remove(0));
        assert_eq!(f.await.unwrap().offset, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn full_batch_is_sent_without_waiting_for_linger() {
        // 61-byte header + records of ~110 bytes: 4 fit in 512 bytes.
        let acc = acc(512, 10_000, 1);
        let futures: Vec<_> = (0..5).map(|_| append(&acc, record(0, 100))).collect();
        let mut drain = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert_eq!(drain.requests.len(), 1);
        assert_eq!(
            counts(&drain.requests[0]),
            vec![(0, vec![4])],
            "the 5th is in a new open batch"
        );
        assert!(drain.requests[0].bytes <= 512);
        ack(&acc, drain.requests.swap_remove(0));
        for (i, f) in futures.into_iter().take(4).enumerate() {
            assert_eq!(f.await.unwrap().offset, i as i64);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn muted_partition_piles_up_and_goes_out_concatenated() {
        let acc = acc(512, 0, 2);
        append(&acc, record(0, 100));
        let mut first = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert_eq!(counts(&first.requests[0]), vec![(0, vec![1])]);

        // Partition 0 is muted while its request is out; partition 1 is not.
        for _ in 0..9 {
            append(&acc, record(0, 100));
        }
        append(&acc, record(1, 100));
        let second = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert_eq!(second.requests.len(), 1);
        assert_eq!(counts(&second.requests[0]), vec![(1, vec![1])]);

        ack(&acc, first.requests.swap_remove(0));
        let third = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert_eq!(counts(&third.requests[0]), vec![(0, vec![4, 4, 1])]);
        let pb = &third.requests[0].partitions[0];
        let ids: Vec<u64> = pb.batches.iter().map(|b| b.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "log order: {ids:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idempotent_partition_keeps_max_in_flight_requests_out() {
        let acc = acc(512, 0, 1);
        let mut sent = Vec::new();
        for _ in 0..5 {
            append(&acc, record(0, 100));
            let mut drain = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
            assert_eq!(drain.requests.len(), 1, "slot {} of 5", sent.len() + 1);
            sent.push(drain.requests.swap_remove(0));
        }
        let seqs: Vec<i32> = sent
            .iter()
            .map(|r| r.partitions[0].batches[0].base_sequence)
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4], "dense, in send order");
        append(&acc, record(0, 100));
        append(&acc, record(0, 100));
        let full = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
        assert!(full.requests.is_empty(), "five out: the sixth waits");

        // An answer frees one slot; what piled up goes out together.
        ack(&acc, sent.remove(2));
        let mut next = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
        assert_eq!(counts(&next.requests[0]), vec![(0, vec![2])]);
        assert_eq!(next.requests[0].partitions[0].batches[0].base_sequence, 5);
        sent.push(next.requests.swap_remove(0));
        for r in sent {
            ack(&acc, r);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_of_several_requests_go_back_in_send_order_one_per_request() {
        let acc = acc(150, 0, 1);
        let mut out = Vec::new();
        for _ in 0..3 {
            append(&acc, record(0, 60));
            let mut drain = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
            out.push(drain.requests.swap_remove(0));
        }
        // All three fail (a leader change); the answers come back in
        // another order than the requests went out.
        let retry_at = Instant::now() + Duration::from_millis(100);
        for i in [2, 0, 1] {
            let r = std::mem::replace(
                &mut out[i],
                Request {
                    broker: 1,
                    partitions: Vec::new(),
                    bytes: 0,
                },
            );
            let pb = r.partitions.into_iter().next().unwrap();
            acc.request_done(1, Vec::new(), vec![(pb, retry_at)]);
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let mut drain = acc.drain(Instant::now(), |_, _| 2, Some(STAMP), false);
            let request = drain.requests.swap_remove(0);
            assert_eq!(request.partitions[0].batches.len(), 1, "one per request");
            seqs.push(request.partitions[0].batches[0].base_sequence);
            ack(&acc, request);
        }
        assert_eq!(seqs, [0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_limit_and_request_size_split_requests() {
        let mut l = limits(200, 0);
        l.max_request_size = 400;
        l.max_in_flight = 2;
        let acc = Accumulator::new(l);
        acc.set_partitions("t", 6);
        for p in 0..6 {
            append(&acc, record(p, 100));
        }
        // ~170-byte batches, two per 400-byte request, two requests allowed.
        let mut drain = acc.drain(Instant::now(), |_, _| 7, None, false);
        assert_eq!(drain.requests.len(), 2);
        assert!(
            drain
                .requests
                .iter()
                .all(|r| r.partitions.len() == 2 && r.bytes <= 400)
        );
        assert!(
            acc.drain(Instant::now(), |_, _| 7, None, false)
                .requests
                .is_empty(),
            "no slot left"
        );
        ack(&acc, drain.requests.swap_remove(0));
        let next = acc.drain(Instant::now(), |_, _| 7, None, false);
        assert_eq!(next.requests.len(), 1);
        assert_eq!(next.requests[0].partitions.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn keyless_records_stick_to_one_partition_per_batch() {
        let acc = acc(512, 10_000, 4);
        let ps: Vec<u32> = (0..4)
            .map(|_| append(&acc, ProducerRecord::new("t", vec![0u8; 100])).partition())
            .collect();
        assert!(
            ps.iter().all(|p| *p == ps[0]),
            "one batch, one partition: {ps:?}"
        );
        // The fifth does not fit: the batch is sealed and the next partition differs.
        let fifth = append(&acc, ProducerRecord::new("t", vec![0u8; 100])).partition();
        assert_ne!(fifth, ps[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn keyed_records_use_murmur2() {
        let acc = acc(16 * 1024, 0, 10);
        let f = append(&acc, ProducerRecord::new("t", "v").key("abc"));
        assert_eq!(f.partition(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_topic_and_partition_are_reported() {
        let acc = acc(16 * 1024, 0, 2);
        let other = ProducerRecord::new("other", "v");
        assert!(matches!(
            acc.try_append(&other, 0, &mut None),
            Ok(Append::NeedTopic)
        ));
        assert!(matches!(
            acc.try_append(&record(2, 1), 0, &mut None),
            Ok(Append::NoSuchPartition { partitions: 2 })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn full_buffer_asks_for_memory() {
        let mut l = limits(1024, 0);
        l.buffer_memory = 2048;
        let acc = Accumulator::new(l);
        acc.set_partitions("t", 3);
        append(&acc, record(0, 10));
        append(&acc, record(1, 10));
        let Ok(Append::NeedMemory(n)) = acc.try_append(&record(2, 10), 0, &mut None) else {
            panic!("buffer should be full");
        };
        assert_eq!(n, 1024);
        let mut drain = acc.drain(Instant::now(), |_, _| 1, None, false);
        let permit = tokio::spawn(async move {
            ack(&acc, drain.requests.swap_remove(0));
            drop(drain);
            let permit = acc.reserve(1024).await.unwrap();
            let mut permit = Some(permit);
            matches!(
                acc.try_append(&record(2, 10), 0, &mut permit),
                Ok(Append::Appended(_))
            )
        });
        assert!(permit.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn flush_sends_lingering_batches_and_waits_for_acks() {
        let acc = Arc::new(acc(16 * 1024, 60_000, 1));
        let f = append(&acc, record(0, 10));
        let flushing = tokio::spawn({
            let acc = acc.clone();
            async move { acc.flush().await }
        });
        tokio::task::yield_now().await;
        let mut drain = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert_eq!(drain.requests.len(), 1, "flush makes the open batch due");
        assert!(!flushing.is_finished());
        ack(&acc, drain.requests.swap_remove(0));
        flushing.await.unwrap();
        assert!(f.is_done());
    }

    #[tokio::test(start_paused = true)]
    async fn close_refuses_records_and_finishes_when_empty() {
        let acc = acc(16 * 1024, 60_000, 1);
        append(&acc, record(0, 10));
        acc.close();
        assert!(matches!(
            acc.try_append(&record(0, 1), 0, &mut None),
            Err(Error::Closed)
        ));
        let mut drain = acc.drain(Instant::now(), |_, _| 1, None, false);
        assert!(!drain.finished);
        assert_eq!(drain.requests.len(), 1);
        ack(&acc, drain.requests.swap_remove(0));
        assert!(acc.drain(Instant::now(), |_, _| 1, None, false).finished);
    }

    #[test]
    fn sequence_wraps_at_i32_max_like_kafka() {
        assert_eq!(increment_sequence(0, 5), 5);
        assert_eq!(increment_sequence(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX - 5, 6), 0);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 10), 8);
    }

    const STAMP: ProducerStamp = ProducerStamp {
        producer_id: 7,
        producer_epoch: 2,
    };

    fn header(batch: &SealedBatch) -> runnel_proto::batch::BatchHeader {
        runnel_proto::batch::validate_batch(&batch.records).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn sequences_are_assigned_when_drained_in_send_order() {
        let acc = acc(150, 0, 1);
        // Three batches of one record each are sealed before any drain.
        for _ in 0..3 {
            append(&acc, record(0, 60));
        }
        let mut first = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
        let request = first.requests.swap_remove(0);
        let seqs: Vec<i32> = request.partitions[0]
            .batches
            .iter()
            .map(|b| header(b).base_sequence)
            .collect();
        assert_eq!(seqs, [0, 1, 2]);
        let h = header(&request.partitions[0].batches[0]);
        assert_eq!((h.producer_id, h.producer_epoch), (7, 2));
        ack(&acc, request);
        append(&acc, record(0, 60));
        let mut next = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
        let b = &next.requests.swap_remove(0).partitions[0].batches[0];
        assert_eq!((b.base_sequence, header(b).base_sequence), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn retried_batches_go_first_unchanged_after_the_backoff() {
        let acc = acc(150, 0, 1);
        append(&acc, record(0, 60));
        let mut first = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
        let request = first.requests.swap_remove(0);
        let sent = request.partitions[0].batches[0].records.clone();
        // Meanwhile a later batch is waiting.
        append(&acc, record(0, 60));
        let retry_at = Instant::now() + Duration::from_millis(100);
        let Request {
            broker, partitions, ..
        } = request;
        let pb = partitions.into_iter().next().unwrap();
        acc.request_done(broker, Vec::new(), vec![(pb, retry_at)]);

        let early = acc.drain(Instant::now(), |_, _| 1, Some(STAMP), false);
        assert!(
            early.requests.is_empty(),
            "backing off, later batch waits too"
        );
        assert_eq!(early.next_due, Some(retry_at));

        tokio::time::advance(Duration::from_millis(100)).await;
        let mut again = acc.drain(Instant::now(), |_, _| 2, Some(STAMP), false);
        let request = again.requests.swap_remove(0);
        assert_eq!(request.broker, 2, "routed to the current leader");
        let batches = &request.partitions[0].batches;
        assert_eq!(batches.len(), 1, "the retry goes alone");
        assert_eq!(batches[0].records, sent, "byte-identical");
        ack(&acc, request);

        let mut later = acc.drain(Instant::now(), |_, _| 2, Some(STAMP), false);
        let b = &later.requests.swap_remove(0).partitions[0].batches[0];
        assert_eq!(header(b).base_sequence, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_are_compressed_but_sized_uncompressed() {
        let acc = Accumulator::new(Limits {
            compression: Compression::Zstd,
            ..limits(1_000, 0)
        });
        acc.set_partitions("t", 1);
        // 100-byte records: batch_size counts them uncompressed, so a batch
        // seals after 8 (61 + 8 * ~110 bytes), however well they compress.
        for _ in 0..16 {
            append(&acc, record(0, 100));
        }
        let drain = acc.drain(Instant::now(), |_, _| 1, None, false);
        let request = &drain.requests[0];
        let batches = &request.partitions[0].batches;
        assert_eq!(batches[0].count, 8);
        let header = runnel_proto::batch::validate_batch(&batches[0].records).unwrap();
        assert_eq!(header.compression(), Ok(Compression::Zstd));
        assert!(
            batches[0].records.len() < 200,
            "{}",
            batches[0].records.len()
        );
        // The request counts the bytes actually sent.
        let sent: usize = batches.iter().map(|b| b.records.len()).sum();
        assert_eq!(request.bytes, sent);
    }
}
