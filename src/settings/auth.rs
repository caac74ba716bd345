//! How the mediator authenticates to an upstream: none, HTTP Basic, a static bearer token, or
//! OAuth2 client credentials (the FHIR server only: `FHIR_AUTH`). Parsed once from the settings;
//! the tokens themselves are fetched and cached by `crate::upstream::auth`.

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::source::{SettingsError, Source};

/// Credentials for one upstream. The secrets are [`SecretString`]s, so `Debug` never shows them.
#[derive(Debug, Clone)]
pub enum UpstreamAuth {
    None,
    /// HTTP Basic (`<PREFIX>_USERNAME` / `<PREFIX>_PASSWORD`).
    Basic {
        username: String,
        password: Option<SecretString>,
    },
    /// `Authorization: Bearer` with a token that never changes (`FHIR_BEARER_TOKEN`).
    Bearer(SecretString),
    /// Tokens from an OAuth2 token endpoint (client credentials grant), cached and refreshed.
    OAuth2(OAuth2Client),
}

impl UpstreamAuth {
    /// The scheme's name, as `FHIR_AUTH` spells it (shown by readiness and `check`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Basic { .. } => "basic",
            Self::Bearer(_) => "bearer",
            Self::OAuth2(_) => "oauth2",
        }
    }

    /// Basic credentials when a username is set, else none (the CHT's rule, and the FHIR
    /// server's when `FHIR_AUTH` is `auto`).
    fn basic(source: &Source, prefix: &str) -> Self {
        match source.raw(&format!("{prefix}_USERNAME")) {
            None => Self::None,
            Some(username) => {
                Self::Basic { username: username.to_owned(), password: source.secret(&format!("{prefix}_PASSWORD")) }
            }
        }
    }

    /// The CHT's credentials (`CHT_USERNAME` / `CHT_PASSWORD`).
    pub fn cht_from_source(source: &Source) -> Self {
        Self::basic(source, "CHT")
    }

    /// The FHIR server's credentials, as `FHIR_AUTH` selects them.
    pub fn fhir_from_source(source: &Source) -> Result<Self, SettingsError> {
        let required = |name: &str| source.raw(name).ok_or_else(|| SettingsError::Missing { name: name.to_owned() });
        match source.parse::<Scheme>("FHIR_AUTH")? {
            Scheme::Auto => {
                // Token settings without FHIR_AUTH would otherwise be ignored without a word.
                let unused =
                    ["FHIR_BEARER_TOKEN", "FHIR_OAUTH_TOKEN_URL"].into_iter().find(|n| source.raw(n).is_some());
                match unused {
                    Some(name) if source.raw("FHIR_USERNAME").is_none() => Err(SettingsError::invalid(
                        "FHIR_AUTH",
                        format!("{name} is set but FHIR_AUTH is auto: set FHIR_AUTH to bearer or oauth2 to use it"),
                    )),
                    _ => Ok(Self::basic(source, "FHIR")),
                }
            }
            Scheme::None => Ok(Self::None),
            Scheme::Basic => {
                required("FHIR_USERNAME")?;
                Ok(Self::basic(source, "FHIR"))
            }
            Scheme::Bearer => source
                .secret("FHIR_BEARER_TOKEN")
                .map(Self::Bearer)
                .ok_or_else(|| SettingsError::Missing { name: "FHIR_BEARER_TOKEN".into() }),
            Scheme::OAuth2 => Ok(Self::OAuth2(OAuth2Client {
                token_url: source.http_url("FHIR_OAUTH_TOKEN_URL")?,
                client_id: required("FHIR_OAUTH_CLIENT_ID")?.to_owned(),
                client_secret: SecretString::from(required("FHIR_OAUTH_CLIENT_SECRET")?.to_owned()),
                scope: source.raw("FHIR_OAUTH_SCOPE").map(str::to_owned),
                client_auth: source.parse("FHIR_OAUTH_CLIENT_AUTH")?,
            })),
        }
    }
}

/// An OAuth2 client of a token endpoint (RFC 6749 §4.4, client credentials).
#[derive(Debug, Clone)]
pub struct OAuth2Client {
    /// `FHIR_OAUTH_TOKEN_URL`
    pub token_url: url::Url,
    /// `FHIR_OAUTH_CLIENT_ID`
    pub client_id: String,
    /// `FHIR_OAUTH_CLIENT_SECRET`
    pub client_secret: SecretString,
    /// `FHIR_OAUTH_SCOPE`: sent as `scope` when set (e.g. `system/*.write`).
    pub scope: Option<String>,
    /// `FHIR_OAUTH_CLIENT_AUTH`: how the client authenticates to the token endpoint.
    pub client_auth: ClientAuth,
}

impl OAuth2Client {
    /// A digest of everything that decides which token is issued: a cached token is used only
    /// while the settings it was fetched with are in force (the console may change them).
    pub fn fingerprint(&self) -> [u8; 32] {
        use secrecy::ExposeSecret;
        let mut hash = Sha256::new();
        let parts = [
            self.token_url.as_str(),
            &self.client_id,
            self.client_secret.expose_secret(),
            self.scope.as_deref().unwrap_or_default(),
            self.client_auth.name(),
        ];
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

/// How the client proves itself to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the client id and secret (the default; servers
    /// must support it).
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
}

impl ClientAuth {
    /// The OAuth2 name of the method.
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
        }
    }
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "basic" | "client_secret_basic" => Ok(Self::Basic),
            "post" | "client_secret_post" => Ok(Self::Post),
            _ => Err("expected basic or post".into()),
        }
    }
}

/// `FHIR_AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// Basic when `FHIR_USERNAME` is set, else none: what the mediator did before `FHIR_AUTH`.
    Auto,
    None,
    Basic,
    Bearer,
    OAuth2,
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            "basic" => Ok(Self::Basic),
            "bearer" => Ok(Self::Bearer),
            "oauth2" => Ok(Self::OAuth2),
            _ => Err("expected one of auto, basic, bearer, oauth2, none".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn fhir(env: &[(&str, &str)]) -> Result<UpstreamAuth, SettingsError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        UpstreamAuth::fhir_from_source(&Source::load_with_env(None, env).unwrap())
    }

    #[test]
    fn without_the_new_settings_the_username_decides_as_before() {
        assert!(matches!(fhir(&[]).unwrap(), UpstreamAuth::None));
        let basic = fhir(&[("FHIR_USERNAME", "u"), ("FHIR_PASSWORD", "p")]).unwrap();
        let UpstreamAuth::Basic { username, password } = basic else { panic!("{basic:?}") };
        assert_eq!((username.as_str(), password.unwrap().expose_secret()), ("u", "p"));
    }

    #[test]
    fn each_scheme_names_what_it_lacks() {
        let err = fhir(&[("FHIR_AUTH", "bearer")]).unwrap_err().to_string();
        assert!(err.contains("FHIR_BEARER_TOKEN"), "{err}");
        let err = fhir(&[("FHIR_AUTH", "oauth2"), ("FHIR_OAUTH_TOKEN_URL", "https://idp/token")]).unwrap_err();
        assert!(err.to_string().contains("FHIR_OAUTH_CLIENT_ID"), "{err}");
        let err = fhir(&[("FHIR_AUTH", "basic")]).unwrap_err().to_string();
        assert!(err.contains("FHIR_USERNAME"), "{err}");
        let err = fhir(&[("FHIR_AUTH", "kerberos")]).unwrap_err().to_string();
        assert!(err.contains("FHIR_AUTH"), "{err}");
        let err = fhir(&[("FHIR_BEARER_TOKEN", "t")]).unwrap_err().to_string();
        assert!(err.contains("FHIR_AUTH") && err.contains("FHIR_BEARER_TOKEN"), "{err}");
    }

    #[test]
    fn oauth2_settings_parse_with_basic_client_authentication_by_default() {
        let env = [
            ("FHIR_AUTH", "oauth2"),
            ("FHIR_OAUTH_TOKEN_URL", "https://idp.example.org/token"),
            ("FHIR_OAUTH_CLIENT_ID", "mediator"),
            ("FHIR_OAUTH_CLIENT_SECRET", "hunter2"),
        ];
        let UpstreamAuth::OAuth2(client) = fhir(&env).unwrap() else { panic!("not oauth2") };
        assert_eq!((client.client_auth, client.scope.as_deref()), (ClientAuth::Basic, None));
        assert!(!format!("{client:?}").contains("hunter2"));
        let mut post = env.to_vec();
        post.extend([("FHIR_OAUTH_CLIENT_AUTH", "post"), ("FHIR_OAUTH_SCOPE", "system/*.write")]);
        let UpstreamAuth::OAuth2(other) = fhir(&post).unwrap() else { panic!("not oauth2") };
        assert_eq!(other.client_auth, ClientAuth::Post);
        assert_ne!(client.fingerprint(), other.fingerprint(), "a changed setting is a new token");
    }
}
