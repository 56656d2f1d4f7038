//! Kafka's ACL numbering (resource types, pattern types, operations,
//! permissions as `i8`) to and from Runnel's ACL messages, for
//! CreateAcls, DescribeAcls and DeleteAcls.
//!
//! Runnel's ACLs cover topics, groups and the cluster with the operations
//! its APIs check; Kafka's other resource types (transactional ids,
//! delegation tokens, users) and operations (DescribeConfigs,
//! AlterConfigs, IdempotentWrite, tokens) have nothing to guard here, so
//! creating one is refused with a message and a filter for one matches
//! nothing. Kafka names the cluster resource `kafka-cluster`; both that
//! and Runnel's own name are accepted, and Kafka's is what Kafka clients
//! are shown.

use runnel_proto::v1 as pb;

use crate::auth::acl::CLUSTER_NAME;

/// Kafka's name of the cluster resource.
pub const KAFKA_CLUSTER_NAME: &str = "kafka-cluster";

/// A Kafka ACL field Runnel cannot represent.
pub struct Unrepresentable(pub String);

/// `ANY` (in filters) is `Some(0)`; a value Runnel has no equivalent of
/// is `None`.
pub fn resource_type(kafka: i8) -> Option<pb::AclResourceType> {
    Some(match kafka {
        1 => pb::AclResourceType::Any,
        2 => pb::AclResourceType::Topic,
        3 => pb::AclResourceType::Group,
        4 => pb::AclResourceType::Cluster,
        _ => return None,
    })
}

pub fn resource_type_to_kafka(t: i32) -> i8 {
    match pb::AclResourceType::try_from(t) {
        Ok(pb::AclResourceType::Topic) => 2,
        Ok(pb::AclResourceType::Group) => 3,
        Ok(pb::AclResourceType::Cluster) => 4,
        _ => 0,
    }
}

/// Kafka's pattern types; MATCH (2) is handled by the caller.
pub fn pattern_type(kafka: i8) -> Option<pb::AclPatternType> {
    Some(match kafka {
        1 => pb::AclPatternType::Any,
        3 => pb::AclPatternType::Literal,
        4 => pb::AclPatternType::Prefixed,
        _ => return None,
    })
}

/// Kafka's MATCH pattern type in filters: every pattern that matches the
/// name (literal, the `*` wildcard, prefixes of it).
pub const MATCH: i8 = 2;

pub fn pattern_type_to_kafka(t: i32) -> i8 {
    match pb::AclPatternType::try_from(t) {
        Ok(pb::AclPatternType::Literal) => 3,
        Ok(pb::AclPatternType::Prefixed) => 4,
        _ => 0,
    }
}

pub fn operation(kafka: i8) -> Option<pb::AclOperation> {
    Some(match kafka {
        1 => pb::AclOperation::Any,
        2 => pb::AclOperation::All,
        3 => pb::AclOperation::Read,
        4 => pb::AclOperation::Write,
        5 => pb::AclOperation::Create,
        6 => pb::AclOperation::Delete,
        7 => pb::AclOperation::Alter,
        8 => pb::AclOperation::Describe,
        9 => pb::AclOperation::ClusterAction,
        _ => return None,
    })
}

pub fn operation_to_kafka(o: i32) -> i8 {
    match pb::AclOperation::try_from(o) {
        Ok(pb::AclOperation::All) => 2,
        Ok(pb::AclOperation::Read) => 3,
        Ok(pb::AclOperation::Write) => 4,
        Ok(pb::AclOperation::Create) => 5,
        Ok(pb::AclOperation::Delete) => 6,
        Ok(pb::AclOperation::Alter) => 7,
        Ok(pb::AclOperation::Describe) => 8,
        Ok(pb::AclOperation::ClusterAction) => 9,
        _ => 0,
    }
}

pub fn permission(kafka: i8) -> Option<pb::AclPermission> {
    Some(match kafka {
        1 => pb::AclPermission::Any,
        2 => pb::AclPermission::Deny,
        3 => pb::AclPermission::Allow,
        _ => return None,
    })
}

pub fn permission_to_kafka(p: i32) -> i8 {
    match pb::AclPermission::try_from(p) {
        Ok(pb::AclPermission::Deny) => 2,
        Ok(pb::AclPermission::Allow) => 3,
        _ => 0,
    }
}

/// Runnel's name for a resource a Kafka client named.
pub fn resource_name_in(resource_type: pb::AclResourceType, name: &str) -> String {
    if resource_type == pb::AclResourceType::Cluster && name == KAFKA_CLUSTER_NAME {
        CLUSTER_NAME.to_string()
    } else {
        name.to_string()
    }
}

/// The name a Kafka client is shown for a binding's resource.
pub fn resource_name_out(b: &pb::AclBinding) -> String {
    if b.resource_type == pb::AclResourceType::Cluster as i32 && b.resource_name == CLUSTER_NAME {
        KAFKA_CLUSTER_NAME.to_string()
    } else {
        b.resource_name.clone()
    }
}

/// A binding to create, from Kafka's fields.
#[allow(clippy::too_many_arguments)]
pub fn binding(
    resource_type: i8,
    resource_name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    op: i8,
    perm: i8,
) -> Result<pb::AclBinding, Unrepresentable> {
    let no = |what: &str, v: i8| Unrepresentable(format!("{what} {v} has no Runnel equivalent"));
    let rt = self::resource_type(resource_type)
        .filter(|t| *t != pb::AclResourceType::Any)
        .ok_or_else(|| {
            no(
                "resource type (Runnel ACLs cover TOPIC, GROUP and CLUSTER)",
                resource_type,
            )
        })?;
    let pt = pattern_type(pattern)
        .filter(|t| *t != pb::AclPatternType::Any)
        .ok_or_else(|| no("pattern type (LITERAL or PREFIXED)", pattern))?;
    let operation = self::operation(op)
        .filter(|o| *o != pb::AclOperation::Any)
        .ok_or_else(|| {
            no(
                "operation (ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION)",
                op,
            )
        })?;
    let permission = self::permission(perm)
        .filter(|p| *p != pb::AclPermission::Any)
        .ok_or_else(|| no("permission type (ALLOW or DENY)", perm))?;
    if host != "*" {
        return Err(Unrepresentable(format!(
            "host {host:?}: Runnel ACLs apply to a principal from every host; use \"*\""
        )));
    }
    Ok(pb::AclBinding {
        resource_type: rt as i32,
        resource_name: resource_name_in(rt, resource_name),
        pattern_type: pt as i32,
        principal: principal.to_string(),
        operation: operation as i32,
        permission: permission as i32,
    })
}

/// A Kafka filter: the Runnel filter to ask with, and for MATCH the
/// resource name every returned binding must match. `None`: the filter
/// names something Runnel has no ACLs for, so it matches nothing.
pub struct KafkaFilter {
    pub filter: pb::AclFilter,
    pub matching: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub fn filter(
    resource_type: i8,
    resource_name: Option<&str>,
    pattern: i8,
    principal: Option<&str>,
    host: Option<&str>,
    op: i8,
    perm: i8,
) -> Result<Option<KafkaFilter>, Unrepresentable> {
    let bad =
        |what: &str, v: i8| Unrepresentable(format!("{what} {v} is not a valid filter value"));
    // UNKNOWN (0) is never valid; Kafka's other known values with no
    // Runnel equivalent match nothing.
    if resource_type == 0 || !(0..=7).contains(&resource_type) {
        return Err(bad("resource type", resource_type));
    }
    if pattern == 0 || !(0..=4).contains(&pattern) {
        return Err(bad("pattern type", pattern));
    }
    if op == 0 || !(0..=14).contains(&op) {
        return Err(bad("operation", op));
    }
    if !(1..=3).contains(&perm) {
        return Err(bad("permission type", perm));
    }
    let (Some(rt), Some(operation)) = (self::resource_type(resource_type), self::operation(op))
    else {
        return Ok(None);
    };
    if host.is_some_and(|h| h != "*") {
        return Ok(None);
    }
    let name = resource_name.map(|n| resource_name_in(rt, n));
    let (pt, matching) = if pattern == MATCH {
        (pb::AclPatternType::Any, name.clone())
    } else {
        (pattern_type(pattern).expect("checked above"), None)
    };
    Ok(Some(KafkaFilter {
        filter: pb::AclFilter {
            resource_type: rt as i32,
            resource_name: if matching.is_some() {
                String::new()
            } else {
                name.unwrap_or_default()
            },
            pattern_type: pt as i32,
            principal: principal.unwrap_or_default().to_string(),
            operation: operation as i32,
            permission: permission(perm).expect("checked above") as i32,
        },
        matching,
    }))
}

impl KafkaFilter {
    /// Whether a binding the Runnel filter returned also passes MATCH.
    pub fn keeps(&self, b: &pb::AclBinding) -> bool {
        let Some(name) = &self.matching else {
            return true;
        };
        match pb::AclPatternType::try_from(b.pattern_type) {
            Ok(pb::AclPatternType::Literal) => b.resource_name == *name || b.resource_name == "*",
            Ok(pb::AclPatternType::Prefixed) => name.starts_with(&b.resource_name),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_numbers_round_trip() {
        for k in 2..=4 {
            assert_eq!(resource_type_to_kafka(resource_type(k).unwrap() as i32), k);
        }
        for k in [3, 4] {
            assert_eq!(pattern_type_to_kafka(pattern_type(k).unwrap() as i32), k);
        }
        for k in 2..=9 {
            assert_eq!(operation_to_kafka(operation(k).unwrap() as i32), k);
        }
        for k in 2..=3 {
            assert_eq!(permission_to_kafka(permission(k).unwrap() as i32), k);
        }
    }

    #[test]
    fn bindings_runnel_cannot_hold_are_refused_with_a_reason() {
        let ok = binding(4, "kafka-cluster", 3, "User:a", "*", 7, 3)
            .ok()
            .unwrap();
        assert_eq!(
            ok.resource_name, CLUSTER_NAME,
            "Kafka's cluster name is Runnel's"
        );
        let e = binding(5, "tx", 3, "User:a", "*", 4, 3).err().unwrap().0;
        assert!(e.contains("resource type"), "{e}");
        let e = binding(2, "t", 3, "User:a", "10.0.0.1", 4, 3)
            .err()
            .unwrap()
            .0;
        assert!(e.contains("every host"), "{e}");
        let e = binding(2, "t", 3, "User:a", "*", 12, 3).err().unwrap().0;
        assert!(e.contains("operation"), "{e}");
        assert!(
            binding(2, "t", 1, "User:a", "*", 4, 3).is_err(),
            "ANY is for filters"
        );
    }

    #[test]
    fn match_filters_keep_literal_wildcard_and_prefix_patterns() {
        let f = filter(2, Some("orders-eu"), MATCH, None, None, 1, 1)
            .ok()
            .flatten()
            .unwrap();
        let b = |name: &str, pt: pb::AclPatternType| pb::AclBinding {
            resource_name: name.into(),
            pattern_type: pt as i32,
            ..Default::default()
        };
        assert!(f.keeps(&b("orders-eu", pb::AclPatternType::Literal)));
        assert!(f.keeps(&b("*", pb::AclPatternType::Literal)));
        assert!(f.keeps(&b("orders-", pb::AclPatternType::Prefixed)));
        assert!(!f.keeps(&b("orders", pb::AclPatternType::Literal)));
        assert!(!f.keeps(&b("payments-", pb::AclPatternType::Prefixed)));
        // A host other than "*" and a transactional-id filter match nothing.
        assert!(
            filter(2, None, 1, None, Some("10.1.1.1"), 1, 1)
                .ok()
                .unwrap()
                .is_none()
        );
        assert!(filter(5, None, 1, None, None, 1, 1).ok().unwrap().is_none());
        assert!(filter(0, None, 1, None, None, 1, 1).is_err());
    }
}
