//! Bad input on the Kafka protocol, byte by byte over plain TCP: frames
//! that cannot be requests close their connection and nothing else; an
//! unknown API or version is answered with UNSUPPORTED_VERSION; pipelined
//! requests are answered in order. After each, the broker still serves a
//! fresh connection and the topic's end offset has not moved.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use runnel_tests::{BrokerProcess, binary};
use serde_json::Value;

/// A request frame: size, api key, version, correlation id, client id
/// (header v1), then `body`.
fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client = b"wire-test";
    let mut payload = Vec::new();
    payload.extend(api_key.to_be_bytes());
    payload.extend(version.to_be_bytes());
    payload.extend(correlation_id.to_be_bytes());
    payload.extend((client.len() as i16).to_be_bytes());
    payload.extend(client);
    payload.extend(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend(payload);
    out
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One answer: (correlation id, body after it).
fn answer(s: &mut TcpStream) -> Option<(i32, Vec<u8>)> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).ok()?;
    let cid = i32::from_be_bytes(body[..4].try_into().unwrap());
    Some((cid, body[4..].to_vec()))
}

/// The connection is closed by the broker: a read returns EOF (or reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

/// ApiVersions v0 on a fresh connection gets a valid answer listing Produce.
fn still_serving(addr: &str) {
    let mut s = connect(addr);
    s.write_all(&frame(18, 0, 77, &[])).unwrap();
    let (cid, body) = answer(&mut s).expect("an answer to ApiVersions");
    assert_eq!(cid, 77);
    assert_eq!(i16::from_be_bytes([body[0], body[1]]), 0, "error code");
    let count = i32::from_be_bytes(body[2..6].try_into().unwrap());
    assert!(count >= 10, "{count} APIs");
    let keys: Vec<i16> = (0..count as usize)
        .map(|i| i16::from_be_bytes([body[6 + i * 6], body[7 + i * 6]]))
        .collect();
    assert!(keys.contains(&0) && keys.contains(&1), "{keys:?}");
}

/// The most virtual memory the process has ever mapped, in KiB
/// (`VmPeak` in `/proc/PID/status`).
fn vm_peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn end_offsets(bootstrap: &str) -> Value {
    let out = Command::new(binary("runnel"))
        .args([
            "--bootstrap",
            bootstrap,
            "--output",
            "json",
            "topic",
            "describe",
            "w",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_end_offset"].clone())
        .collect()
}

#[test]
fn malformed_kafka_frames_close_only_their_connection_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), &[]).unwrap();
    let addr = broker.bootstrap();
    let created = Command::new(binary("runnel"))
        .args([
            "--bootstrap",
            &addr,
            "topic",
            "create",
            "w",
            "-p",
            "2",
            "-r",
            "1",
        ])
        .output()
        .unwrap();
    assert!(created.status.success());
    let before = end_offsets(&addr);
    still_serving(&addr);

    // A 2 GiB size prefix, a negative one: closed before any body is read.
    for size in [0x7fff_ffff_i32, -5] {
        let mut s = connect(&addr);
        s.write_all(&size.to_be_bytes()).unwrap();
        assert!(closed(&mut s), "size {size}");
        still_serving(&addr);
    }
    // A truncated frame: says 100 bytes, sends 10, hangs up.
    {
        let mut s = connect(&addr);
        s.write_all(&100_i32.to_be_bytes()).unwrap();
        s.write_all(&[0u8; 10]).unwrap();
        drop(s);
        still_serving(&addr);
    }
    // Too short for a header; random bytes where a Produce body should be.
    {
        let mut s = connect(&addr);
        s.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
        assert!(closed(&mut s));
        let mut s = connect(&addr);
        let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        s.write_all(&frame(0, 9, 5, &garbage)).unwrap();
        assert!(closed(&mut s), "a Produce that does not decode");
        still_serving(&addr);
    }
    // Element counts that lie: a Metadata request claiming 2^31 - 1 topics
    // with one on the wire (v4, an i32 count), and the same as a flexible
    // v9 compact array (unsigned varint count + 1) in a header-v2 frame.
    // The codec once reserved memory for the claimed count before reading
    // an element (~120 GB for 60 bytes; found by the kafka_request fuzz
    // target). The request must fail as short, close the connection, and
    // not map gigabytes: VmPeak stays far below the claimed size.
    {
        let pid = broker.pid().unwrap();
        let peak_before = vm_peak_kib(pid);
        let mut v4 = 0x7fff_ffff_i32.to_be_bytes().to_vec();
        v4.extend([0, 1, b'w', 1]);
        let mut v9 = vec![0]; // header tagged fields
        v9.extend([0xff, 0xff, 0xff, 0xff, 0x07]); // count + 1 = 2^31 - 1
        v9.extend([2, b'w', 0]); // one topic: compact name "w", no tags
        for request in [frame(3, 4, 8, &v4), frame(3, 9, 9, &v9)] {
            let mut s = connect(&addr);
            s.write_all(&request).unwrap();
            assert!(closed(&mut s), "a lying element count");
            still_serving(&addr);
        }
        let grown_gib = vm_peak_kib(pid).saturating_sub(peak_before) >> 20;
        assert!(grown_gib < 4, "VmPeak grew by {grown_gib} GiB");
    }
    // Unknown API key, and a version outside the range: UNSUPPORTED_VERSION,
    // and the connection stays usable.
    {
        let mut s = connect(&addr);
        s.write_all(&frame(999, 0, 41, &[])).unwrap();
        let (cid, body) = answer(&mut s).unwrap();
        assert_eq!((cid, i16::from_be_bytes([body[0], body[1]])), (41, 35));
        // v3+ ApiVersions headers are flexible (header v2): an empty
        // tagged-field section after the client id.
        s.write_all(&frame(18, 99, 42, &[0])).unwrap();
        let (cid, body) = answer(&mut s).unwrap();
        assert_eq!((cid, i16::from_be_bytes([body[0], body[1]])), (42, 35));
        let count = i32::from_be_bytes(body[2..6].try_into().unwrap());
        assert!(count >= 10, "the versions served come with the refusal");
        s.write_all(&frame(18, 0, 43, &[])).unwrap();
        assert_eq!(answer(&mut s).unwrap().0, 43);
    }
    // Ten requests written back to back, answered in order.
    {
        let mut s = connect(&addr);
        let mut all = Vec::new();
        for cid in 1..=10 {
            all.extend(frame(18, 0, cid, &[]));
        }
        s.write_all(&all).unwrap();
        let order: Vec<i32> = (0..10).map(|_| answer(&mut s).unwrap().0).collect();
        assert_eq!(order, (1..=10).collect::<Vec<_>>());
    }
    still_serving(&addr);
    assert_eq!(end_offsets(&addr), before, "nothing was written");
    assert!(broker.is_running());
}
