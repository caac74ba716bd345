//! Panic-free access to JSON values. serde_json's index *writes* (`value["key"] = x`) panic when
//! `value` is not an object (a FHIR server answering a Task read with an array did exactly that),
//! and `value[i]` panics past the end of an array. The crate forbids those constructs
//! (`clippy::indexing_slicing`); these methods are what it uses instead.

use serde_json::{Map, Value};

static NULL: Value = Value::Null;

/// Reads and writes that never panic.
pub trait JsonExt {
    /// The value of `key`, or `null` when `self` is not an object or has no such key.
    fn at(&self, key: &str) -> &Value;
    /// Item `i`, or `null` when `self` is not an array or is shorter.
    fn nth(&self, i: usize) -> &Value;
    /// Sets `key` when `self` is an object (and turns `null` into one); anything else is left as
    /// it is — the mediator only writes into objects it built or checked.
    fn set(&mut self, key: &str, value: Value);
    /// The object at `key`, created (or replaced, when it is not an object) if need be.
    fn object_at(&mut self, key: &str) -> Option<&mut Map<String, Value>>;
}

impl JsonExt for Value {
    fn at(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }

    fn nth(&self, i: usize) -> &Value {
        self.get(i).unwrap_or(&NULL)
    }

    fn set(&mut self, key: &str, value: Value) {
        if self.is_null() {
            *self = Value::Object(Map::new());
        }
        if let Value::Object(map) = self {
            map.insert(key.to_owned(), value);
        }
    }

    fn object_at(&mut self, key: &str) -> Option<&mut Map<String, Value>> {
        if self.is_null() {
            *self = Value::Object(Map::new());
        }
        let map = self.as_object_mut()?;
        let slot = map.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        slot.as_object_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_never_panic() {
        let mut not_an_object = json!([1, 2]);
        not_an_object.set("status", json!("received"));
        assert_eq!(not_an_object, json!([1, 2]));
        assert!(not_an_object.at("x").is_null() && not_an_object.nth(5).is_null());
        assert_eq!(not_an_object.nth(1), &json!(2));
        let mut task = json!({"status": "requested"});
        task.set("status", json!("received"));
        assert_eq!(task.at("status"), "received");
        let mut empty = Value::Null;
        empty.object_at("destination").map(|d| d.insert("base_url".into(), json!("u")));
        assert_eq!(empty, json!({"destination": {"base_url": "u"}}));
    }
}
