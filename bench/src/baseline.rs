//! The machine's own limits, measured next to every benchmark run: `dd`
//! into the page cache and with `conv=fdatasync`, `iperf3` over loopback,
//! and the produce floor ([`crate::floor`]). Absolute numbers on shared
//! VMs move between runs; ratios to these, taken in the same run, move
//! less.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::floor::{self, Sink};
use crate::results::Baselines;

/// Measure each; a tool that is missing or fails leaves its figure
/// empty with the reason in `notes`.
pub fn measure(dir: &Path, megabytes: u32, seconds: u32) -> Baselines {
    let mut b = Baselines::default();
    // One unmeasured dd first. On VMs whose balloon reports free pages to
    // the host (this one: Firecracker), writing into memory the guest has
    // not touched lately costs a host fault per page: a first dd measured
    // ~0.47 GB/s and the next, into the pages the first just freed,
    // 2-5 GB/s. Without the warm-up the page-cache figure was the cold
    // one and the fdatasync figure (run second) the warm one. Warm is
    // what a broker that has run for a while writes into, and the higher
    // (stricter) baseline.
    if let Err(e) = dd(dir, megabytes, false) {
        b.notes.push(format!("dd warm-up: {e:#}"));
    }
    match dd(dir, megabytes, false) {
        Ok(v) => b.dd_page_cache_mb_s = Some(v),
        Err(e) => b.notes.push(format!("dd (page cache): {e:#}")),
    }
    match dd(dir, megabytes, true) {
        Ok(v) => b.dd_fdatasync_mb_s = Some(v),
        Err(e) => b.notes.push(format!("dd conv=fdatasync: {e:#}")),
    }
    match iperf3(seconds) {
        Ok(v) => b.iperf3_loopback_mb_s = Some(v),
        Err(e) => b.notes.push(format!("iperf3: {e:#}")),
    }
    let floor = |sink| {
        floor::measure(
            sink,
            1024,
            1 << 20,
            Duration::from_secs(seconds.into()),
            dir,
        )
        .map(|f| f.payload_mb_s)
    };
    match (floor(Sink::PageCache), floor(Sink::PageCacheRecycled)) {
        (Ok(fresh), Ok(recycled)) => {
            b.floor_page_cache_mb_s = Some(fresh.max(recycled));
            b.notes.push(format!(
                "floor: {fresh:.0} MB/s into fresh page-cache pages, {recycled:.0} MB/s into recycled ones"
            ));
        }
        (Err(e), _) | (_, Err(e)) => b.notes.push(format!("floor (page cache): {e:#}")),
    }
    match floor(Sink::FsyncPerBatch) {
        Ok(v) => b.floor_fsync_per_batch_mb_s = Some(v),
        Err(e) => b.notes.push(format!("floor (fsync per batch): {e:#}")),
    }
    b.notes.push(format!(
        "dd if=/dev/zero of={}/baseline.dd bs=1M count={megabytes} [conv=fdatasync], \
         after one unmeasured dd of the same size; iperf3 -c 127.0.0.1 -t {seconds} (one stream); \
         runnel-bench floor --dir {} --duration {seconds}s",
        dir.display(),
        dir.display()
    ));
    b
}

/// `dd` of `megabytes` MiB of zeros into `dir`, in MB/s (10^6 bytes).
fn dd(dir: &Path, megabytes: u32, fdatasync: bool) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("baseline.dd");
    let mut cmd = Command::new("dd");
    cmd.arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=1M")
        .arg(format!("count={megabytes}"));
    if fdatasync {
        cmd.arg("conv=fdatasync");
    }
    let out = cmd.output().context("running dd")?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    parse_dd(&String::from_utf8_lossy(&out.stderr))
}

/// dd's last line: "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.87 s, 574 MB/s".
/// Computed from bytes and seconds, not the rounded, unit-varying rate.
fn parse_dd(report: &str) -> Result<f64> {
    let line = report
        .lines()
        .find(|l| l.contains(" copied, "))
        .context("no summary line in dd's output")?;
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .context("dd byte count")?;
    let secs: f64 = line
        .split(" copied, ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.replace(',', ".").parse().ok())
        .context("dd seconds")?;
    if secs <= 0.0 {
        bail!("dd reported {secs} s");
    }
    Ok(bytes / 1e6 / secs)
}

/// One `iperf3` stream over loopback for `seconds`, in MB/s.
fn iperf3(seconds: u32) -> Result<f64> {
    let port = runnel_tests::etcd::free_port()?.port().to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("iperf3 not found (apt-get install iperf3)")?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            &port,
            "-J",
            "-t",
            &seconds.to_string(),
        ])
        .output()
        .context("running the iperf3 client")?;
    let _ = server.kill();
    let _ = server.wait();
    if !out.status.success() {
        bail!(
            "iperf3 failed: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    Ok(bps / 8.0 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dd_reports() {
        let r = "1024+0 records in\n1024+0 records out\n\
                 1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2 s, 537 MB/s\n";
        assert!((parse_dd(r).unwrap() - 536.870912).abs() < 1e-6);
        // Locales with a decimal comma.
        let r = "104857600 bytes (105 MB, 100 MiB) copied, 0,5 s, 210 MB/s";
        assert!((parse_dd(r).unwrap() - 209.7152).abs() < 1e-6);
        assert!(parse_dd("dd: error writing").is_err());
    }
}
