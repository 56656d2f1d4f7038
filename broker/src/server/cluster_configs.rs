//! DescribeClusterConfigs and AlterClusterConfigs: the dynamic cluster-wide
//! defaults of topic configs ([`crate::controller::cluster_configs`]).

use runnel_proto::v1::{
    AlterClusterConfigsRequest, AlterClusterConfigsResponse, DescribeClusterConfigsRequest,
    DescribeClusterConfigsResponse,
};

use super::Context;
use crate::Result;

pub(crate) async fn describe(
    ctx: &Context,
    _req: DescribeClusterConfigsRequest,
) -> Result<DescribeClusterConfigsResponse> {
    Ok(DescribeClusterConfigsResponse {
        configs: ctx.cluster_configs.describe(),
    })
}

pub(crate) async fn alter(
    ctx: &Context,
    req: AlterClusterConfigsRequest,
) -> Result<AlterClusterConfigsResponse> {
    let configs = ctx
        .cluster_configs
        .alter(&req.set_configs, &req.delete_configs, req.validate_only)
        .await?;
    Ok(AlterClusterConfigsResponse { configs })
}
