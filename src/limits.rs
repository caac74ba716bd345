//! Bounds on what one request can make the mediator do, checked at the edge before any parser or
//! converter sees the input. The parsers behind them (serde_json, fhirbolt's XML and JSON model,
//! the converters, the validators) recurse once per nesting level: a document nested deeply
//! enough overflows a thread's stack, which aborts the whole process with every request in flight.
//! So nesting is bounded here, well below what the stack the mediator runs on can take
//! ([`WORKER_STACK_BYTES`]; a test holds the two together), and the nesting is counted without
//! recursion.

use serde_json::Value;

/// Deepest nesting accepted in a request body, counting JSON objects and arrays (or XML elements).
/// Real FHIR resources and CHT documents stay far below it: a hydrated CHT person with a 6-level
/// lineage is ~15 deep, a Questionnaire with 10 levels of items ~25.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Stack of every thread the service runs requests on (tokio workers and blocking threads). Set
/// explicitly, rather than left to the runtime's default, so the depth limit above is checked
/// against a known stack (`tests/limits.rs` parses documents at the limit on a thread this size).
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Why a body is refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the document is nested more than {MAX_NESTING_DEPTH} levels deep")]
    TooDeep,
}

/// Checks the nesting of a parsed JSON value, iteratively.
pub fn check_json_depth(value: &Value) -> Result<(), LimitError> {
    let mut pending: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > MAX_NESTING_DEPTH {
            return Err(LimitError::TooDeep);
        }
        pending.extend(children.filter(|c| c.is_array() || c.is_object()).map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// Checks the element nesting of an XML document with the same tokenizer fhirbolt parses it with
/// (quick-xml), without building anything. Malformed XML is left for the parser to report.
pub fn check_xml_depth(text: &str) -> Result<(), LimitError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                if depth > MAX_NESTING_DEPTH {
                    return Err(LimitError::TooDeep);
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn nested_json(depth: usize) -> String {
        let mut s = String::new();
        for _ in 1..depth {
            s.push_str("{\"a\":");
        }
        s.push_str("{}");
        for _ in 1..depth {
            s.push('}');
        }
        s
    }

    #[test]
    fn json_at_the_limit_passes_and_one_deeper_does_not() {
        let at: Value = serde_json::from_str(&nested_json(MAX_NESTING_DEPTH)).unwrap();
        assert_eq!(check_json_depth(&at), Ok(()));
        let over: Value = serde_json::from_str(&nested_json(MAX_NESTING_DEPTH + 1)).unwrap();
        assert_eq!(check_json_depth(&over), Err(LimitError::TooDeep));
        assert_eq!(check_json_depth(&serde_json::json!([[1], {"a": [2]}, "x"])), Ok(()));
    }

    #[test]
    fn xml_nesting_is_counted_by_elements() {
        let nest = |n: usize| format!("{}{}", "<extension url=\"u\">".repeat(n), "</extension>".repeat(n));
        assert_eq!(check_xml_depth(&format!("<Patient>{}</Patient>", nest(MAX_NESTING_DEPTH - 1))), Ok(()));
        assert_eq!(
            check_xml_depth(&format!("<Patient>{}</Patient>", nest(MAX_NESTING_DEPTH))),
            Err(LimitError::TooDeep)
        );
        assert_eq!(check_xml_depth("<a><b/><b/><c><d/></c></a>"), Ok(()));
    }
}
