//! Access control lists, Kafka's model: a binding says that a principal
//! is allowed (or denied) an operation on resources that a pattern
//! matches. Bindings live in the metadata store, one key per resource
//! pattern holding every entry for it (Kafka's `/kafka-acl/<type>/<name>`):
//! `/runnel/<cluster>/acls/<type>/<pattern type>/<name>`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "runnel-cluster";
/// A literal pattern with this name matches every resource of its type; a
/// principal `User:*` matches every principal.
pub const WILDCARD: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Allow,
    Deny,
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
        })
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::All => "All",
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Create => "Create",
            Operation::Delete => "Delete",
            Operation::Alter => "Alter",
            Operation::Describe => "Describe",
            Operation::ClusterAction => "ClusterAction",
        })
    }
}

impl Operation {
    /// Whether an entry for `self` covers a request for `requested`, with
    /// `permission`. As in Kafka, `All` covers everything, and allowing
    /// Read, Write, Delete or Alter also allows Describe (denying them does
    /// not deny Describe).
    pub fn covers(self, requested: Operation, permission: Permission) -> bool {
        self == Operation::All
            || self == requested
            || (requested == Operation::Describe
                && permission == Permission::Allow
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
    }
}

/// Which resources a binding applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub name: String,
}

impl ResourcePattern {
    pub fn matches(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
            }
    }

    /// The pattern's key under `acls_prefix` (which ends with '/').
    pub fn key(&self, acls_prefix: &str) -> String {
        format!(
            "{acls_prefix}{:?}/{:?}/{}",
            self.resource_type, self.pattern_type, self.name
        )
    }

    /// The pattern a key under `acls_prefix` stands for.
    pub fn from_key(acls_prefix: &str, key: &str) -> Option<Self> {
        let mut parts = key.strip_prefix(acls_prefix)?.splitn(3, '/');
        let resource_type = match parts.next()? {
            "Topic" => ResourceType::Topic,
            "Group" => ResourceType::Group,
            "Cluster" => ResourceType::Cluster,
            _ => return None,
        };
        let pattern_type = match parts.next()? {
            "Literal" => PatternType::Literal,
            "Prefixed" => PatternType::Prefixed,
            _ => return None,
        };
        Some(ResourcePattern {
            resource_type,
            pattern_type,
            name: parts.next()?.to_owned(),
        })
    }
}

/// One rule for a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    /// `User:<name>`, or `User:*` for everyone.
    pub principal: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclEntry {
    pub fn matches_principal(&self, principal: &str) -> bool {
        self.principal == principal || self.principal == "User:*"
    }
}

/// A pattern and one of its entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

impl AclBinding {
    /// Refuse bindings that could never match or would be ambiguous.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidRequest(format!("ACL {self}: {reason}")));
        let Some(name) = self.entry.principal.strip_prefix("User:") else {
            return invalid(
                "the principal must look like User:<name> (or User:* for everyone)".into(),
            );
        };
        if name.is_empty() {
            return invalid("the principal names no user".into());
        }
        if name.len() > 1024 {
            return invalid("the principal is longer than 1024 bytes".into());
        }
        if self.pattern.name.is_empty() {
            return invalid("the resource name is empty (use \"*\" for every resource)".into());
        }
        if self.pattern.name.len() > 4096 {
            return invalid("the resource name is longer than 4096 bytes".into());
        }
        if self.pattern.resource_type == ResourceType::Cluster && self.pattern.name != CLUSTER_NAME
        {
            return invalid(format!("the cluster resource is named \"{CLUSTER_NAME}\""));
        }
        if self.pattern.pattern_type == PatternType::Prefixed && self.pattern.name == WILDCARD {
            return invalid("a prefixed pattern \"*\" means nothing; use a literal \"*\"".into());
        }
        Ok(())
    }
}

impl std::fmt::Display for AclBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {} {} on {} {:?} {:?}",
            self.entry.permission,
            self.entry.principal,
            self.entry.operation,
            self.pattern.resource_type,
            self.pattern.pattern_type,
            self.pattern.name
        )
    }
}

/// What one pattern's key stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRecord {
    pub version: u32,
    pub entries: Vec<AclEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(
        resource_type: ResourceType,
        pattern_type: PatternType,
        name: &str,
    ) -> ResourcePattern {
        ResourcePattern {
            resource_type,
            pattern_type,
            name: name.into(),
        }
    }

    #[test]
    fn literal_prefixed_and_wildcard_patterns() {
        let literal = pattern(ResourceType::Topic, PatternType::Literal, "orders");
        assert!(literal.matches(ResourceType::Topic, "orders"));
        assert!(!literal.matches(ResourceType::Topic, "orders-eu"));
        assert!(!literal.matches(ResourceType::Group, "orders"));
        let prefixed = pattern(ResourceType::Topic, PatternType::Prefixed, "orders");
        assert!(prefixed.matches(ResourceType::Topic, "orders-eu"));
        assert!(!prefixed.matches(ResourceType::Topic, "order"));
        let any = pattern(ResourceType::Group, PatternType::Literal, WILDCARD);
        assert!(any.matches(ResourceType::Group, "billing"));
    }

    #[test]
    fn keys_round_trip_even_with_slashes_in_names() {
        let prefix = "/runnel/c/acls/";
        let p = pattern(ResourceType::Group, PatternType::Prefixed, "team/a");
        let key = p.key(prefix);
        assert_eq!(key, "/runnel/c/acls/Group/Prefixed/team/a");
        assert_eq!(ResourcePattern::from_key(prefix, &key), Some(p));
        assert_eq!(
            ResourcePattern::from_key(prefix, "/runnel/c/acls/Nope/Literal/x"),
            None
        );
    }

    #[test]
    fn allowing_read_write_delete_alter_allows_describe_denying_does_not_deny_it() {
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::Delete,
            Operation::Alter,
        ] {
            assert!(op.covers(Operation::Describe, Permission::Allow), "{op}");
            assert!(!op.covers(Operation::Describe, Permission::Deny), "{op}");
        }
        assert!(!Operation::Create.covers(Operation::Describe, Permission::Allow));
        assert!(Operation::All.covers(Operation::ClusterAction, Permission::Deny));
        assert!(!Operation::Read.covers(Operation::Write, Permission::Allow));
    }

    #[test]
    fn bad_bindings_are_refused_with_the_reason() {
        let binding = |principal: &str, rt, name: &str| AclBinding {
            pattern: pattern(rt, PatternType::Literal, name),
            entry: AclEntry {
                principal: principal.into(),
                operation: Operation::Read,
                permission: Permission::Allow,
            },
        };
        for (b, reason) in [
            (binding("alice", ResourceType::Topic, "t"), "User:<name>"),
            (binding("User:", ResourceType::Topic, "t"), "names no user"),
            (binding("User:a", ResourceType::Topic, ""), "empty"),
            (binding("User:a", ResourceType::Cluster, "x"), CLUSTER_NAME),
            (
                binding(
                    &format!("User:{}", "a".repeat(1025)),
                    ResourceType::Topic,
                    "t",
                ),
                "longer than 1024",
            ),
        ] {
            let err = b.validate().unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
        binding("User:*", ResourceType::Cluster, CLUSTER_NAME)
            .validate()
            .unwrap();
        // Kubernetes user names have colons: ServiceAccounts by TokenReview.
        binding(
            "User:system:serviceaccount:ns:app",
            ResourceType::Topic,
            "t",
        )
        .validate()
        .unwrap();
    }
}
