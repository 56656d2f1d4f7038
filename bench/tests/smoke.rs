//! CI's seconds-long run of the harness with the Runnel drivers (gRPC and
//! the Kafka protocol through librdkafka): the real `runnel-bench` binary
//! starts a real broker for each, runs all three phases of a workload and
//! writes its results, which must add up.

use std::process::Command;

use runnel_bench::results::Report;

#[test]
fn runnel_drivers_run_every_phase_and_write_results() {
    let out = tempfile::tempdir().unwrap();
    let workload = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/1-topic-16-partitions-100b.toml"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_runnel-bench"))
        .args([
            "run",
            "--systems",
            "runnel,runnel-kafka",
            "--duration",
            "1s",
            "--no-baseline",
        ])
        .args(["--workloads", workload, "--name", "smoke", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "runnel-bench run failed: {status}");

    let json = std::fs::read_to_string(out.path().join("smoke.json")).unwrap();
    let report: Report = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = report.systems.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["runnel", "runnel-kafka"]);
    assert!(report.systems[1].client.contains("librdkafka"));
    let w = &report.workloads[0];
    assert_eq!((w.partitions, w.message_size), (16, 100));
    assert_eq!(w.runs.len(), 2);
    let mut max_rates = Vec::new();
    for run in &w.runs {
        let system = &run.system;
        assert!(run.error.is_none(), "{system}: {:?}", run.error);

        let produced = run.produce_max.as_ref().unwrap();
        assert!(
            produced.messages > 0 && produced.errors == 0,
            "{system}: {produced:?}"
        );
        assert_eq!(produced.bytes, produced.messages * 100, "{system}");
        assert_eq!(
            produced.ack_latency.as_ref().unwrap().samples,
            produced.messages,
            "{system}"
        );
        max_rates.push(produced.msgs_per_sec);
        // The backlog consumer read exactly what was acknowledged.
        let consumed = run.consume_backlog.as_ref().unwrap();
        assert_eq!(consumed.messages, produced.messages, "{system}");

        // Fixed rate: every acknowledged message arrived with a send stamp.
        let e2e = run.end_to_end.as_ref().unwrap();
        let lat = e2e.e2e_latency.as_ref().unwrap();
        assert!(lat.samples >= e2e.messages, "{system}: {lat:?} vs {e2e:?}");
        assert!(lat.p50_ms > 0.0 && lat.p50_ms <= lat.p99_ms, "{system}");
    }
    // The fixed rate is half the slower maximum.
    let slowest = max_rates.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((w.latency_rate - slowest / 2.0).abs() < 1.0);

    let md = std::fs::read_to_string(out.path().join("smoke.md")).unwrap();
    assert!(md.contains("1-topic-16-partitions-100b"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("smoke.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}
