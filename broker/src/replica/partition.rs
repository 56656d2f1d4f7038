//! One partition replica: log + role (leader or follower) + high watermark.
//!
//! As **leader** it appends produced batches stamped with its leader epoch,
//! tracks every follower's log end offset (LEO) from their fetches, and
//! moves the high watermark (HW) to the lowest LEO in the ISR; acks=all
//! produces wait for the HW to pass their records. As **follower** it
//! appends the leader's batches as they are and takes the leader's HW.
//!
//! The role comes from the partition state in the metadata store
//! ([`Partition::apply_state`]); ISR changes are proposed here
//! ([`Partition::isr_proposal`]) and applied only once the store accepted
//! them ([`Partition::isr_committed`]), so the HW never counts on a replica
//! that a leader election could leave out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::epoch_cache::{Checkpoint, LeaderEpochCache};
use super::producer_state::{ProducerStateMap, SequenceCheck, sequence_ahead};
use crate::log::{Log, LogAppendInfo, LogReadInfo, TopicPartition, ValidatedRecords};
use crate::meta::records::PartitionState;
use crate::{Error, Result};

/// Leader id meaning "no leader" (all ISR members offline).
pub const NO_LEADER: i32 = -1;

/// What this broker is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` (or nobody, while the partition is leaderless).
    Follower {
        leader: i32,
    },
}

/// A follower as its leader sees it.
#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// Its log end offset, from its last fetch; -1 until it fetched.
    leo: i64,
    /// Last time it had everything the leader had (Kafka's
    /// `lastCaughtUpTimeMs`): the ISR shrink clock.
    last_caught_up: Instant,
    /// When it last fetched, and the leader's LEO at that moment: a fetch
    /// reaching that LEO proves it was caught up as of then.
    last_fetch: Instant,
    last_fetch_leader_leo: i64,
    /// Its log start offset, from its last fetch; -1 until it told us.
    /// DeleteRecords waits for the ISR's to pass the deleted offset.
    log_start: i64,
}

#[derive(Debug)]
struct ReplicaState {
    role: Role,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Store revision of the partition state we acted on: older updates
    /// are ignored.
    revision: i64,
    /// Leader only.
    followers: HashMap<i32, FollowerState>,
    /// An ISR change is being written: don't propose another.
    isr_change_in_flight: bool,
}

/// What [`Partition::apply_state`] changed, for the caller to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    BecameLeader { epoch: i32 },
    BecameFollower { leader: i32, epoch: i32 },
    IsrChanged,
}

/// An ISR change this leader wants written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// What the leader hands a follower's fetch.
#[derive(Debug)]
pub enum FollowerRead {
    Records {
        read: LogReadInfo,
        high_watermark: i64,
    },
    /// The follower's log diverged: truncate to this epoch's end and retry.
    Diverging { epoch: i32, end_offset: i64 },
}

/// A partition this broker hosts.
pub struct Partition {
    pub tp: TopicPartition,
    broker_id: i32,
    log: Arc<Log>,
    state: Mutex<ReplicaState>,
    /// High watermark: consumers see offsets below it.
    high_watermark: watch::Sender<i64>,
    /// Log end offset, for followers long-polling the leader.
    log_end: watch::Sender<i64>,
    /// Bumped on every role, epoch or ISR change, to wake acks=all waiters.
    changes: watch::Sender<u64>,
    epochs: Mutex<LeaderEpochCache>,
    /// Held by every path that appends to or cuts the log, across the log
    /// change and the state update, so that the state and the log end
    /// offset read under it always agree (what a snapshot needs).
    producers: Mutex<ProducerStateMap>,
    /// One snapshot writer at a time: the periodic task and shutdown share
    /// the temporary file.
    snapshot_writer: Mutex<()>,
    min_insync_replicas: AtomicU32,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Partition")
            .field("tp", &self.tp)
            .field("role", &s.role)
            .field("leader_epoch", &s.leader_epoch)
            .field("isr", &s.isr)
            .field("high_watermark", &*self.high_watermark.borrow())
            .finish()
    }
}

impl Partition {
    /// A replica of `tp` on `broker_id` over `log`, not yet told its role
    /// (a follower of nobody until [`Partition::apply_state`]). The high
    /// watermark starts at the log start: it is learnt from the leader, or
    /// computed once leading.
    pub fn open(
        tp: TopicPartition,
        broker_id: i32,
        log: Arc<Log>,
        replicas: Vec<i32>,
        min_insync_replicas: u32,
    ) -> Result<Self> {
        let epochs =
            LeaderEpochCache::open(log.dir(), log.log_start_offset(), log.log_end_offset())?;
        let producers = ProducerStateMap::rebuild(&log)?;
        let leo = log.log_end_offset();
        log.set_retention_limit(log.log_start_offset());
        Ok(Partition {
            tp,
            broker_id,
            high_watermark: watch::channel(log.log_start_offset()).0,
            log_end: watch::channel(leo).0,
            changes: watch::channel(0).0,
            log,
            state: Mutex::new(ReplicaState {
                role: Role::Follower { leader: NO_LEADER },
                leader_epoch: -1,
                replicas,
                isr: Vec::new(),
                revision: 0,
                followers: HashMap::new(),
                isr_change_in_flight: false,
            }),
            epochs: Mutex::new(epochs),
            producers: Mutex::new(producers),
            snapshot_writer: Mutex::new(()),
            min_insync_replicas: min_insync_replicas.into(),
        })
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    pub fn leader_epoch(&self) -> i32 {
        self.state.lock().leader_epoch
    }

    pub fn role(&self) -> Role {
        self.state.lock().role
    }

    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that wakes when the high watermark moves: long-poll fetches
    /// subscribe before reading so no append can slip between read and wait.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Wakes when the log end offset moves (follower long-polls).
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// The in-sync replicas as last committed to the store.
    pub fn isr(&self) -> Vec<i32> {
        self.state.lock().isr.clone()
    }

    pub fn replicas(&self) -> Vec<i32> {
        self.state.lock().replicas.clone()
    }

    /// Epoch of the newest batch in the log (-1 if none): what a follower
    /// sends as its last fetched epoch.
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.lock().latest_epoch().unwrap_or(-1)
    }

    /// The (epoch, end offset) pair for `epoch` in this log.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .lock()
            .end_offset_for(epoch, self.log.log_end_offset())
    }

    pub fn set_min_insync_replicas(&self, min: u32) {
        self.min_insync_replicas.store(min, Ordering::Relaxed);
    }

    fn min_insync(&self) -> u32 {
        self.min_insync_replicas.load(Ordering::Relaxed)
    }

    /// Adopt the partition state from the metadata store (at store
    /// `revision`): become leader, follower, or take a new ISR.
    pub fn apply_state(
        &self,
        state: &PartitionState,
        replicas: &[i32],
        revision: i64,
    ) -> Result<Transition> {
        let mut s = self.state.lock();
        if revision < s.revision {
            return Ok(Transition::Unchanged);
        }
        s.revision = revision;
        s.replicas = replicas.to_vec();
        let me = self.broker_id;
        let transition = if state.leader == me {
            if s.role == Role::Leader && s.leader_epoch == state.leader_epoch {
                self.take_isr(&mut s, &state.isr)
            } else {
                s.role = Role::Leader;
                s.leader_epoch = state.leader_epoch;
                s.isr = state.isr.clone();
                s.isr_change_in_flight = false;
                let now = Instant::now();
                // Every replica gets a full lag window to show up.
                s.followers = replicas
                    .iter()
                    .filter(|&&r| r != me)
                    .map(|&r| {
                        (
                            r,
                            FollowerState {
                                leo: -1,
                                last_caught_up: now,
                                last_fetch: now,
                                last_fetch_leader_leo: -1,
                                log_start: -1,
                            },
                        )
                    })
                    .collect();
                // The epoch is in the cache whether or not its checkpoint
                // could be written (a full disk); the periodic trim writes
                // it again. Failing here would leave the role changed but
                // unannounced.
                if let Err(e) = self
                    .epochs
                    .lock()
                    .assign(state.leader_epoch, self.log.log_end_offset())
                {
                    tracing::warn!(tp = %self.tp, epoch = state.leader_epoch, error = %e,
                        "cannot write the leader epoch checkpoint; retrying it periodically");
                }
                self.advance_high_watermark(&s);
                Transition::BecameLeader {
                    epoch: state.leader_epoch,
                }
            }
        } else {
            let role = Role::Follower {
                leader: state.leader,
            };
            if s.role == role && s.leader_epoch == state.leader_epoch {
                self.take_isr(&mut s, &state.isr)
            } else {
                s.role = role;
                s.leader_epoch = state.leader_epoch;
                s.isr = state.isr.clone();
                s.followers.clear();
                Transition::BecameFollower {
                    leader: state.leader,
                    epoch: state.leader_epoch,
                }
            }
        };
        drop(s);
        if transition != Transition::Unchanged {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(transition)
    }

    fn take_isr(&self, s: &mut ReplicaState, isr: &[i32]) -> Transition {
        if s.isr == isr {
            return Transition::Unchanged;
        }
        s.isr = isr.to_vec();
        s.isr_change_in_flight = false;
        if s.role == Role::Leader {
            self.advance_high_watermark(s);
        }
        Transition::IsrChanged
    }

    fn not_leader(&self, s: &ReplicaState, reason: &str) -> Error {
        let reason = match s.role {
            Role::Leader => reason.to_owned(),
            Role::Follower { leader } if leader == NO_LEADER => {
                return Error::LeaderNotAvailable {
                    topic_partition: self.tp.to_string(),
                };
            }
            Role::Follower { leader } => format!("broker {leader} leads it"),
        };
        Error::NotLeaderOrFollower {
            topic_partition: self.tp.to_string(),
            broker_id: self.broker_id,
            reason,
        }
    }

    /// Append produced batches as leader. With `acks_all`, first refuse
    /// (NOT_ENOUGH_REPLICAS) if the ISR is below `min.insync.replicas`.
    /// Returns the append and the leader epoch it was written under. A
    /// retried idempotent batch that is already in the log is not written
    /// again: its original offsets come back. The fsync the flush policy
    /// wants before the acknowledgement is left to the caller
    /// ([`LogAppendInfo::flush`]).
    pub fn append_as_leader(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        now_ms: i64,
        acks_all: bool,
    ) -> Result<(LogAppendInfo, i32)> {
        let s = self.state.lock();
        if s.role != Role::Leader {
            return Err(self.not_leader(&s, ""));
        }
        let min = self.min_insync();
        if acks_all && s.isr.len() < min as usize {
            return Err(Error::NotEnoughReplicas {
                topic_partition: self.tp.to_string(),
                isr: s.isr.len(),
                min,
            });
        }
        let headers: Vec<_> = valid.headers().collect();
        let mut producers = self.producers.lock();
        if let SequenceCheck::Duplicate(dup) = producers.check(&self.tp.to_string(), &headers)? {
            return Ok((
                LogAppendInfo {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                    records: 0,
                    bytes: 0,
                    max_timestamp: -1,
                    log_append_time_ms: -1,
                    flush: self.log.pending_flush(),
                },
                s.leader_epoch,
            ));
        }
        let info = self
            .log
            .append_deferring_flush(records, valid, s.leader_epoch, now_ms)?;
        let mut offset = info.first_offset;
        for h in headers {
            // A LogAppendTime topic stored the leader's clock: producer
            // expiry goes by it, as it will after a restart rebuilds the
            // state from the log.
            let mut h = *h;
            if info.log_append_time_ms >= 0 {
                h.max_timestamp = info.log_append_time_ms;
            }
            producers.record(&h, offset);
            offset = offset + i64::from(h.last_offset_delta) + 1;
        }
        drop(producers);
        self.log_end.send_replace(self.log.log_end_offset());
        self.advance_high_watermark(&s);
        Ok((info, s.leader_epoch))
    }

    /// [`Partition::append_as_leader`], but an idempotent batch whose
    /// sequence is ahead of the producer's next one waits (until
    /// `deadline`) for the batches before it instead of being refused.
    ///
    /// A producer keeps up to five requests per partition in flight, and
    /// HTTP/2 runs them concurrently, so they can reach the append in
    /// another order than they were sent (Kafka's TCP connection keeps
    /// them in order). Sequence numbers say the order: a batch waits for
    /// its predecessor's append, or for its predecessor's retry after a
    /// failure, and is refused with OUT_OF_ORDER_SEQUENCE_NUMBER only if
    /// that does not come by `deadline`.
    pub async fn append_as_leader_in_sequence(
        &self,
        records: &[u8],
        valid: &ValidatedRecords,
        now_ms: i64,
        acks_all: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(LogAppendInfo, i32)> {
        loop {
            // Subscribed before the attempt, so an append between the
            // attempt and the wait still wakes us.
            let mut log_end = self.log_end.subscribe();
            let mut changes = self.changes.subscribe();
            match self.append_as_leader(records, valid, now_ms, acks_all) {
                Err(Error::OutOfOrderSequence {
                    sequence, expected, ..
                }) if sequence_ahead(sequence, expected)
                    && tokio::time::Instant::now() < deadline =>
                {
                    tokio::select! {
                        _ = log_end.changed() => {}
                        _ = changes.changed() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                outcome => return outcome,
            }
        }
    }

    /// acks=all: wait until every in-sync replica has everything below
    /// `end_offset`, written under `epoch`. Fails if leadership moves, the
    /// ISR falls below `min.insync.replicas`, or `timeout` passes.
    pub async fn wait_for_replication(
        &self,
        end_offset: i64,
        epoch: i32,
        timeout: Duration,
    ) -> Result<()> {
        let mut hw = self.high_watermark.subscribe();
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let s = self.state.lock();
                if s.role != Role::Leader || s.leader_epoch != epoch {
                    return Err(self.not_leader(
                        &s,
                        "leadership moved before the records were replicated; they may or may not survive",
                    ));
                }
                if *hw.borrow_and_update() >= end_offset {
                    let min = self.min_insync();
                    if s.isr.len() < min as usize {
                        return Err(Error::NotEnoughReplicasAfterAppend {
                            topic_partition: self.tp.to_string(),
                            isr: s.isr.len(),
                            min,
                        });
                    }
                    return Ok(());
                }
                changes.borrow_and_update();
            }
            let woke = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    r = hw.changed() => r.is_ok(),
                    r = changes.changed() => r.is_ok(),
                }
            })
            .await;
            match woke {
                Ok(true) => continue,
                Ok(false) => return Err(Error::NotAvailable(format!("{} was closed", self.tp))),
                Err(_) => {
                    return Err(Error::RequestTimedOut {
                        topic_partition: self.tp.to_string(),
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
            }
        }
    }

    /// Leader: Kafka's DeleteRecords. Records below `offset` (the high
    /// watermark if -1) stop being readable here at once; followers follow
    /// from their next fetch ([`Partition::follow_leader_log_start`]), and
    /// [`Partition::wait_for_low_watermark`] waits for them. Past the high
    /// watermark is out of range: only committed records can be deleted.
    /// Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let start = {
            let s = self.state.lock();
            if s.role != Role::Leader {
                return Err(self.not_leader(&s, ""));
            }
            let hw = self.high_watermark();
            let target = if offset == -1 { hw } else { offset };
            if !(0..=hw).contains(&target) {
                return Err(Error::OffsetOutOfRange {
                    topic_partition: self.tp.to_string(),
                    offset,
                    log_start_offset: self.log.log_start_offset(),
                    log_end_offset: hw,
                });
            }
            self.log.advance_log_start_offset(target)?
        };
        self.changes.send_modify(|n| *n += 1);
        self.trim_leader_epochs()?;
        Ok(start)
    }

    /// Leader: the lowest log start offset over the ISR (Kafka's low
    /// watermark): below it, no replica that could lead still has records.
    pub fn low_watermark(&self) -> i64 {
        let s = self.state.lock();
        let own = self.log.log_start_offset();
        s.isr
            .iter()
            .filter(|&&r| r != self.broker_id)
            .map(|r| s.followers.get(r).map_or(-1, |f| f.log_start))
            .fold(own, i64::min)
    }

    /// Leader: follower `replica` reported its log start offset.
    pub fn record_follower_log_start(&self, replica: i32, log_start: i64) {
        let mut s = self.state.lock();
        let Some(f) = s.followers.get_mut(&replica) else {
            return;
        };
        if f.log_start != log_start {
            f.log_start = log_start;
            drop(s);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Leader: wait until the [low watermark](Self::low_watermark) reaches
    /// `offset` (DeleteRecords' answer), or `timeout` passes.
    pub async fn wait_for_low_watermark(&self, offset: i64, timeout: Duration) -> Result<i64> {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if !self.is_leader() {
                return Err(self.not_leader(&self.state.lock(), ""));
            }
            let low = self.low_watermark();
            if low >= offset {
                return Ok(low);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(Error::NotAvailable(format!("{} was closed", self.tp))),
                Err(_) => {
                    return Err(Error::RequestTimedOut {
                        topic_partition: self.tp.to_string(),
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
            }
        }
    }

    /// Follower: take the leader's log start offset (moved by
    /// DeleteRecords), as far as our high watermark; the leader's is never
    /// above its own HW, and ours has caught up with that once we have
    /// fetched past it.
    pub fn follow_leader_log_start(&self, leader_epoch: i32, leader_log_start: i64) -> Result<()> {
        {
            let s = self.state.lock();
            if !matches!(s.role, Role::Follower { .. }) || s.leader_epoch != leader_epoch {
                return Ok(());
            }
            let target = leader_log_start.min(self.high_watermark());
            if target <= self.log.log_start_offset() {
                return Ok(());
            }
            self.log.advance_log_start_offset(target)?;
        }
        self.trim_leader_epochs()
    }

    /// Records for a consumer: `[offset, high watermark)`, leader only.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<LogReadInfo> {
        {
            let s = self.state.lock();
            if s.role != Role::Leader {
                return Err(self.not_leader(&s, ""));
            }
        }
        self.log.read(offset, max_bytes, self.high_watermark())
    }

    /// Check that this broker leads at a request's `epoch` (-1 = any).
    pub fn check_leader_epoch(&self, epoch: i32) -> Result<()> {
        let s = self.state.lock();
        if s.role != Role::Leader {
            return Err(self.not_leader(&s, ""));
        }
        self.check_epoch(&s, epoch)
    }

    fn check_epoch(&self, s: &ReplicaState, epoch: i32) -> Result<()> {
        if epoch >= 0 && epoch < s.leader_epoch {
            return Err(Error::FencedLeaderEpoch {
                topic_partition: self.tp.to_string(),
                requested: epoch,
                current: s.leader_epoch,
            });
        }
        if epoch > s.leader_epoch {
            return Err(Error::UnknownLeaderEpoch {
                topic_partition: self.tp.to_string(),
                requested: epoch,
                current: s.leader_epoch,
            });
        }
        Ok(())
    }

    /// Serve follower `replica`'s fetch from `fetch_offset` (its LEO): check
    /// its epochs, record its progress, move the HW, and read from its
    /// offset up to the log end. Returns the read and an ISR expansion to
    /// write if the follower has just caught up.
    pub fn fetch_for_follower(
        &self,
        replica: i32,
        fetch_offset: i64,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
        max_bytes: usize,
    ) -> Result<(FollowerRead, Option<IsrProposal>)> {
        let mut s = self.state.lock();
        if s.role != Role::Leader {
            return Err(self.not_leader(&s, ""));
        }
        self.check_epoch(&s, current_leader_epoch)?;
        if !s.replicas.contains(&replica) {
            return Err(Error::InvalidRequest(format!(
                "broker {replica} is not a replica of {} (replicas {:?})",
                self.tp, s.replicas
            )));
        }
        let leo = self.log.log_end_offset();
        if last_fetched_epoch >= 0 {
            let (epoch, end_offset) = self.end_offset_for_epoch(last_fetched_epoch);
            if epoch != last_fetched_epoch || end_offset < fetch_offset {
                return Ok((FollowerRead::Diverging { epoch, end_offset }, None));
            }
        }
        if fetch_offset > leo {
            return Err(Error::OffsetOutOfRange {
                topic_partition: self.tp.to_string(),
                offset: fetch_offset,
                log_start_offset: self.log.log_start_offset(),
                log_end_offset: leo,
            });
        }
        let now = Instant::now();
        let follower = s.followers.entry(replica).or_insert(FollowerState {
            leo: -1,
            last_caught_up: now,
            last_fetch: now,
            last_fetch_leader_leo: -1,
            log_start: -1,
        });
        // Kafka's rule: caught up now if it has everything; else caught up
        // as of its previous fetch if it now has what the leader had then.
        if fetch_offset >= leo {
            follower.last_caught_up = now;
        } else if fetch_offset >= follower.last_fetch_leader_leo {
            follower.last_caught_up = follower.last_caught_up.max(follower.last_fetch);
        }
        follower.leo = fetch_offset;
        follower.last_fetch = now;
        follower.last_fetch_leader_leo = leo;
        self.advance_high_watermark(&s);
        let hw = self.high_watermark();
        // Rejoin the ISR once it has everything up to the HW and at least
        // the start of this leader's epoch (so it cannot hold an older
        // leader's divergent tail).
        let epoch_start = self
            .epochs
            .lock()
            .entries()
            .last()
            .map_or(0, |e| e.start_offset);
        let proposal = if !s.isr.contains(&replica)
            && !s.isr_change_in_flight
            && fetch_offset >= hw
            && fetch_offset >= epoch_start
        {
            s.isr_change_in_flight = true;
            let mut isr = s.isr.clone();
            isr.push(replica);
            isr.sort_unstable();
            Some(IsrProposal {
                leader_epoch: s.leader_epoch,
                isr,
            })
        } else {
            None
        };
        drop(s);
        let read = self.log.read(fetch_offset, max_bytes, i64::MAX)?;
        Ok((
            FollowerRead::Records {
                read,
                high_watermark: hw,
            },
            proposal,
        ))
    }

    /// Leader: followers in the ISR that have not caught up for `max_lag`
    /// leave it (Kafka's `replica.lag.time.max.ms`).
    pub fn isr_shrink_proposal(&self, max_lag: Duration) -> Option<IsrProposal> {
        let mut s = self.state.lock();
        if s.role != Role::Leader || s.isr_change_in_flight {
            return None;
        }
        let now = Instant::now();
        let me = self.broker_id;
        let isr: Vec<i32> = s
            .isr
            .iter()
            .copied()
            .filter(|r| {
                *r == me
                    || s.followers
                        .get(r)
                        .is_some_and(|f| now.duration_since(f.last_caught_up) <= max_lag)
            })
            .collect();
        if isr == s.isr {
            return None;
        }
        s.isr_change_in_flight = true;
        Some(IsrProposal {
            leader_epoch: s.leader_epoch,
            isr,
        })
    }

    /// The store accepted (or refused, `committed = None`) an ISR proposal.
    pub fn isr_committed(&self, committed: Option<(&[i32], i64)>) {
        let mut s = self.state.lock();
        s.isr_change_in_flight = false;
        if let Some((isr, revision)) = committed
            && revision >= s.revision
        {
            s.revision = revision;
            if s.isr != isr {
                s.isr = isr.to_vec();
                if s.role == Role::Leader {
                    self.advance_high_watermark(&s);
                }
                drop(s);
                self.changes.send_modify(|n| *n += 1);
            }
        }
    }

    /// Follower: what to ask the leader for, if following one at `epoch`.
    pub fn follower_fetch_state(&self) -> Option<FollowerFetchState> {
        let s = self.state.lock();
        match s.role {
            Role::Follower { leader } if leader != NO_LEADER => Some(FollowerFetchState {
                leader,
                leader_epoch: s.leader_epoch,
                fetch_offset: self.log.log_end_offset(),
                last_fetched_epoch: self.latest_epoch(),
                log_start_offset: self.log.log_start_offset(),
            }),
            _ => None,
        }
    }

    /// Follower: append batches fetched from the leader at `leader_epoch`
    /// (dropped if the role changed meanwhile) and take its HW.
    pub fn append_as_follower(
        &self,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<()> {
        let s = self.state.lock();
        if !matches!(s.role, Role::Follower { .. }) || s.leader_epoch != leader_epoch {
            return Ok(());
        }
        if !records.is_empty() {
            let valid = self.log.validate_replicated(records)?;
            let mut producers = self.producers.lock();
            let info = self.log.append_as_follower(records, &valid, now_ms)?;
            let mut epochs = self.epochs.lock();
            for h in valid.headers() {
                // The batches are in the log: the cache and the producer
                // state must follow them even if the checkpoint cannot be
                // written (a full disk); the periodic trim writes it again.
                if let Err(e) = epochs.assign(h.partition_leader_epoch, h.base_offset) {
                    tracing::warn!(tp = %self.tp, epoch = h.partition_leader_epoch, error = %e,
                        "cannot write the leader epoch checkpoint; retrying it periodically");
                }
                producers.record(h, h.base_offset);
            }
            debug_assert!(info.last_offset < self.log.log_end_offset());
            self.log_end.send_replace(self.log.log_end_offset());
        }
        let hw = leader_high_watermark.min(self.log.log_end_offset());
        self.update_high_watermark(|cur| {
            let changed = *cur != hw;
            *cur = hw;
            changed
        });
        Ok(())
    }

    /// Follower: cut the log back to `offset` (its tail diverged from the
    /// leader's), with epochs and producer state.
    pub fn truncate_to(&self, leader_epoch: i32, offset: i64) -> Result<()> {
        let s = self.state.lock();
        if !matches!(s.role, Role::Follower { .. }) || s.leader_epoch != leader_epoch {
            return Ok(());
        }
        let mut producers = self.producers.lock();
        self.log.truncate_to(offset)?;
        let end = self.log.log_end_offset();
        self.epochs.lock().truncate_from_end(end)?;
        *producers = ProducerStateMap::rebuild(&self.log)?;
        drop(producers);
        self.log_end.send_replace(end);
        self.update_high_watermark(|hw| {
            let changed = *hw > end;
            *hw = (*hw).min(end);
            changed
        });
        Ok(())
    }

    /// Follower: the leader no longer has our offset (retention deleted
    /// it): restart the log empty at the leader's log start.
    pub fn restart_at(&self, leader_epoch: i32, offset: i64) -> Result<()> {
        let s = self.state.lock();
        if !matches!(s.role, Role::Follower { .. }) || s.leader_epoch != leader_epoch {
            return Ok(());
        }
        let mut producers = self.producers.lock();
        self.log.truncate_fully_and_start_at(offset)?;
        self.epochs.lock().clear()?;
        *producers = ProducerStateMap::default();
        drop(producers);
        self.log_end.send_replace(offset);
        self.update_high_watermark(|hw| {
            *hw = offset;
            true
        });
        Ok(())
    }

    /// Forget leader epochs whose records retention has deleted (Kafka's
    /// `truncateFromStart` on a log start offset increment), so the cache
    /// and its checkpoint stay as long as the log, not the partition's
    /// history of leader changes.
    pub fn trim_leader_epochs(&self) -> Result<()> {
        let checkpoint = {
            let mut epochs = self.epochs.lock();
            epochs
                .truncate_from_start(self.log.log_start_offset())
                .or_else(|| epochs.unwritten_checkpoint())
        };
        // Written without the lock: follower appends take it.
        checkpoint.map_or(Ok(()), Checkpoint::write)
    }

    /// Write the producer state snapshot (periodically and at shutdown), and
    /// forget producers idle since before `expire_before_ms`.
    pub fn snapshot_producer_state(&self, expire_before_ms: i64) -> Result<()> {
        let _writer = self.snapshot_writer.lock();
        let (state, offset) = {
            let mut producers = self.producers.lock();
            producers.expire(expire_before_ms);
            (producers.clone(), self.log.log_end_offset())
        };
        // Written and fsynced without the producers lock: every append to
        // the partition takes it, and an fsync on a disk busy with
        // writeback held them all for up to 165 ms every 30 s
        // (docs/benchmarks.md, "What a roll costs").
        state.write_snapshot(self.log.dir(), offset)
    }

    /// Move the high watermark with `update` (which says whether it
    /// changed it), and pass it on to the log: retention keeps what is at
    /// or above it.
    fn update_high_watermark(&self, update: impl FnOnce(&mut i64) -> bool) {
        self.high_watermark.send_if_modified(|hw| {
            let changed = update(hw);
            if changed {
                self.log.set_retention_limit(*hw);
            }
            changed
        });
    }

    /// HW = min LEO over the ISR (the leader's own LEO included); never
    /// moves backwards.
    fn advance_high_watermark(&self, s: &ReplicaState) {
        let mut hw = self.log.log_end_offset();
        for r in &s.isr {
            if *r == self.broker_id {
                continue;
            }
            match s.followers.get(r) {
                Some(f) if f.leo >= 0 => hw = hw.min(f.leo),
                _ => return,
            }
        }
        self.update_high_watermark(|cur| {
            if hw > *cur {
                *cur = hw;
                true
            } else {
                false
            }
        });
    }
}

/// A follower's next fetch for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetchState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    pub last_fetched_epoch: i32,
    /// Ours, for the leader's low watermark (DeleteRecords).
    pub log_start_offset: i64,
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
