//! Workload files (`bench/workloads/*.toml`), in the spirit of the
//! OpenMessaging Benchmark's: one topic, its partitions, the message size,
//! how long each timed phase runs.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub description: String,
    pub partitions: u32,
    /// Payload bytes per message.
    pub message_size: usize,
    /// Length of the max-throughput phase and of the fixed-rate phase.
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Runnel's producer settings for this workload, where they differ
    /// from the suite's (a batch-friendly workload). The peers' clients
    /// have no batch size or linger of their own and run as always.
    #[serde(default)]
    pub runnel_producer: ProducerSettings,
}

/// Kafka's `batch.size`, `linger.ms` and `max.request.size` of the Runnel
/// producer; unset = the suite's defaults (see `driver::runnel`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSettings {
    pub batch_size: Option<usize>,
    #[serde(default, with = "humantime_serde_compat::option")]
    pub linger: Option<Duration>,
    pub max_request_size: Option<usize>,
}

/// `duration = "10s"` through humantime.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use std::time::Duration;

        use serde::Deserializer;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

impl Workload {
    pub fn parse(text: &str) -> Result<Self> {
        let w: Workload = toml::from_str(text)?;
        if w.partitions == 0 {
            bail!("partitions must be at least 1");
        }
        // The end-to-end phase stamps the send time into the first 8 bytes.
        if w.message_size < crate::runner::STAMP_LEN {
            bail!(
                "message_size must be at least {} bytes",
                crate::runner::STAMP_LEN
            );
        }
        if w.duration.is_zero() {
            bail!("duration must be more than 0");
        }
        let p = &w.runnel_producer;
        if p.batch_size == Some(0) {
            bail!("runnel_producer.batch_size must be at least 1 byte");
        }
        if let (Some(batch), Some(request)) = (p.batch_size, p.max_request_size)
            && request < batch
        {
            bail!(
                "runnel_producer.max_request_size ({request}) must be at least batch_size ({batch})"
            );
        }
        Ok(w)
    }

    /// A workload file, or every `*.toml` in a directory (by file name).
    pub fn load(path: &Path) -> Result<Vec<Workload>> {
        let files = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_owned()]
        };
        if files.is_empty() {
            bail!("no *.toml workload files in {}", path.display());
        }
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                Workload::parse(&text).with_context(|| format!("workload {}", f.display()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_bad_files() {
        let w = Workload::parse(
            "name = \"a\"\ndescription = \"d\"\npartitions = 16\nmessage_size = 1024\nduration = \"10s\"\n",
        )
        .unwrap();
        assert_eq!((w.partitions, w.message_size), (16, 1024));
        assert_eq!(w.duration, Duration::from_secs(10));
        assert_eq!(w.runnel_producer, ProducerSettings::default());
        let w = Workload::parse(
            "name = \"a\"\ndescription = \"d\"\npartitions = 1\nmessage_size = 1024\nduration = \"10s\"\n\
             [runnel_producer]\nbatch_size = 1048576\nlinger = \"5ms\"\n",
        )
        .unwrap();
        assert_eq!(w.runnel_producer.batch_size, Some(1 << 20));
        assert_eq!(w.runnel_producer.linger, Some(Duration::from_millis(5)));

        let bad = [
            ("partitions = 0", "partitions must be"),
            ("message_size = 4", "message_size must be"),
            ("duration = \"0s\"", "duration must be"),
            ("colour = 1", "unknown field"),
            ("[runnel_producer]\nbatch_size = 0", "batch_size must be"),
            (
                "[runnel_producer]\nbatch_size = 2048\nmax_request_size = 1024",
                "must be at least batch_size",
            ),
            ("[runnel_producer]\nlinger = \"soon\"", "linger"),
        ];
        for (line, expected) in bad {
            let mut text = String::from("name = \"a\"\ndescription = \"d\"\n");
            for (k, v) in [
                ("partitions", "1"),
                ("message_size", "100"),
                ("duration", "\"1s\""),
            ] {
                if !line.starts_with(k) {
                    text += &format!("{k} = {v}\n");
                }
            }
            text += line;
            let err = format!("{:#}", Workload::parse(&text).unwrap_err());
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn the_shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let all = Workload::load(&dir).unwrap();
        assert!(all.len() >= 4, "{all:?}");
        for (p, size) in [(1, 100), (1, 1024), (16, 100), (16, 1024)] {
            assert!(
                all.iter()
                    .any(|w| w.partitions == p && w.message_size == size),
                "no workload with {p} partitions of {size} B"
            );
        }
        // The machine-ratio targets are judged on a batch-friendly one.
        assert!(
            all.iter().any(|w| w.message_size == 1024
                && w.runnel_producer.batch_size.is_some_and(|b| b >= 1 << 20)),
            "no batch-friendly 1 KiB workload"
        );
    }
}
