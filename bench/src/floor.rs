//! `runnel-bench floor`: the fastest any Kafka-style produce path can go on
//! this machine, measured with nothing of Runnel's in the way.
//!
//! Two threads and one loopback TCP connection do only the work every
//! such design must do per byte: the producer copies each record into a
//! batch and checksums it (CRC32C, as Kafka's v2 batches), the broker
//! reads the batch, checks the checksum and writes it into the page
//! cache of a log file. No HTTP/2, no protobuf, no async runtime, no
//! index, one reused buffer per side. Whatever this reaches is the
//! ceiling the "≥ 60 % of iperf3" produce target is judged
//! against (docs/benchmarks.md, "The floor").
//!
//! Four receivers: `network` (read and check only), `page-cache` (and
//! append to a new file, as a broker does), `page-cache-recycled` (and
//! drop the file's pages 64 MiB behind the end, so new appends land in
//! pages the guest just freed; see docs/storage.md on drop-behind) and
//! `fsync-per-batch` (`page-cache`, then `fdatasync` per batch).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// What the broker side does with each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sink {
    Network,
    PageCache,
    PageCacheRecycled,
    /// `page-cache`, then `fdatasync` before the next batch is read: the
    /// fsync-per-batch target's ceiling.
    FsyncPerBatch,
}

impl Sink {
    pub const ALL: [Sink; 4] = [
        Sink::Network,
        Sink::PageCache,
        Sink::PageCacheRecycled,
        Sink::FsyncPerBatch,
    ];
}

/// One run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    pub sink: Sink,
    pub record_size: usize,
    pub batch_bytes: usize,
    pub batches: u64,
    /// Record payload bytes per second, as `runnel perf` counts MB/s.
    pub payload_mb_s: f64,
}

/// Bytes before each record's value: Kafka's record header for a 1 KiB
/// value without key or headers (length, attributes, timestamp delta,
/// offset delta, key length, value length, header count).
const RECORD_HEADER: usize = 9;
/// Kafka's v2 batch header; the CRC covers what follows its first 21 bytes.
const BATCH_HEADER: usize = 61;
/// Pages further than this behind the file's end leave the page cache in
/// the recycled sink, every [`RECYCLE_STEP`] written.
const RECYCLE_BEHIND: u64 = 64 << 20;
const RECYCLE_STEP: u64 = 4 << 20;

/// Produce for `duration` over loopback into `sink` (files under `dir`).
pub fn measure(
    sink: Sink,
    record_size: usize,
    batch_bytes: usize,
    duration: Duration,
    dir: &Path,
) -> Result<Floor> {
    let per_record = RECORD_HEADER + record_size;
    let records_per_batch = (batch_bytes - BATCH_HEADER) / per_record;
    if records_per_batch == 0 {
        bail!("a {batch_bytes} B batch cannot hold one {record_size} B record");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let path = dir.join(format!("runnel-floor-{}.log", std::process::id()));
    let broker = std::thread::spawn(move || -> Result<u64> {
        let (socket, _) = listener.accept()?;
        let file = match sink {
            Sink::Network => None,
            _ => Some(File::create(&path).with_context(|| format!("creating {}", path.display()))?),
        };
        let received = receive(socket, file.as_ref(), sink);
        let _ = std::fs::remove_file(&path);
        received
    });
    let mut socket = TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    let value = vec![0x5a_u8; record_size];
    let mut batch = Vec::with_capacity(BATCH_HEADER + records_per_batch * per_record);
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < duration {
        batch.clear();
        batch.resize(BATCH_HEADER, 0);
        for i in 0..records_per_batch {
            let mut header = [0u8; RECORD_HEADER];
            header[0..2].copy_from_slice(&((per_record - 2) as u16).to_le_bytes());
            header[3..5].copy_from_slice(&(i as u16).to_le_bytes());
            batch.extend_from_slice(&header);
            batch.extend_from_slice(&value);
        }
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let len = (batch.len() - 12) as u32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        socket.write_all(&batch)?;
        batches += 1;
    }
    socket.shutdown(std::net::Shutdown::Write)?;
    let received = broker.join().expect("floor broker thread")?;
    let elapsed = start.elapsed();
    if received != batches {
        bail!("sent {batches} batches, the broker side read {received}");
    }
    Ok(Floor {
        sink,
        record_size,
        batch_bytes,
        batches,
        payload_mb_s: (batches * (records_per_batch * record_size) as u64) as f64
            / elapsed.as_secs_f64()
            / 1e6,
    })
}

/// The broker side: read each batch into one reused buffer, check its
/// CRC, append it to `file`. Returns the number of batches.
fn receive(mut socket: TcpStream, file: Option<&File>, sink: Sink) -> Result<u64> {
    let mut buf = Vec::new();
    let (mut batches, mut written, mut dropped_at) = (0u64, 0u64, 0u64);
    loop {
        let mut head = [0u8; 12];
        match socket.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(batches),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(head[8..12].try_into().unwrap()) as usize;
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(12 + len, 0);
        socket.read_exact(&mut buf[12..])?;
        let crc = u32::from_be_bytes(buf[17..21].try_into().unwrap());
        if crc32c::crc32c(&buf[21..]) != crc {
            bail!("batch {batches}: CRC mismatch");
        }
        if let Some(mut f) = file {
            f.write_all(&buf)?;
            written += buf.len() as u64;
            if sink == Sink::FsyncPerBatch {
                f.sync_data()?;
            }
            if sink == Sink::PageCacheRecycled
                && written - dropped_at >= RECYCLE_STEP
                && written > RECYCLE_BEHIND
            {
                // The first call on a range starts its writeback, a later
                // one drops the then clean pages: the broker's drop-behind.
                let upto = written - RECYCLE_BEHIND;
                rustix::fs::fadvise(
                    f,
                    0,
                    std::num::NonZeroU64::new(upto),
                    rustix::fs::Advice::DontNeed,
                )?;
                dropped_at = written;
            }
        }
        batches += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sink_receives_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        for sink in Sink::ALL {
            let f = measure(sink, 1024, 64 << 10, Duration::from_millis(100), dir.path()).unwrap();
            assert!(f.batches > 0 && f.payload_mb_s > 0.0, "{f:?}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "log files removed"
        );
    }

    #[test]
    fn refuses_a_batch_too_small_for_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let err = measure(
            Sink::Network,
            1024,
            512,
            Duration::from_millis(10),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot hold one 1024 B record"), "{err}");
    }
}
