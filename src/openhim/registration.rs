//! The registration document (`mediator-config/mediator.json`): loaded, completed from settings
//! (where OpenHIM reaches this mediator, default config values) and checked against the rules
//! openhim-core enforces, so a bad document fails at start instead of as a 400 in a log.

use serde_json::{Map, Value};

use crate::json::JsonExt;
use crate::settings::{LiveConfig, Settings};

/// The registration document shipped with the binary.
pub const MEDIATOR_JSON: &str = include_str!("../../mediator-config/mediator.json");

const CONFIG_TYPES: &[&str] = &["string", "bool", "number", "option", "bigstring", "map", "struct", "password"];

/// A registration document ready to send.
#[derive(Debug, Clone)]
pub struct Registration {
    pub urn: String,
    pub version: String,
    pub document: Value,
}

/// Problems found in a registration document, each naming the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid mediator registration document: {}", .0.join("; "))]
pub struct RegistrationError(pub Vec<String>);

impl Registration {
    /// The shipped document with routes pointing at `MEDIATOR_ROUTE_HOST` and
    /// `MEDIATOR_ROUTE_PORT` (else `bound_port`), and `config` defaults from the settings; validated.
    pub fn from_settings(settings: &Settings, bound_port: u16) -> Result<Self, RegistrationError> {
        let mut document: Value = serde_json::from_str(MEDIATOR_JSON)
            .map_err(|e| RegistrationError(vec![format!("mediator.json is not JSON: {e}")]))?;
        let host = Value::from(settings.openhim.route_host.clone());
        let port = Value::from(settings.openhim.route_port.unwrap_or(bound_port));
        for route in routes_mut(&mut document) {
            route.insert("host".into(), host.clone());
            route.insert("port".into(), port.clone());
            // OpenHIM then sends these to the mediator as Basic auth.
            if let Some((user, password)) = &settings.server.route_credentials {
                use secrecy::ExposeSecret;
                route.insert("username".into(), Value::from(user.clone()));
                route.insert("password".into(), Value::from(password.expose_secret()));
            }
        }
        document.set("config", Value::Object(LiveConfig::console_defaults(&settings.source)));
        Self::from_document(document)
    }

    /// Validates a complete document, and that its version is this build's.
    pub fn from_document(document: Value) -> Result<Self, RegistrationError> {
        validate(&document)?;
        let version = document.at("version").as_str().unwrap_or_default().to_owned();
        if version != env!("CARGO_PKG_VERSION") {
            return Err(RegistrationError(vec![format!(
                "version {version} differs from the crate version {}; bump both together so OpenHIM accepts the update",
                env!("CARGO_PKG_VERSION")
            )]));
        }
        let urn = document.at("urn").as_str().unwrap_or_default().to_owned();
        Ok(Self { urn, version, document })
    }

    /// Names of the default channels.
    pub fn channel_names(&self) -> Vec<String> {
        self.document
            .at("defaultChannelConfig")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The default channel `name` as the registration declares it.
    pub fn channel_config(&self, name: &str) -> Option<&Value> {
        self.document.at("defaultChannelConfig").as_array()?.iter().find(|c| c.at("name") == name)
    }
}

fn routes_mut(document: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    let Value::Object(doc) = document else { return Vec::new().into_iter() };
    let mut routes = Vec::new();
    for (key, value) in doc.iter_mut() {
        match (key.as_str(), value) {
            ("endpoints", Value::Array(endpoints)) => {
                routes.extend(endpoints.iter_mut().filter_map(Value::as_object_mut))
            }
            ("defaultChannelConfig", Value::Array(channels)) => {
                for channel in channels {
                    if let Some(Value::Array(r)) = channel.get_mut("routes") {
                        routes.extend(r.iter_mut().filter_map(Value::as_object_mut));
                    }
                }
            }
            _ => {}
        }
    }
    routes.into_iter()
}

/// Checks the rules openhim-core applies to `POST /mediators` (see openhim.md) plus the ones
/// that make channels work: anchored URL patterns and sed-style path transforms.
pub fn validate(doc: &Value) -> Result<(), RegistrationError> {
    let mut errors = Vec::new();
    for field in ["urn", "name"] {
        if doc[field].as_str().is_none_or(str::is_empty) {
            errors.push(format!("{field} is required"));
        }
    }
    match doc["version"].as_str().map(semver::Version::parse) {
        Some(Ok(_)) => {}
        _ => errors.push("version must be semver x.y.z".into()),
    }
    match doc["endpoints"].as_array() {
        Some(endpoints) if !endpoints.is_empty() => {
            for (i, route) in endpoints.iter().enumerate() {
                check_route(&format!("endpoints[{i}]"), route, true, &mut errors);
            }
        }
        _ => errors.push("endpoints must hold at least one route".into()),
    }
    for (i, channel) in doc["defaultChannelConfig"].as_array().into_iter().flatten().enumerate() {
        check_channel(&format!("defaultChannelConfig[{i}]"), channel, &mut errors);
    }
    let defs = check_config_defs(doc, &mut errors);
    if let Some(config) = doc.get("config") {
        check_config(config, &defs, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(RegistrationError(errors)) }
}

fn check_route(at: &str, route: &Value, endpoint: bool, errors: &mut Vec<String>) {
    for field in ["name", "host"] {
        if route[field].as_str().is_none_or(str::is_empty) {
            errors.push(format!("{at}.{field} is required"));
        }
    }
    if !route["port"].as_u64().is_some_and(|p| (1..=65535).contains(&p)) {
        errors.push(format!("{at}.port must be a number from 1 to 65535"));
    }
    if route["type"] != "http" {
        errors.push(format!("{at}.type must be \"http\""));
    }
    if !route["primary"].is_boolean() {
        errors.push(format!("{at}.primary must be true or false"));
    }
    if endpoint && route["path"].as_str().is_none() {
        errors.push(format!("{at}.path is required"));
    }
    if let Some(transform) = route.get("pathTransform") {
        let ok =
            transform.as_str().is_some_and(|t| t.starts_with("s/") && t.ends_with('/') && t.matches('/').count() >= 3);
        if !ok {
            errors.push(format!("{at}.pathTransform must be sed-style s/from/to/"));
        }
        if route.get("path").is_some() {
            errors.push(format!("{at} has both path and pathTransform"));
        }
    }
}

fn check_channel(at: &str, channel: &Value, errors: &mut Vec<String>) {
    if channel["name"].as_str().is_none_or(str::is_empty) {
        errors.push(format!("{at}.name is required"));
    }
    // OpenHIM matches urlPattern as an unanchored JS regex: unanchored patterns catch too much.
    if !channel["urlPattern"].as_str().is_some_and(|p| p.starts_with('^') && p.ends_with('$')) {
        errors.push(format!("{at}.urlPattern must be anchored with ^...$"));
    }
    match channel["routes"].as_array() {
        Some(routes) if !routes.is_empty() => {
            for (i, route) in routes.iter().enumerate() {
                check_route(&format!("{at}.routes[{i}]"), route, false, errors);
            }
            if routes.iter().filter(|r| r["primary"] == true).count() != 1 {
                errors.push(format!("{at} needs exactly one primary route"));
            }
        }
        _ => errors.push(format!("{at}.routes must hold at least one route")),
    }
}

/// Checks `configDefs` and returns param → type.
fn check_config_defs(doc: &Value, errors: &mut Vec<String>) -> Map<String, Value> {
    let mut defs = Map::new();
    for (i, def) in doc["configDefs"].as_array().into_iter().flatten().enumerate() {
        let at = format!("configDefs[{i}]");
        let Some(param) = def["param"].as_str().filter(|p| !p.is_empty()) else {
            errors.push(format!("{at}.param is required"));
            continue;
        };
        let kind = def["type"].as_str().unwrap_or_default();
        if !CONFIG_TYPES.contains(&kind) {
            errors.push(format!("{at}.type {kind:?} is not one of {CONFIG_TYPES:?}"));
        }
        if kind == "option" && def["values"].as_array().is_none_or(Vec::is_empty) {
            errors.push(format!("{at} is an option without values"));
        }
        if kind == "struct" {
            let template = def["template"].as_array();
            if template.is_none_or(Vec::is_empty) {
                errors.push(format!("{at} is a struct without a template"));
            }
            for item in template.into_iter().flatten() {
                if item["param"].as_str().is_none() || item["type"] == "struct" || !item["type"].is_string() {
                    errors.push(format!("{at}.template items need param and a non-struct type"));
                }
            }
        }
        if defs.insert(param.to_owned(), def.clone()).is_some() {
            errors.push(format!("{at}.param {param} is declared twice"));
        }
    }
    defs
}

fn check_config(config: &Value, defs: &Map<String, Value>, errors: &mut Vec<String>) {
    let Some(config) = config.as_object() else {
        errors.push("config must be an object".into());
        return;
    };
    for (key, value) in config {
        let Some(def) = defs.get(key) else {
            errors.push(format!("config.{key} has no configDef"));
            continue;
        };
        let ok = match def["type"].as_str().unwrap_or_default() {
            "string" | "bigstring" | "password" => value.is_string(),
            "number" => value.is_number(),
            "bool" => value.is_boolean(),
            "option" => def["values"].as_array().is_some_and(|v| v.contains(value)),
            "map" => value.as_object().is_some_and(|m| m.values().all(Value::is_string)),
            _ => value.is_object() || value.is_array(),
        };
        if !ok {
            errors.push(format!("config.{key} does not match its configDef type {}", def["type"]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{CONSOLE_PARAMS, Source};
    use serde_json::json;

    fn settings() -> Settings {
        let env = [("OPENHIM_PASSWORD", "x"), ("MEDIATOR_ROUTE_HOST", "mediator"), ("MEDIATOR_ROUTE_PORT", "7000")];
        Settings::from_source(Source::load_with_env(None, env.map(|(k, v)| (k.into(), v.into()))).unwrap()).unwrap()
    }

    #[test]
    fn shipped_document_is_valid_and_versioned_like_the_crate() {
        let reg = Registration::from_settings(&settings(), 6000).unwrap();
        assert_eq!(reg.urn, "urn:mediator:cht-fhir-mediator");
        assert_eq!(reg.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn routes_point_at_the_configured_host_and_port() {
        let reg = Registration::from_settings(&settings(), 6000).unwrap();
        let doc = &reg.document;
        assert_eq!(doc["endpoints"][0]["host"], "mediator");
        assert_eq!(doc["endpoints"][0]["port"], 7000);
        for channel in doc["defaultChannelConfig"].as_array().unwrap() {
            assert_eq!(channel["routes"][0]["host"], "mediator");
            assert_eq!(channel["routes"][0]["port"], 7000);
            assert_eq!(channel["routes"][0]["pathTransform"], "s/\\/mediator//");
        }
    }

    #[test]
    fn route_credentials_go_into_every_route() {
        let env = [("OPENHIM_PASSWORD", "x"), ("ROUTE_USERNAME", "openhim"), ("ROUTE_PASSWORD", "route-secret")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let settings = Settings::from_source(Source::load_with_env(None, env).unwrap()).unwrap();
        let reg = Registration::from_settings(&settings, 6000).unwrap();
        for route in reg.document["defaultChannelConfig"].as_array().unwrap().iter().map(|c| &c["routes"][0]) {
            assert_eq!(
                (route["username"].as_str(), route["password"].as_str()),
                (Some("openhim"), Some("route-secret"))
            );
        }
        let env =
            [("OPENHIM_REGISTER", "false"), ("ROUTE_USERNAME", "openhim")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let err = Settings::from_source(Source::load_with_env(None, env).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "setting ROUTE_PASSWORD is required but not set");
    }

    #[test]
    fn routes_default_to_the_bound_port() {
        let env = [("OPENHIM_PASSWORD", "x")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let settings = Settings::from_source(Source::load_with_env(None, env).unwrap()).unwrap();
        let reg = Registration::from_settings(&settings, 41234).unwrap();
        assert_eq!(reg.document["endpoints"][0]["port"], 41234);
        assert_eq!(reg.document["defaultChannelConfig"][1]["routes"][0]["port"], 41234);
    }

    #[test]
    fn default_channels_cover_both_sides() {
        let reg = Registration::from_settings(&settings(), 6000).unwrap();
        let pattern = |name: &str| {
            reg.document["defaultChannelConfig"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["urlPattern"].clone())
        };
        assert_eq!(pattern("CHT inbound"), Some(json!("^/mediator/cht/.*$")));
        assert_eq!(pattern("FHIR requests to CHT"), Some(json!("^/mediator/fhir/.*$")));
    }

    #[test]
    fn config_defs_are_exactly_the_console_parameters() {
        let reg = Registration::from_settings(&settings(), 6000).unwrap();
        let defs = reg.document["configDefs"].as_array().unwrap();
        let mut declared: Vec<(&str, &str)> =
            defs.iter().map(|d| (d["param"].as_str().unwrap(), d["type"].as_str().unwrap())).collect();
        let mut expected: Vec<(&str, &str)> = CONSOLE_PARAMS
            .iter()
            .map(|p| {
                (
                    p.param,
                    match p.kind {
                        crate::settings::live::ParamKind::String => "string",
                        crate::settings::live::ParamKind::Password => "password",
                        crate::settings::live::ParamKind::Number => "number",
                        crate::settings::live::ParamKind::Option => "option",
                    },
                )
            })
            .collect();
        declared.sort();
        expected.sort();
        assert_eq!(declared, expected);
        assert!(defs.iter().all(|d| d["displayName"].is_string() && d["description"].is_string()));
    }

    #[test]
    fn validation_names_each_broken_field() {
        let mut doc: Value = serde_json::from_str(MEDIATOR_JSON).unwrap();
        doc["version"] = json!("1.0");
        doc["endpoints"][0]["port"] = json!("6000");
        doc["defaultChannelConfig"][0]["urlPattern"] = json!("/mediator/cht/.*");
        doc["configDefs"][0]["type"] = json!("url");
        doc["configDefs"].as_array_mut().unwrap().push(json!({"param": "mode", "type": "option", "values": []}));
        doc["config"] = json!({"undeclared": "x", "fhirTimeoutMs": "5000"});
        let err = validate(&doc).unwrap_err().0;
        let joined = err.join("\n");
        for needle in [
            "version must be semver",
            "endpoints[0].port",
            "defaultChannelConfig[0].urlPattern",
            "configDefs[0].type",
            "option without values",
            "config.undeclared has no configDef",
            "config.fhirTimeoutMs does not match",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
    }

    #[test]
    fn a_version_other_than_the_crate_version_is_refused() {
        let mut doc: Value = serde_json::from_str(MEDIATOR_JSON).unwrap();
        doc["version"] = json!("9.9.9");
        let err = Registration::from_document(doc).unwrap_err().to_string();
        assert!(err.contains("differs from the crate version"), "{err}");
    }
}
