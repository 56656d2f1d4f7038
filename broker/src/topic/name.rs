//! Kafka's topic name rules: 1–249 characters from `[a-zA-Z0-9._-]`, and not
//! `.` or `..` (they would be directory names with a meaning).

use crate::{Error, Result};

/// Longest legal name. Kafka's limit, chosen so `<topic>-<partition>`
/// directory names stay under common 255-byte file name limits.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Check a topic name; the error says which rule it broke.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidTopic {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed".into()));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid(format!(
            "it is {} characters long; the maximum is {MAX_TOPIC_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "character {c:?} is not allowed; use only ASCII letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_legal_names() {
        for ok in [
            "a",
            "orders",
            "orders.v2",
            "my_topic-1",
            "A.B-c_9",
            &"x".repeat(249),
        ] {
            validate_topic_name(ok).unwrap();
        }
    }

    #[test]
    fn rejects_with_reason() {
        for (bad, why) in [
            ("", "empty"),
            (".", "not allowed"),
            ("..", "not allowed"),
            ("a/b", "'/'"),
            ("naïve", "'ï'"),
            ("has space", "' '"),
        ] {
            let err = validate_topic_name(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(
            validate_topic_name(&"x".repeat(250))
                .unwrap_err()
                .to_string()
                .contains("249")
        );
    }
}
