//! The history of a chaos run: every operation a client invoked and how it
//! ended, every nemesis action, and what the harness read back after the
//! faults healed. One JSON object per line (`DIR/history.jsonl`), written as
//! it happens, so a run that dies half-way still leaves what it saw.
//!
//! Values are unique per run: `"<client>-<seq>"`, with `seq` counting up
//! from 0 per producer client, so the checker can tell who wrote what and in
//! which order it was sent.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the run started.
    pub t: u64,
    /// Who did it: a producer or consumer name (`grpc-p0`, `kafka-c1`), or
    /// `nemesis`, or `harness`.
    pub process: String,
    #[serde(flatten)]
    pub op: Op,
}

/// What happened. A send's outcome is one of `Ack` (definitely written, at
/// that offset) or `SendFailed` (indeterminate: it may or may not have been
/// written, as with any Kafka producer error after the request went out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A producer handed a value to its client library.
    Send { partition: u32, value: String },
    /// The value was acknowledged (acks=all) at `offset`; negative when
    /// the client did not say where (librdkafka reports a record as
    /// delivered at `RD_KAFKA_OFFSET_INVALID`, -1001, when a later record's
    /// acknowledgement or DUPLICATE_SEQUENCE_NUMBER implies it was written).
    Ack {
        partition: u32,
        value: String,
        offset: i64,
    },
    /// The send ended with an error.
    SendFailed {
        partition: u32,
        value: String,
        error: String,
    },
    /// A group consumer read `value` at `offset`.
    Read {
        partition: u32,
        offset: i64,
        value: String,
    },
    /// A group consumer's commit of `offset` (the next offset to read) was
    /// acknowledged.
    Commit {
        group: String,
        partition: u32,
        offset: i64,
    },
    /// A commit ended with an error (it may or may not have been stored).
    CommitFailed {
        group: String,
        partition: u32,
        offset: i64,
        error: String,
    },
    /// A nemesis began (`start`) or healed (`stop`) a fault.
    Nemesis {
        name: String,
        action: NemesisAction,
        detail: String,
    },
    /// After the faults healed: one record of the whole partition as read
    /// from its leader, from the log start to the high watermark.
    FinalRead {
        partition: u32,
        offset: i64,
        value: String,
    },
    /// The partition's high watermark when the final read ran.
    FinalHighWatermark { partition: u32, offset: i64 },
    /// After the brokers stopped: the record batches one replica holds,
    /// read from its data directory, as `[base_offset, last_offset, crc]`.
    ReplicaBatches {
        broker: i32,
        partition: u32,
        batches: Vec<(i64, i64, u32)>,
        /// Who wrote each batch (same order): `[producer_id,
        /// producer_epoch, base_sequence]`, `-1`s for a non-idempotent
        /// batch. Tells a broker that failed to de-duplicate a retry (two
        /// copies under one epoch) from a client that resent under a new
        /// epoch. Absent in histories older than the field.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        writers: Vec<(i64, i16, i32)>,
    },
    /// A broker or etcd member the harness had not stopped was found dead
    /// (a crash: a panic, an abort, a signal such as SIGBUS).
    ProcessExited { name: String, status: String },
    /// A note from the harness (topology, leader changes seen, ...).
    Info { message: String },
}

/// Whether a nemesis entry starts or ends its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NemesisAction {
    Start,
    Stop,
}

/// Appends entries to `history.jsonl`; cheap to clone and share between
/// tasks. Each entry is one `write` of a whole line, flushed at once, so
/// concurrent writers never interleave within a line.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    out: Arc<Mutex<BufWriter<File>>>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            start: Instant::now(),
            out: Arc::new(Mutex::new(BufWriter::new(file))),
        })
    }

    /// Record `op` by `process` now.
    pub fn record(&self, process: &str, op: Op) {
        let entry = Entry {
            t: self.start.elapsed().as_millis() as u64,
            process: process.to_owned(),
            op,
        };
        let mut line = serde_json::to_string(&entry).expect("history entries serialise");
        line.push('\n');
        let mut out = self.out.lock().expect("history lock");
        // A full disk under the harness's own output is not a finding of the
        // run; say it once on stderr rather than abort the workload.
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            eprintln!("chaos: writing the history failed: {e}");
        }
    }

    /// Milliseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Read a history back, keeping each entry's line number (1-based) for the
/// checker's report.
pub fn load(path: &Path) -> Result<Vec<(usize, Entry)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|e| (i + 1, e))
                .with_context(|| format!("{}:{}: not a history entry", path.display(), i + 1))
        })
        .collect()
}
