//! The network side: gRPC services and the HTTP health/metrics endpoint.
//!
//! One file per operation (`produce`, `fetch`, `list_offsets`,
//! `metadata`, `admin`, `reassignments`, `cluster_configs`); this module wires them into tonic's generated
//! service traits, timing every call and turning [`crate::Error`] into a
//! precise [`tonic::Status`] (see [`status`]).

pub(crate) mod access;
pub(crate) mod acls;
pub(crate) mod admin;
pub(crate) mod cluster_configs;
pub(crate) mod delete_records;
pub(crate) mod fetch;
pub mod http;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
mod oversize;
pub(crate) mod produce;
mod reassignments;
mod replication;
pub mod status;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use runnel_proto::v1::admin_server::{Admin, AdminServer};
use runnel_proto::v1::broker_server::{Broker, BrokerServer};
use runnel_proto::v1::group_server::{Group, GroupServer};
use runnel_proto::v1::replication_server::{Replication, ReplicationServer};
use runnel_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::auth::principal::principal_of;
use crate::auth::{Authenticator, Authorizer};
use crate::cluster::sync::MetadataSync;
use crate::config::BrokerConfig;
use crate::controller::{ClusterConfigs, TopicController};
use crate::meta::producer_ids::ProducerIdManager;
use crate::meta::registration::Registration;
use crate::metrics::Metrics;
use crate::replica::ReplicaManager;
use crate::replica::isr::IsrWriter;
use crate::{Error, Result};

/// Shared state every request handler sees.
pub struct Context {
    pub config: BrokerConfig,
    pub replicas: Arc<ReplicaManager>,
    pub topics: TopicController,
    /// Dynamic cluster-wide config defaults (describe/alter).
    pub cluster_configs: ClusterConfigs,
    pub groups: Arc<crate::group::GroupCoordinator>,
    pub sync: Arc<MetadataSync>,
    /// This broker's lease: while it is lost, acks=all is refused.
    pub registration: Arc<Registration>,
    pub isr: Arc<IsrWriter>,
    pub producer_ids: ProducerIdManager,
    pub metrics: Metrics,
    /// ACL checks (a no-op unless `authorizer.enable`).
    pub authorizer: Authorizer,
    /// Bearer tokens: `auth.tokens.file`, TokenReview.
    pub authenticator: Authenticator,
    /// False until start-up has loaded every topic, and again once shutdown
    /// begins: drives `/readyz`.
    pub ready: AtomicBool,
    /// Becomes true when shutdown begins: long-lived streams (replication)
    /// end so connections can close within the grace period.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("broker_id", &self.config.broker_id)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Advertised host and port, for Metadata responses.
    pub fn advertised_host_port(&self) -> (String, u32) {
        let addr = self.config.advertised_address();
        match addr.rsplit_once(':') {
            Some((host, port)) => (
                host.trim_matches(['[', ']']).to_owned(),
                port.parse().unwrap_or(0),
            ),
            None => (addr, 0),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The gRPC service object (both `Broker` and `Admin`).
#[derive(Debug, Clone)]
pub struct Service {
    ctx: Arc<Context>,
}

impl Service {
    /// Authenticate the gRPC request, then run it as [`run`] does.
    async fn serve<T, R, F, Fut>(
        &self,
        api: &'static str,
        req: Request<T>,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        T: access::Access<Response = R>,
        F: FnOnce(T) -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let ctx = &self.ctx;
        let outcome = observed(ctx, api, async move {
            let who = principal_of(&req, &ctx.authenticator)
                .await
                .inspect_err(|e| {
                    // Not when the API server could not be asked: that is
                    // no failed credential.
                    if matches!(e, Error::AuthenticationFailed(_)) {
                        ctx.metrics.authentication_failed.inc();
                    }
                })?;
            authorized(ctx, &who, req.into_inner(), handler).await
        });
        outcome.await.map(Response::new).map_err(Status::from)
    }
}

/// One operation, whichever protocol asked for it (gRPC here, Kafka in
/// [`crate::kafka`]): refused while the broker is not ready, authorized for
/// `who` ([`access::Access`]) before anything runs, timed, and listings
/// filtered to what `who` may see.
pub(crate) async fn run<T, R, F, Fut>(
    ctx: &Context,
    api: &'static str,
    who: &crate::auth::Principal,
    req: T,
    handler: F,
) -> Result<R>
where
    T: access::Access<Response = R>,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<R>>,
{
    observed(ctx, api, authorized(ctx, who, req, handler)).await
}

/// [`run`] for an operation whose result is not its response (a produce's
/// appends, answered later) and so is not filtered: only for requests
/// whose [`access::Access`] filters nothing.
pub(crate) async fn run_unfiltered<T, O, F, Fut>(
    ctx: &Context,
    api: &'static str,
    who: &crate::auth::Principal,
    req: T,
    handler: F,
) -> Result<O>
where
    T: access::Access,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<O>>,
{
    observed(ctx, api, async move {
        req.authorize(&ctx.authorizer, who)?;
        handler(req).await
    })
    .await
}

/// Authorize `req` for `who`, run `handler`, filter its listing.
async fn authorized<T, R, F, Fut>(
    ctx: &Context,
    who: &crate::auth::Principal,
    req: T,
    handler: F,
) -> Result<R>
where
    T: access::Access<Response = R>,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<R>>,
{
    req.authorize(&ctx.authorizer, who)?;
    let mut response = handler(req).await?;
    if ctx.authorizer.is_enabled() {
        T::filter(&mut response, &ctx.authorizer, who);
    }
    Ok(response)
}

/// Run `fut` if the broker is ready, recording its latency and outcome.
async fn observed<R>(
    ctx: &Context,
    api: &'static str,
    fut: impl Future<Output = Result<R>>,
) -> Result<R> {
    let started = Instant::now();
    let result = if ctx.is_ready() {
        fut.await
    } else {
        Err(Error::NotAvailable(
            "the broker is starting or shutting down; retry shortly".into(),
        ))
    };
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(e) => e.grpc_code(),
    };
    ctx.metrics
        .observe_request(api, code, started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        tracing::debug!(api, error = %e, "request failed");
    }
    result
}

#[tonic::async_trait]
impl Broker for Service {
    async fn produce(
        &self,
        req: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        self.serve("Produce", req, |body| produce::handle(&self.ctx, body))
            .await
    }

    async fn fetch(&self, req: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        self.serve("Fetch", req, |body| fetch::handle(&self.ctx, body))
            .await
    }

    async fn list_offsets(
        &self,
        req: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        self.serve("ListOffsets", req, |body| {
            list_offsets::handle(&self.ctx, body)
        })
        .await
    }

    async fn metadata(
        &self,
        req: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        self.serve("Metadata", req, |body| metadata::handle(&self.ctx, body))
            .await
    }

    async fn init_producer_id(
        &self,
        req: Request<InitProducerIdRequest>,
    ) -> Result<Response<InitProducerIdResponse>, Status> {
        self.serve("InitProducerId", req, |body| {
            init_producer_id::handle(&self.ctx, body)
        })
        .await
    }

    async fn delete_records(
        &self,
        req: Request<DeleteRecordsRequest>,
    ) -> Result<Response<DeleteRecordsResponse>, Status> {
        self.serve("DeleteRecords", req, |body| {
            delete_records::handle(&self.ctx, body)
        })
        .await
    }
}

/// One Group RPC: the handler lives in `crate::group::<op>`.
macro_rules! group_rpc {
    ($( $method:ident, $api:literal, $module:ident, $req:ty, $resp:ty; )*) => {
        #[tonic::async_trait]
        impl Group for Service {
            $(
                async fn $method(&self, req: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.serve($api, req, |body| crate::group::$module::handle(&self.ctx.groups, body))
                        .await
                }
            )*
        }
    };
}

group_rpc! {
    find_coordinator, "FindCoordinator", find_coordinator, FindCoordinatorRequest, FindCoordinatorResponse;
    join_group, "JoinGroup", join, JoinGroupRequest, JoinGroupResponse;
    heartbeat, "Heartbeat", heartbeat, HeartbeatRequest, HeartbeatResponse;
    leave_group, "LeaveGroup", leave, LeaveGroupRequest, LeaveGroupResponse;
    offset_commit, "OffsetCommit", offset_commit, OffsetCommitRequest, OffsetCommitResponse;
    offset_fetch, "OffsetFetch", offset_fetch, OffsetFetchRequest, OffsetFetchResponse;
    list_groups, "ListGroups", list, ListGroupsRequest, ListGroupsResponse;
    describe_group, "DescribeGroup", describe, DescribeGroupRequest, DescribeGroupResponse;
    delete_group, "DeleteGroup", delete, DeleteGroupRequest, DeleteGroupResponse;
    reset_group_offsets, "ResetGroupOffsets", reset_offsets, ResetGroupOffsetsRequest, ResetGroupOffsetsResponse;
}

#[tonic::async_trait]
impl Replication for Service {
    type ReplicaFetchStream =
        tokio_stream::wrappers::ReceiverStream<Result<ReplicaFetchResponse, Status>>;

    async fn replica_fetch(
        &self,
        req: Request<tonic::Streaming<ReplicaFetchRequest>>,
    ) -> Result<Response<Self::ReplicaFetchStream>, Status> {
        if !self.ctx.is_ready() {
            return Err(Error::NotAvailable(
                "the broker is starting or shutting down; retry shortly".into(),
            )
            .into());
        }
        // Only brokers replicate: ClusterAction (Kafka's rule for followers).
        let who = principal_of(&req, &self.ctx.authenticator).await?;
        self.ctx
            .authorizer
            .authorize_cluster(&who, crate::auth::acl::Operation::ClusterAction)?;
        Ok(Response::new(replication::serve(
            self.ctx.clone(),
            req.into_inner(),
        )))
    }
}

#[tonic::async_trait]
impl Admin for Service {
    async fn create_topics(
        &self,
        req: Request<CreateTopicsRequest>,
    ) -> Result<Response<CreateTopicsResponse>, Status> {
        self.serve("CreateTopics", req, |body| {
            admin::create_topics(&self.ctx, body)
        })
        .await
    }

    async fn delete_topics(
        &self,
        req: Request<DeleteTopicsRequest>,
    ) -> Result<Response<DeleteTopicsResponse>, Status> {
        self.serve("DeleteTopics", req, |body| {
            admin::delete_topics(&self.ctx, body)
        })
        .await
    }

    async fn list_topics(
        &self,
        req: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        self.serve("ListTopics", req, |body| {
            admin::list_topics(&self.ctx, body)
        })
        .await
    }

    async fn describe_topics(
        &self,
        req: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        self.serve("DescribeTopics", req, |body| {
            admin::describe_topics(&self.ctx, body)
        })
        .await
    }

    async fn alter_topic(
        &self,
        req: Request<AlterTopicRequest>,
    ) -> Result<Response<AlterTopicResponse>, Status> {
        self.serve("AlterTopic", req, |body| {
            admin::alter_topic(&self.ctx, body)
        })
        .await
    }

    async fn alter_partition_reassignments(
        &self,
        req: Request<AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<AlterPartitionReassignmentsResponse>, Status> {
        self.serve("AlterPartitionReassignments", req, |body| {
            reassignments::alter(&self.ctx, body)
        })
        .await
    }

    async fn list_partition_reassignments(
        &self,
        req: Request<ListPartitionReassignmentsRequest>,
    ) -> Result<Response<ListPartitionReassignmentsResponse>, Status> {
        self.serve("ListPartitionReassignments", req, |body| {
            reassignments::list(&self.ctx, body)
        })
        .await
    }

    async fn describe_cluster_configs(
        &self,
        req: Request<DescribeClusterConfigsRequest>,
    ) -> Result<Response<DescribeClusterConfigsResponse>, Status> {
        self.serve("DescribeClusterConfigs", req, |body| {
            cluster_configs::describe(&self.ctx, body)
        })
        .await
    }

    async fn alter_cluster_configs(
        &self,
        req: Request<AlterClusterConfigsRequest>,
    ) -> Result<Response<AlterClusterConfigsResponse>, Status> {
        self.serve("AlterClusterConfigs", req, |body| {
            cluster_configs::alter(&self.ctx, body)
        })
        .await
    }

    async fn create_acls(
        &self,
        req: Request<CreateAclsRequest>,
    ) -> Result<Response<CreateAclsResponse>, Status> {
        self.serve("CreateAcls", req, |body| acls::create(&self.ctx, body))
            .await
    }

    async fn describe_acls(
        &self,
        req: Request<DescribeAclsRequest>,
    ) -> Result<Response<DescribeAclsResponse>, Status> {
        self.serve("DescribeAcls", req, |body| acls::describe(&self.ctx, body))
            .await
    }

    async fn delete_acls(
        &self,
        req: Request<DeleteAclsRequest>,
    ) -> Result<Response<DeleteAclsResponse>, Status> {
        self.serve("DeleteAcls", req, |body| acls::delete(&self.ctx, body))
            .await
    }
}

/// Serve the gRPC API on the connections of `incoming` (TLS or not, as
/// the listener accepted them) until `shutdown` resolves.
pub async fn serve_grpc(
    ctx: Arc<Context>,
    incoming: crate::kafka::GrpcIncoming,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let max = ctx.config.socket_request_max_bytes;
    let service = Service { ctx };
    let broker = BrokerServer::new(service.clone())
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX);
    let replication = ReplicationServer::new(service.clone())
        .max_decoding_message_size(crate::replica::fetcher::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(crate::replica::fetcher::MAX_MESSAGE_SIZE);
    let group = GroupServer::new(service.clone()).max_decoding_message_size(max);
    let admin = AdminServer::new(service).max_decoding_message_size(max);
    let router = tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(oversize::rewrite(max)))
        // Loopback and LAN links carry megabyte batches: the HTTP/2 default
        // 64 KiB windows would cap throughput at a few hundred MB/s.
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20))
        // Frames up to 1 MiB: fewer syscalls for megabyte batches.
        .max_frame_size(1 << 20)
        .add_service(broker)
        .add_service(admin)
        .add_service(replication)
        .add_service(group);
    // TCP_NODELAY is set by the accept loop (crate::kafka::listener): with
    // Nagle on, small responses stall behind delayed ACKs (~40 ms).
    let served = match incoming {
        crate::kafka::GrpcIncoming::Tls(incoming) => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        crate::kafka::GrpcIncoming::Plain(incoming) => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    served.map_err(|e| Error::NotAvailable(format!("gRPC server: {e}")))
}
