//! Walks a resource in FHIR JSON against the base R4 [`Model`]: every key must be an element of
//! its type (or the `_name` of a primitive's extensions), repeating elements are non-empty arrays
//! and single ones are not arrays, no `null` outside primitive arrays, no empty objects, required
//! elements present, primitives in their format, `code`s of required bindings in their value set,
//! nested resources checked by their own type. Each problem names the element with indices, e.g.
//! `Patient.name[0].given`; no message quotes a value.

use serde_json::{Map, Value};

use super::{Element, Kind, Model, model, primitive};
use crate::fhir::validate::Violation;

/// Walks at most this deep (the HTTP edge refuses deeper documents already; this keeps the walk
/// bounded for any caller, e.g. the fuzzers).
const MAX_DEPTH: usize = crate::limits::MAX_NESTING_DEPTH;

/// Checks `resource` against base R4.
pub fn validate(resource: &Value) -> Result<(), Vec<Violation>> {
    let mut walk = Walk { model: model(), out: Vec::new() };
    walk.resource(resource, None, 0);
    if walk.out.is_empty() { Ok(()) } else { Err(walk.out) }
}

struct Walk<'m> {
    model: &'m Model,
    out: Vec<Violation>,
}

/// The path of the element being walked, one buffer for the whole walk: a segment is appended
/// going down and cut going back up, so no string is built for an element unless it has a
/// problem (the per-element `format!` was the biggest cost of a report's check, bench/README.md).
struct Path(String);

impl Path {
    fn key(&mut self, key: &str) -> usize {
        let len = self.0.len();
        self.0.push('.');
        self.0.push_str(key);
        len
    }
    fn index(&mut self, i: usize) -> usize {
        use std::fmt::Write;
        let len = self.0.len();
        let _ = write!(self.0, "[{i}]");
        len
    }
    fn cut(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

impl Walk<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation { path: path.into(), message: message.into() });
    }

    /// A problem at `path` plus `suffix` (a key or an index not yet on the path).
    fn push_at(&mut self, path: &Path, suffix: std::fmt::Arguments<'_>, message: impl Into<String>) {
        self.push(format!("{}{suffix}", path.0), message);
    }

    /// A resource at `path` (`None` at the top: the path then starts with its type).
    fn resource(&mut self, value: &Value, path: Option<&mut Path>, depth: usize) {
        let shown = path.as_ref().map_or("resource", |p| p.0.as_str()).to_owned();
        let Some(object) = value.as_object() else {
            return self.push(shown, "must be a resource (a JSON object)");
        };
        let Some(kind) = object.get("resourceType").and_then(Value::as_str) else {
            return self.push(format!("{shown}.resourceType"), "is required");
        };
        let Some(&node) = self.model.resources.get(kind) else {
            return self.push(format!("{shown}.resourceType"), "is not an R4 resource type");
        };
        match path {
            Some(path) => self.object(node, object, path, depth, true),
            None => self.object(node, object, &mut Path(kind.to_owned()), depth, true),
        }
    }

    fn object(&mut self, node: usize, object: &Map<String, Value>, path: &mut Path, depth: usize, resource: bool) {
        if depth > MAX_DEPTH {
            return self.push(path.0.clone(), format!("is nested more than {MAX_DEPTH} levels deep"));
        }
        let Some(n) = self.model.nodes.get(node) else { return };
        if object.is_empty() {
            return self.push(path.0.clone(), "must not be empty (an element needs a value or children)");
        }
        // Per element: items present (a primitive's `_name` counts, it may stand in for the value)
        // and, for a choice element, how many of its keys are used.
        let mut present = vec![0usize; n.elements.len()];
        let mut choices = vec![0usize; n.elements.len()];
        // `_name` keys are rare: look them up only when the object has one.
        let underscored = object.keys().any(|k| k.starts_with('_'));
        for (key, value) in object {
            if resource && key == "resourceType" {
                continue;
            }
            let up = path.key(key);
            if let Some(base) = key.strip_prefix('_') {
                match n.keys.get(base) {
                    Some((i, Kind::Primitive(_))) => {
                        if let Some(count) = present.get_mut(*i) {
                            *count = (*count).max(1);
                        }
                        let repeating = n.elements.get(*i).is_some_and(|e| e.max != Some(1));
                        self.primitive_extensions(value, object.get(base), repeating, path, depth);
                    }
                    _ => self.push(path.0.clone(), "is not an element here"),
                }
                path.cut(up);
                continue;
            }
            let Some((i, kind)) = n.keys.get(key) else {
                self.push(path.0.clone(), "is not an element here");
                path.cut(up);
                continue;
            };
            let Some(element) = n.elements.get(*i) else {
                path.cut(up);
                continue;
            };
            if let Some(c) = choices.get_mut(*i) {
                *c += 1;
            }
            let extensions = if underscored { object.get(&format!("_{key}")) } else { None };
            let count = self.items(element, kind, value, extensions, path, depth);
            if let Some(present) = present.get_mut(*i) {
                *present += count;
            }
            path.cut(up);
        }
        for (i, element) in n.elements.iter().enumerate() {
            let count = present.get(i).copied().unwrap_or_default();
            let name = &element.name;
            if count < element.min as usize {
                self.push_at(
                    path,
                    format_args!(".{name}"),
                    format!("is required (minimum cardinality {})", element.min),
                );
            }
            if element.max.is_some_and(|max| count > max as usize && max != 1) {
                self.push_at(
                    path,
                    format_args!(".{name}"),
                    format!("has more than {} items", element.max.unwrap_or(0)),
                );
            }
            if choices.get(i).is_some_and(|c| *c > 1) {
                self.push_at(path, format_args!(".{name}"), "takes one type only (several value[x] keys given)");
            }
        }
    }

    /// Checks that `value` is shaped as the element's cardinality says (an array of items for a
    /// repeating element, one item otherwise), then each item; how many items it has.
    fn items(
        &mut self,
        element: &Element,
        kind: &Kind,
        value: &Value,
        extensions: Option<&Value>,
        path: &mut Path,
        depth: usize,
    ) -> usize {
        let repeating = element.max != Some(1);
        match value {
            Value::Null => {
                self.push(path.0.clone(), "must not be null (leave the element out)");
                0
            }
            Value::Array(_) if !repeating => {
                self.push(path.0.clone(), "takes a single value, not an array");
                0
            }
            Value::Array(items) if items.is_empty() => {
                self.push(path.0.clone(), "must not be an empty array (leave the element out)");
                0
            }
            Value::Array(items) => {
                let mut count = 0;
                for (i, item) in items.iter().enumerate() {
                    // A null stands for a value given only as extensions, in the `_name` array.
                    let extended = extensions.and_then(|e| e.get(i)).is_some_and(|e| !e.is_null());
                    match item {
                        Value::Null if extended => {}
                        Value::Null => self.push_at(path, format_args!("[{i}]"), "must not be null"),
                        item => {
                            count += 1;
                            let up = path.index(i);
                            self.item(element, kind, item, path, depth);
                            path.cut(up);
                        }
                    }
                }
                count
            }
            _ if repeating => {
                self.push(path.0.clone(), "must be an array (the element repeats)");
                0
            }
            item => {
                self.item(element, kind, item, path, depth);
                1
            }
        }
    }

    fn item(&mut self, element: &Element, kind: &Kind, item: &Value, path: &mut Path, depth: usize) {
        match kind {
            Kind::Primitive(p) => {
                if let Err(message) = primitive::check(p, item) {
                    return self.push(path.0.clone(), message);
                }
                let codes = element.codes.as_ref().filter(|_| &**p == "code");
                if let Some(codes) = codes
                    && !item.as_str().is_some_and(|c| codes.contains(c))
                {
                    self.push(path.0.clone(), "is not a code of the element's required value set");
                }
            }
            Kind::Node(node) => match item.as_object() {
                Some(object) => self.object(*node, object, path, depth + 1, false),
                None => self.push(path.0.clone(), "must be a JSON object"),
            },
            Kind::Resource => self.resource(item, Some(path), depth + 1),
        }
    }

    /// `_name`: the id and extensions of a primitive (an object, or for a repeating element an
    /// array of objects and nulls as long as the values).
    fn primitive_extensions(
        &mut self,
        value: &Value,
        values: Option<&Value>,
        repeating: bool,
        path: &mut Path,
        depth: usize,
    ) {
        let element_node = self.model.element;
        match (value, repeating) {
            (Value::Object(object), false) => self.object(element_node, object, path, depth + 1, false),
            (Value::Array(items), true) => {
                if values.and_then(Value::as_array).is_some_and(|v| v.len() != items.len()) {
                    self.push(path.0.clone(), "must have one item (or null) for each value");
                }
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Null => {}
                        Value::Object(object) => {
                            let up = path.index(i);
                            self.object(element_node, object, path, depth + 1, false);
                            path.cut(up);
                        }
                        _ => self.push_at(path, format_args!("[{i}]"), "must be a JSON object or null"),
                    }
                }
            }
            (_, true) => self.push(path.0.clone(), "must be an array (the element repeats)"),
            (_, false) => self.push(path.0.clone(), "must be a JSON object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(resource: Value) -> Vec<String> {
        validate(&resource).err().unwrap_or_default().into_iter().map(|v| v.path).collect()
    }

    #[test]
    fn a_valid_patient_passes() {
        let patient = json!({"resourceType": "Patient", "id": "p1", "meta": {"profile": ["http://x/p"]},
            "identifier": [{"system": "https://x/id", "value": "p1"}], "name": [{"text": "A B", "given": ["A"]}],
            "gender": "female", "birthDate": "1990-05-12", "_birthDate": {"extension": [{"url": "http://x/e", "valueBoolean": true}]},
            "extension": [{"url": "http://x/l", "valueIdentifier": {"value": "h1"}}]});
        assert_eq!(validate(&patient), Ok(()));
    }

    #[test]
    fn what_fhirbolt_lets_through_is_caught() {
        let found = paths(json!({"resourceType": "Patient", "name": [{"given": "Amina"}], "gender": "Amina Njeri",
            "birthDate": "12/05/1990", "telecom": [], "nmae": 1}));
        assert_eq!(
            found,
            ["Patient.name[0].given", "Patient.gender", "Patient.birthDate", "Patient.telecom", "Patient.nmae"]
        );
        let found =
            paths(json!({"resourceType": "Task", "status": "requested", "intent": "order", "note": {"text": "x"}}));
        assert_eq!(found, ["Task.note"]);
    }

    #[test]
    fn required_elements_choices_and_nested_resources() {
        let found =
            paths(json!({"resourceType": "Observation", "status": "final", "valueString": "a", "valueBoolean": true}));
        assert_eq!(found, ["Observation.code", "Observation.value[x]"]);
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "gender": "woman"}, "request": {"method": "PUT", "url": "Patient/a"}},
            {"resource": {"resourceType": "Nope"}, "request": {"method": "FETCH", "url": "x"}}]});
        assert_eq!(
            paths(bundle),
            [
                "Bundle.entry[0].resource.gender",
                "Bundle.entry[1].resource.resourceType",
                "Bundle.entry[1].request.method"
            ]
        );
        assert_eq!(paths(json!({"resourceType": "Patient", "id": ".."})), ["Patient.id"]);
        assert_eq!(paths(json!([1])), ["resource"]);
        assert_eq!(validate(&json!({"resourceType": "Patient"})), Ok(()), "a resource may have no elements");
        assert_eq!(paths(json!({"resourceType": "Patient", "meta": {}})), ["Patient.meta"]);
    }

    #[test]
    fn primitive_arrays_with_extensions_and_nulls() {
        let ok = json!({"resourceType": "Patient", "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "http://x", "valueString": "b"}]}]}]});
        assert_eq!(validate(&ok), Ok(()));
        let bad = json!({"resourceType": "Patient", "name": [{"given": ["A", null]}]});
        assert_eq!(paths(bad), ["Patient.name[0].given[1]"]);
    }

    #[test]
    fn content_references_are_followed() {
        let q = json!({"resourceType": "Questionnaire", "status": "active", "item": [{"linkId": "1", "type": "group",
            "item": [{"linkId": "1.1", "type": "sideways"}]}]});
        assert_eq!(paths(q), ["Questionnaire.item[0].item[0].type"]);
    }
}
