//! Partition offsets (earliest, latest, at a time) from their leaders, for
//! lag in DescribeGroup and for ResetGroupOffsets. Each leader is asked once
//! with `ListOffsets` over gRPC (the coordinator may lead none of them).

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic, OffsetSpec};

use super::GroupCoordinator;
use crate::Result;
use crate::server::tls::broker_endpoint;

/// How long one leader may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The offset of each of `partitions` at `spec` (-1 where its leader is
/// unknown or did not answer).
pub async fn list_offsets(
    coord: &GroupCoordinator,
    partitions: &[(String, u32)],
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> Result<Vec<i64>> {
    let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, (topic, p)) in partitions.iter().enumerate() {
        let leader = coord
            .leader_of(topic, *p)
            .unwrap_or(crate::replica::NO_LEADER);
        by_leader.entry(leader).or_default().push(i);
    }
    let mut out = vec![-1; partitions.len()];
    for (leader, indexes) in by_leader {
        let Some(address) = coord.view().read(|i| {
            i.brokers
                .get(&leader)
                .map(|b| format!("{}:{}", b.host, b.port))
        }) else {
            continue;
        };
        let mut topics: Vec<ListOffsetsTopic> = Vec::new();
        for &i in &indexes {
            let (topic, p) = &partitions[i];
            let part = ListOffsetsPartition {
                partition: *p,
                spec: spec as i32,
                timestamp_ms,
            };
            match topics.iter_mut().find(|t| &t.topic == topic) {
                Some(t) => t.partitions.push(part),
                None => topics.push(ListOffsetsTopic {
                    topic: topic.clone(),
                    partitions: vec![part],
                }),
            }
        }
        let ask = async {
            let tls = coord.replicas.fetchers().inter_broker_tls();
            let endpoint = match broker_endpoint(&address, tls) {
                Ok(endpoint) => endpoint,
                Err(e) => {
                    tracing::warn!(%address, error = %e, "cannot ask the leader for offsets");
                    return None;
                }
            };
            let mut client = BrokerClient::connect(endpoint).await.ok()?;
            let response = client
                .list_offsets(ListOffsetsRequest {
                    topics,
                    isolation_level: 0,
                })
                .await
                .ok()?;
            Some(response.into_inner())
        };
        let Ok(Some(response)) = tokio::time::timeout(TIMEOUT, ask).await else {
            tracing::debug!(leader, "no offsets from the leader");
            continue;
        };
        for t in response.topics {
            for r in t.partitions {
                if r.error.as_ref().is_some_and(|e| e.code != 0) {
                    continue;
                }
                if let Some(&i) = indexes
                    .iter()
                    .find(|&&i| partitions[i].0 == t.topic && partitions[i].1 == r.partition)
                {
                    out[i] = r.offset;
                }
            }
        }
    }
    // No record at or after the time: the end, as Kafka's tools do.
    if spec == OffsetSpec::Timestamp && out.contains(&-1) {
        let latest = Box::pin(list_offsets(coord, partitions, OffsetSpec::Latest, 0)).await?;
        for (o, l) in out.iter_mut().zip(latest) {
            if *o < 0 {
                *o = l;
            }
        }
    }
    Ok(out)
}
