//! `runnel group list|describe|reset-offsets|delete`: consumer groups, like
//! Kafka's `kafka-consumer-groups`.

use anyhow::{Result, bail};
use clap::{ArgGroup, Args, Subcommand};
use runnel_client::{Admin, Offset};
use serde_json::json;

use crate::Global;
use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List consumer groups.
    List,
    /// Show a group's state, members and, per partition, the committed
    /// offset, the end of the log and the lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (only while it has no members).
    /// Shows the plan; --execute applies it.
    #[command(group(ArgGroup::new("to").required(true)
        .args(["to_earliest", "to_latest", "to_datetime", "to_offset"])))]
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic whose partitions to reset.
        #[arg(long)]
        topic: String,
        /// Only this partition [default: all].
        #[arg(long, short = 'p')]
        partition: Option<u32>,
        /// To the log start.
        #[arg(long)]
        to_earliest: bool,
        /// To the end (skip everything not yet consumed).
        #[arg(long)]
        to_latest: bool,
        /// To the first record at or after this time (RFC 3339, e.g.
        /// 2026-11-26T08:00:00Z).
        #[arg(long, value_name = "DATETIME")]
        to_datetime: Option<String>,
        /// To this offset.
        #[arg(long, value_name = "N")]
        to_offset: Option<i64>,
        /// Apply the change (without it: a dry run that shows the plan).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group without members and its committed offsets.
    Delete {
        /// Group id.
        group: String,
    },
}

pub async fn run(global: &Global, args: GroupArgs) -> Result<()> {
    let admin = Admin::connect(global.client_config()).await?;
    let json = global.output == OutputFormat::Json;
    match args.command {
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            if json {
                let rows: Vec<_> = groups
                    .iter()
                    .map(|g| json!({"group": g.group_id, "coordinator": g.coordinator_id}))
                    .collect();
                output::print_json(&json!(rows))?;
            } else if groups.is_empty() {
                output::print_line("no groups")?;
            } else {
                output::print_line(&output::table(
                    &["GROUP", "COORDINATOR"],
                    groups
                        .iter()
                        .map(|g| vec![g.group_id.clone(), coordinator(g.coordinator_id)]),
                ))?;
            }
        }
        GroupCommand::Describe { group } => {
            let d = admin.describe_group(&group).await?;
            let g = &d.described;
            if json {
                let members: Vec<_> = g
                    .members
                    .iter()
                    .map(|m| {
                        json!({"member_id": m.member_id, "client_id": m.client_id, "topics": m.topics,
                               "assignment": partitions(&m.assignment)})
                    })
                    .collect();
                let lag: Vec<_> = d
                    .lag
                    .iter()
                    .map(|l| {
                        json!({"topic": l.topic, "partition": l.partition, "committed": l.committed,
                                    "end_offset": l.end_offset, "lag": l.lag})
                    })
                    .collect();
                output::print_json(&json!({
                    "group": g.group_id, "state": g.state, "generation": g.generation,
                    "assignor": g.assignor, "coordinator": g.coordinator_id,
                    "members": members, "offsets": lag,
                }))?;
            } else {
                output::print_line(&format!(
                    "Group: {}  State: {}  Generation: {}  Assignor: {}  Coordinator: {}  Members: {}\n",
                    g.group_id,
                    g.state,
                    g.generation,
                    g.assignor,
                    g.coordinator_id,
                    g.members.len()
                ))?;
                let owner = |topic: &str, p: u32| {
                    g.members
                        .iter()
                        .find(|m| {
                            m.assignment
                                .iter()
                                .any(|t| t.topic == topic && t.partitions.contains(&p))
                        })
                        .map_or("-".to_owned(), |m| m.member_id.clone())
                };
                output::print_line(&output::table(
                    &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"],
                    d.lag.iter().map(|l| {
                        vec![
                            l.topic.clone(),
                            l.partition.to_string(),
                            l.committed.to_string(),
                            l.end_offset.to_string(),
                            l.lag.to_string(),
                            owner(&l.topic, l.partition),
                        ]
                    }),
                ))?;
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to_earliest,
            to_latest,
            to_datetime,
            to_offset,
            execute,
        } => {
            let to = match (to_earliest, to_latest, to_datetime, to_offset) {
                (true, ..) => Offset::Earliest,
                (_, true, ..) => Offset::Latest,
                (_, _, Some(dt), _) => {
                    let at = humantime::parse_rfc3339_weak(&dt).map_err(|e| {
                        anyhow::anyhow!("--to-datetime {dt:?}: {e}; e.g. 2026-11-26T08:00:00Z")
                    })?;
                    let ms = at.duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
                    Offset::Timestamp(ms)
                }
                (_, _, _, Some(n)) if n >= 0 => Offset::At(n),
                (_, _, _, Some(n)) => bail!("--to-offset {n}: offsets are 0 or more"),
                _ => unreachable!("clap requires one"),
            };
            let only: Option<Vec<u32>> = partition.map(|p| vec![p]);
            let rows = admin
                .reset_group_offsets_to(&group, &topic, only.as_deref(), to, !execute)
                .await?;
            if json {
                let plan: Vec<_> = rows
                    .iter()
                    .map(|(t, p, o)| json!({"topic": t, "partition": p, "new_offset": o}))
                    .collect();
                output::print_json(&json!({"group": group, "executed": execute, "offsets": plan}))?;
            } else {
                output::print_line(&output::table(
                    &["TOPIC", "PARTITION", "NEW OFFSET"],
                    rows.iter()
                        .map(|(t, p, o)| vec![t.clone(), p.to_string(), o.to_string()]),
                ))?;
                if !execute {
                    output::print_line("\ndry run: nothing changed; add --execute to apply")?;
                }
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            if json {
                output::print_json(&json!({"deleted": group}))?;
            } else {
                output::print_line(&format!("deleted group {group:?}"))?;
            }
        }
    }
    Ok(())
}

fn coordinator(id: i32) -> String {
    if id < 0 { "-".into() } else { id.to_string() }
}

fn partitions(tps: &[runnel_client::TopicPartitions]) -> Vec<String> {
    tps.iter()
        .flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic)))
        .collect()
}
