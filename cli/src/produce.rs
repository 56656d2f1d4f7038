//! `runnel produce TOPIC`: one record per stdin line, like
//! `kafka-console-producer`. Waits for every acknowledgement; exits 1 if any
//! record failed.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use runnel_client::{Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

use crate::Global;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to (it must exist).
    topic: String,
    /// Split each line at the first SEP: key before, value after.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition [default: by key, else sticky].
    #[arg(long, short = 'p')]
    partition: Option<u32>,
    /// Acknowledgement level: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Idempotent producer (enable.idempotence): retries never write a
    /// record twice. Needs --acks all and a broker with InitProducerId
    /// [default: true with --acks all, else false].
    #[arg(long, value_name = "true|false")]
    idempotence: Option<bool>,
    /// Codec for each batch (compression.type): none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Print how many records were written (on stderr).
    #[arg(long, short = 'v')]
    verbose: bool,
}

/// `--idempotence`, defaulting as Kafka does when it is not set: on when
/// acks=all (Kafka >= 3.0), off otherwise (idempotence needs acks=all).
pub fn idempotence(acks: Acks, flag: Option<bool>) -> bool {
    flag.unwrap_or(acks == Acks::All)
}

/// The producer config every command starts from: the global request
/// timeout, with `delivery_timeout` stretched to cover it if needed.
pub fn base_config(global: &Global, acks: Acks, idempotence_flag: Option<bool>) -> ProducerConfig {
    let defaults = ProducerConfig::default();
    ProducerConfig {
        acks,
        enable_idempotence: idempotence(acks, idempotence_flag),
        request_timeout: global.request_timeout,
        delivery_timeout: defaults
            .delivery_timeout
            .max(defaults.linger + global.request_timeout),
        ..defaults
    }
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse().map_err(|e: runnel_client::Error| e.to_string())
}

/// `--compression`: Kafka's `compression.type` names.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
        .map_err(|_| format!("unknown compression {s:?}; expected none, gzip, snappy, lz4 or zstd"))
}

/// Acknowledgements awaited before reading more input: bounds memory when
/// stdin is a large file.
const MAX_PENDING: usize = 10_000;

/// Failed records reported one by one before only counting.
const MAX_REPORTED: u64 = 10;

/// Split `line` into key and value at the first `separator`.
pub fn split_line<'a>(
    line: &'a [u8],
    separator: Option<&[u8]>,
) -> Result<(Option<&'a [u8]>, &'a [u8]), ()> {
    let Some(sep) = separator else {
        return Ok((None, line));
    };
    let at = line.windows(sep.len()).position(|w| w == sep).ok_or(())?;
    Ok((Some(&line[..at]), &line[at + sep.len()..]))
}

/// Drop a trailing `\n` or `\r\n`.
pub fn trim_newline(mut line: &[u8]) -> &[u8] {
    if let Some(rest) = line.strip_suffix(b"\n") {
        line = rest;
        if let Some(rest) = line.strip_suffix(b"\r") {
            line = rest;
        }
    }
    line
}

struct Tally {
    sent: u64,
    failed: u64,
}

impl Tally {
    async fn settle(&mut self, line: u64, delivery: DeliveryFuture) {
        match delivery.await {
            Ok(_) => self.sent += 1,
            Err(e) => {
                self.failed += 1;
                if self.failed <= MAX_REPORTED {
                    eprintln!("error: line {line}: {e}");
                }
            }
        }
    }
}

pub async fn run(global: &Global, args: ProduceArgs) -> Result<()> {
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    let config = ProducerConfig {
        compression: args.compression,
        ..base_config(global, args.acks, args.idempotence)
    };
    let producer = Producer::connect(global.client_config(), config).await?;
    let topic: Arc<str> = args.topic.as_str().into();
    // Fail before reading stdin if the topic does not exist.
    producer.partition_count(&topic).await?;

    // Blocking reads on their own thread, lines to this task.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(1024);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });

    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut pending: VecDeque<(u64, DeliveryFuture)> = VecDeque::new();
    let mut tally = Tally { sent: 0, failed: 0 };
    let mut line_no = 0u64;
    let mut input_error = None;
    while let Some(line) = rx.recv().await {
        line_no += 1;
        let line = line.context("reading stdin")?;
        let line = trim_newline(&line);
        let Ok((key, value)) = split_line(line, separator) else {
            input_error = Some(format!(
                "line {line_no} has no key separator {:?}",
                args.key_separator.as_deref().unwrap_or_default()
            ));
            break;
        };
        let record = ProducerRecord {
            topic: topic.clone(),
            partition: args.partition,
            key: key.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(value)),
            headers: Vec::new(),
            timestamp: None,
        };
        let delivery = producer
            .send(record)
            .await
            .with_context(|| format!("line {line_no}"))?;
        pending.push_back((line_no, delivery));
        while pending.len() > MAX_PENDING {
            let (line, delivery) = pending.pop_front().expect("not empty");
            tally.settle(line, delivery).await;
        }
    }
    producer.flush().await;
    for (line, delivery) in pending {
        tally.settle(line, delivery).await;
    }
    producer.close().await;

    if args.verbose {
        eprintln!("produced {} records to {:?}", tally.sent, args.topic);
    }
    if let Some(e) = input_error {
        bail!("{e}; {} records before it were produced", tally.sent);
    }
    if tally.failed > 0 {
        bail!(
            "{} of {} records failed",
            tally.failed,
            tally.sent + tally.failed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotence_defaults_like_kafka() {
        assert!(idempotence(Acks::All, None));
        assert!(!idempotence(Acks::Leader, None));
        assert!(!idempotence(Acks::All, Some(false)));
        assert!(
            idempotence(Acks::Leader, Some(true)),
            "then connect says why not"
        );
    }

    #[test]
    fn compression_flag() {
        assert_eq!(parse_compression("none"), Ok(Compression::None));
        assert_eq!(parse_compression("lz4"), Ok(Compression::Lz4));
        assert_eq!(parse_compression("ZSTD"), Ok(Compression::Zstd));
        assert_eq!(parse_compression("gzip"), Ok(Compression::Gzip));
        assert_eq!(parse_compression("Snappy"), Ok(Compression::Snappy));
        assert_eq!(
            parse_compression("brotli"),
            Err("unknown compression \"brotli\"; expected none, gzip, snappy, lz4 or zstd".into())
        );
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_line(b"k:v:w", Some(b":")),
            Ok((Some(&b"k"[..]), &b"v:w"[..]))
        );
        assert_eq!(
            split_line(b"k::v", Some(b"::")),
            Ok((Some(&b"k"[..]), &b"v"[..]))
        );
        assert_eq!(
            split_line(b":v", Some(b":")),
            Ok((Some(&b""[..]), &b"v"[..]))
        );
        assert_eq!(split_line(b"novalue", Some(b":")), Err(()));
        assert_eq!(split_line(b"a:b", None), Ok((None, &b"a:b"[..])));
    }

    #[test]
    fn newline_trimming() {
        assert_eq!(trim_newline(b"abc\n"), b"abc");
        assert_eq!(trim_newline(b"abc\r\n"), b"abc");
        assert_eq!(trim_newline(b"abc"), b"abc");
        assert_eq!(trim_newline(b"\n"), b"");
        assert_eq!(trim_newline(b"a\rb"), b"a\rb");
    }
}
