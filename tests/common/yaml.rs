//! YAML helpers for the deployment-file tests (yaml-rust2 has no serde, so the serde_json
//! features forced on the build cannot reach it).

use yaml_rust2::Yaml;

/// A scalar as text (Kubernetes and compose want strings in many places).
pub fn scalar(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}
