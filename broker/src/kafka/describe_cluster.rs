//! DescribeCluster: cluster id, controller and the live brokers (and this
//! one) at their Kafka addresses (what AdminClient.describeCluster shows).

use std::sync::Arc;

pub use kafka_protocol::messages::DescribeClusterRequest;
use kafka_protocol::messages::DescribeClusterResponse;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;

use super::connection::Conn;
use super::topics::{client_brokers, controller_id, str_bytes};

pub const VERSIONS: (i16, i16) = (0, 1);

pub async fn handle(
    conn: Arc<Conn>,
    _version: i16,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let ctx = &conn.ctx;
    let _ = req;
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(ctx.config.cluster.clone()))
        .with_controller_id(controller_id(ctx))
        .with_brokers(
            client_brokers(ctx, |_| false)
                .into_iter()
                .map(|(id, host, port, rack)| {
                    DescribeClusterBroker::default()
                        .with_broker_id(id)
                        .with_host(str_bytes(host))
                        .with_port(port)
                        .with_rack(rack.map(str_bytes))
                })
                .collect(),
        )
}
