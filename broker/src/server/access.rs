//! What each request needs the authorizer to allow, in one place: the
//! table of docs/security.md ("which operation each API needs") in code.
//!
//! [`Access::authorize`] runs before the handler and refuses the whole
//! request if any resource it names is not allowed, so a refused request
//! changes nothing (a produce to two topics, one of them denied, writes to
//! neither). Listings that name nothing (Metadata for all topics,
//! ListTopics, DescribeTopics without names, ListGroups) are not refused:
//! [`Access::filter`] leaves out what the principal may not describe, as
//! Kafka does.

use runnel_proto::v1::*;

use crate::Result;
use crate::auth::acl::{Operation, ResourceType};
use crate::auth::{Authorizer, Principal};

/// A request's needs.
pub(crate) trait Access {
    /// The response type, for [`Access::filter`].
    type Response;

    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()>;

    /// Remove from a listing what `who` may not describe.
    fn filter(_response: &mut Self::Response, _auth: &Authorizer, _who: &Principal) {}
}

fn topics<'a>(
    auth: &Authorizer,
    who: &Principal,
    operation: Operation,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    names
        .into_iter()
        .try_for_each(|t| auth.authorize(who, operation, ResourceType::Topic, t))
}

fn group(auth: &Authorizer, who: &Principal, operation: Operation, id: &str) -> Result<()> {
    auth.authorize(who, operation, ResourceType::Group, id)
}

fn describable(
    auth: &Authorizer,
    who: &Principal,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    auth.allowed(who, Operation::Describe, resource_type, name)
}

macro_rules! cluster_access {
    ($( $req:ty => $resp:ty, $op:expr; )*) => {$(
        impl Access for $req {
            type Response = $resp;
            fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
                auth.authorize_cluster(who, $op)
            }
        }
    )*};
}

cluster_access! {
    AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse, Operation::Alter;
    ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse, Operation::Describe;
    DescribeClusterConfigsRequest => DescribeClusterConfigsResponse, Operation::Describe;
    AlterClusterConfigsRequest => AlterClusterConfigsResponse, Operation::Alter;
    CreateAclsRequest => CreateAclsResponse, Operation::Alter;
    DeleteAclsRequest => DeleteAclsResponse, Operation::Alter;
    DescribeAclsRequest => DescribeAclsResponse, Operation::Describe;
}

impl Access for ProduceRequest {
    type Response = ProduceResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Write,
            self.topics.iter().map(|t| t.topic.as_str()),
        )
    }
}

impl Access for FetchRequest {
    type Response = FetchResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Read,
            self.topics.iter().map(|t| t.topic.as_str()),
        )
    }
}

impl Access for ListOffsetsRequest {
    type Response = ListOffsetsResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Describe,
            self.topics.iter().map(|t| t.topic.as_str()),
        )
    }
}

impl Access for DeleteRecordsRequest {
    type Response = DeleteRecordsResponse;
    /// Kafka: DELETE on each topic.
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Delete,
            self.topics.iter().map(|t| t.topic.as_str()),
        )
    }
}

impl Access for MetadataRequest {
    type Response = MetadataResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Describe,
            self.topics.iter().map(String::as_str),
        )
    }
    fn filter(response: &mut MetadataResponse, auth: &Authorizer, who: &Principal) {
        response
            .topics
            .retain(|t| describable(auth, who, ResourceType::Topic, &t.name));
    }
}

impl Access for InitProducerIdRequest {
    type Response = InitProducerIdResponse;
    /// Kafka 3.0+: an idempotent producer id for anyone who may write to
    /// some topic.
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        if auth.allowed_somewhere(who, Operation::Write, ResourceType::Topic) {
            Ok(())
        } else {
            auth.authorize_cluster(who, Operation::Write)
        }
    }
}

impl Access for FindCoordinatorRequest {
    type Response = FindCoordinatorResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Describe, &self.group_id)
    }
}

impl Access for JoinGroupRequest {
    type Response = JoinGroupResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Read, &self.group_id)?;
        topics(
            auth,
            who,
            Operation::Describe,
            self.topics.iter().map(String::as_str),
        )
    }
}

impl Access for HeartbeatRequest {
    type Response = HeartbeatResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Read, &self.group_id)
    }
}

impl Access for LeaveGroupRequest {
    type Response = LeaveGroupResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Read, &self.group_id)
    }
}

impl Access for OffsetCommitRequest {
    type Response = OffsetCommitResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Read, &self.group_id)?;
        topics(
            auth,
            who,
            Operation::Read,
            self.topics.iter().map(|t| t.topic.as_str()),
        )
    }
}

impl Access for OffsetFetchRequest {
    type Response = OffsetFetchResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        // Topics one may not describe are left out of the answer (below),
        // as Kafka answers them with TOPIC_AUTHORIZATION_FAILED.
        group(auth, who, Operation::Describe, &self.group_id)
    }
    fn filter(response: &mut OffsetFetchResponse, auth: &Authorizer, who: &Principal) {
        response
            .offsets
            .retain(|o| describable(auth, who, ResourceType::Topic, &o.topic));
    }
}

impl Access for ListGroupsRequest {
    type Response = ListGroupsResponse;
    fn authorize(&self, _: &Authorizer, _: &Principal) -> Result<()> {
        Ok(())
    }
    fn filter(response: &mut ListGroupsResponse, auth: &Authorizer, who: &Principal) {
        response
            .groups
            .retain(|g| describable(auth, who, ResourceType::Group, &g.group_id));
    }
}

impl Access for DescribeGroupRequest {
    type Response = DescribeGroupResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Describe, &self.group_id)
    }
}

impl Access for DeleteGroupRequest {
    type Response = DeleteGroupResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Delete, &self.group_id)
    }
}

impl Access for ResetGroupOffsetsRequest {
    type Response = ResetGroupOffsetsResponse;
    /// Kafka's AlterConsumerGroupOffsets: Read on the group and the topics.
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        group(auth, who, Operation::Read, &self.group_id)?;
        topics(
            auth,
            who,
            Operation::Read,
            self.topics.iter().map(|t| t.topic.as_str()),
        )
    }
}

impl Access for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
    /// Create on the cluster covers every topic; else Create on each.
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        if auth.allowed(
            who,
            Operation::Create,
            ResourceType::Cluster,
            crate::auth::acl::CLUSTER_NAME,
        ) {
            return Ok(());
        }
        topics(
            auth,
            who,
            Operation::Create,
            self.topics.iter().map(|t| t.name.as_str()),
        )
    }
}

impl Access for DeleteTopicsRequest {
    type Response = DeleteTopicsResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Delete,
            self.names.iter().map(String::as_str),
        )
    }
}

impl Access for ListTopicsRequest {
    type Response = ListTopicsResponse;
    fn authorize(&self, _: &Authorizer, _: &Principal) -> Result<()> {
        Ok(())
    }
    fn filter(response: &mut ListTopicsResponse, auth: &Authorizer, who: &Principal) {
        response
            .topics
            .retain(|t| describable(auth, who, ResourceType::Topic, &t.name));
    }
}

impl Access for DescribeTopicsRequest {
    type Response = DescribeTopicsResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(
            auth,
            who,
            Operation::Describe,
            self.names.iter().map(String::as_str),
        )
    }
    fn filter(response: &mut DescribeTopicsResponse, auth: &Authorizer, who: &Principal) {
        response
            .topics
            .retain(|t| describable(auth, who, ResourceType::Topic, &t.name));
    }
}

impl Access for AlterTopicRequest {
    type Response = AlterTopicResponse;
    fn authorize(&self, auth: &Authorizer, who: &Principal) -> Result<()> {
        topics(auth, who, Operation::Alter, [self.name.as_str()])
    }
}
