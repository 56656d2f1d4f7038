//! CreateAcls, DescribeAcls, DeleteAcls: the ACLs of `crate::auth`, kept
//! in the metadata store one key per resource pattern and changed by
//! compare-and-swap, so concurrent changes from different brokers merge
//! instead of overwriting each other.

use std::collections::BTreeMap;

use runnel_proto::v1 as pb;

use super::Context;
use crate::auth::acl::{
    AclBinding, AclEntry, AclRecord, Operation, PatternType, Permission, ResourcePattern,
    ResourceType,
};
use crate::meta::records::{self, VERSION};
use crate::meta::{Compare, KeyValue, Op, WatchEvent};
use crate::{Error, Result};

/// How many times a pattern's update is retried when another broker
/// changed the same key in between.
const CAS_ATTEMPTS: usize = 10;

pub(crate) async fn create(
    ctx: &Context,
    req: pb::CreateAclsRequest,
) -> Result<pb::CreateAclsResponse> {
    if req.acls.is_empty() {
        return Err(Error::InvalidRequest("CreateAcls names no ACL".into()));
    }
    // All or nothing: every binding is checked before any is stored.
    let bindings = req
        .acls
        .iter()
        .map(binding_from_proto)
        .collect::<Result<Vec<_>>>()?;
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<AclEntry>> = BTreeMap::new();
    for b in bindings {
        by_pattern.entry(b.pattern).or_default().push(b.entry);
    }
    for (pattern, new) in by_pattern {
        update(ctx, &pattern, |entries| {
            for e in &new {
                if !entries.contains(e) {
                    entries.push(e.clone());
                }
            }
        })
        .await?;
    }
    Ok(pb::CreateAclsResponse {})
}

pub(crate) async fn describe(
    ctx: &Context,
    req: pb::DescribeAclsRequest,
) -> Result<pb::DescribeAclsResponse> {
    let filter = Filter::from_proto(&req.filter.unwrap_or_default())?;
    let acls = ctx.sync.view().read(|image| {
        image
            .acls
            .iter()
            .flat_map(|(pattern, entries)| {
                entries.value.iter().map(move |entry| AclBinding {
                    pattern: pattern.clone(),
                    entry: entry.clone(),
                })
            })
            .filter(|b| filter.matches(b))
            .map(|b| binding_to_proto(&b))
            .collect()
    });
    Ok(pb::DescribeAclsResponse { acls })
}

pub(crate) async fn delete(
    ctx: &Context,
    req: pb::DeleteAclsRequest,
) -> Result<pb::DeleteAclsResponse> {
    if req.filters.is_empty() {
        return Err(Error::InvalidRequest("DeleteAcls names no filter".into()));
    }
    let filters = req
        .filters
        .iter()
        .map(Filter::from_proto)
        .collect::<Result<Vec<_>>>()?;
    // Read the store, not the view: a binding created a moment ago on
    // another broker must be deletable here too.
    let prefix = ctx.sync.keys().acls_prefix();
    let stored = ctx.sync.store().range(&prefix).await?;
    let mut deleted = Vec::new();
    for kv in stored {
        let Some(pattern) = ResourcePattern::from_key(&prefix, &kv.key) else {
            continue;
        };
        let mut removed = Vec::new();
        update(ctx, &pattern, |entries| {
            removed.clear();
            entries.retain(|entry| {
                let binding = AclBinding {
                    pattern: pattern.clone(),
                    entry: entry.clone(),
                };
                let hit = filters.iter().any(|f| f.matches(&binding));
                if hit {
                    removed.push(binding);
                }
                !hit
            });
        })
        .await?;
        deleted.extend(removed.iter().map(binding_to_proto));
    }
    Ok(pb::DeleteAclsResponse { deleted })
}

/// Change one pattern's entries by compare-and-swap (a pattern left
/// without entries is deleted), and apply the result to this broker's view
/// at once so that its next request already sees it.
async fn update(
    ctx: &Context,
    pattern: &ResourcePattern,
    mut change: impl FnMut(&mut Vec<AclEntry>),
) -> Result<()> {
    let store = ctx.sync.store();
    let key = pattern.key(&ctx.sync.keys().acls_prefix());
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(&key).await?;
        let (mut record, revision) = match &current {
            Some(kv) => (
                records::decode::<AclRecord>(&key, &kv.value)?,
                kv.mod_revision,
            ),
            None => (
                AclRecord {
                    version: VERSION,
                    entries: Vec::new(),
                },
                0,
            ),
        };
        let before = record.entries.clone();
        change(&mut record.entries);
        if record.entries == before {
            return Ok(());
        }
        let value = records::encode(&record);
        let op = if record.entries.is_empty() {
            Op::Delete(key.clone())
        } else {
            Op::Put(key.clone(), value.clone())
        };
        let outcome = store
            .txn(vec![Compare::ModRevision(key.clone(), revision)], vec![op])
            .await?;
        if outcome.succeeded {
            let event = if record.entries.is_empty() {
                WatchEvent::Delete {
                    key,
                    mod_revision: outcome.revision,
                }
            } else {
                WatchEvent::Put(KeyValue {
                    key,
                    value,
                    create_revision: current.map_or(outcome.revision, |kv| kv.create_revision),
                    mod_revision: outcome.revision,
                    lease: None,
                })
            };
            ctx.sync.apply(event)?;
            return Ok(());
        }
    }
    Err(Error::NotAvailable(format!(
        "the ACLs of {pattern:?} kept changing under this request; retry"
    )))
}

/// A [`pb::AclFilter`]: `None` matches anything.
struct Filter {
    resource_type: Option<ResourceType>,
    pattern_type: Option<PatternType>,
    resource_name: Option<String>,
    principal: Option<String>,
    operation: Option<Operation>,
    permission: Option<Permission>,
}

impl Filter {
    fn from_proto(f: &pb::AclFilter) -> Result<Self> {
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Filter {
            resource_type: resource_type(f.resource_type)?,
            pattern_type: pattern_type(f.pattern_type)?,
            resource_name: nonempty(&f.resource_name),
            principal: nonempty(&f.principal),
            operation: operation(f.operation)?,
            permission: permission(f.permission)?,
        })
    }

    fn matches(&self, b: &AclBinding) -> bool {
        self.resource_type
            .is_none_or(|t| t == b.pattern.resource_type)
            && self
                .pattern_type
                .is_none_or(|t| t == b.pattern.pattern_type)
            && self
                .resource_name
                .as_ref()
                .is_none_or(|n| *n == b.pattern.name)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| *p == b.entry.principal)
            && self.operation.is_none_or(|o| o == b.entry.operation)
            && self.permission.is_none_or(|p| p == b.entry.permission)
    }
}

fn unknown(field: &str, value: i32) -> Error {
    Error::InvalidRequest(format!("unknown ACL {field} {value}"))
}

fn resource_type(v: i32) -> Result<Option<ResourceType>> {
    Ok(
        match pb::AclResourceType::try_from(v).map_err(|_| unknown("resource type", v))? {
            pb::AclResourceType::Any => None,
            pb::AclResourceType::Topic => Some(ResourceType::Topic),
            pb::AclResourceType::Group => Some(ResourceType::Group),
            pb::AclResourceType::Cluster => Some(ResourceType::Cluster),
        },
    )
}

fn pattern_type(v: i32) -> Result<Option<PatternType>> {
    Ok(
        match pb::AclPatternType::try_from(v).map_err(|_| unknown("pattern type", v))? {
            pb::AclPatternType::Any => None,
            pb::AclPatternType::Literal => Some(PatternType::Literal),
            pb::AclPatternType::Prefixed => Some(PatternType::Prefixed),
        },
    )
}

fn operation(v: i32) -> Result<Option<Operation>> {
    Ok(
        match pb::AclOperation::try_from(v).map_err(|_| unknown("operation", v))? {
            pb::AclOperation::Any => None,
            pb::AclOperation::All => Some(Operation::All),
            pb::AclOperation::Read => Some(Operation::Read),
            pb::AclOperation::Write => Some(Operation::Write),
            pb::AclOperation::Create => Some(Operation::Create),
            pb::AclOperation::Delete => Some(Operation::Delete),
            pb::AclOperation::Alter => Some(Operation::Alter),
            pb::AclOperation::Describe => Some(Operation::Describe),
            pb::AclOperation::ClusterAction => Some(Operation::ClusterAction),
        },
    )
}

fn permission(v: i32) -> Result<Option<Permission>> {
    Ok(
        match pb::AclPermission::try_from(v).map_err(|_| unknown("permission", v))? {
            pb::AclPermission::Any => None,
            pb::AclPermission::Allow => Some(Permission::Allow),
            pb::AclPermission::Deny => Some(Permission::Deny),
        },
    )
}

fn binding_from_proto(b: &pb::AclBinding) -> Result<AclBinding> {
    let missing = |what: &str| {
        Error::InvalidRequest(format!(
            "an ACL to create needs a {what} (ANY is only for filters)"
        ))
    };
    let binding = AclBinding {
        pattern: ResourcePattern {
            resource_type: resource_type(b.resource_type)?
                .ok_or_else(|| missing("resource type"))?,
            pattern_type: pattern_type(b.pattern_type)?.ok_or_else(|| missing("pattern type"))?,
            name: b.resource_name.clone(),
        },
        entry: AclEntry {
            principal: b.principal.clone(),
            operation: operation(b.operation)?.ok_or_else(|| missing("operation"))?,
            permission: permission(b.permission)?.ok_or_else(|| missing("permission"))?,
        },
    };
    binding.validate()?;
    Ok(binding)
}

fn binding_to_proto(b: &AclBinding) -> pb::AclBinding {
    pb::AclBinding {
        resource_type: match b.pattern.resource_type {
            ResourceType::Topic => pb::AclResourceType::Topic,
            ResourceType::Group => pb::AclResourceType::Group,
            ResourceType::Cluster => pb::AclResourceType::Cluster,
        } as i32,
        resource_name: b.pattern.name.clone(),
        pattern_type: match b.pattern.pattern_type {
            PatternType::Literal => pb::AclPatternType::Literal,
            PatternType::Prefixed => pb::AclPatternType::Prefixed,
        } as i32,
        principal: b.entry.principal.clone(),
        operation: match b.entry.operation {
            Operation::All => pb::AclOperation::All,
            Operation::Read => pb::AclOperation::Read,
            Operation::Write => pb::AclOperation::Write,
            Operation::Create => pb::AclOperation::Create,
            Operation::Delete => pb::AclOperation::Delete,
            Operation::Alter => pb::AclOperation::Alter,
            Operation::Describe => pb::AclOperation::Describe,
            Operation::ClusterAction => pb::AclOperation::ClusterAction,
        } as i32,
        permission: match b.entry.permission {
            Permission::Allow => pb::AclPermission::Allow,
            Permission::Deny => pb::AclPermission::Deny,
        } as i32,
    }
}
