//! YAML with object keys in sorted order, whatever `serde_json` features the
//! build unified: `preserve_order` (which another crate of the workspace
//! enables) keeps insertion order, so without this the generated CRDs and
//! golden files would depend on which crates were built together.

use serde::Serialize;
use serde_json::{Map, Value};

/// `value` with every object's keys sorted.
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut sorted = Map::new();
            for (k, v) in entries {
                sorted.insert(k, canonical(v));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// `value` as YAML with sorted keys.
pub fn to_string<T: Serialize>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("serializes to JSON");
    // Cannot fail: a JSON value's map keys are strings, and YAML can hold
    // every JSON number.
    serde_yaml::to_string(&canonical(value)).expect("a JSON value serializes to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_sorted_at_every_depth() {
        let mut inner = Map::new();
        inner.insert("z".into(), Value::from(1));
        inner.insert("a".into(), Value::from(2));
        let mut outer = Map::new();
        outer.insert("y".into(), Value::Array(vec![Value::Object(inner)]));
        outer.insert("b".into(), Value::from(3));
        assert_eq!(
            to_string(&Value::Object(outer)),
            "b: 3\ny:\n- a: 2\n  z: 1\n"
        );
    }
}
