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

impl Walk<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation { path: path.into(), message: message.into() });
    }

    /// A resource at `path` (`None` at the top: the path then starts with its type).
    fn resource(&mut self, value: &Value, path: Option<&str>, depth: usize) {
        let shown = path.unwrap_or("resource");
        let Some(object) = value.as_object() else {
            return self.push(shown, "must be a resource (a JSON object)");
        };
        let Some(kind) = object.get("resourceType").and_then(Value::as_str) else {
            return self.push(format!("{shown}.resourceType"), "is required");
        };
        let Some(&node) = self.model.resources.get(kind) else {
            return self.push(format!("{shown}.resourceType"), "is not an R4 resource type");
        };
        let here = path.map_or_else(|| kind.to_owned(), str::to_owned);
        self.object(node, object, &here, depth, true);
    }

    fn object(&mut self, node: usize, object: &Map<String, Value>, path: &str, depth: usize, resource: bool) {
        if depth > MAX_DEPTH {
            return self.push(path, format!("is nested more than {MAX_DEPTH} levels deep"));
        }
        let Some(n) = self.model.nodes.get(node) else { return };
        if object.is_empty() {
            return self.push(path, "must not be empty (an element needs a value or children)");
        }
        // Per element: items present (a primitive's `_name` counts, it may stand in for the value)
        // and, for a choice element, how many of its keys are used.
        let mut present = vec![0usize; n.elements.len()];
        let mut choices = vec![0usize; n.elements.len()];
        for (key, value) in object {
            if resource && key == "resourceType" {
                continue;
            }
            let key_path = format!("{path}.{key}");
            if let Some(base) = key.strip_prefix('_') {
                match n.keys.get(base) {
                    Some((i, Kind::Primitive(_))) => {
                        if let Some(count) = present.get_mut(*i) {
                            *count = (*count).max(1);
                        }
                        let repeating = n.elements.get(*i).is_some_and(|e| e.max != Some(1));
                        self.primitive_extensions(value, object.get(base), repeating, &key_path, depth);
                    }
                    _ => self.push(key_path, "is not an element here"),
                }
                continue;
            }
            let Some((i, kind)) = n.keys.get(key) else {
                self.push(key_path, "is not an element here");
                continue;
            };
            let Some(element) = n.elements.get(*i) else { continue };
            if let Some(c) = choices.get_mut(*i) {
                *c += 1;
            }
            let extensions = object.get(&format!("_{key}"));
            let items = self.items(element, value, extensions, &key_path);
            if let Some(count) = present.get_mut(*i) {
                *count += items.len();
            }
            for (item_path, item) in items {
                self.item(element, kind, item, &item_path, depth);
            }
        }
        for (i, element) in n.elements.iter().enumerate() {
            let count = present.get(i).copied().unwrap_or_default();
            let name = &element.name;
            if count < element.min as usize {
                self.push(format!("{path}.{name}"), format!("is required (minimum cardinality {})", element.min));
            }
            if element.max.is_some_and(|max| count > max as usize && max != 1) {
                self.push(format!("{path}.{name}"), format!("has more than {} items", element.max.unwrap_or(0)));
            }
            if choices.get(i).is_some_and(|c| *c > 1) {
                self.push(format!("{path}.{name}"), "takes one type only (several value[x] keys given)");
            }
        }
    }

    /// The items of `value` with their paths, after checking it is shaped as the element's
    /// cardinality says (an array of items for a repeating element, one item otherwise).
    fn items<'v>(
        &mut self,
        element: &Element,
        value: &'v Value,
        extensions: Option<&Value>,
        path: &str,
    ) -> Vec<(String, &'v Value)> {
        let repeating = element.max != Some(1);
        match value {
            Value::Null => {
                self.push(path, "must not be null (leave the element out)");
                Vec::new()
            }
            Value::Array(_) if !repeating => {
                self.push(path, "takes a single value, not an array");
                Vec::new()
            }
            Value::Array(items) if items.is_empty() => {
                self.push(path, "must not be an empty array (leave the element out)");
                Vec::new()
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    // A null stands for a value given only as extensions, in the `_name` array.
                    let extended = extensions.and_then(|e| e.get(i)).is_some_and(|e| !e.is_null());
                    match item {
                        Value::Null if extended => {}
                        Value::Null => self.push(item_path, "must not be null"),
                        item => out.push((item_path, item)),
                    }
                }
                out
            }
            _ if repeating => {
                self.push(path, "must be an array (the element repeats)");
                Vec::new()
            }
            item => vec![(path.to_owned(), item)],
        }
    }

    fn item(&mut self, element: &Element, kind: &Kind, item: &Value, path: &str, depth: usize) {
        match kind {
            Kind::Primitive(p) => {
                if let Err(message) = primitive::check(p, item) {
                    return self.push(path, message);
                }
                let codes = element.codes.as_ref().filter(|_| &**p == "code");
                if let Some(codes) = codes
                    && !item.as_str().is_some_and(|c| codes.contains(c))
                {
                    self.push(path, "is not a code of the element's required value set");
                }
            }
            Kind::Node(node) => match item.as_object() {
                Some(object) => self.object(*node, object, path, depth + 1, false),
                None => self.push(path, "must be a JSON object"),
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
        path: &str,
        depth: usize,
    ) {
        let element_node = self.model.element;
        match (value, repeating) {
            (Value::Object(object), false) => self.object(element_node, object, path, depth + 1, false),
            (Value::Array(items), true) => {
                if values.and_then(Value::as_array).is_some_and(|v| v.len() != items.len()) {
                    self.push(path, "must have one item (or null) for each value");
                }
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Null => {}
                        Value::Object(object) => {
                            self.object(element_node, object, &format!("{path}[{i}]"), depth + 1, false)
                        }
                        _ => self.push(format!("{path}[{i}]"), "must be a JSON object or null"),
                    }
                }
            }
            (_, true) => self.push(path, "must be an array (the element repeats)"),
            (_, false) => self.push(path, "must be a JSON object"),
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
