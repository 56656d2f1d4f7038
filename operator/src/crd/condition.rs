//! Kubernetes-style status conditions: set one by type, keeping its
//! `lastTransitionTime` when the status did not change (so `kubectl`
//! shows how long a resource has been Ready, not when it was last looked at).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `True` / `False`.
pub fn status(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Insert or replace the condition of `type_` in `conditions`.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    value: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let new_status = status(value);
    let previous = conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(c) if c.status == new_status => c.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status: new_status.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    };
    conditions.retain(|c| c.type_ != type_);
    conditions.push(condition);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// The condition of `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether two condition lists say the same thing, ignoring times: the
/// reconcilers skip a status write when nothing but the clock changed.
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conditions = Vec::new();
        set(&mut conditions, "Ready", false, "Creating", "", Some(1));
        let first = conditions[0].last_transition_time.clone();
        set(&mut conditions, "Ready", false, "Waiting", "still", Some(1));
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].reason, "Waiting");
        std::thread::sleep(std::time::Duration::from_millis(2));
        set(&mut conditions, "Ready", true, "Created", "", Some(2));
        assert_ne!(conditions[0].last_transition_time, first);
        set(&mut conditions, "Degraded", false, "Healthy", "", Some(2));
        assert_eq!(conditions.len(), 2);
        assert!(get(&conditions, "Degraded").is_some());
    }
}
