//! CI's seconds-long run of the harness with the Runnel drivers (gRPC, and
//! the Kafka protocol through librdkafka and through rskafka): the real
//! `runnel-bench` binary starts a real broker for each, runs all three
//! phases of two workloads (small messages on 16 partitions; 1 KiB ones in
//! 1 MiB batches, the largest the broker takes) and writes its results,
//! which must add up.

use std::process::Command;

use runnel_bench::results::Report;

#[test]
fn runnel_drivers_run_every_phase_and_write_results() {
    let out = tempfile::tempdir().unwrap();
    let workloads = tempfile::tempdir().unwrap();
    for name in [
        "1-topic-16-partitions-100b.toml",
        "1-topic-1-partition-1kb-batched.toml",
    ] {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        std::fs::copy(from.join(name), workloads.path().join(name)).unwrap();
    }
    let status = Command::new(env!("CARGO_BIN_EXE_runnel-bench"))
        .args([
            "run",
            "--systems",
            "runnel,runnel-kafka,runnel-rskafka",
            "--duration",
            "1s",
            "--no-baseline",
        ])
        .arg("--workloads")
        .arg(workloads.path())
        .args(["--name", "smoke", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "runnel-bench run failed: {status}");

    let json = std::fs::read_to_string(out.path().join("smoke.json")).unwrap();
    let report: Report = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = report.systems.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["runnel", "runnel-kafka", "runnel-rskafka"]);
    assert!(report.systems[1].client.contains("librdkafka"));
    assert!(report.systems[2].client.contains("rskafka"));
    let mut shapes: Vec<_> = report
        .workloads
        .iter()
        .map(|w| (w.partitions, w.message_size))
        .collect();
    shapes.sort();
    assert_eq!(shapes, [(1, 1024), (16, 100)]);
    for w in &report.workloads {
        check_workload(w);
    }
    let md = std::fs::read_to_string(out.path().join("smoke.md")).unwrap();
    assert!(md.contains("1-topic-16-partitions-100b"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("smoke.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

/// Every system's phases of one workload add up.
fn check_workload(w: &runnel_bench::results::WorkloadResult) {
    assert_eq!(w.runs.len(), 3, "{}", w.name);
    let mut max_rates = Vec::new();
    for run in &w.runs {
        let system = &run.system;
        assert!(run.error.is_none(), "{system}: {:?}", run.error);

        let produced = run.produce_max.as_ref().unwrap();
        assert!(
            produced.messages > 0 && produced.errors == 0,
            "{system}: {produced:?}"
        );
        assert_eq!(
            produced.bytes,
            produced.messages * w.message_size as u64,
            "{system}"
        );
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
}
