//! The table of Kafka APIs: which versions each is served at (exactly what
//! ApiVersions advertises), how its request is decoded, and whether it runs
//! in order with the connection's other requests or alongside them.
//!
//! - `inline`: the whole request runs before the next one on the
//!   connection starts (Kafka's own broker runs every request this way).
//! - `concurrent`: it waits for something outside the request (a long-poll
//!   fetch, a rebalance), so the next requests run meanwhile; its answer
//!   still goes out in order.
//! - `deferred`: the handler does its ordered part (a produce's appends)
//!   and returns the wait for the rest.
//!
//! An API outside the table (transactions, until they exist) or a version
//! outside its range is answered with UNSUPPORTED_VERSION; the connection
//! stays open.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use runnel_proto::kafka;

use super::connection::{Close, Conn, Reply};
use super::errors::UNSUPPORTED_VERSION;
use super::*;

/// A handler's answer that is still being worked out (`None`: no answer
/// is sent, as for acks=0).
pub type Deferred<R> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<R>> + Send>>;

macro_rules! apis {
    ($( $key:ident => $module:ident :: $req:ident, $kind:ident; )*) => {
        /// Every API served, as (api key, min version, max version).
        pub fn supported() -> &'static [(ApiKey, i16, i16)] {
            &[$( (ApiKey::$key, $module::VERSIONS.0, $module::VERSIONS.1), )*]
        }

        async fn route(conn: &Arc<Conn>, key: ApiKey, header: RequestHeader, mut body: Bytes) -> Result<Reply, Close> {
            let version = header.request_api_version;
            let correlation_id = header.correlation_id;
            match key {
                $(
                    ApiKey::$key => {
                        if !($module::VERSIONS.0..=$module::VERSIONS.1).contains(&version) {
                            return Ok(unsupported(conn, key, &header));
                        }
                        let req: $req = kafka::decode_body(key, version, &mut body)
                            .map_err(|e| Close(e.to_string()))?;
                        if body.has_remaining() {
                            // Kafka's broker ignores bytes after a request's
                            // last field, and clients rely on it (librdkafka
                            // 2.x sends Metadata v12 with fields v10 dropped).
                            tracing::debug!(peer = %conn.peer, api = ?key, version, extra = body.remaining(),
                                "bytes after the end of a Kafka request, ignored");
                        }
                        Ok(apis!(@run $kind, conn, correlation_id, version, $module, req))
                    }
                )*
                _ => Ok(unsupported(conn, key, &header)),
            }
        }
    };
    (@run inline, $conn:ident, $cid:ident, $version:ident, $module:ident, $req:ident) => {{
        let response = $module::handle($conn.clone(), $version, $req).await;
        let frame = encode($cid, $version, &response);
        Box::pin(std::future::ready(frame)) as Reply
    }};
    (@run concurrent, $conn:ident, $cid:ident, $version:ident, $module:ident, $req:ident) => {{
        let conn = $conn.clone();
        Box::pin(async move {
            let response = $module::handle(conn, $version, $req).await;
            encode($cid, $version, &response)
        }) as Reply
    }};
    (@run deferred, $conn:ident, $cid:ident, $version:ident, $module:ident, $req:ident) => {{
        let pending = $module::handle($conn.clone(), $version, $req).await;
        Box::pin(async move {
            let response = pending.await?;
            encode($cid, $version, &response)
        }) as Reply
    }};
}

apis! {
    Produce => produce::ProduceRequest, deferred;
    Fetch => fetch::FetchRequest, concurrent;
    ListOffsets => list_offsets::ListOffsetsRequest, inline;
    Metadata => metadata::MetadataRequest, inline;
    OffsetCommit => offset_commit::OffsetCommitRequest, inline;
    OffsetFetch => offset_fetch::OffsetFetchRequest, inline;
    FindCoordinator => find_coordinator::FindCoordinatorRequest, inline;
    JoinGroup => join_group::JoinGroupRequest, concurrent;
    Heartbeat => heartbeat::HeartbeatRequest, inline;
    LeaveGroup => leave_group::LeaveGroupRequest, inline;
    SyncGroup => sync_group::SyncGroupRequest, concurrent;
    DescribeGroups => describe_groups::DescribeGroupsRequest, inline;
    ListGroups => list_groups::ListGroupsRequest, inline;
    DeleteGroups => delete_groups::DeleteGroupsRequest, inline;
    CreatePartitions => create_partitions::CreatePartitionsRequest, inline;
    DescribeConfigs => describe_configs::DescribeConfigsRequest, inline;
    AlterConfigs => alter_configs::AlterConfigsRequest, inline;
    IncrementalAlterConfigs => incremental_alter_configs::IncrementalAlterConfigsRequest, inline;
    DescribeCluster => describe_cluster::DescribeClusterRequest, inline;
    SaslHandshake => sasl_handshake::SaslHandshakeRequest, inline;
    SaslAuthenticate => sasl_authenticate::SaslAuthenticateRequest, inline;
    ApiVersions => api_versions::ApiVersionsRequest, inline;
    CreateTopics => create_topics::CreateTopicsRequest, inline;
    DeleteTopics => delete_topics::DeleteTopicsRequest, inline;
    DeleteRecords => delete_records::DeleteRecordsRequest, concurrent;
    ConsumerGroupHeartbeat => consumer_group_heartbeat::ConsumerGroupHeartbeatRequest, concurrent;
    ConsumerGroupDescribe => consumer_group_describe::ConsumerGroupDescribeRequest, inline;
    InitProducerId => init_producer_id::InitProducerIdRequest, inline;
    DescribeAcls => describe_acls::DescribeAclsRequest, inline;
    CreateAcls => create_acls::CreateAclsRequest, inline;
    DeleteAcls => delete_acls::DeleteAclsRequest, inline;
    OffsetForLeaderEpoch => offset_for_leader_epoch::OffsetForLeaderEpochRequest, inline;
}

/// Decode one request frame (without its size prefix) and start it.
pub async fn dispatch(conn: &Arc<Conn>, frame: Bytes) -> Result<Reply, Close> {
    match kafka::split(frame).map_err(|e| Close(e.to_string()))? {
        kafka::Frame::UnknownApi {
            api_key,
            correlation_id,
            ..
        } => {
            tracing::debug!(peer = %conn.peer, api_key, "unknown Kafka API key");
            Ok(ready(error_frame(correlation_id, UNSUPPORTED_VERSION)))
        }
        kafka::Frame::Request { key, header, body } => {
            if let Some(client_id) = &header.client_id {
                conn.set_client_id(client_id);
            }
            route(conn, key, header, body).await
        }
    }
}

/// The answer to an API or version we do not serve.
fn unsupported(conn: &Conn, key: ApiKey, header: &RequestHeader) -> Reply {
    tracing::debug!(peer = %conn.peer, api = ?key, version = header.request_api_version, "unsupported Kafka API version");
    if key == ApiKey::ApiVersions {
        // KIP-511: answered at v0 with the versions we do serve, so the
        // client can pick one and ask again.
        let response = api_versions::unsupported();
        return ready(encode(header.correlation_id, 0, &response));
    }
    ready(error_frame(header.correlation_id, UNSUPPORTED_VERSION))
}

fn ready(frame: Option<BytesMut>) -> Reply {
    Box::pin(std::future::ready(frame))
}

/// A bare answer: the correlation id and an error code, for requests whose
/// response layout we cannot know.
fn error_frame(correlation_id: i32, code: i16) -> Option<BytesMut> {
    let mut frame = BytesMut::with_capacity(10);
    frame.put_i32(6);
    frame.put_i32(correlation_id);
    frame.put_i16(code);
    Some(frame)
}

/// Frame `response` (size, response header, body) at `version`.
pub fn encode<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Option<BytesMut> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    // An error here is a bug on our side (a field set that this version
    // lacks): the client times the request out and reconnects.
    macro_rules! or_log {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, response = std::any::type_name::<R>(), version, "encoding a Kafka response failed");
                    return None;
                }
            }
        };
    }
    let size =
        or_log!(header.compute_size(header_version)) + or_log!(response.compute_size(version));
    let mut frame = BytesMut::with_capacity(4 + size);
    frame.put_i32(size as i32);
    or_log!(header.encode(&mut frame, header_version));
    or_log!(response.encode(&mut frame, version));
    Some(frame)
}
