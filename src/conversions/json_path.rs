//! Dotted paths into CHT documents (`fields.vitals.weight`), with `[]` for repeats
//! (`fields.members[].age` visits every member).

use serde_json::Value;

/// The value at `path`, if present and not null.
pub fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key)).filter(|v| !v.is_null())
}

/// The first of `paths` that holds a non-empty string, with the path it came from.
pub fn first_string<'a>(value: &'a Value, paths: &'a [String]) -> Option<(&'a str, &'a str)> {
    paths
        .iter()
        .find_map(|p| get(value, p).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(|s| (p.as_str(), s)))
}

/// Every value at `path`, expanding each `[]` over an array, with its concrete path
/// (`fields.members[1].age`). Missing or null values are skipped.
pub fn get_all<'a>(value: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    let mut found = vec![(String::new(), value)];
    for key in path.split('.') {
        let (name, repeat) = match key.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (key, false),
        };
        let mut next = Vec::new();
        for (at, v) in found {
            let Some(child) = v.get(name).filter(|c| !c.is_null()) else { continue };
            let at = if at.is_empty() { name.to_owned() } else { format!("{at}.{name}") };
            match (repeat, child) {
                (true, Value::Array(items)) => {
                    next.extend(
                        items
                            .iter()
                            .enumerate()
                            .filter(|(_, i)| !i.is_null())
                            .map(|(i, item)| (format!("{at}[{i}]"), item)),
                    );
                }
                (true, _) => {}
                (false, child) => next.push((at, child)),
            }
        }
        found = next;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_repeats() {
        let doc = json!({"fields": {"v": {"w": 3.5, "n": null}, "m": [{"age": 4}, {"x": 1}, {"age": 7}]}});
        assert_eq!(get(&doc, "fields.v.w"), Some(&json!(3.5)));
        assert_eq!(get(&doc, "fields.v.n"), None);
        let ages = get_all(&doc, "fields.m[].age");
        assert_eq!(ages, vec![("fields.m[0].age".to_owned(), &json!(4)), ("fields.m[2].age".to_owned(), &json!(7))]);
        assert_eq!(get_all(&doc, "fields.v.w").len(), 1);
        assert!(get_all(&doc, "fields.v[].w").is_empty(), "[] on a non-array finds nothing");
    }
}
