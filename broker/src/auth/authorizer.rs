//! [`Authorizer`]: may this principal do this to that resource?

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::acl::{
    AclEntry, CLUSTER_NAME, Operation, PatternType, Permission, ResourcePattern, ResourceType,
    WILDCARD,
};
use super::principal::Principal;
use crate::cluster::ClusterView;
use crate::config::BrokerConfig;
use crate::metrics::DeniedLabels;
use crate::{Error, Result};

/// Checks requests against the ACLs of the cluster view (see the module
/// docs of [`crate::auth`]).
pub struct Authorizer {
    enabled: bool,
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
    view: Arc<ClusterView>,
    denied: Family<DeniedLabels, Counter>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("enabled", &self.enabled)
            .field("super_users", &self.super_users)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    pub fn new(
        config: &BrokerConfig,
        view: Arc<ClusterView>,
        denied: Family<DeniedLabels, Counter>,
    ) -> Self {
        Authorizer {
            enabled: config.authorizer_enable,
            super_users: parse_super_users(&config.super_users),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            view,
            denied,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `Ok` if `principal` may do `operation` on the named resource; else
    /// the refusal, counted and written to the audit log.
    pub fn authorize(
        &self,
        principal: &Principal,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<()> {
        if self.allowed(principal, operation, resource_type, name) {
            tracing::debug!(target: "runnel::audit", %principal, %operation, %resource_type, resource = name, "allowed");
            return Ok(());
        }
        self.denied
            .get_or_create(&DeniedLabels {
                operation: operation.to_string(),
                resource_type: resource_type.to_string(),
            })
            .inc();
        tracing::info!(target: "runnel::audit", %principal, %operation, %resource_type, resource = name, "denied");
        Err(Error::AuthorizationFailed {
            principal: principal.to_string(),
            operation,
            resource_type,
            name: name.to_owned(),
        })
    }

    /// [`Authorizer::authorize`] on the cluster resource.
    pub fn authorize_cluster(&self, principal: &Principal, operation: Operation) -> Result<()> {
        self.authorize(principal, operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// The verdict alone, without counting or logging a refusal: for
    /// listings that leave out what the principal may not see (Kafka's
    /// Metadata and ListTopics do the same).
    pub fn allowed(
        &self,
        principal: &Principal,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.contains(&principal.0) {
            return true;
        }
        self.view.read(|image| {
            let mut any_acl = false;
            let mut allowed = false;
            for (pattern, entries) in image.acls_of(resource_type) {
                if !pattern.matches(resource_type, name) {
                    continue;
                }
                any_acl |= !entries.value.is_empty();
                for entry in entries
                    .value
                    .iter()
                    .filter(|e| e.matches_principal(&principal.0))
                {
                    if entry.operation.covers(operation, entry.permission) {
                        match entry.permission {
                            // A matching Deny wins over every Allow.
                            Permission::Deny => return false,
                            Permission::Allow => allowed = true,
                        }
                    }
                }
            }
            allowed || (!any_acl && self.allow_if_no_acl)
        })
    }
}

impl Authorizer {
    /// Whether `principal` is allowed `operation` on at least one resource
    /// of the type: some Allow entry whose resources a Deny does not cover
    /// entirely (Kafka's `authorizeByResourceType`, its rule for idempotent
    /// producer ids).
    pub fn allowed_somewhere(
        &self,
        principal: &Principal,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled || self.super_users.contains(&principal.0) {
            return true;
        }
        let applies = |e: &AclEntry, permission: Permission| {
            e.permission == permission
                && e.matches_principal(&principal.0)
                && e.operation.covers(operation, permission)
        };
        self.view.read(|image| {
            let denied: Vec<&ResourcePattern> = image
                .acls_of(resource_type)
                .filter(|(_, entries)| entries.value.iter().any(|e| applies(e, Permission::Deny)))
                .map(|(p, _)| p)
                .collect();
            image.acls_of(resource_type).any(|(allowed, entries)| {
                entries.value.iter().any(|e| applies(e, Permission::Allow))
                    && !denied.iter().any(|d| covers_all_of(d, allowed))
            })
        })
    }
}

/// Whether every resource `inner` matches is also matched by `outer`.
fn covers_all_of(outer: &ResourcePattern, inner: &ResourcePattern) -> bool {
    match outer.pattern_type {
        PatternType::Literal => {
            outer.name == WILDCARD
                || (inner.pattern_type == PatternType::Literal && inner.name == outer.name)
        }
        PatternType::Prefixed => inner.name.starts_with(&outer.name),
    }
}

/// Kafka's `super.users`: `User:a;User:b`.
fn parse_super_users(s: &str) -> HashSet<String> {
    s.split(';')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Versioned;

    fn authorizer(acls: &[(ResourcePattern, AclEntry)], config: BrokerConfig) -> Authorizer {
        let view = Arc::new(ClusterView::new(Default::default()));
        view.update(|i| {
            for (pattern, entry) in acls {
                i.acls
                    .entry(pattern.clone())
                    .or_insert(Versioned {
                        value: Vec::new(),
                        revision: 1,
                    })
                    .value
                    .push(entry.clone());
            }
        });
        Authorizer::new(&config, view, Family::default())
    }

    fn on() -> BrokerConfig {
        BrokerConfig {
            authorizer_enable: true,
            super_users: "User:root; User:broker-1".into(),
            ..BrokerConfig::default()
        }
    }

    fn topic(pattern_type: PatternType, name: &str) -> ResourcePattern {
        ResourcePattern {
            resource_type: ResourceType::Topic,
            pattern_type,
            name: name.into(),
        }
    }

    fn entry(principal: &str, operation: Operation, permission: Permission) -> AclEntry {
        AclEntry {
            principal: principal.into(),
            operation,
            permission,
        }
    }

    fn who(name: &str) -> Principal {
        Principal(format!("User:{name}"))
    }

    #[test]
    fn default_deny_superusers_and_deny_wins() {
        let a = authorizer(
            &[
                (
                    topic(PatternType::Prefixed, "orders"),
                    entry("User:alice", Operation::Write, Permission::Allow),
                ),
                (
                    topic(PatternType::Literal, "orders-secret"),
                    entry("User:*", Operation::All, Permission::Deny),
                ),
            ],
            on(),
        );
        let t = ResourceType::Topic;
        assert!(a.allowed(&who("alice"), Operation::Write, t, "orders-eu"));
        assert!(
            a.allowed(&who("alice"), Operation::Describe, t, "orders-eu"),
            "Write implies Describe"
        );
        assert!(!a.allowed(&who("alice"), Operation::Read, t, "orders-eu"));
        assert!(
            !a.allowed(&who("alice"), Operation::Write, t, "orders-secret"),
            "deny wins"
        );
        assert!(
            !a.allowed(&who("bob"), Operation::Write, t, "orders-eu"),
            "default deny"
        );
        assert!(
            a.allowed(&who("root"), Operation::Delete, t, "orders-secret"),
            "superuser"
        );
        assert!(a.allowed(
            &who("broker-1"),
            Operation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME
        ));
        let err = a
            .authorize(&who("bob"), Operation::Read, t, "orders-eu")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("User:bob is not allowed to Read topic \"orders-eu\""),
            "{err}"
        );

        let off = authorizer(&[], BrokerConfig::default());
        assert!(
            off.allowed(&who("anyone"), Operation::Delete, t, "x"),
            "authorization off"
        );
    }

    #[test]
    fn allow_everyone_if_no_acl_found_only_where_no_acl_exists() {
        let a = authorizer(
            &[(
                topic(PatternType::Literal, "guarded"),
                entry("User:alice", Operation::Read, Permission::Allow),
            )],
            BrokerConfig {
                allow_everyone_if_no_acl_found: true,
                ..on()
            },
        );
        assert!(a.allowed(&who("bob"), Operation::Read, ResourceType::Topic, "open"));
        assert!(!a.allowed(&who("bob"), Operation::Read, ResourceType::Topic, "guarded"));
    }

    #[test]
    fn allowed_somewhere_ignores_allows_a_deny_covers() {
        let write = |p, perm| (p, entry("User:alice", Operation::Write, perm));
        let a = authorizer(
            &[
                write(topic(PatternType::Literal, "orders"), Permission::Allow),
                write(topic(PatternType::Prefixed, "ord"), Permission::Deny),
            ],
            on(),
        );
        assert!(!a.allowed_somewhere(&who("alice"), Operation::Write, ResourceType::Topic));
        let b = authorizer(
            &[
                write(topic(PatternType::Prefixed, "orders"), Permission::Allow),
                write(topic(PatternType::Literal, "orders"), Permission::Deny),
            ],
            on(),
        );
        assert!(
            b.allowed_somewhere(&who("alice"), Operation::Write, ResourceType::Topic),
            "orders-eu is still writable"
        );
    }
}
