//! The part of the configuration an OpenHIM admin may edit in the console: upstream URLs,
//! credentials, timeouts and identifier systems. It is parsed from the same [`Source`] as the
//! rest, and console values are applied by overlaying them on the file/environment values, so
//! every rule (and every error message) is shared, and clearing a console field falls back to
//! the environment again.

use std::time::Duration;

use serde_json::{Map, Value};

use super::auth::UpstreamAuth;
use super::source::{SettingsError, Source, check_http_url};

/// One upstream HTTP service (FHIR server or CHT).
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: url::Url,
    /// How the mediator authenticates to it (`FHIR_AUTH` for the FHIR server; Basic or none
    /// from `CHT_USERNAME` for the CHT).
    pub auth: UpstreamAuth,
    pub timeout: Duration,
}

/// Identifier systems (absolute URIs) the mediator writes on FHIR resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierSystems {
    /// `CHT_DOCUMENT_ID_SYSTEM`: the CHT document `_id`.
    pub document_id: String,
    /// `CHT_PATIENT_ID_SYSTEM`: the CHT `patient_id` short code.
    pub patient_id: String,
}

#[cfg(test)]
impl IdentifierSystems {
    /// The systems the unit tests use.
    pub fn example() -> Self {
        Self {
            document_id: "https://cht.example.org/id/doc".into(),
            patient_id: "https://cht.example.org/id/patient".into(),
        }
    }
}

/// Settings that can change while the mediator runs.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub fhir: Upstream,
    /// `FHIR_WRITE_MODE`: `auto` (per type, from the server's CapabilityStatement), `client-ids`
    /// or `conditional` (see `crate::fhir::capabilities`).
    pub fhir_write_mode: crate::fhir::capabilities::WriteSetting,
    pub cht: Upstream,
    pub identifiers: IdentifierSystems,
}

/// Kind of a console parameter, as OpenHIM's `configDefs` types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Password,
    Number,
    /// One of a fixed list (OpenHIM's `option` type; the values are in `configDefs`).
    Option,
}

/// A console parameter and the setting it overrides.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleParam {
    pub param: &'static str,
    pub setting: &'static str,
    pub kind: ParamKind,
}

const fn p(param: &'static str, setting: &'static str, kind: ParamKind) -> ConsoleParam {
    ConsoleParam { param, setting, kind }
}

/// Every console parameter. `mediator-config/mediator.json` declares exactly these in `configDefs`
/// (a test holds the two together).
pub const CONSOLE_PARAMS: &[ConsoleParam] = &[
    p("fhirUrl", "FHIR_URL", ParamKind::String),
    p("fhirUsername", "FHIR_USERNAME", ParamKind::String),
    p("fhirPassword", "FHIR_PASSWORD", ParamKind::Password),
    p("fhirAuth", "FHIR_AUTH", ParamKind::Option),
    p("fhirBearerToken", "FHIR_BEARER_TOKEN", ParamKind::Password),
    p("fhirOauthTokenUrl", "FHIR_OAUTH_TOKEN_URL", ParamKind::String),
    p("fhirOauthClientId", "FHIR_OAUTH_CLIENT_ID", ParamKind::String),
    p("fhirOauthClientSecret", "FHIR_OAUTH_CLIENT_SECRET", ParamKind::Password),
    p("fhirOauthScope", "FHIR_OAUTH_SCOPE", ParamKind::String),
    p("fhirOauthClientAuth", "FHIR_OAUTH_CLIENT_AUTH", ParamKind::Option),
    p("fhirTimeoutMs", "FHIR_TIMEOUT_MS", ParamKind::Number),
    p("fhirWriteMode", "FHIR_WRITE_MODE", ParamKind::Option),
    p("chtUrl", "CHT_URL", ParamKind::String),
    p("chtUsername", "CHT_USERNAME", ParamKind::String),
    p("chtPassword", "CHT_PASSWORD", ParamKind::Password),
    p("chtTimeoutMs", "CHT_TIMEOUT_MS", ParamKind::Number),
    p("chtDocumentIdSystem", "CHT_DOCUMENT_ID_SYSTEM", ParamKind::String),
    p("chtPatientIdSystem", "CHT_PATIENT_ID_SYSTEM", ParamKind::String),
];

impl LiveConfig {
    /// Parses the live part of the settings.
    pub fn from_source(source: &Source) -> Result<Self, SettingsError> {
        let upstream = |prefix: &str, auth: UpstreamAuth| -> Result<Upstream, SettingsError> {
            Ok(Upstream {
                url: source.http_url(&format!("{prefix}_URL"))?,
                auth,
                timeout: source.millis(&format!("{prefix}_TIMEOUT_MS"))?,
            })
        };
        Ok(Self {
            fhir: upstream("FHIR", UpstreamAuth::fhir_from_source(source)?)?,
            fhir_write_mode: source.parse("FHIR_WRITE_MODE")?,
            cht: upstream("CHT", UpstreamAuth::cht_from_source(source))?,
            identifiers: IdentifierSystems {
                document_id: absolute_uri(source, "CHT_DOCUMENT_ID_SYSTEM")?,
                patient_id: absolute_uri(source, "CHT_PATIENT_ID_SYSTEM")?,
            },
        })
    }

    /// Applies a config object from the OpenHIM console over `base` (the file/environment values).
    /// Empty or absent parameters keep the base value; unknown ones are ignored (an older or newer
    /// registration may carry them). Errors name the console parameter.
    pub fn from_console(base: &Source, config: &Map<String, Value>) -> Result<Self, SettingsError> {
        let mut source = base.clone();
        for def in CONSOLE_PARAMS {
            let value = match config.get(def.param) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.trim().is_empty() => continue,
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) if def.kind == ParamKind::Number => n.to_string(),
                Some(other) => {
                    return Err(SettingsError::invalid(def.param, format!("expected a {:?}, got {other}", def.kind)));
                }
            };
            source.set(def.setting, value);
        }
        Self::from_source(&source).map_err(rename_to_param)
    }

    /// The registration's default `config`: current non-secret values; secrets stay empty so
    /// credentials are not copied into OpenHIM (an empty console field means "use the environment").
    pub fn console_defaults(source: &Source) -> Map<String, Value> {
        CONSOLE_PARAMS
            .iter()
            .map(|def| {
                let raw = source.raw(def.setting).unwrap_or_default();
                let value = match def.kind {
                    ParamKind::Password => Value::String(String::new()),
                    ParamKind::Number => raw.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
                    ParamKind::String | ParamKind::Option => Value::String(raw.to_owned()),
                };
                (def.param.to_owned(), value)
            })
            .collect()
    }
}

fn absolute_uri(source: &Source, name: &str) -> Result<String, SettingsError> {
    let uri: url::Url = source.parse(name)?;
    if uri.scheme() == "http" || uri.scheme() == "https" {
        check_http_url(name, uri.clone())?;
    }
    Ok(uri.to_string())
}

/// Errors from console values name the console parameter, which is what the admin sees.
fn rename_to_param(err: SettingsError) -> SettingsError {
    let console_name = |name: &str| {
        CONSOLE_PARAMS
            .iter()
            .find(|d| d.setting == name)
            .map(|d| format!("{} (console parameter {})", name, d.param))
            .unwrap_or_else(|| name.to_owned())
    };
    match err {
        SettingsError::Invalid { name, reason } => SettingsError::Invalid { name: console_name(&name), reason },
        SettingsError::Missing { name } => SettingsError::Missing { name: console_name(&name) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    fn base() -> Source {
        let env =
            [("FHIR_URL", "http://fhir.local:8090"), ("FHIR_USERNAME", "mediator"), ("FHIR_PASSWORD", "from-env")];
        Source::load_with_env(None, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap()
    }

    fn console(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn console_values_override_and_empty_ones_fall_back_to_environment() {
        let cfg = LiveConfig::from_console(
            &base(),
            &console(
                json!({"chtUrl": "https://cht.example.org", "chtTimeoutMs": 2500, "fhirPassword": "", "other": 1}),
            ),
        )
        .unwrap();
        assert_eq!(cfg.cht.url.as_str(), "https://cht.example.org/");
        assert_eq!(cfg.cht.timeout, Duration::from_millis(2500));
        assert_eq!(cfg.fhir.url.as_str(), "http://fhir.local:8090/");
        let UpstreamAuth::Basic { password, .. } = &cfg.fhir.auth else { panic!("{:?}", cfg.fhir.auth) };
        assert_eq!(password.as_ref().unwrap().expose_secret(), "from-env");
    }

    #[test]
    fn invalid_console_value_names_the_console_parameter() {
        let err = LiveConfig::from_console(&base(), &console(json!({"fhirUrl": "nope"}))).unwrap_err();
        assert!(err.to_string().contains("console parameter fhirUrl"), "{err}");
        let err = LiveConfig::from_console(&base(), &console(json!({"chtTimeoutMs": true}))).unwrap_err();
        assert!(err.to_string().contains("chtTimeoutMs"), "{err}");
    }

    #[test]
    fn the_console_can_switch_the_fhir_server_to_oauth2() {
        let params = json!({"fhirAuth": "oauth2", "fhirOauthTokenUrl": "https://idp.example.org/token",
            "fhirOauthClientId": "mediator", "fhirOauthClientSecret": "console-secret", "fhirOauthClientAuth": "post"});
        let cfg = LiveConfig::from_console(&base(), &console(params)).unwrap();
        let UpstreamAuth::OAuth2(client) = &cfg.fhir.auth else { panic!("{:?}", cfg.fhir.auth) };
        assert_eq!(client.client_secret.expose_secret(), "console-secret");
        assert_eq!(client.client_auth, crate::settings::auth::ClientAuth::Post);
        let err = LiveConfig::from_console(&base(), &console(json!({"fhirAuth": "oauth2"}))).unwrap_err();
        assert!(err.to_string().contains("console parameter fhirOauthTokenUrl"), "{err}");
    }

    #[test]
    fn console_defaults_carry_no_secrets() {
        let defaults = LiveConfig::console_defaults(&base());
        assert_eq!(defaults["fhirPassword"], json!(""));
        assert_eq!(defaults["fhirUrl"], json!("http://fhir.local:8090"));
        assert_eq!(defaults["fhirTimeoutMs"], json!(5000));
        assert_eq!(defaults.len(), CONSOLE_PARAMS.len());
    }
}
