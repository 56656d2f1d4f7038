//! OffsetFetch: committed offsets from the one store, for the named
//! partitions or (topics null, v2+) every partition the group committed.
//! v8+ ask for several groups at once, each answered on its own (one
//! group's error does not fail the others).

use std::sync::Arc;

pub use kafka_protocol::messages::OffsetFetchRequest;
use kafka_protocol::messages::OffsetFetchResponse;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use runnel_proto::v1;

use super::connection::Conn;
use super::errors::code;
use super::topics::{str_bytes, topic_name};
use crate::Error;

/// v1 to v9 (v10 names topics by id). v9's member id and epoch belong to
/// KIP-848 groups, which are not served: classic members send none.
pub const VERSIONS: (i16, i16) = (1, 9);

/// One committed offset: (topic, partition, offset, metadata).
type Row = (String, i32, i64, String);

pub async fn handle(conn: Arc<Conn>, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let asked = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let answer = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match fetch(&conn, g.group_id.0.to_string(), asked).await {
                Ok(rows) => answer.with_topics(group_topics(rows)),
                Err(e) => answer.with_error_code(code(&e)),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match fetch(&conn, req.group_id.0.to_string(), asked.clone()).await {
        Ok(rows) => OffsetFetchResponse::default().with_topics(per_topic(rows.into_iter().map(
            |(topic, partition, offset, metadata)| {
                let mut p = OffsetFetchResponsePartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_metadata(Some(str_bytes(metadata)));
                if version >= 5 {
                    p.committed_leader_epoch = -1;
                }
                (topic, p)
            },
        ))),
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(code(&e)),
        // v1 has no top-level error: every asked partition says it.
        Err(e) => OffsetFetchResponse::default().with_topics(per_topic(
            asked.into_iter().flatten().flat_map(|(topic, partitions)| {
                partitions
                    .into_iter()
                    .map(|p| {
                        (
                            topic.clone(),
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(code(&e)),
                        )
                    })
                    .collect::<Vec<_>>()
            }),
        )),
    }
}

/// One group's committed offsets through the shared operation (`None`:
/// every partition it committed).
async fn fetch(
    conn: &Conn,
    group_id: String,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<Row>, Error> {
    let ctx = &conn.ctx;
    let proto = v1::OffsetFetchRequest {
        group_id,
        partitions: asked
            .into_iter()
            .flatten()
            .map(|(topic, partitions)| v1::TopicPartitions {
                topic,
                partitions: partitions
                    .into_iter()
                    .filter_map(|p| u32::try_from(p).ok())
                    .collect(),
            })
            .collect(),
    };
    let fetched = crate::server::run(ctx, "OffsetFetch", &conn.principal(), proto, |body| {
        crate::group::offset_fetch::handle(&ctx.groups, body)
    })
    .await?;
    Ok(fetched
        .offsets
        .into_iter()
        .map(|o| (o.topic, o.partition as i32, o.offset, o.metadata))
        .collect())
}

/// Rows grouped by topic, in first-seen order.
fn per_topic(
    rows: impl Iterator<Item = (String, OffsetFetchResponsePartition)>,
) -> Vec<OffsetFetchResponseTopic> {
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for (topic, p) in rows {
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    topics
}

/// v8+: the same grouping, in the per-group message types.
fn group_topics(rows: Vec<Row>) -> Vec<OffsetFetchResponseTopics> {
    let mut topics: Vec<OffsetFetchResponseTopics> = Vec::new();
    for (topic, partition, offset, metadata) in rows {
        let p = OffsetFetchResponsePartitions::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(str_bytes(metadata)));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetFetchResponseTopics::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    topics
}
