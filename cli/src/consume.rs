//! `runnel consume TOPIC`: print records to stdout, like
//! `kafka-console-consumer`. Without `--follow` it stops at the end of the
//! log as it was when it started (the high watermark); with `--follow` it
//! keeps long-polling until interrupted.

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use runnel_client::{AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, Offset};
use serde_json::json;

use crate::Global;
use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Read only this partition [default: all partitions].
    #[arg(long, short = 'p')]
    partition: Option<u32>,
    /// Where to start: earliest, latest or an offset [default: earliest].
    /// With --group: where a group without committed offsets starts
    /// (auto.offset.reset; earliest or latest, default latest).
    #[arg(long, value_parser = parse_offset)]
    offset: Option<Offset>,
    /// Consume as a member of this consumer group: the group shares the
    /// topic's partitions among its members, and progress is committed so
    /// the next run continues where this one stopped. Runs until Ctrl-C or
    /// --max-messages.
    #[arg(long, short = 'g', conflicts_with = "partition")]
    group: Option<String>,
    /// With --group: without a heartbeat for this long the member is
    /// dropped and its partitions move (session.timeout.ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    session_timeout: Duration,
    /// Stop after this many records.
    #[arg(long, short = 'n', value_name = "N")]
    max_messages: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print the key before the value (text format).
    #[arg(long)]
    print_key: bool,
    /// Print partition and offset before the value (text format).
    #[arg(long)]
    print_offset: bool,
    /// Print the timestamp before the value (text format).
    #[arg(long)]
    print_timestamp: bool,
    /// Separator between printed fields (text format).
    #[arg(long, default_value = "\t")]
    separator: String,
    /// text: the value per line; json: one JSON object per record per line
    /// [default: json with --output json, else text].
    #[arg(long, value_enum)]
    format: Option<RecordFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    Text,
    Json,
}

fn parse_offset(s: &str) -> Result<Offset, String> {
    s.parse().map_err(|e: runnel_client::Error| e.to_string())
}

/// How one record is printed.
pub struct Printer {
    pub format: RecordFormat,
    pub key: bool,
    pub offset: bool,
    pub timestamp: bool,
    pub separator: String,
}

fn lossy(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

impl Printer {
    pub fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> io::Result<()> {
        match self.format {
            RecordFormat::Json => {
                let mut v = json!({
                    "topic": &*r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "key": lossy(r.key.as_deref()),
                    "value": lossy(r.value.as_deref()),
                });
                if !r.headers.is_empty() {
                    v["headers"] = r
                        .headers
                        .iter()
                        .map(|(k, v)| json!({ "key": k, "value": lossy(v.as_deref()) }))
                        .collect();
                }
                serde_json::to_writer(&mut *out, &v)?;
            }
            RecordFormat::Text => {
                let sep = self.separator.as_bytes();
                if self.timestamp {
                    write!(out, "CreateTime:{}", r.timestamp)?;
                    out.write_all(sep)?;
                }
                if self.offset {
                    write!(out, "Partition:{}", r.partition)?;
                    out.write_all(sep)?;
                    write!(out, "Offset:{}", r.offset)?;
                    out.write_all(sep)?;
                }
                if self.key {
                    out.write_all(r.key.as_deref().map_or(&b"null"[..], |k| k))?;
                    out.write_all(sep)?;
                }
                match r.value.as_deref() {
                    Some(v) => out.write_all(String::from_utf8_lossy(v).as_bytes())?,
                    None => out.write_all(b"null")?,
                }
            }
        }
        out.write_all(b"\n")
    }
}

pub async fn run(global: &Global, args: ConsumeArgs) -> Result<()> {
    if let Some(group) = args.group.clone() {
        return run_group(global, args, group).await;
    }
    let offset = args.offset.unwrap_or(Offset::Earliest);
    let config = ConsumerConfig {
        request_timeout: global.request_timeout,
        // An explicit offset outside the log is an error to report, not to
        // paper over.
        auto_offset_reset: AutoOffsetReset::None,
        ..Default::default()
    };
    let mut consumer = Consumer::connect(global.client_config(), config).await?;
    let count = consumer.partition_count(&args.topic).await?;
    if matches!(offset, Offset::At(_)) && args.partition.is_none() && count > 1 {
        bail!(
            "--offset N needs --partition: topic {:?} has {count} partitions",
            args.topic
        );
    }
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= count => {
            bail!(
                "topic {:?} has no partition {p} (it has {count}: 0 to {})",
                args.topic,
                count - 1
            )
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let names: Vec<(&str, u32)> = partitions
        .iter()
        .map(|p| (args.topic.as_str(), *p))
        .collect();
    consumer.assign(names.iter().copied());
    for (topic, p) in &names {
        consumer.seek(topic, *p, offset).await?;
    }
    let end_offsets = consumer.end_offsets(&names).await?;
    if let Offset::At(n) = offset {
        let (topic, p) = names[0];
        let start = consumer.beginning_offsets(&names).await?[0];
        let end = end_offsets[0];
        if n < start || n > end {
            let holds = if start == end {
                format!("it is empty (next offset {end})")
            } else {
                format!("it holds offsets {start} to {}", end - 1)
            };
            bail!(
                "offset {n} is out of range for {topic}-{p}: {holds}; use --offset earliest or latest"
            );
        }
    }
    // Without --follow: stop once every partition reaches its end as of now.
    let ends = if args.follow { None } else { Some(end_offsets) };

    let printer = printer(global, &args);
    let mut out = BufWriter::new(io::stdout());
    let mut printed = 0u64;
    let max = args.max_messages.unwrap_or(u64::MAX);
    let at_end = |consumer: &Consumer| match &ends {
        None => false,
        Some(ends) => names
            .iter()
            .zip(ends)
            .all(|((t, p), end)| consumer.position(t, *p).is_some_and(|pos| pos >= *end)),
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: while printed < max && !at_end(&consumer) {
        let records = tokio::select! {
            records = consumer.poll(Duration::from_secs(1)) => records?,
            _ = &mut ctrl_c => break,
        };
        for r in &records {
            if let Some(ends) = &ends {
                // Records past the starting end are not printed, even if
                // the fetch that brought the last wanted ones carried them.
                let end = partitions
                    .iter()
                    .position(|p| *p == r.partition)
                    .map(|i| ends[i]);
                if end.is_some_and(|end| r.offset >= end) {
                    continue;
                }
            }
            printer.write(&mut out, r)?;
            printed += 1;
            if printed >= max {
                break 'outer;
            }
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(())
}

fn printer(global: &Global, args: &ConsumeArgs) -> Printer {
    Printer {
        format: args.format.unwrap_or(match global.output {
            OutputFormat::Json => RecordFormat::Json,
            OutputFormat::Table => RecordFormat::Text,
        }),
        key: args.print_key,
        offset: args.print_offset,
        timestamp: args.print_timestamp,
        separator: args.separator.clone(),
    }
}

/// `--group`: subscribe and print until Ctrl-C or `--max-messages`, then
/// leave the group cleanly. Offsets are committed automatically (and before
/// a partition moves to another member); at the end, positions are first
/// moved back to the first record not printed, so the commit on close
/// covers exactly what was printed.
async fn run_group(global: &Global, args: ConsumeArgs, group: String) -> Result<()> {
    let reset = match args.offset {
        None | Some(Offset::Latest) => AutoOffsetReset::Latest,
        Some(Offset::Earliest) => AutoOffsetReset::Earliest,
        Some(other) => bail!(
            "with --group, --offset is earliest or latest (where a group without committed \
             offsets starts), not {other}"
        ),
    };
    let config = ConsumerConfig {
        request_timeout: global.request_timeout,
        auto_offset_reset: reset,
        group_id: Some(group),
        client_id: "runnel-cli".into(),
        session_timeout: args.session_timeout,
        auto_commit_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let mut consumer = Consumer::connect(global.client_config(), config).await?;
    consumer.partition_count(&args.topic).await?;
    consumer.subscribe([&args.topic])?;
    let printer = printer(global, &args);
    let mut out = BufWriter::new(io::stdout());
    let max = args.max_messages.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: while printed < max {
        let records = tokio::select! {
            records = consumer.poll(Duration::from_secs(1)) => records?,
            _ = &mut ctrl_c => break,
        };
        for (i, r) in records.iter().enumerate() {
            printer.write(&mut out, r)?;
            printed += 1;
            if printed >= max {
                out.flush()?;
                // Not printed: back to the first of each partition's rest.
                let mut rewind: std::collections::BTreeMap<(String, u32), i64> = Default::default();
                for rest in &records[i + 1..] {
                    rewind
                        .entry((rest.topic.to_string(), rest.partition))
                        .or_insert(rest.offset);
                }
                for ((topic, partition), offset) in rewind {
                    consumer.seek(&topic, partition, Offset::At(offset)).await?;
                }
                break 'outer;
            }
        }
        out.flush()?;
    }
    out.flush()?;
    consumer.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("t"),
            partition: 1,
            offset: 7,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"hello \xff")),
            headers: Vec::new(),
        }
    }

    fn render(p: &Printer, r: &ConsumerRecord) -> String {
        let mut out = Vec::new();
        p.write(&mut out, r).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn printer(format: RecordFormat, all: bool) -> Printer {
        Printer {
            format,
            key: all,
            offset: all,
            timestamp: all,
            separator: "\t".into(),
        }
    }

    #[test]
    fn text_is_the_value_lossy() {
        assert_eq!(
            render(&printer(RecordFormat::Text, false), &record()),
            "hello \u{fffd}\n"
        );
        let tombstone = ConsumerRecord {
            value: None,
            ..record()
        };
        assert_eq!(
            render(&printer(RecordFormat::Text, false), &tombstone),
            "null\n"
        );
    }

    #[test]
    fn text_with_every_field() {
        assert_eq!(
            render(&printer(RecordFormat::Text, true), &record()),
            "CreateTime:1700000000000\tPartition:1\tOffset:7\tk\thello \u{fffd}\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let line = render(&printer(RecordFormat::Json, false), &record());
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({"topic": "t", "partition": 1, "offset": 7, "timestamp": 1_700_000_000_000i64,
                   "key": "k", "value": "hello \u{fffd}"})
        );
        let with_headers = ConsumerRecord {
            key: None,
            headers: vec![("h".into(), None)],
            ..record()
        };
        let v: serde_json::Value =
            serde_json::from_str(&render(&printer(RecordFormat::Json, false), &with_headers))
                .unwrap();
        assert_eq!(v["key"], serde_json::Value::Null);
        assert_eq!(v["headers"], json!([{"key": "h", "value": null}]));
    }
}
