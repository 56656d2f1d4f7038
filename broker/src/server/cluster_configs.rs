//! DescribeClusterConfigs and AlterClusterConfigs: the dynamic cluster-wide
//! defaults of topic configs ([`crate::controller::cluster_configs`]).

use runnel_proto::v1::{
    AlterClusterConfigsRequest, AlterClusterConfigsResponse, DescribeClusterConfigsRequest,
    DescribeClusterConfigsResponse,
};

use super::Context;
use crate::Result;
use crate::config::{DYNAMIC_CONFIGS, validate_dynamic};

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
    // More keys than there are dynamic configs cannot all be valid. The
    // first bad one in key order (what the controller reports, after
    // copying and sorting them all) is found in one pass that allocates
    // nothing: a hundred thousand keys would otherwise hold a runtime
    // thread, and the broker's timers with it, for a long while.
    if req.set_configs.len() > DYNAMIC_CONFIGS.len() {
        let dynamic = |key: &str| DYNAMIC_CONFIGS.iter().any(|d| d.broker_key == key);
        let first_bad = req
            .set_configs
            .iter()
            .filter(|(k, v)| !dynamic(k) || validate_dynamic(k, v).is_err())
            .min_by_key(|(k, _)| k.as_str());
        if let Some((k, v)) = first_bad {
            validate_dynamic(k, v)?;
        }
    }
    let configs = ctx
        .cluster_configs
        .alter(&req.set_configs, &req.delete_configs, req.validate_only)
        .await?;
    Ok(AlterClusterConfigsResponse { configs })
}
