//! Where setting values come from: the embedded defaults file, an optional settings file, then
//! the environment. Values stay strings until [`Source::parse`] turns each into its type, so every
//! error names the setting (the environment variable) that is wrong.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use secrecy::SecretString;

/// The defaults shipped in `mediator-config/settings.toml`, compiled in so the binary stands alone.
pub const DEFAULTS_TOML: &str = include_str!("../../mediator-config/settings.toml");

/// A settings problem, always naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("setting {name} is required but not set")]
    Missing { name: String },
    #[error("setting {name} has an invalid value: {reason}")]
    Invalid { name: String, reason: String },
    #[error("settings file {path}: {reason}")]
    File { path: String, reason: String },
}

impl SettingsError {
    pub fn invalid(name: &str, reason: impl Display) -> Self {
        Self::Invalid { name: name.to_owned(), reason: reason.to_string() }
    }
}

/// Raw setting values by name, in precedence order already applied.
#[derive(Clone, Default)]
pub struct Source {
    values: BTreeMap<String, String>,
}

// Values may be passwords: show only which settings are set.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Source {
    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`Source::load`] with an explicit environment, so tests need not touch the process's.
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut source = Self::from_toml(DEFAULTS_TOML, "embedded defaults", None)?;
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| SettingsError::File { path: shown.clone(), reason: e.to_string() })?;
            let overlay = Self::from_toml(&text, &shown, Some(&source))?;
            source.values.extend(overlay.values);
        }
        // Only names the defaults file declares are settings; other variables are not ours.
        for (name, value) in env {
            if let Some(slot) = source.values.get_mut(&name) {
                *slot = value;
            }
        }
        Ok(source)
    }

    /// A settings file's text over the defaults, as `--settings` reads it (unknown keys refused).
    pub fn parse_toml(text: &str) -> Result<Self, SettingsError> {
        let mut source = Self::from_toml(DEFAULTS_TOML, "embedded defaults", None)?;
        let overlay = Self::from_toml(text, "settings file", Some(&source))?;
        source.values.extend(overlay.values);
        Ok(source)
    }

    /// Parses a flat TOML table; with `known`, keys must be ones `known` declares (catches typos).
    fn from_toml(text: &str, shown: &str, known: Option<&Source>) -> Result<Self, SettingsError> {
        let file_err = |reason: String| SettingsError::File { path: shown.to_owned(), reason };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_err(e.to_string()))?;
        let mut values = BTreeMap::new();
        for (key, value) in table {
            if known.is_some_and(|k| !k.values.contains_key(&key)) {
                return Err(file_err(format!("unknown setting {key}")));
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    return Err(file_err(format!("{key} must be a string, number or bool, not {}", other.type_str())));
                }
            };
            values.insert(key, value);
        }
        Ok(Self { values })
    }

    /// Overrides one value (tests and the CLI use it).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(name.to_owned(), value.into());
    }

    /// The raw value; empty strings count as unset.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// A required value parsed with `FromStr`.
    pub fn parse<T>(&self, name: &str) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.raw(name).ok_or_else(|| SettingsError::Missing { name: name.to_owned() })?;
        raw.parse().map_err(|e| SettingsError::invalid(name, format!("{raw:?}: {e}")))
    }

    /// An optional value parsed with `FromStr` (unset or empty = `None`).
    pub fn parse_opt<T>(&self, name: &str) -> Result<Option<T>, SettingsError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(name) {
            None => Ok(None),
            Some(_) => self.parse(name).map(Some),
        }
    }

    /// A duration in milliseconds; zero is refused because every timeout and interval needs one.
    pub fn millis(&self, name: &str) -> Result<std::time::Duration, SettingsError> {
        match self.parse::<u64>(name)? {
            0 => Err(SettingsError::invalid(name, "must be greater than 0")),
            ms => Ok(std::time::Duration::from_millis(ms)),
        }
    }

    /// A string that may be empty (e.g. a username meaning "no authentication").
    pub fn string(&self, name: &str) -> String {
        self.raw(name).unwrap_or_default().to_owned()
    }

    /// A secret; empty means unset.
    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.raw(name).map(|s| SecretString::from(s.to_owned()))
    }

    /// An absolute http(s) URL.
    pub fn http_url(&self, name: &str) -> Result<url::Url, SettingsError> {
        let url: url::Url = self.parse(name)?;
        check_http_url(name, url)
    }
}

/// Refuses URLs the HTTP clients cannot use, naming the setting.
pub fn check_http_url(name: &str, url: url::Url) -> Result<url::Url, SettingsError> {
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(SettingsError::invalid(name, format!("{url:?} is not an http(s) URL with a host"))),
    }
}
