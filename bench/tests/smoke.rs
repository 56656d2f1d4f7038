//! CI's seconds-long run of the harness with the Runnel driver: the real
//! `runnel-bench` binary starts a real broker, runs all three phases of a
//! workload and writes its results, which must add up.

use std::process::Command;

use runnel_bench::results::Report;

#[test]
fn runnel_driver_runs_every_phase_and_writes_results() {
    let out = tempfile::tempdir().unwrap();
    let workload = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/1-topic-16-partitions-100b.toml"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_runnel-bench"))
        .args([
            "run",
            "--systems",
            "runnel",
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
    assert_eq!(report.systems.len(), 1);
    assert_eq!(report.systems[0].name, "runnel");
    let w = &report.workloads[0];
    assert_eq!((w.partitions, w.message_size), (16, 100));
    let run = &w.runs[0];
    assert!(run.error.is_none(), "{:?}", run.error);

    let produced = run.produce_max.as_ref().unwrap();
    assert!(
        produced.messages > 0 && produced.errors == 0,
        "{produced:?}"
    );
    assert_eq!(produced.bytes, produced.messages * 100);
    assert!(produced.ack_latency.as_ref().unwrap().samples == produced.messages);
    // The backlog consumer read exactly what was acknowledged.
    let consumed = run.consume_backlog.as_ref().unwrap();
    assert_eq!(consumed.messages, produced.messages);

    // Fixed rate: half the max, and every acknowledged message arrived
    // with a send stamp.
    assert!((w.latency_rate - produced.msgs_per_sec / 2.0).abs() < 1.0);
    let e2e = run.end_to_end.as_ref().unwrap();
    let lat = e2e.e2e_latency.as_ref().unwrap();
    assert!(lat.samples >= e2e.messages, "{lat:?} vs {e2e:?}");
    assert!(lat.p50_ms > 0.0 && lat.p50_ms <= lat.p99_ms);

    let md = std::fs::read_to_string(out.path().join("smoke.md")).unwrap();
    assert!(md.contains("1-topic-16-partitions-100b"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("smoke.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}
