//! Authorization against a real broker process (`authorizer.enable`,
//! principals from bearer tokens and from TLS client certificates): every
//! API is refused without an ACL, allowed by a literal rule and by a prefix
//! rule, refused again when a Deny joins the Allow; refusals are
//! PERMISSION_DENIED naming principal and operation; a refused produce
//! writes nothing; listings leave out what the principal may not see.

use std::collections::HashMap;
use std::time::Duration;

use runnel_proto::batch::BatchBuilder;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::group_client::GroupClient;
use runnel_proto::v1::replication_client::ReplicationClient;
use runnel_proto::v1::*;
use runnel_tests::BrokerProcess;
use tonic::transport::Channel;
use tonic::{Code, Status};

const ADMIN: &str = "admin-token-0123456789";
const ALICE: &str = "alice-token-0123456789";

struct Broker {
    _dir: tempfile::TempDir,
    process: BrokerProcess,
    channel: Channel,
}

async fn broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{ADMIN},admin\n{ALICE},alice\n")).unwrap();
    let process = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--authorizer-enable",
            "true",
            "--super-users",
            "User:admin",
            "--auth-tokens-file",
            tokens.to_str().unwrap(),
        ],
    )
    .unwrap();
    let channel = Channel::from_shared(process.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Broker {
        _dir: dir,
        process,
        channel,
    }
}

/// `message` with `token` as its bearer credentials (none: anonymous).
fn req<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(10));
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

fn batch(value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.push(1_000, None, Some(value.as_bytes()), &[]);
    b.build().unwrap().to_vec()
}

/// One API call, as a principal.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Produce,
    Fetch,
    ListOffsets,
    Metadata,
    InitProducerId,
    CreateTopics,
    DeleteTopics,
    DescribeTopics,
    AlterTopic,
    FindCoordinator,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    DescribeGroup,
    DeleteGroup,
    ResetGroupOffsets,
    DescribeClusterConfigs,
    AlterClusterConfigs,
    ListReassignments,
    AlterReassignments,
    CreateAcls,
    DescribeAcls,
    DeleteAcls,
    ReplicaFetch,
}

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const CLUSTER: &str = "runnel-cluster";

impl Call {
    /// What the call needs: (resource type, name, operation). The prefix
    /// rules use the first three characters of the name.
    fn needs(self) -> Vec<(AclResourceType, &'static str, AclOperation)> {
        use AclOperation as O;
        use AclResourceType as R;
        let topic = |op| (R::Topic, TOPIC, op);
        let group = |op| (R::Group, GROUP, op);
        let cluster = |op| (R::Cluster, CLUSTER, op);
        match self {
            Call::Produce | Call::InitProducerId => vec![topic(O::Write)],
            Call::Fetch => vec![topic(O::Read)],
            Call::ListOffsets | Call::Metadata | Call::DescribeTopics => vec![topic(O::Describe)],
            Call::CreateTopics => vec![topic(O::Create)],
            // A topic that does not exist, so that an allowed delete leaves
            // the test's topic alone (UNKNOWN_TOPIC once authorized).
            Call::DeleteTopics => vec![(R::Topic, "orders-gone", O::Delete)],
            Call::AlterTopic => vec![topic(O::Alter)],
            Call::FindCoordinator | Call::DescribeGroup | Call::OffsetFetch => {
                vec![group(O::Describe)]
            }
            Call::Heartbeat | Call::LeaveGroup => vec![group(O::Read)],
            Call::OffsetCommit | Call::ResetGroupOffsets => {
                vec![group(O::Read), topic(O::Read)]
            }
            Call::DeleteGroup => vec![group(O::Delete)],
            Call::DescribeClusterConfigs | Call::ListReassignments | Call::DescribeAcls => {
                vec![cluster(O::Describe)]
            }
            Call::AlterClusterConfigs
            | Call::AlterReassignments
            | Call::CreateAcls
            | Call::DeleteAcls => vec![cluster(O::Alter)],
            Call::ReplicaFetch => vec![cluster(O::ClusterAction)],
        }
    }

    /// Make the call. Outcomes other than an authorization refusal (e.g.
    /// UNKNOWN_MEMBER_ID for a made-up member) mean it got past the
    /// authorizer. Nothing here changes state except Produce, CreateAcls
    /// and DeleteAcls (which touch a throwaway principal's ACLs).
    async fn run(self, ch: &Channel, token: Option<&str>) -> Result<(), Status> {
        let mut data = BrokerClient::new(ch.clone());
        let mut group = GroupClient::new(ch.clone());
        let mut admin = AdminClient::new(ch.clone());
        let topic_partitions = || {
            vec![TopicPartitions {
                topic: TOPIC.into(),
                partitions: vec![0],
            }]
        };
        let commit = || {
            vec![OffsetCommitTopic {
                topic: TOPIC.into(),
                partitions: vec![OffsetCommitPartition {
                    partition: 0,
                    offset: 0,
                    metadata: String::new(),
                }],
            }]
        };
        let stranger = AclBinding {
            resource_type: AclResourceType::Topic as i32,
            resource_name: "elsewhere".into(),
            pattern_type: AclPatternType::Literal as i32,
            principal: "User:nobody".into(),
            operation: AclOperation::Read as i32,
            permission: AclPermission::Allow as i32,
        };
        match self {
            Call::Produce => data
                .produce(req(
                    ProduceRequest {
                        topics: vec![TopicProduceData {
                            topic: TOPIC.into(),
                            partitions: vec![PartitionProduceData {
                                partition: 0,
                                records: batch("x").into(),
                            }],
                        }],
                        acks: Acks::Leader as i32,
                        timeout_ms: 5_000,
                        transactional_id: String::new(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::Fetch => data
                .fetch(req(
                    FetchRequest {
                        topics: vec![FetchTopic {
                            topic: TOPIC.into(),
                            partitions: vec![FetchPartition {
                                partition: 0,
                                fetch_offset: 0,
                                partition_max_bytes: 1 << 20,
                                current_leader_epoch: -1,
                            }],
                        }],
                        max_bytes: 1 << 20,
                        max_wait_ms: 0,
                        min_bytes: 0,
                        replica_id: -1,
                        isolation_level: 0,
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::ListOffsets => data
                .list_offsets(req(
                    ListOffsetsRequest {
                        topics: vec![ListOffsetsTopic {
                            topic: TOPIC.into(),
                            partitions: vec![ListOffsetsPartition {
                                partition: 0,
                                spec: OffsetSpec::Latest as i32,
                                timestamp_ms: 0,
                            }],
                        }],
                        isolation_level: 0,
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::Metadata => data
                .metadata(req(
                    MetadataRequest {
                        topics: vec![TOPIC.into()],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::InitProducerId => data
                .init_producer_id(req(InitProducerIdRequest::default(), token))
                .await
                .map(drop),
            Call::CreateTopics => admin
                .create_topics(req(
                    CreateTopicsRequest {
                        topics: vec![NewTopic {
                            name: TOPIC.into(),
                            partitions: 1,
                            replication_factor: 1,
                            configs: HashMap::new(),
                        }],
                        validate_only: true,
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::DeleteTopics => admin
                .delete_topics(req(
                    DeleteTopicsRequest {
                        names: vec!["orders-gone".into()],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::DescribeTopics => admin
                .describe_topics(req(
                    DescribeTopicsRequest {
                        names: vec![TOPIC.into()],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::AlterTopic => admin
                .alter_topic(req(
                    AlterTopicRequest {
                        name: TOPIC.into(),
                        partitions: 0,
                        set_configs: [("retention.ms".to_owned(), "3600000".to_owned())].into(),
                        delete_configs: vec![],
                        validate_only: true,
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::FindCoordinator => group
                .find_coordinator(req(
                    FindCoordinatorRequest {
                        group_id: GROUP.into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::Heartbeat => group
                .heartbeat(req(
                    HeartbeatRequest {
                        group_id: GROUP.into(),
                        member_id: "made-up".into(),
                        generation: 1,
                        owned: vec![],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::LeaveGroup => group
                .leave_group(req(
                    LeaveGroupRequest {
                        group_id: GROUP.into(),
                        member_id: "made-up".into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::OffsetCommit => group
                .offset_commit(req(
                    OffsetCommitRequest {
                        group_id: GROUP.into(),
                        member_id: "made-up".into(),
                        generation: 1,
                        topics: commit(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::OffsetFetch => group
                .offset_fetch(req(
                    OffsetFetchRequest {
                        group_id: GROUP.into(),
                        partitions: topic_partitions(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::DescribeGroup => group
                .describe_group(req(
                    DescribeGroupRequest {
                        group_id: GROUP.into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::DeleteGroup => group
                .delete_group(req(
                    DeleteGroupRequest {
                        group_id: GROUP.into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::ResetGroupOffsets => group
                .reset_group_offsets(req(
                    ResetGroupOffsetsRequest {
                        group_id: GROUP.into(),
                        topics: commit(),
                        spec: ResetSpec::Earliest as i32,
                        timestamp_ms: 0,
                        dry_run: true,
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::DescribeClusterConfigs => admin
                .describe_cluster_configs(req(DescribeClusterConfigsRequest::default(), token))
                .await
                .map(drop),
            Call::AlterClusterConfigs => admin
                .alter_cluster_configs(req(
                    AlterClusterConfigsRequest {
                        set_configs: [("log.retention.ms".to_owned(), "3600000".to_owned())].into(),
                        delete_configs: vec![],
                        validate_only: true,
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::ListReassignments => admin
                .list_partition_reassignments(req(
                    ListPartitionReassignmentsRequest::default(),
                    token,
                ))
                .await
                .map(drop),
            Call::AlterReassignments => admin
                .alter_partition_reassignments(req(
                    AlterPartitionReassignmentsRequest {
                        reassignments: vec![PartitionReassignment {
                            topic: TOPIC.into(),
                            partition: 0,
                            replicas: vec![],
                        }],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::CreateAcls => admin
                .create_acls(req(
                    CreateAclsRequest {
                        acls: vec![stranger],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::DescribeAcls => admin
                .describe_acls(req(DescribeAclsRequest::default(), token))
                .await
                .map(drop),
            Call::DeleteAcls => admin
                .delete_acls(req(
                    DeleteAclsRequest {
                        filters: vec![AclFilter {
                            principal: "User:nobody".into(),
                            ..AclFilter::default()
                        }],
                    },
                    token,
                ))
                .await
                .map(drop),
            Call::ReplicaFetch => {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                drop(tx);
                ReplicationClient::new(ch.clone())
                    .replica_fetch(req(tokio_stream::wrappers::ReceiverStream::new(rx), token))
                    .await
                    .map(drop)
            }
        }
    }
}

const ALL_CALLS: [Call; 25] = [
    Call::Produce,
    Call::Fetch,
    Call::ListOffsets,
    Call::Metadata,
    Call::InitProducerId,
    Call::CreateTopics,
    Call::DeleteTopics,
    Call::DescribeTopics,
    Call::AlterTopic,
    Call::FindCoordinator,
    Call::Heartbeat,
    Call::LeaveGroup,
    Call::OffsetCommit,
    Call::OffsetFetch,
    Call::DescribeGroup,
    Call::DeleteGroup,
    Call::ResetGroupOffsets,
    Call::DescribeClusterConfigs,
    Call::AlterClusterConfigs,
    Call::ListReassignments,
    Call::AlterReassignments,
    Call::CreateAcls,
    Call::DescribeAcls,
    Call::DeleteAcls,
    Call::ReplicaFetch,
];

fn binding(
    (resource_type, name, operation): (AclResourceType, &str, AclOperation),
    pattern: AclPatternType,
    permission: AclPermission,
) -> AclBinding {
    let name = match (pattern, resource_type) {
        (AclPatternType::Prefixed, AclResourceType::Topic | AclResourceType::Group) => &name[..3],
        _ => name,
    };
    AclBinding {
        resource_type: resource_type as i32,
        resource_name: name.into(),
        pattern_type: pattern as i32,
        principal: "User:alice".into(),
        operation: operation as i32,
        permission: permission as i32,
    }
}

/// Create one-partition topics as the superuser.
async fn create_topics(b: &Broker, names: &[&str]) {
    let topics = names
        .iter()
        .map(|name| NewTopic {
            name: (*name).into(),
            partitions: 1,
            replication_factor: 1,
            configs: HashMap::new(),
        })
        .collect();
    AdminClient::new(b.channel.clone())
        .create_topics(req(
            CreateTopicsRequest {
                topics,
                validate_only: false,
            },
            Some(ADMIN),
        ))
        .await
        .unwrap();
}

async fn grant(b: &Broker, acls: Vec<AclBinding>) {
    AdminClient::new(b.channel.clone())
        .create_acls(req(CreateAclsRequest { acls }, Some(ADMIN)))
        .await
        .unwrap();
}

async fn revoke_alice(b: &Broker) {
    AdminClient::new(b.channel.clone())
        .delete_acls(req(
            DeleteAclsRequest {
                filters: vec![AclFilter {
                    principal: "User:alice".into(),
                    ..AclFilter::default()
                }],
            },
            Some(ADMIN),
        ))
        .await
        .unwrap();
}

fn assert_denied(call: Call, outcome: Result<(), Status>, what: &str) {
    let status = outcome.expect_err(&format!("{call:?} {what}: allowed"));
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{call:?} {what}: {status:?}"
    );
    let needed = call.needs();
    let message = status.message();
    assert!(
        message.contains("User:alice") || message.contains("User:ANONYMOUS"),
        "{call:?}: the principal is not named: {message}"
    );
    assert!(
        needed.iter().any(|(_, _, op)| message
            .to_lowercase()
            .contains(&format!("{op:?}").to_lowercase())),
        "{call:?}: the operation is not named: {message}"
    );
}

fn assert_allowed(call: Call, outcome: Result<(), Status>, what: &str) {
    if let Err(status) = outcome {
        assert!(
            !matches!(
                status.code(),
                Code::PermissionDenied | Code::Unauthenticated
            ),
            "{call:?} {what}: {status:?}"
        );
    }
}

async fn end_offset(b: &Broker) -> i64 {
    let response = BrokerClient::new(b.channel.clone())
        .list_offsets(req(
            ListOffsetsRequest {
                topics: vec![ListOffsetsTopic {
                    topic: TOPIC.into(),
                    partitions: vec![ListOffsetsPartition {
                        partition: 0,
                        spec: OffsetSpec::Latest as i32,
                        timestamp_ms: 0,
                    }],
                }],
                isolation_level: 0,
            },
            Some(ADMIN),
        ))
        .await
        .unwrap()
        .into_inner();
    response.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_is_denied_without_an_acl_and_allowed_by_literal_and_prefix_rules() {
    let b = broker().await;
    create_topics(&b, &[TOPIC]).await;

    for call in ALL_CALLS {
        let needs = call.needs();
        let before = end_offset(&b).await;
        assert_denied(call, call.run(&b.channel, None).await, "anonymous");
        assert_denied(
            call,
            call.run(&b.channel, Some(ALICE)).await,
            "without ACLs",
        );
        assert_eq!(
            end_offset(&b).await,
            before,
            "{call:?}: a refused call wrote"
        );

        // Only some of what it needs: still refused.
        if needs.len() > 1 {
            grant(
                &b,
                vec![binding(
                    needs[0],
                    AclPatternType::Literal,
                    AclPermission::Allow,
                )],
            )
            .await;
            assert_denied(
                call,
                call.run(&b.channel, Some(ALICE)).await,
                "half granted",
            );
            revoke_alice(&b).await;
        }

        for pattern in [AclPatternType::Literal, AclPatternType::Prefixed] {
            let allows: Vec<_> = needs
                .iter()
                .map(|n| binding(*n, pattern, AclPermission::Allow))
                .collect();
            grant(&b, allows).await;
            assert_allowed(
                call,
                call.run(&b.channel, Some(ALICE)).await,
                &format!("{pattern:?} allow"),
            );

            // A Deny of the same operation wins over the Allow.
            grant(&b, vec![binding(needs[0], pattern, AclPermission::Deny)]).await;
            let before = end_offset(&b).await;
            assert_denied(
                call,
                call.run(&b.channel, Some(ALICE)).await,
                "allow + deny",
            );
            assert_eq!(
                end_offset(&b).await,
                before,
                "{call:?}: a denied call wrote"
            );
            revoke_alice(&b).await;
        }

        // The superuser needs no ACL.
        assert_allowed(call, call.run(&b.channel, Some(ADMIN)).await, "superuser");
    }

    // An unknown token is not anonymity: UNAUTHENTICATED.
    let status = Call::Metadata
        .run(&b.channel, Some("not-a-known-token-at-all"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Every refusal was counted.
    let (_, metrics) = b.process.http_get("/metrics").unwrap();
    assert!(
        metrics.contains(
            "runnel_authorization_denied_total{operation=\"Write\",resource_type=\"topic\"}"
        ),
        "{metrics}"
    );
    assert!(b.process.log_tail().contains("denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_leave_out_what_the_principal_may_not_describe() {
    let b = broker().await;
    create_topics(&b, &["orders-eu", "orders-us", "payroll"]).await;
    let mut admin = AdminClient::new(b.channel.clone());
    grant(
        &b,
        vec![binding(
            (AclResourceType::Topic, "ord", AclOperation::Read),
            AclPatternType::Prefixed,
            AclPermission::Allow,
        )],
    )
    .await;
    let names = |topics: Vec<TopicListing>| {
        let mut v: Vec<String> = topics.into_iter().map(|t| t.name).collect();
        v.sort();
        v
    };
    let listed = admin
        .list_topics(req(ListTopicsRequest::default(), Some(ALICE)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        names(listed.topics),
        ["orders-eu", "orders-us"],
        "Read implies Describe"
    );
    let everything = BrokerClient::new(b.channel.clone())
        .metadata(req(MetadataRequest::default(), Some(ALICE)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everything.topics.len(), 2);
    let all = admin
        .list_topics(req(ListTopicsRequest::default(), Some(ADMIN)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.topics.len(), 3);
    // Asking for a topic by name that one may not describe is refused.
    let status = BrokerClient::new(b.channel.clone())
        .metadata(req(
            MetadataRequest {
                topics: vec!["payroll".into()],
            },
            Some(ALICE),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("payroll"), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_naming_one_denied_topic_writes_to_none() {
    let b = broker().await;
    create_topics(&b, &["open", "closed"]).await;
    grant(
        &b,
        vec![binding(
            (AclResourceType::Topic, "open", AclOperation::Write),
            AclPatternType::Literal,
            AclPermission::Allow,
        )],
    )
    .await;
    let produce = |topics: &[&str]| ProduceRequest {
        topics: topics
            .iter()
            .map(|t| TopicProduceData {
                topic: (*t).into(),
                partitions: vec![PartitionProduceData {
                    partition: 0,
                    records: batch("v").into(),
                }],
            })
            .collect(),
        acks: Acks::Leader as i32,
        timeout_ms: 5_000,
        transactional_id: String::new(),
    };
    let mut data = BrokerClient::new(b.channel.clone());
    let status = data
        .produce(req(produce(&["open", "closed"]), Some(ALICE)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("\"closed\""),
        "{}",
        status.message()
    );
    let offsets = data
        .list_offsets(req(
            ListOffsetsRequest {
                topics: ["open", "closed"]
                    .iter()
                    .map(|t| ListOffsetsTopic {
                        topic: (*t).into(),
                        partitions: vec![ListOffsetsPartition {
                            partition: 0,
                            spec: OffsetSpec::Latest as i32,
                            timestamp_ms: 0,
                        }],
                    })
                    .collect(),
                isolation_level: 0,
            },
            Some(ADMIN),
        ))
        .await
        .unwrap()
        .into_inner();
    for t in offsets.topics {
        assert_eq!(t.partitions[0].offset, 0, "{} was written", t.topic);
    }
    data.produce(req(produce(&["open"]), Some(ALICE)))
        .await
        .unwrap();
}

/// The common name of a verified client certificate is the principal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_names_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = runnel_tests::tls::Ca::new(dir.path(), "ca");
    let issue = |cn: &str| ca.issue(dir.path(), cn);
    let ca_pem = ca.pem.clone();
    let (broker_cert, broker_key) = issue("broker");
    let (admin_cert, admin_key) = issue("admin");
    let (carol_cert, carol_key) = issue("carol");
    let process = BrokerProcess::start(
        &dir.path().join("data"),
        &[
            "--ssl-certificate-location",
            broker_cert.to_str().unwrap(),
            "--ssl-key-location",
            broker_key.to_str().unwrap(),
            "--ssl-ca-location",
            ca_pem.to_str().unwrap(),
            "--ssl-client-auth",
            "required",
            "--authorizer-enable",
            "true",
            "--super-users",
            "User:admin",
        ],
    )
    .unwrap();
    let client = |cert, key| runnel_client::ClientConfig {
        tls: Some(runnel_client::TlsConfig::new(&ca_pem).identity(cert, key)),
        ..runnel_client::ClientConfig::new(&process.bootstrap()).unwrap()
    };
    let admin = runnel_client::Admin::connect(client(admin_cert, admin_key))
        .await
        .unwrap();
    admin.create_topic("ledger", 1, 1, &[]).await.unwrap();
    let carol = runnel_client::Admin::connect(client(carol_cert, carol_key))
        .await
        .unwrap();
    let err = carol.describe_topic("ledger").await.unwrap_err();
    assert!(err.to_string().contains("User:carol"), "{err}");
    admin
        .create_acls(vec![AclBinding {
            resource_type: AclResourceType::Topic as i32,
            resource_name: "ledger".into(),
            pattern_type: AclPatternType::Literal as i32,
            principal: "User:carol".into(),
            operation: AclOperation::Describe as i32,
            permission: AclPermission::Allow as i32,
        }])
        .await
        .unwrap();
    assert_eq!(carol.describe_topic("ledger").await.unwrap().name, "ledger");
}

/// ACLs live in etcd: one created through one broker is enforced by the
/// other as soon as its metadata watch brings it, and so is its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_made_on_one_broker_are_enforced_by_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{ADMIN},admin\n{ALICE},alice\n")).unwrap();
    let cluster = runnel_tests::cluster::TestCluster::start(
        2,
        &[
            "--authorizer-enable",
            "true",
            "--super-users",
            "User:admin",
            "--auth-tokens-file",
            tokens.to_str().unwrap(),
        ],
    )
    .unwrap();
    let mut channels = Vec::new();
    for id in [1, 2] {
        channels.push(
            Channel::from_shared(cluster.broker(id).endpoint())
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let (one, two) = (channels[0].clone(), channels[1].clone());
    let describe = |ch: Channel| async move {
        AdminClient::new(ch)
            .describe_acls(req(DescribeAclsRequest::default(), Some(ALICE)))
            .await
    };
    assert_eq!(
        describe(two.clone()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    AdminClient::new(one.clone())
        .create_acls(req(
            CreateAclsRequest {
                acls: vec![binding(
                    (AclResourceType::Cluster, CLUSTER, AclOperation::Describe),
                    AclPatternType::Literal,
                    AclPermission::Allow,
                )],
            },
            Some(ADMIN),
        ))
        .await
        .unwrap();
    let allowed = cluster
        .wait_for("broker 2 to apply the ACL", Duration::from_secs(10), || {
            let two = two.clone();
            async move { describe(two).await.ok() }
        })
        .await
        .unwrap();
    assert_eq!(allowed.into_inner().acls.len(), 1);

    AdminClient::new(one)
        .delete_acls(req(
            DeleteAclsRequest {
                filters: vec![AclFilter::default()],
            },
            Some(ADMIN),
        ))
        .await
        .unwrap();
    cluster
        .wait_for("broker 2 to drop the ACL", Duration::from_secs(10), || {
            let two = two.clone();
            async move {
                describe(two)
                    .await
                    .err()
                    .filter(|s| s.code() == Code::PermissionDenied)
            }
        })
        .await
        .unwrap();
}
