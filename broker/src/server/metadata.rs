//! Metadata: brokers, controller and partition leadership, from this
//! broker's view of the metadata store.

use runnel_proto::v1::{
    BrokerInfo, MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata,
};

use super::Context;
use crate::Result;
use crate::replica::{NO_LEADER, TopicState};

pub(crate) async fn handle(ctx: &Context, req: MetadataRequest) -> Result<MetadataResponse> {
    let states = ctx.replicas.topics_named(&req.topics)?;
    let view = ctx.sync.view();
    let live = view.live_brokers();
    let topics: Vec<TopicMetadata> = states.iter().map(|s| topic_metadata(s, &live)).collect();
    let leaders: std::collections::BTreeSet<i32> = topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.leader)
        .collect();
    // The live brokers, this one and the leaders named: see
    // `Image::brokers_for_clients`.
    let brokers: Vec<BrokerInfo> = view.read(|i| {
        i.brokers_for_clients(ctx.config.broker_id, |id| leaders.contains(&id))
            .into_iter()
            .map(|b| {
                let (kafka_host, kafka_port) = crate::kafka::topics::kafka_endpoint(b);
                BrokerInfo {
                    id: b.broker_id,
                    host: b.host.clone(),
                    port: u32::from(b.port),
                    rack: b.rack.clone().unwrap_or_default(),
                    kafka_host,
                    kafka_port: kafka_port as u32,
                }
            })
            .collect()
    });
    Ok(MetadataResponse {
        cluster_id: ctx.config.cluster.clone(),
        controller_id: view.controller_id(),
        brokers,
        topics,
    })
}

fn topic_metadata(state: &TopicState, live: &[i32]) -> TopicMetadata {
    TopicMetadata {
        name: state.name.clone(),
        error: None,
        topic_id: state.record.topic_id.clone(),
        internal: false,
        partitions: state
            .record
            .assignment
            .iter()
            .enumerate()
            .map(|(p, replicas)| {
                let leadership = state.partition_state(p as u32);
                PartitionMetadata {
                    partition: p as u32,
                    error: None,
                    leader: leadership.as_ref().map_or(NO_LEADER, |s| s.leader),
                    leader_epoch: leadership.as_ref().map_or(-1, |s| s.leader_epoch),
                    replicas: replicas.clone(),
                    isr: leadership.map(|s| s.isr).unwrap_or_default(),
                    offline_replicas: replicas
                        .iter()
                        .copied()
                        .filter(|r| !live.contains(r))
                        .collect(),
                }
            })
            .collect(),
    }
}
