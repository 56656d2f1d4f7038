//! `runnel cluster describe`: the live brokers with their gRPC and Kafka
//! addresses, racks and which one is the controller (Kafka's
//! `kafka-broker-api-versions` / `kafka-metadata-quorum describe`);
//! `runnel cluster config describe|alter`: the dynamic cluster-wide defaults
//! of topic configs (Kafka's `kafka-configs --entity-type brokers
//! --entity-default`).

use std::collections::BTreeMap;

use anyhow::Result;
use clap::{ArgGroup, Args, Subcommand};
use runnel_client::{Admin, ClusterConfigEntry};
use serde_json::{Value, json};

use crate::Global;
use crate::output::{self, OutputFormat};
use crate::topic::parse_key_value;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// The live brokers: id, gRPC and Kafka addresses, rack, controller.
    Describe,
    /// Dynamic cluster-wide defaults of topic configs.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Show every dynamic key with its value and source (dynamic, broker
    /// config file/flags, or Kafka's default).
    Describe,
    /// Set or remove dynamic defaults; every broker applies them at once to
    /// every topic without its own override.
    #[command(group(ArgGroup::new("change").required(true).multiple(true)
        .args(["set", "delete"])))]
    Alter {
        /// Set a dynamic default by broker config name, e.g.
        /// --set log.retention.ms=3600000 (repeatable).
        #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove a dynamic default, back to each broker's static config
        /// (repeatable).
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
        /// Check the change; make none.
        #[arg(long)]
        validate_only: bool,
    },
}

pub async fn run(global: &Global, args: ClusterArgs) -> Result<()> {
    let admin = Admin::connect(global.client_config()).await?;
    let json = global.output == OutputFormat::Json;
    let command = match args.command {
        ClusterCommand::Describe => return describe(&admin, json).await,
        ClusterCommand::Config { command } => command,
    };
    match command {
        ConfigCommand::Describe => {
            let configs = admin.describe_cluster_configs().await?;
            if json {
                output::print_json(&configs_json(&configs))?;
            } else {
                output::print_line(&configs_table(&configs))?;
            }
        }
        ConfigCommand::Alter {
            set,
            delete,
            validate_only,
        } => {
            let set: BTreeMap<String, String> = set.into_iter().collect();
            let configs = admin
                .alter_cluster_configs(&set, &delete, validate_only)
                .await?;
            if json {
                output::print_json(&configs_json(&configs))?;
            } else {
                let verb = if validate_only {
                    "would change"
                } else {
                    "changed"
                };
                let mut changed: Vec<String> =
                    set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                changed.extend(delete.iter().map(|k| format!("-{k}")));
                output::print_line(&format!(
                    "{verb} cluster configs: {}\n\n{}",
                    changed.join(", "),
                    configs_table(&configs)
                ))?;
            }
        }
    }
    Ok(())
}

fn source(entry: &ClusterConfigEntry) -> &'static str {
    output::source_name(entry.source())
}

fn configs_table(configs: &[ClusterConfigEntry]) -> String {
    output::table(
        &["CONFIG", "VALUE", "SOURCE", "TOPIC CONFIG"],
        configs.iter().map(|c| {
            [
                c.name.clone(),
                c.value.clone(),
                source(c).to_owned(),
                c.topic_config.clone(),
            ]
        }),
    )
}

fn configs_json(configs: &[ClusterConfigEntry]) -> Value {
    Value::Array(
        configs
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "value": c.value,
                    "source": source(c),
                    "topic_config": c.topic_config,
                })
            })
            .collect(),
    )
}

/// `runnel cluster describe`.
async fn describe(admin: &Admin, json: bool) -> Result<()> {
    let metadata = admin.metadata(&[]).await?;
    let mut brokers = metadata.brokers.clone();
    brokers.sort_by_key(|b| b.id);
    let address = |host: &str, port: u32| {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    if json {
        output::print_json(&json!({
            "cluster_id": metadata.cluster_id,
            "controller_id": metadata.controller_id,
            "brokers": brokers.iter().map(|b| json!({
                "id": b.id,
                "grpc": address(&b.host, b.port),
                "kafka": address(&b.kafka_host, b.kafka_port),
                "rack": b.rack,
                "controller": b.id == metadata.controller_id,
            })).collect::<Vec<Value>>(),
        }))?;
        return Ok(());
    }
    let rows = brokers.iter().map(|b| {
        vec![
            b.id.to_string(),
            address(&b.host, b.port),
            address(&b.kafka_host, b.kafka_port),
            if b.rack.is_empty() {
                "-".to_owned()
            } else {
                b.rack.clone()
            },
            if b.id == metadata.controller_id {
                "yes".to_owned()
            } else {
                String::new()
            },
        ]
    });
    let table = output::table(&["ID", "GRPC", "KAFKA", "RACK", "CONTROLLER"], rows);
    output::print_line(&format!(
        "Cluster: {}  Brokers: {}\n\n{table}",
        metadata.cluster_id,
        brokers.len()
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use runnel_client::ConfigSource;

    use super::*;

    #[test]
    fn table_and_json_show_name_value_source() {
        let configs = [ClusterConfigEntry {
            name: "log.retention.ms".into(),
            value: "3600000".into(),
            source: ConfigSource::DynamicDefault as i32,
            topic_config: "retention.ms".into(),
        }];
        let table = configs_table(&configs);
        assert!(
            table.contains("log.retention.ms  3600000  dynamic  retention.ms"),
            "{table}"
        );
        assert_eq!(configs_json(&configs)[0]["source"], "dynamic");
    }
}
