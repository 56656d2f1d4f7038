//! The consumer's requests: `Fetch` and `ListOffsets`, each sent as one
//! call per leader broker and matched back to the partitions asked for.
//!
//! Leadership moves are not errors here. A fetch whose leader is unknown
//! or unreachable yields a per-partition error for its partitions (the
//! consumer invalidates the metadata, backs off and fetches from the new
//! leader, keeping its positions). `ListOffsets` retries the same way
//! itself, until the request timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_proto::v1::{
    ErrorCode, FetchPartition, FetchPartitionResult, FetchRequest, FetchResponse, FetchTopic,
    IsolationLevel, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic, OffsetSpec,
};

use crate::cluster::{Cluster, UNKNOWN_BROKER, request};
use crate::error::{Error, Result};

/// One partition of a fetch: where it is in the consumer and what offset
/// was asked for.
#[derive(Debug, Clone)]
pub(crate) struct PlanItem {
    /// Index into the consumer's assignment.
    pub index: usize,
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: i64,
}

/// A partition's answer, with the request it answers. `Err` when the
/// partition could not be fetched at all (no leader known, the leader did
/// not answer, or it rejected the whole request).
pub(crate) struct Fetched {
    pub item: PlanItem,
    pub result: Result<FetchPartitionResult>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub max_wait: Duration,
    pub min_bytes: u32,
    pub max_bytes: u32,
    pub partition_max_bytes: u32,
    pub request_timeout: Duration,
}

/// Fetch every item from its leader (one request per broker, concurrently).
pub(crate) async fn fetch(
    cluster: Arc<Cluster>,
    params: Params,
    plan: Vec<PlanItem>,
) -> Result<Vec<Fetched>> {
    let mut by_broker: HashMap<i32, Vec<PlanItem>> = HashMap::new();
    for item in plan {
        if cluster.leader(&item.topic, item.partition) == UNKNOWN_BROKER {
            // Invalidated after an error, or never looked up: ask now. A
            // failure shows up below as "no leader" for the partition.
            if let Err(e) = cluster.refresh_topic(&item.topic).await {
                tracing::debug!(topic = %item.topic, error = %e, "metadata refresh failed");
            }
        }
        by_broker
            .entry(cluster.leader(&item.topic, item.partition))
            .or_default()
            .push(item);
    }
    let calls = by_broker.into_iter().map(|(broker, items)| {
        let cluster = &cluster;
        async move {
            let failed = |items: Vec<PlanItem>, e: Error| {
                items
                    .into_iter()
                    .map(|item| Fetched {
                        item,
                        result: Err(e.clone()),
                    })
                    .collect::<Vec<_>>()
            };
            if broker == UNKNOWN_BROKER {
                let error = |item: &PlanItem| Error::Partition {
                    topic: item.topic.to_string(),
                    partition: item.partition,
                    code: ErrorCode::LeaderNotAvailable,
                    message: "no leader is known for this partition".into(),
                };
                return items
                    .into_iter()
                    .map(|item| Fetched {
                        result: Err(error(&item)),
                        item,
                    })
                    .collect();
            }
            match fetch_from(cluster, broker, params, &items).await {
                Ok(results) => match_results(items, results),
                Err(e) => {
                    if let Error::Transport { address, .. } = &e {
                        // Reconnect on next use, not reuse a broken channel.
                        cluster.forget(address);
                    }
                    failed(items, e)
                }
            }
        }
    });
    let mut fetched = Vec::new();
    for result in futures::future::join_all(calls).await {
        fetched.extend(result);
    }
    Ok(fetched)
}

/// Pair each item with its partition's result. A partition left out of
/// the answer simply has nothing new.
fn match_results(items: Vec<PlanItem>, response: FetchResponse) -> Vec<Fetched> {
    let mut results: HashMap<String, HashMap<u32, FetchPartitionResult>> = HashMap::new();
    for t in response.topics {
        results
            .entry(t.topic)
            .or_default()
            .extend(t.partitions.into_iter().map(|p| (p.partition, p)));
    }
    items
        .into_iter()
        .filter_map(|item| {
            let result = results.get_mut(&*item.topic)?.remove(&item.partition)?;
            Some(Fetched {
                item,
                result: Ok(result),
            })
        })
        .collect()
}

async fn fetch_from(
    cluster: &Cluster,
    broker: i32,
    params: Params,
    items: &[PlanItem],
) -> Result<FetchResponse> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for item in items {
        let partition = FetchPartition {
            partition: item.partition,
            fetch_offset: item.offset,
            partition_max_bytes: params.partition_max_bytes,
            current_leader_epoch: -1,
        };
        match topics.iter_mut().find(|t| *t.topic == *item.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(FetchTopic {
                topic: item.topic.to_string(),
                partitions: vec![partition],
            }),
        }
    }
    let message = FetchRequest {
        topics,
        max_bytes: params.max_bytes,
        max_wait_ms: u32::try_from(params.max_wait.as_millis()).unwrap_or(u32::MAX),
        min_bytes: params.min_bytes,
        replica_id: -1,
        isolation_level: IsolationLevel::ReadUncommitted as i32,
    };
    // The broker may hold the request for max_wait before answering.
    let timeout = params.request_timeout + params.max_wait;
    let conn = cluster.broker_conn(broker).await?;
    let started = tokio::time::Instant::now();
    let response = conn
        .call(
            "Fetch",
            timeout,
            conn.broker().fetch(request(message, timeout)),
        )
        .await?;
    tracing::trace!(
        broker,
        partitions = items.len(),
        bytes = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.len())
            .sum::<usize>(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "fetch answered"
    );
    Ok(response)
}

/// Resolve `spec` for each partition; the result is in the same order.
///
/// Each partition is asked of its leader. Leader-type errors
/// (`NOT_LEADER_OR_FOLLOWER`, `LEADER_NOT_AVAILABLE`, a leader that does
/// not answer, ...) invalidate the metadata and ask the new leader after
/// `backoff`, until `timeout` has passed; then the last error is returned.
/// An unknown topic fails at once.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    timeout: Duration,
    backoff: Duration,
    partitions: &[(&str, u32)],
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<Vec<i64>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut offsets = vec![-1; partitions.len()];
    let mut pending: Vec<usize> = (0..partitions.len()).collect();
    loop {
        let mut by_broker: HashMap<i32, Vec<usize>> = HashMap::new();
        for &i in &pending {
            let (topic, partition) = partitions[i];
            if cluster.leader(topic, partition) == UNKNOWN_BROKER {
                // Learn the leader (and that the topic exists) first.
                cluster.refresh_topic(topic).await?;
            }
            by_broker
                .entry(cluster.leader(topic, partition))
                .or_default()
                .push(i);
        }
        let mut retry = Vec::new();
        let mut last_error = None;
        for (broker, indexes) in by_broker {
            match list_offsets_from(
                cluster,
                broker,
                timeout,
                partitions,
                &indexes,
                spec,
                timestamp_ms,
            )
            .await
            {
                Ok(found) => {
                    for (i, result) in indexes.into_iter().zip(found) {
                        match result {
                            Ok(offset) => offsets[i] = offset,
                            Err(e) if transient(&e) => {
                                retry.push(i);
                                last_error = Some(e);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if transient(&e) => {
                    if let Error::Transport { address, .. } = &e {
                        cluster.forget(address);
                    }
                    retry.extend(indexes);
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        let Some(error) = last_error else {
            return Ok(offsets);
        };
        if tokio::time::Instant::now() + backoff >= deadline {
            return Err(error);
        }
        tracing::debug!(error = %error, "ListOffsets will be retried");
        for &i in &retry {
            cluster.invalidate(partitions[i].0);
        }
        pending = retry;
        tokio::time::sleep(backoff).await;
    }
}

/// Errors after which asking again (the new leader) can help: leadership
/// moved or is moving, or the leader did not answer.
pub(crate) fn transient(e: &Error) -> bool {
    e.is_unreachable()
        || matches!(e, Error::Timeout { .. })
        || matches!(
            e.code(),
            Some(
                ErrorCode::NotLeaderOrFollower
                    | ErrorCode::LeaderNotAvailable
                    // A new leader may not know the partition yet; a topic
                    // that is really gone fails the metadata lookup instead.
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::UnknownLeaderEpoch
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::BrokerNotAvailable
                    | ErrorCode::KafkaStorageError
            )
        )
}

/// One `ListOffsets` call to `broker` for `partitions[i]`, `i` in
/// `indexes`; one result per index.
async fn list_offsets_from(
    cluster: &Cluster,
    broker: i32,
    timeout: Duration,
    partitions: &[(&str, u32)],
    indexes: &[usize],
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<Vec<Result<i64>>> {
    if broker == UNKNOWN_BROKER {
        return Ok(indexes
            .iter()
            .map(|&i| {
                let (topic, partition) = partitions[i];
                Err(Error::Partition {
                    topic: topic.to_owned(),
                    partition,
                    code: ErrorCode::LeaderNotAvailable,
                    message: "no leader is known for this partition".into(),
                })
            })
            .collect());
    }
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for &i in indexes {
        let (topic, partition) = partitions[i];
        let p = ListOffsetsPartition {
            partition,
            spec: spec as i32,
            timestamp_ms,
        };
        match topics.iter_mut().find(|t| t.topic == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(ListOffsetsTopic {
                topic: topic.to_owned(),
                partitions: vec![p],
            }),
        }
    }
    let message = ListOffsetsRequest {
        topics,
        isolation_level: IsolationLevel::ReadUncommitted as i32,
    };
    let conn = cluster.broker_conn(broker).await?;
    let response = conn
        .call(
            "ListOffsets",
            timeout,
            conn.broker().list_offsets(request(message, timeout)),
        )
        .await?;
    Ok(indexes
        .iter()
        .map(|&i| {
            let (topic, partition) = partitions[i];
            let found = response
                .topics
                .iter()
                .filter(|t| t.topic == topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition == partition);
            let Some(found) = found else {
                return Err(Error::Partition {
                    topic: topic.to_owned(),
                    partition,
                    code: ErrorCode::UnknownServerError,
                    message: "the broker's ListOffsets answer left this partition out".into(),
                });
            };
            match Error::from_partition(topic, partition, found.error.as_ref()) {
                Some(e) => Err(e),
                None => Ok(found.offset),
            }
        })
        .collect())
}
