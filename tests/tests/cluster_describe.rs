//! `runnel cluster describe` against a real broker with a Kafka-only
//! listener: both addresses, the controller flag.

use std::process::Command;
use std::time::{Duration, Instant};

use runnel_tests::{BrokerProcess, binary};

#[test]
fn cluster_describe_lists_brokers_with_grpc_and_kafka_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &["--kafka-listen", "127.0.0.1:0"]).unwrap();
    let describe = || {
        runnel_tests::json_output(Command::new(binary("runnel")).args([
            "--bootstrap",
            &broker.bootstrap(),
            "--output",
            "json",
            "cluster",
            "describe",
        ]))
    };
    // The broker wins the controller election just after it is ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut doc = describe();
    while doc["controller_id"] == -1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        doc = describe();
    }
    let brokers = doc["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{doc}");
    let b = &brokers[0];
    assert_eq!(b["grpc"], broker.bootstrap().as_str(), "{doc}");
    let kafka = b["kafka"].as_str().unwrap();
    assert!(kafka.starts_with("127.0.0.1:"), "{doc}");
    assert_ne!(
        kafka,
        broker.bootstrap(),
        "the Kafka-only port is advertised: {doc}"
    );
    assert_eq!(b["controller"], true, "{doc}");
    assert_eq!(doc["controller_id"], b["id"]);
}
