//! The leader's side of replication: one `ReplicaFetch` stream per
//! follower broker.
//!
//! Each request is answered in order: a partition's fetch offset is the
//! follower's log end offset, which moves the follower's progress, maybe
//! the high watermark and the ISR; the answer carries records from that
//! offset up to the leader's log end (not the HW: followers need what is
//! not committed yet), or the epoch end offset to truncate to when the
//! follower's log diverged. With nothing new anywhere the request is
//! parked until an append or `max_wait_ms`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use runnel_proto::v1::{
    EpochEndOffset, ReplicaFetchPartitionResult, ReplicaFetchRequest, ReplicaFetchResponse,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::Context;
use crate::replica::{FollowerRead, Partition};
use crate::{Error, Result};

/// Longest a follower fetch may park, whatever it asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(5);

/// Serve one follower's stream until it closes.
pub(crate) fn serve(
    ctx: Arc<Context>,
    mut requests: Streaming<ReplicaFetchRequest>,
) -> ReceiverStream<Result<ReplicaFetchResponse, Status>> {
    let (tx, rx) = mpsc::channel(1);
    let mut stopping = ctx.stopping.subscribe();
    tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                r = requests.next() => r,
                // Shutdown: end the stream; the follower reconnects to
                // whoever leads next.
                _ = stopping.wait_for(|s| *s) => None,
            };
            let Some(request) = request else { break };
            let response = match request {
                Ok(request) => handle(&ctx, request).await.map_err(Status::from),
                Err(status) => Err(status),
            };
            let failed = response.is_err();
            if tx.send(response).await.is_err() || failed {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

async fn handle(ctx: &Context, req: ReplicaFetchRequest) -> Result<ReplicaFetchResponse> {
    if req.replica_id < 0 {
        return Err(Error::InvalidRequest(format!(
            "replica fetch from broker id {}; only brokers replicate",
            req.replica_id
        )));
    }
    let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let max_bytes = if req.max_bytes == 0 {
        ctx.config.replica_fetch_response_max_bytes as usize
    } else {
        req.max_bytes as usize
    };
    loop {
        // Subscribe before reading so an append in between still wakes us.
        let mut watchers = Vec::new();
        let mut results = Vec::with_capacity(req.partitions.len());
        let mut remaining = max_bytes;
        let mut ready = false;
        for p in &req.partitions {
            let mut result = ReplicaFetchPartitionResult {
                topic: p.topic.clone(),
                partition: p.partition,
                error: None,
                high_watermark: -1,
                log_start_offset: -1,
                log_end_offset: -1,
                diverging_epoch: None,
                records: Default::default(),
            };
            let part = match ctx.replicas.partition(&p.topic, p.partition) {
                Ok(part) => part,
                Err(e) => {
                    result.error = Some(e.to_proto());
                    results.push(result);
                    ready = true;
                    continue;
                }
            };
            watchers.push(part.subscribe_log_end());
            result.log_start_offset = part.log().log_start_offset();
            result.log_end_offset = part.log().log_end_offset();
            // Refused before it is recorded as the follower's progress (a
            // negative log end would hold the high watermark back).
            if p.fetch_offset < 0 {
                result.error = Some(
                    Error::InvalidRequest(format!(
                        "fetch offset {} for {}-{} is negative; a follower fetches from its log end offset",
                        p.fetch_offset, p.topic, p.partition
                    ))
                    .to_proto(),
                );
                results.push(result);
                ready = true;
                continue;
            }
            match part.fetch_for_follower(
                req.replica_id,
                p.fetch_offset,
                p.current_leader_epoch,
                p.last_fetched_epoch,
                remaining.max(1),
            ) {
                Ok((read, proposal)) => {
                    part.record_follower_log_start(req.replica_id, p.log_start_offset);
                    if let Some(proposal) = proposal {
                        expand_isr(ctx, part.clone(), proposal);
                    }
                    match read {
                        FollowerRead::Records {
                            read,
                            high_watermark,
                        } => {
                            result.high_watermark = high_watermark;
                            remaining = remaining.saturating_sub(read.records.len());
                            ready |= !read.records.is_empty();
                            result.records = read.records;
                        }
                        FollowerRead::Diverging { epoch, end_offset } => {
                            result.high_watermark = part.high_watermark();
                            result.diverging_epoch = Some(EpochEndOffset { epoch, end_offset });
                            ready = true;
                        }
                    }
                }
                Err(e) => {
                    result.error = Some(e.to_proto());
                    ready = true;
                }
            }
            results.push(result);
        }
        if ready || Instant::now() >= deadline || watchers.is_empty() {
            return Ok(ReplicaFetchResponse {
                partitions: results,
            });
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        let mut stopping = ctx.stopping.subscribe();
        let woke = tokio::select! {
            r = tokio::time::timeout_at(deadline, changed) => r.is_ok(),
            _ = stopping.wait_for(|s| *s) => false,
        };
        if !woke {
            return Ok(ReplicaFetchResponse {
                partitions: results,
            });
        }
    }
}

/// Write an ISR expansion in the background: the fetch answer must not wait
/// for the metadata store.
fn expand_isr(ctx: &Context, part: Arc<Partition>, proposal: crate::replica::IsrProposal) {
    let writer = ctx.isr.clone();
    tokio::spawn(async move {
        tracing::info!(tp = %part.tp, isr = ?proposal.isr, "follower caught up; expanding ISR");
        writer.write(&part, proposal).await;
    });
}
