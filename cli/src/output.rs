//! How results look: human tables (kubectl-style columns, no borders) by
//! default, one JSON document with `--output json` for scripts. Every
//! command builds its JSON with these helpers so field names stay the same
//! across commands.

use std::io::{self, Write};

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets};
use runnel_client::{
    ConfigEntry, ConfigSource, PartitionDescription, TopicDescription, TopicListing,
};
use serde_json::{Value, json};

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// Columns with a header row, padded with spaces, no borders.
pub fn table<R: IntoIterator<Item = String>>(
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row.into_iter().collect::<Vec<_>>());
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    // Trailing padding is noise in a terminal and in tests.
    table
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Print `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}

/// Print a line on stdout.
pub fn print_line(line: &str) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{line}")
}

/// `1.5 KiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn config_source(entry: &ConfigEntry) -> &'static str {
    source_name(entry.source())
}

/// How a config's source is printed, in tables and JSON alike.
pub fn source_name(source: ConfigSource) -> &'static str {
    match source {
        ConfigSource::Default => "default",
        ConfigSource::Topic => "topic",
        ConfigSource::Broker => "broker",
        ConfigSource::DynamicDefault => "dynamic",
    }
}

fn ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

pub fn topic_list_table(topics: &[TopicListing]) -> String {
    table(
        &["NAME", "PARTITIONS", "REPLICATION FACTOR", "TOPIC ID"],
        topics.iter().map(|t| {
            [
                t.name.clone(),
                t.partitions.to_string(),
                t.replication_factor.to_string(),
                t.topic_id.clone(),
            ]
        }),
    )
}

pub fn topic_list_json(topics: &[TopicListing]) -> Value {
    Value::Array(
        topics
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "topic_id": t.topic_id,
                    "partitions": t.partitions,
                    "replication_factor": t.replication_factor,
                    "internal": t.internal,
                })
            })
            .collect(),
    )
}

/// Summary line, partition table and config table, blank-line separated.
pub fn topic_description_table(topic: &TopicDescription) -> String {
    let summary = format!(
        "Topic: {}  ID: {}  Partitions: {}  Replication factor: {}",
        topic.name,
        topic.topic_id,
        topic.partitions.len(),
        topic.replication_factor
    );
    let partitions = table(
        &[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG START",
            "HIGH WATERMARK",
            "LOG END",
            "SIZE",
        ],
        topic.partitions.iter().map(|p| {
            [
                p.partition.to_string(),
                p.leader.to_string(),
                p.leader_epoch.to_string(),
                ids(&p.replicas),
                ids(&p.isr),
                p.log_start_offset.to_string(),
                p.high_watermark.to_string(),
                p.log_end_offset.to_string(),
                human_bytes(p.size_bytes),
            ]
        }),
    );
    let mut configs: Vec<&ConfigEntry> = topic.configs.iter().collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    let configs = table(
        &["CONFIG", "VALUE", "SOURCE"],
        configs
            .iter()
            .map(|c| [c.name.clone(), c.value.clone(), config_source(c).to_owned()]),
    );
    format!("{summary}\n\n{partitions}\n\n{configs}")
}

fn partition_json(p: &PartitionDescription) -> Value {
    json!({
        "partition": p.partition,
        "leader": p.leader,
        "leader_epoch": p.leader_epoch,
        "replicas": p.replicas,
        "isr": p.isr,
        "log_start_offset": p.log_start_offset,
        "high_watermark": p.high_watermark,
        "log_end_offset": p.log_end_offset,
        "size_bytes": p.size_bytes,
    })
}

pub fn topic_description_json(topic: &TopicDescription) -> Value {
    let mut configs: Vec<&ConfigEntry> = topic.configs.iter().collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    json!({
        "name": topic.name,
        "topic_id": topic.topic_id,
        "internal": topic.internal,
        "replication_factor": topic.replication_factor,
        "partitions": topic.partitions.iter().map(partition_json).collect::<Vec<_>>(),
        "configs": configs
            .iter()
            .map(|c| json!({ "name": c.name, "value": c.value, "source": config_source(c) }))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description() -> TopicDescription {
        TopicDescription {
            name: "events".into(),
            topic_id: "abc".into(),
            partitions: vec![PartitionDescription {
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1, 2],
                isr: vec![1],
                log_start_offset: 0,
                high_watermark: 42,
                log_end_offset: 43,
                size_bytes: 2048,
            }],
            replication_factor: 2,
            configs: vec![
                ConfigEntry {
                    name: "segment.bytes".into(),
                    value: "1024".into(),
                    source: ConfigSource::Topic as i32,
                },
                ConfigEntry {
                    name: "retention.ms".into(),
                    value: "-1".into(),
                    source: ConfigSource::Default as i32,
                },
            ],
            internal: false,
        }
    }

    #[test]
    fn table_aligns_columns_without_borders() {
        let t = table(
            &["NAME", "N"],
            [["a".to_owned(), "1".into()], ["longer".into(), "22".into()]],
        );
        assert_eq!(t, "NAME    N\na       1\nlonger  22");
    }

    #[test]
    fn describe_table_has_partitions_and_sorted_configs() {
        let text = topic_description_table(&description());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Topic: events  ID: abc  Partitions: 1  Replication factor: 2"
        );
        assert!(
            lines[2].starts_with("PARTITION  LEADER  EPOCH  REPLICAS  ISR"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains("1,2") && lines[3].contains("2.0 KiB"),
            "{}",
            lines[3]
        );
        let retention = lines
            .iter()
            .position(|l| l.starts_with("retention.ms"))
            .unwrap();
        let segment = lines
            .iter()
            .position(|l| l.starts_with("segment.bytes"))
            .unwrap();
        assert!(retention < segment);
        assert!(lines[segment].ends_with("topic"));
    }

    #[test]
    fn describe_json_has_stable_field_names() {
        let v = topic_description_json(&description());
        assert_eq!(v["name"], "events");
        assert_eq!(v["partitions"][0]["high_watermark"], 42);
        assert_eq!(v["partitions"][0]["replicas"], json!([1, 2]));
        assert_eq!(
            v["configs"][0],
            json!({"name": "retention.ms", "value": "-1", "source": "default"})
        );
    }

    #[test]
    fn list_outputs() {
        let topics = vec![TopicListing {
            name: "a".into(),
            topic_id: "id1".into(),
            partitions: 3,
            replication_factor: 1,
            internal: false,
        }];
        let t = topic_list_table(&topics);
        assert_eq!(
            t.lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["a", "3", "1", "id1"]
        );
        assert_eq!(topic_list_json(&topics)[0]["partitions"], 3);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
