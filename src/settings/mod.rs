//! Typed settings. Defaults live in `mediator-config/settings.toml`; an optional file and then
//! environment variables override them. Secrets are [`SecretString`]s. A missing or malformed
//! setting stops the mediator at start with a message naming it.
//!
//! The upstream part ([`LiveConfig`]) can also be edited in the OpenHIM console and is swapped in
//! at run time (see [`live`]).

pub mod auth;
pub mod live;
pub mod source;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::conversions::mapping::{DEFAULT_FORMS_JSON, FormMappings};
use crate::conversions::to_cht::{DEFAULT_OUTBOUND_JSON, OutboundMappings};
pub use auth::{ClientAuth, OAuth2Client, UpstreamAuth};
pub use live::{CONSOLE_PARAMS, ConsoleParam, IdentifierSystems, LiveConfig, Upstream};
pub use source::{SettingsError, Source};

/// Everything the mediator is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub openhim: OpenhimSettings,
    /// Upstream settings as the file and environment give them; the console may override them.
    pub live: LiveConfig,
    /// TLS trust: `TLS_CA_BUNDLE` (extra roots; its self-signed certificates trusted exactly) and
    /// the per-upstream pins `OPENHIM_TLS_PIN_SHA256`, `FHIR_TLS_PIN_SHA256`, `CHT_TLS_PIN_SHA256`.
    pub tls: crate::tls::TlsSettings,
    /// Form mappings (`FORM_MAPPINGS_FILE`, else the built-in `mediator-config/forms.json`).
    pub forms: std::sync::Arc<FormMappings>,
    /// Outbound mapping (`OUTBOUND_MAPPINGS_FILE`, else the built-in `mediator-config/outbound.json`).
    pub outbound: std::sync::Arc<OutboundMappings>,
    /// `DEAD_LETTER_DB`: path of the SQLite dead-letter store.
    pub dead_letter_db: PathBuf,
    /// `DEAD_LETTER_MAX_COUNT`, `DEAD_LETTER_MAX_BYTES`, `DEAD_LETTER_RETENTION_DAYS`.
    pub dead_letter_limits: crate::deadletter::Limits,
    /// Who is a patient (`CHT_PERSON_CONTACT_TYPES`, `CHT_STAFF_ROLES`, `CHT_STAFF_PLACE_TYPES`):
    /// the backfill's selection and the outbound `relevant_to` that `cht-config` prints.
    pub patients: crate::conversions::selection::PatientSelection,
    /// `CHT_FOLLOW_UP_FORM`: JSON form code of the CHT follow-up record (upper case, as CHT keeps it).
    pub cht_follow_up_form: String,
    /// The raw values, kept so console config is merged over the environment, not over itself.
    pub source: Source,
}

/// The HTTP service.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `HOST`: address to bind (use 0.0.0.0 in a container).
    pub host: IpAddr,
    /// `PORT`: port to bind; 0 picks a free one (tests).
    pub port: u16,
    /// `REQUEST_TIMEOUT_MS`: whole-request budget; CHT gives up after 10 s, so stay well inside.
    pub request_timeout: Duration,
    /// `BODY_LIMIT_BYTES`: larger request bodies get 413 (at once when `Content-Length` says so).
    pub body_limit_bytes: usize,
    /// `BODY_READ_TIMEOUT_MS`: a request body must arrive within this, else 408.
    pub body_read_timeout: Duration,
    /// `HEADER_READ_TIMEOUT_MS`: a connection must send a request's headers within this, else it
    /// is closed (slow-header clients cannot hold connections open).
    pub header_read_timeout: Duration,
    /// `IDLE_TIMEOUT_MS`: a connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections served at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// `LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `cht_fhir_mediator=debug,info`.
    pub log_level: String,
    /// `ROUTE_USERNAME` / `ROUTE_PASSWORD`: Basic credentials required on every endpoint but the
    /// probes and metrics (OpenHIM sends them: they are written into the registration's routes).
    pub route_credentials: Option<(String, SecretString)>,
    /// `FHIR_FACADE_BASE_URL`: the FHIR base URL callers use for the mediator's FHIR endpoints
    /// (e.g. `https://openhim.example.org:5000/mediator/fhir`), for absolute `fullUrl`s and
    /// paging links in search Bundles; unset, the links are relative to the search's URL.
    pub facade_base_url: Option<url::Url>,
}

/// How to reach and authenticate to the OpenHIM core API, and how to behave as its mediator.
#[derive(Debug, Clone)]
pub struct OpenhimSettings {
    /// `OPENHIM_API_URL`
    pub api_url: url::Url,
    /// `OPENHIM_USERNAME`
    pub username: String,
    /// `OPENHIM_PASSWORD` (required when registering)
    pub password: Option<SecretString>,
    /// `OPENHIM_AUTH`: `auto` (basic, then token on 401), `basic` or `token`.
    pub auth: AuthScheme,
    /// `OPENHIM_REGISTER`: register and heartbeat at start.
    pub register: bool,
    /// `OPENHIM_INSTALL_CHANNELS`: also install the default channels after registering.
    pub install_channels: bool,
    /// `OPENHIM_HEARTBEAT_INTERVAL_MS`
    pub heartbeat_interval: Duration,
    /// `OPENHIM_TIMEOUT_MS`: per call to the OpenHIM API.
    pub timeout: Duration,
    /// `OPENHIM_RETRY_MAX_MS`: longest wait between registration attempts (backoff cap).
    pub retry_max: Duration,
    /// `OPENHIM_APPLY_CONSOLE_CONFIG`: apply config edited in the console.
    pub apply_console_config: bool,
    /// `MEDIATOR_ROUTE_HOST`: host OpenHIM uses to reach this mediator (routes in the registration).
    pub route_host: String,
    /// `MEDIATOR_ROUTE_PORT`: port OpenHIM uses to reach this mediator; unset = the bound port.
    pub route_port: Option<u16>,
}

/// OpenHIM API authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Auto,
    Basic,
    Token,
}

impl std::str::FromStr for AuthScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "basic" => Ok(Self::Basic),
            "token" => Ok(Self::Token),
            _ => Err("expected one of auto, basic, token".into()),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err("expected pretty or json".into()),
        }
    }
}

impl Settings {
    /// Loads defaults, `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::from_source(Source::load(file)?)
    }

    /// Builds typed settings from raw values.
    pub fn from_source(source: Source) -> Result<Self, SettingsError> {
        let port: u16 = source.parse("PORT")?;
        let server = ServerSettings {
            host: source.parse("HOST")?,
            port,
            request_timeout: source.millis("REQUEST_TIMEOUT_MS")?,
            body_limit_bytes: source.parse("BODY_LIMIT_BYTES")?,
            body_read_timeout: source.millis("BODY_READ_TIMEOUT_MS")?,
            header_read_timeout: source.millis("HEADER_READ_TIMEOUT_MS")?,
            idle_timeout: source.millis("IDLE_TIMEOUT_MS")?,
            max_connections: match source.parse::<usize>("MAX_CONNECTIONS")? {
                0 => return Err(SettingsError::invalid("MAX_CONNECTIONS", "must be greater than 0")),
                n => n,
            },
            log_format: source.parse("LOG_FORMAT")?,
            log_level: source.string("LOG_LEVEL"),
            route_credentials: match (source.raw("ROUTE_USERNAME"), source.secret("ROUTE_PASSWORD")) {
                (None, _) => None,
                (Some(user), Some(password)) => Some((user.to_owned(), password)),
                (Some(_), None) => return Err(SettingsError::Missing { name: "ROUTE_PASSWORD".into() }),
            },
            facade_base_url: match source.raw("FHIR_FACADE_BASE_URL").filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(_) => Some(source.http_url("FHIR_FACADE_BASE_URL")?),
            },
        };
        let register: bool = source.parse("OPENHIM_REGISTER")?;
        let openhim = OpenhimSettings {
            api_url: source.http_url("OPENHIM_API_URL")?,
            username: source.parse("OPENHIM_USERNAME")?,
            password: source.secret("OPENHIM_PASSWORD"),
            auth: source.parse("OPENHIM_AUTH")?,
            register,
            install_channels: source.parse("OPENHIM_INSTALL_CHANNELS")?,
            heartbeat_interval: source.millis("OPENHIM_HEARTBEAT_INTERVAL_MS")?,
            timeout: source.millis("OPENHIM_TIMEOUT_MS")?,
            retry_max: source.millis("OPENHIM_RETRY_MAX_MS")?,
            apply_console_config: source.parse("OPENHIM_APPLY_CONSOLE_CONFIG")?,
            route_host: source.parse("MEDIATOR_ROUTE_HOST")?,
            route_port: source.parse_opt("MEDIATOR_ROUTE_PORT")?,
        };
        if openhim.register && openhim.password.is_none() {
            return Err(SettingsError::Missing { name: "OPENHIM_PASSWORD".into() });
        }
        let tls_ca_bundle = source.parse_opt::<PathBuf>("TLS_CA_BUNDLE")?;
        if let Some(path) = &tls_ca_bundle
            && !path.is_file()
        {
            return Err(SettingsError::invalid("TLS_CA_BUNDLE", format!("{} is not a readable file", path.display())));
        }
        let tls = crate::tls::TlsSettings {
            ca_bundle: tls_ca_bundle,
            openhim_pin: source.parse_opt("OPENHIM_TLS_PIN_SHA256")?,
            fhir_pin: source.parse_opt("FHIR_TLS_PIN_SHA256")?,
            cht_pin: source.parse_opt("CHT_TLS_PIN_SHA256")?,
        };
        let live = LiveConfig::from_source(&source)?;
        let forms = mapping_file(&source, "FORM_MAPPINGS_FILE", DEFAULT_FORMS_JSON, FormMappings::parse)?;
        let outbound = mapping_file(&source, "OUTBOUND_MAPPINGS_FILE", DEFAULT_OUTBOUND_JSON, OutboundMappings::parse)?;
        let dead_letter_db = source.parse("DEAD_LETTER_DB")?;
        let dead_letter_limits = crate::deadletter::Limits {
            max_count: source.parse("DEAD_LETTER_MAX_COUNT")?,
            max_bytes: source.parse("DEAD_LETTER_MAX_BYTES")?,
            retention: Duration::from_secs(source.parse::<u64>("DEAD_LETTER_RETENTION_DAYS")?.saturating_mul(86_400)),
        };
        let cht_follow_up_form = source.parse::<String>("CHT_FOLLOW_UP_FORM")?.to_uppercase();
        let patients = crate::conversions::selection::PatientSelection::from_lists(
            &source.string("CHT_PERSON_CONTACT_TYPES"),
            &source.string("CHT_STAFF_ROLES"),
            &source.string("CHT_STAFF_PLACE_TYPES"),
        );
        Ok(Self {
            server,
            openhim,
            live,
            tls,
            forms: std::sync::Arc::new(forms),
            outbound: std::sync::Arc::new(outbound),
            dead_letter_db,
            dead_letter_limits,
            cht_follow_up_form,
            patients,
            source,
        })
    }

    /// The settings OpenHIM needs when it is not used at all (e.g. offline commands).
    pub fn without_registration(mut source: Source) -> Result<Self, SettingsError> {
        source.set("OPENHIM_REGISTER", "false");
        Self::from_source(source)
    }
}

/// A mapping file named by setting `name` (else the built-in `default` text), parsed and checked;
/// errors name the setting.
fn mapping_file<T>(
    source: &Source,
    name: &str,
    default: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, SettingsError> {
    match source.parse_opt::<PathBuf>(name)? {
        None => parse(default),
        Some(path) => {
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display())).and_then(|text| parse(&text))
        }
    }
    .map_err(|e| SettingsError::invalid(name, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut all = vec![("OPENHIM_PASSWORD", "secret")];
        all.extend_from_slice(env);
        let env = all.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned()));
        Settings::from_source(Source::load_with_env(None, env)?)
    }

    #[test]
    fn defaults_load_and_environment_overrides_them() {
        let s = load(&[("PORT", "7001"), ("FHIR_URL", "https://fhir.example.org/r4")]).unwrap();
        assert_eq!(s.server.port, 7001);
        assert_eq!(s.live.fhir.url.as_str(), "https://fhir.example.org/r4");
        assert_eq!(s.openhim.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(s.openhim.auth, AuthScheme::Auto);
    }

    #[test]
    fn malformed_setting_is_named() {
        let err = load(&[("PORT", "sixty")]).unwrap_err().to_string();
        assert!(err.contains("PORT") && err.contains("sixty"), "{err}");
        let err = load(&[("FHIR_URL", "not a url")]).unwrap_err().to_string();
        assert!(err.contains("FHIR_URL"), "{err}");
        let err = load(&[("OPENHIM_AUTH", "kerberos")]).unwrap_err().to_string();
        assert!(err.contains("OPENHIM_AUTH"), "{err}");
        let err = load(&[("CHT_TIMEOUT_MS", "0")]).unwrap_err().to_string();
        assert!(err.contains("CHT_TIMEOUT_MS"), "{err}");
        let err = load(&[("CHT_URL", "ftp://cht")]).unwrap_err().to_string();
        assert!(err.contains("CHT_URL"), "{err}");
    }

    #[test]
    fn missing_password_is_named_only_when_registering() {
        let env = [("OPENHIM_REGISTER", "true")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let err = Settings::from_source(Source::load_with_env(None, env).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "setting OPENHIM_PASSWORD is required but not set");
        let env = [("OPENHIM_REGISTER", "false")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert!(Settings::from_source(Source::load_with_env(None, env).unwrap()).is_ok());
    }

    #[test]
    fn missing_ca_bundle_file_is_named() {
        let err = load(&[("TLS_CA_BUNDLE", "/nonexistent/ca.pem")]).unwrap_err().to_string();
        assert!(err.contains("TLS_CA_BUNDLE"), "{err}");
    }

    #[test]
    fn settings_file_rejects_unknown_keys_and_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("settings-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "PORT = 7100\nOPENHIM_REGISTER = false\n").unwrap();
        let source = Source::load_with_env(Some(&good), std::iter::empty()).unwrap();
        assert_eq!(Settings::from_source(source).unwrap().server.port, 7100);
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "PROT = 7100\n").unwrap();
        let err = Source::load_with_env(Some(&bad), std::iter::empty()).unwrap_err().to_string();
        assert!(err.contains("unknown setting PROT"), "{err}");
    }

    #[test]
    fn a_broken_form_mapping_file_is_named() {
        let dir = std::env::temp_dir().join(format!("forms-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("forms.json");
        std::fs::write(
            &file,
            r#"{"observation_code_system": "not absolute", "form_code_system": "https://x", "forms": {}}"#,
        )
        .unwrap();
        let err = load(&[("FORM_MAPPINGS_FILE", file.to_str().unwrap())]).unwrap_err().to_string();
        assert!(err.contains("FORM_MAPPINGS_FILE") && err.contains("observation_code_system"), "{err}");
    }

    #[test]
    fn debug_output_does_not_reveal_secrets() {
        let s = load(&[("FHIR_PASSWORD", "hunter2-fhir"), ("CHT_PASSWORD", "hunter2-cht")]).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("secret"), "{shown}");
    }
}
