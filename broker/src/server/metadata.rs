//! Metadata: brokers, controller and partition leadership.

use runnel_proto::v1::{
    BrokerInfo, MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata,
};

use super::Context;
use crate::Result;
use crate::replica::TopicState;
use crate::topic::validate_topic_name;

pub(crate) async fn handle(ctx: &Context, req: MetadataRequest) -> Result<MetadataResponse> {
    let states = if req.topics.is_empty() {
        ctx.replicas.topics()
    } else {
        let mut states = Vec::with_capacity(req.topics.len());
        for name in &req.topics {
            validate_topic_name(name)?;
            states.push(ctx.replicas.topic(name)?);
        }
        states
    };
    let (host, port) = ctx.advertised_host_port();
    Ok(MetadataResponse {
        cluster_id: ctx.config.cluster.clone(),
        controller_id: ctx.config.broker_id,
        brokers: vec![BrokerInfo {
            id: ctx.config.broker_id,
            host,
            port,
            rack: ctx.config.rack.clone(),
        }],
        topics: states.iter().map(|s| topic_metadata(s)).collect(),
    })
}

fn topic_metadata(state: &TopicState) -> TopicMetadata {
    TopicMetadata {
        name: state.name.clone(),
        error: None,
        topic_id: state.record.topic_id.clone(),
        internal: false,
        partitions: state
            .partitions
            .iter()
            .zip(&state.record.assignment)
            .map(|(part, replicas)| PartitionMetadata {
                partition: part.tp.partition,
                error: None,
                leader: replicas[0],
                leader_epoch: part.leader_epoch(),
                replicas: replicas.clone(),
                isr: part.isr(),
                offline_replicas: vec![],
            })
            .collect(),
    }
}
