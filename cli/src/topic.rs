//! `runnel topic create|list|describe|alter|reassign|reassignments|delete`.

use anyhow::Result;
use clap::{ArgGroup, Args, Subcommand};
use runnel_client::{Admin, AlterTopic};
use serde_json::json;

use crate::Global;
use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name: ASCII letters, digits, '.', '_' and '-'.
        name: String,
        /// Number of partitions [default: the broker's num.partitions].
        #[arg(long, short = 'p')]
        partitions: Option<u32>,
        /// Replicas per partition [default: the broker's default.replication.factor].
        #[arg(long, short = 'r')]
        replication_factor: Option<u32>,
        /// A topic config, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Check the request; create nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// List topics.
    List {
        /// Include internal topics.
        #[arg(long)]
        include_internal: bool,
    },
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Add partitions and/or change configs.
    #[command(group(ArgGroup::new("change").required(true).multiple(true)
        .args(["partitions", "configs", "delete_configs"])))]
    Alter {
        /// Topic name.
        name: String,
        /// The new, larger partition count.
        #[arg(long, short = 'p')]
        partitions: Option<u32>,
        /// Set a topic config, e.g. --config retention.ms=3600000 (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Remove a config override, back to the broker default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Check the change; make none.
        #[arg(long)]
        validate_only: bool,
    },
    /// Move a partition to new replicas (new ones copy the log first; the
    /// switch happens once they are in sync), or cancel a move.
    #[command(group(ArgGroup::new("target").required(true).args(["replicas", "cancel"])))]
    Reassign {
        /// Topic name.
        name: String,
        /// The partition to move.
        #[arg(long, short = 'p')]
        partition: u32,
        /// New replica broker ids, preferred leader first, e.g. --replicas 3,1,2.
        #[arg(long, value_delimiter = ',')]
        replicas: Vec<i32>,
        /// Cancel the partition's reassignment in progress.
        #[arg(long)]
        cancel: bool,
    },
    /// List partition reassignments in progress.
    Reassignments {
        /// Only this topic.
        name: Option<String>,
    },
    /// Delete a topic and all its records.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// `KEY=VALUE`, split at the first `=`; the value may be empty or hold `=`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("empty config name in {s:?}; expected KEY=VALUE"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

pub async fn run(global: &Global, args: TopicArgs) -> Result<()> {
    let admin = Admin::connect(global.client_config()).await?;
    let json = global.output == OutputFormat::Json;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            let topic = runnel_client::NewTopic {
                name: name.clone(),
                partitions: partitions.unwrap_or(0),
                replication_factor: replication_factor.unwrap_or(0),
                configs: configs.into_iter().collect(),
            };
            let created = admin.create_topics(vec![topic], validate_only).await?;
            let described = created.into_iter().find(|t| t.name == name);
            if json {
                output::print_json(
                    &described
                        .map(|t| output::topic_description_json(&t))
                        .unwrap_or(json!({"name": name})),
                )?;
            } else {
                let verb = if validate_only {
                    "would create"
                } else {
                    "created"
                };
                let detail = described
                    .map(|t| {
                        format!(
                            " with {} partitions, replication factor {}",
                            t.partitions.len(),
                            t.replication_factor
                        )
                    })
                    .unwrap_or_default();
                output::print_line(&format!("{verb} topic {name:?}{detail}"))?;
            }
        }
        TopicCommand::List { include_internal } => {
            let topics = admin.list_topics_with(include_internal).await?;
            if json {
                output::print_json(&output::topic_list_json(&topics))?;
            } else if topics.is_empty() {
                output::print_line("no topics")?;
            } else {
                output::print_line(&output::topic_list_table(&topics))?;
            }
        }
        TopicCommand::Describe { name } => {
            let topic = admin.describe_topic(&name).await?;
            if json {
                output::print_json(&output::topic_description_json(&topic))?;
            } else {
                output::print_line(&output::topic_description_table(&topic))?;
            }
        }
        TopicCommand::Alter {
            name,
            partitions,
            configs,
            delete_configs,
            validate_only,
        } => {
            let mut change = AlterTopic::new(&name).validate_only(validate_only);
            if let Some(p) = partitions {
                change = change.partitions(p);
            }
            for (k, v) in configs {
                change = change.set_config(k, v);
            }
            for k in delete_configs {
                change = change.delete_config(k);
            }
            let topic = admin.alter_topic(change).await?;
            if json {
                output::print_json(&output::topic_description_json(&topic))?;
            } else {
                let verb = if validate_only {
                    "would alter"
                } else {
                    "altered"
                };
                output::print_line(&format!(
                    "{verb} topic {name:?}; it now has {} partitions",
                    topic.partitions.len()
                ))?;
            }
        }
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            cancel,
        } => {
            let replicas = if cancel { Vec::new() } else { replicas };
            admin
                .alter_partition_reassignments(&[(&name, partition, replicas.clone())])
                .await?;
            if json {
                output::print_json(&json!({
                    "topic": name, "partition": partition, "replicas": replicas, "cancelled": cancel
                }))?;
            } else if cancel {
                output::print_line(&format!("cancelled the reassignment of {name}-{partition}"))?;
            } else {
                output::print_line(&format!(
                    "reassigning {name}-{partition} to brokers {replicas:?}; \
                     `runnel topic reassignments` shows progress"
                ))?;
            }
        }
        TopicCommand::Reassignments { name } => {
            let topics: Vec<&str> = name.as_deref().into_iter().collect();
            let ongoing = admin.list_partition_reassignments(&topics).await?;
            if json {
                let rows: Vec<_> = ongoing
                    .iter()
                    .map(|r| {
                        json!({"topic": r.topic, "partition": r.partition, "replicas": r.replicas,
                               "adding": r.adding, "removing": r.removing})
                    })
                    .collect();
                output::print_json(&json!(rows))?;
            } else if ongoing.is_empty() {
                output::print_line("no reassignments in progress")?;
            } else {
                for r in ongoing {
                    output::print_line(&format!(
                        "{}-{}: replicas {:?}, adding {:?}, removing {:?}",
                        r.topic, r.partition, r.replicas, r.adding, r.removing
                    ))?;
                }
            }
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            if json {
                output::print_json(&json!({ "deleted": [name] }))?;
            } else {
                output::print_line(&format!("deleted topic {name:?}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_parsing() {
        assert_eq!(
            parse_key_value("retention.ms=1000").unwrap(),
            ("retention.ms".into(), "1000".into())
        );
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(
            parse_key_value("cleanup.policy=").unwrap(),
            ("cleanup.policy".into(), String::new())
        );
        assert!(
            parse_key_value("retention.ms")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        assert!(parse_key_value("=5").is_err());
    }
}
