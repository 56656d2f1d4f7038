//! Fetch with long-polling: answer as soon as `min_bytes` are available
//! across the requested partitions, or when `max_wait_ms` has passed.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use runnel_proto::batch;
use runnel_proto::v1::{
    FetchPartitionResult, FetchRequest, FetchResponse, FetchTopicResult, IsolationLevel,
};
use tokio::time::Instant;

use super::Context;
use crate::metrics::TopicLabels;
use crate::replica::Partition;
use crate::topic::validate_topic_name;
use crate::{Error, Result};

/// Longest a fetch may park, whatever the client asks: keeps a forgotten
/// request from pinning resources and stays under typical proxy timeouts.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

struct Wanted {
    partition: u32,
    /// `Err`: this partition is not served here (not the leader, stale
    /// epoch); answered at once with the error, the others go on.
    part: std::result::Result<Arc<Partition>, runnel_proto::v1::Error>,
    offset: i64,
    max_bytes: usize,
}

pub(crate) async fn handle(ctx: &Context, req: FetchRequest) -> Result<FetchResponse> {
    check_isolation_level(req.isolation_level)?;
    let max_bytes = if req.max_bytes == 0 {
        50 * 1024 * 1024
    } else {
        req.max_bytes as usize
    };
    let mut wanted: Vec<(String, Vec<Wanted>)> = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        validate_topic_name(&topic.topic)?;
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let part = ctx
                .replicas
                .leader(&topic.topic, p.partition)?
                .and_then(|part| {
                    part.check_leader_epoch(p.current_leader_epoch)?;
                    Ok(part)
                });
            if p.fetch_offset < 0 {
                return Err(Error::InvalidRequest(format!(
                    "fetch offset {} for {}-{} is negative; use ListOffsets to find the earliest offset",
                    p.fetch_offset, topic.topic, p.partition
                )));
            }
            let limit = if p.partition_max_bytes == 0 {
                max_bytes
            } else {
                p.partition_max_bytes as usize
            };
            parts.push(Wanted {
                partition: p.partition,
                part: part.map_err(|e| e.to_proto()),
                offset: p.fetch_offset,
                max_bytes: limit,
            });
        }
        wanted.push((topic.topic, parts));
    }

    if wanted.iter().all(|(_, ps)| ps.is_empty()) {
        return Err(Error::InvalidRequest(
            "fetch request names no partition".into(),
        ));
    }
    let wait = Duration::from_millis(req.max_wait_ms as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(1) as usize;
    loop {
        // Subscribe before reading: an append between our read and our wait
        // still wakes us.
        let mut watchers: Vec<_> = wanted
            .iter()
            .flat_map(|(_, ps)| ps.iter().filter_map(|w| w.part.as_ref().ok()))
            .map(|part| part.subscribe())
            .collect();
        let (response, bytes, errors) = read_all(&wanted, max_bytes);
        if bytes >= min_bytes || errors || Instant::now() >= deadline {
            record_out(ctx, &response);
            return Ok(response);
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let (response, _, _) = read_all(&wanted, max_bytes);
            record_out(ctx, &response);
            return Ok(response);
        }
    }
}

/// READ_UNCOMMITTED or READ_COMMITTED (the same today: both stop at the
/// high watermark); anything else is a client bug, not a default.
pub(crate) fn check_isolation_level(level: i32) -> Result<()> {
    IsolationLevel::try_from(level).map(|_| ()).map_err(|_| {
        Error::InvalidRequest(format!(
            "unknown isolation level {level}; use READ_UNCOMMITTED (0) or READ_COMMITTED (1)"
        ))
    })
}

/// One pass over every partition. Returns the response, the bytes in it and
/// whether any partition failed (errors are answered at once).
fn read_all(wanted: &[(String, Vec<Wanted>)], max_bytes: usize) -> (FetchResponse, usize, bool) {
    let mut remaining = max_bytes;
    let mut total = 0;
    let mut errors = false;
    let mut topics = Vec::with_capacity(wanted.len());
    for (name, parts) in wanted {
        let mut results = Vec::with_capacity(parts.len());
        for w in parts {
            let part = match &w.part {
                Ok(part) => part,
                Err(e) => {
                    errors = true;
                    results.push(FetchPartitionResult {
                        partition: w.partition,
                        error: Some(e.clone()),
                        high_watermark: -1,
                        log_start_offset: -1,
                        log_end_offset: -1,
                        records: Default::default(),
                    });
                    continue;
                }
            };
            let log = part.log();
            let mut result = FetchPartitionResult {
                partition: w.partition,
                error: None,
                high_watermark: part.high_watermark(),
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
                records: Default::default(),
            };
            // Once the response budget is spent, later partitions report
            // their offsets but no data (Kafka's behaviour).
            if remaining > 0 {
                match part.read(w.offset, w.max_bytes.min(remaining)) {
                    Ok(read) => {
                        remaining = remaining.saturating_sub(read.records.len());
                        total += read.records.len();
                        result.log_start_offset = read.log_start_offset;
                        result.records = read.records;
                    }
                    Err(e) => {
                        errors = true;
                        result.error = Some(e.to_proto());
                    }
                }
            }
            results.push(result);
        }
        topics.push(FetchTopicResult {
            topic: name.clone(),
            partitions: results,
        });
    }
    (
        FetchResponse {
            topics,
            throttle_time_ms: 0,
        },
        total,
        errors,
    )
}

fn record_out(ctx: &Context, response: &FetchResponse) {
    for topic in &response.topics {
        let bytes: usize = topic.partitions.iter().map(|p| p.records.len()).sum();
        if bytes == 0 {
            continue;
        }
        // Counting records reads one header per batch, not the records.
        let records: u64 = topic
            .partitions
            .iter()
            .flat_map(|p| batch::batches(&p.records))
            .filter_map(|b| b.ok())
            .map(|(h, _)| h.records_count as u64)
            .sum();
        let labels = TopicLabels {
            topic: topic.topic.clone(),
        };
        ctx.metrics
            .bytes_out
            .get_or_create(&labels)
            .inc_by(bytes as u64);
        ctx.metrics
            .messages_out
            .get_or_create(&labels)
            .inc_by(records);
    }
}
