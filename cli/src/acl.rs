//! `runnel acl list|add|remove`: access control lists (Kafka's
//! `kafka-acls`). They take effect on every broker at once; they are
//! enforced when the brokers run with `authorizer.enable=true`.

use anyhow::{Result, bail};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use runnel_client::{
    AclBinding, AclFilter, AclOperation, AclPatternType, AclPermission, AclResourceType, Admin,
};
use serde_json::{Value, json};

use crate::Global;
use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Show ACLs, all or those of one resource / principal.
    List {
        #[command(flatten)]
        resource: ResourceFilter,
        /// Only this principal's (e.g. User:alice).
        #[arg(long)]
        principal: Option<String>,
    },
    /// Allow or deny principals operations on a resource.
    #[command(group(ArgGroup::new("who").required(true).args(["allow", "deny"])))]
    Add {
        #[command(flatten)]
        resource: Resource,
        /// Principals to allow (`User:<name>`, `User:*` for everyone; repeatable).
        #[arg(long, value_name = "PRINCIPAL")]
        allow: Vec<String>,
        /// Principals to deny (a deny wins over every allow; repeatable).
        #[arg(long, value_name = "PRINCIPAL")]
        deny: Vec<String>,
        /// Operations (repeatable).
        #[arg(long, required = true, value_enum)]
        operation: Vec<Op>,
    },
    /// Remove the ACLs of a resource, narrowed by principal, operation and
    /// permission when given.
    Remove {
        #[command(flatten)]
        resource: Resource,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long, value_enum)]
        operation: Vec<Op>,
        #[arg(long, value_enum)]
        permission: Option<Perm>,
    },
}

/// Exactly one resource.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct ResourceChoice {
    /// A topic ("*" for every topic).
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group ("*" for every group).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// The cluster (topic creation, configs, reassignments, ACLs, replication).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "runnel-cluster")]
    cluster: Option<String>,
}

#[derive(Debug, Args)]
struct Resource {
    #[command(flatten)]
    choice: ResourceChoice,
    /// The name is a prefix: the ACL covers every resource starting with it.
    #[arg(long)]
    prefixed: bool,
}

/// At most one resource.
#[derive(Debug, Args)]
struct ResourceFilter {
    #[arg(long, value_name = "NAME", conflicts_with_all = ["group", "cluster"])]
    topic: Option<String>,
    #[arg(long, value_name = "NAME", conflicts_with = "cluster")]
    group: Option<String>,
    #[arg(long)]
    cluster: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "lower")]
enum Op {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Perm {
    Allow,
    Deny,
}

impl Op {
    fn proto(self) -> AclOperation {
        match self {
            Op::All => AclOperation::All,
            Op::Read => AclOperation::Read,
            Op::Write => AclOperation::Write,
            Op::Create => AclOperation::Create,
            Op::Delete => AclOperation::Delete,
            Op::Alter => AclOperation::Alter,
            Op::Describe => AclOperation::Describe,
            Op::ClusterAction => AclOperation::ClusterAction,
        }
    }
}

impl Resource {
    fn parts(&self) -> (AclResourceType, String, AclPatternType) {
        let c = &self.choice;
        let (kind, name) = match (&c.topic, &c.group, &c.cluster) {
            (Some(t), _, _) => (AclResourceType::Topic, t.clone()),
            (_, Some(g), _) => (AclResourceType::Group, g.clone()),
            (_, _, Some(name)) => (AclResourceType::Cluster, name.clone()),
            _ => unreachable!("clap requires one resource"),
        };
        let pattern = if self.prefixed {
            AclPatternType::Prefixed
        } else {
            AclPatternType::Literal
        };
        (kind, name, pattern)
    }
}

pub async fn run(global: &Global, args: AclArgs) -> Result<()> {
    let admin = Admin::connect(global.client_config()).await?;
    let json = global.output == OutputFormat::Json;
    match args.command {
        AclCommand::List {
            resource,
            principal,
        } => {
            let (resource_type, resource_name) = match (&resource.topic, &resource.group) {
                (Some(t), _) => (AclResourceType::Topic, t.clone()),
                (_, Some(g)) => (AclResourceType::Group, g.clone()),
                _ if resource.cluster => (AclResourceType::Cluster, String::new()),
                _ => (AclResourceType::Any, String::new()),
            };
            let acls = admin
                .describe_acls(AclFilter {
                    resource_type: resource_type as i32,
                    resource_name,
                    principal: principal.unwrap_or_default(),
                    ..AclFilter::default()
                })
                .await?;
            print(&acls, json)?;
        }
        AclCommand::Add {
            resource,
            allow,
            deny,
            operation,
        } => {
            let (kind, name, pattern) = resource.parts();
            let mut bindings = Vec::new();
            for (principals, permission) in
                [(&allow, AclPermission::Allow), (&deny, AclPermission::Deny)]
            {
                for principal in principals {
                    for op in &operation {
                        bindings.push(AclBinding {
                            resource_type: kind as i32,
                            resource_name: name.clone(),
                            pattern_type: pattern as i32,
                            principal: principal.clone(),
                            operation: op.proto() as i32,
                            permission: permission as i32,
                        });
                    }
                }
            }
            admin.create_acls(bindings.clone()).await?;
            if json {
                print(&bindings, true)?;
            } else {
                output::print_line(&format!(
                    "added {} ACL(s)\n\n{}",
                    bindings.len(),
                    table(&bindings)
                ))?;
            }
        }
        AclCommand::Remove {
            resource,
            principal,
            operation,
            permission,
        } => {
            let (kind, name, pattern) = resource.parts();
            let base = AclFilter {
                resource_type: kind as i32,
                resource_name: name,
                pattern_type: pattern as i32,
                principal: principal.unwrap_or_default(),
                permission: permission.map_or(AclPermission::Any, |p| match p {
                    Perm::Allow => AclPermission::Allow,
                    Perm::Deny => AclPermission::Deny,
                }) as i32,
                ..AclFilter::default()
            };
            let filters = if operation.is_empty() {
                vec![base]
            } else {
                operation
                    .iter()
                    .map(|op| AclFilter {
                        operation: op.proto() as i32,
                        ..base.clone()
                    })
                    .collect()
            };
            let deleted = admin.delete_acls(filters).await?;
            if deleted.is_empty() {
                bail!("no ACL matched; nothing was removed (see runnel acl list)");
            }
            if json {
                print(&deleted, true)?;
            } else {
                output::print_line(&format!(
                    "removed {} ACL(s)\n\n{}",
                    deleted.len(),
                    table(&deleted)
                ))?;
            }
        }
    }
    Ok(())
}

fn fields(b: &AclBinding) -> [String; 6] {
    let name = |s: &str| s.rsplit('_').next().unwrap_or(s).to_lowercase();
    [
        b.principal.clone(),
        name(b.permission().as_str_name()),
        b.operation()
            .as_str_name()
            .trim_start_matches("ACL_OPERATION_")
            .to_lowercase(),
        name(b.resource_type().as_str_name()),
        b.resource_name.clone(),
        name(b.pattern_type().as_str_name()),
    ]
}

fn table(acls: &[AclBinding]) -> String {
    output::table(
        &[
            "PRINCIPAL",
            "PERMISSION",
            "OPERATION",
            "RESOURCE TYPE",
            "NAME",
            "PATTERN",
        ],
        acls.iter().map(fields),
    )
}

fn print(acls: &[AclBinding], json_out: bool) -> Result<()> {
    if json_out {
        let rows: Vec<Value> = acls
            .iter()
            .map(|b| {
                let [
                    principal,
                    permission,
                    operation,
                    resource_type,
                    name,
                    pattern,
                ] = fields(b);
                json!({"principal": principal, "permission": permission, "operation": operation,
                       "resource_type": resource_type, "name": name, "pattern": pattern})
            })
            .collect();
        output::print_json(&Value::Array(rows))?;
    } else if acls.is_empty() {
        output::print_line("no ACLs")?;
    } else {
        output::print_line(&table(acls))?;
    }
    Ok(())
}
