//! The consumer's requests: `Fetch` and `ListOffsets`, each sent as one
//! call per leader broker and matched back to the partitions asked for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_proto::v1::{
    FetchPartition, FetchPartitionResult, FetchRequest, FetchTopic, IsolationLevel,
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic, OffsetSpec,
};

use crate::cluster::{Cluster, request};
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

/// A partition's answer, with the request it answers.
pub(crate) struct Fetched {
    pub item: PlanItem,
    pub result: FetchPartitionResult,
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
        by_broker
            .entry(cluster.leader(&item.topic, item.partition))
            .or_default()
            .push(item);
    }
    let calls = by_broker
        .into_iter()
        .map(|(broker, items)| fetch_from(&cluster, broker, params, items));
    let mut fetched = Vec::new();
    for result in futures::future::join_all(calls).await {
        fetched.extend(result?);
    }
    Ok(fetched)
}

async fn fetch_from(
    cluster: &Cluster,
    broker: i32,
    params: Params,
    items: Vec<PlanItem>,
) -> Result<Vec<Fetched>> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for item in &items {
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
    let conn = cluster.conn(broker).await;
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

    let mut results: HashMap<String, HashMap<u32, FetchPartitionResult>> = HashMap::new();
    for t in response.topics {
        results
            .entry(t.topic)
            .or_default()
            .extend(t.partitions.into_iter().map(|p| (p.partition, p)));
    }
    Ok(items
        .into_iter()
        .filter_map(|item| {
            // A partition left out of the answer simply has nothing new.
            let result = results.get_mut(&*item.topic)?.remove(&item.partition)?;
            Some(Fetched { item, result })
        })
        .collect())
}

/// Resolve `spec` for each partition; the result is in the same order.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    timeout: Duration,
    partitions: &[(&str, u32)],
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<Vec<i64>> {
    let mut by_broker: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, (topic, partition)) in partitions.iter().enumerate() {
        if cluster.leader(topic, *partition) == crate::cluster::UNKNOWN_BROKER {
            // Learn the leader (and that the topic exists) first.
            cluster.topic(topic).await?;
        }
        by_broker
            .entry(cluster.leader(topic, *partition))
            .or_default()
            .push(i);
    }
    let mut offsets = vec![-1; partitions.len()];
    for (broker, indexes) in by_broker {
        let mut topics: Vec<ListOffsetsTopic> = Vec::new();
        for &i in &indexes {
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
        let conn = cluster.conn(broker).await;
        let response = conn
            .call(
                "ListOffsets",
                timeout,
                conn.broker().list_offsets(request(message, timeout)),
            )
            .await?;
        for &i in &indexes {
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
                    code: runnel_proto::v1::ErrorCode::UnknownServerError,
                    message: "the broker's ListOffsets answer left this partition out".into(),
                });
            };
            if let Some(e) = Error::from_partition(topic, partition, found.error.as_ref()) {
                return Err(e);
            }
            offsets[i] = found.offset;
        }
    }
    Ok(offsets)
}
