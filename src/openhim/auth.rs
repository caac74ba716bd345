//! OpenHIM API authentication headers.
//!
//! Token scheme (every core version, the only one before 7.1): the user's salt comes from
//! `GET /authenticate/{email}`; `passhash = hex(sha512(salt + password))`; each request carries
//! `auth-username`, `auth-ts` (ISO-8601 UTC), `auth-salt` (fresh random) and
//! `auth-token = hex(sha512(passhash + auth-salt + auth-ts))` over the exact header strings.

use sha2::{Digest, Sha512};

/// Lower-case hex SHA-512 of the concatenated parts.
fn sha512_hex(parts: &[&str]) -> String {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// `hex(sha512(salt + password))`, computed once per user salt.
pub fn passhash(user_salt: &str, password: &str) -> String {
    sha512_hex(&[user_salt, password])
}

/// The four token-scheme headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeaders {
    pub username: String,
    pub ts: String,
    pub salt: String,
    pub token: String,
}

impl TokenHeaders {
    /// Headers for a request made at `ts` with the fresh `request_salt`.
    pub fn compute(username: &str, passhash: &str, ts: &str, request_salt: &str) -> Self {
        Self {
            username: username.to_owned(),
            ts: ts.to_owned(),
            salt: request_salt.to_owned(),
            token: sha512_hex(&[passhash, request_salt, ts]),
        }
    }

    /// Headers for a request made now.
    pub fn now(username: &str, passhash: &str) -> Self {
        let ts = super::envelope::timestamp(chrono::Utc::now());
        Self::compute(username, passhash, &ts, &uuid::Uuid::new_v4().to_string())
    }

    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header("auth-username", &self.username)
            .header("auth-ts", &self.ts)
            .header("auth-salt", &self.salt)
            .header("auth-token", &self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Node's crypto, the way openhim-core checks them:
    //   passhash = sha512("4f2c1b7e-salt" + "openhim-password")
    //   token    = sha512(passhash + "6a1e3c44-request-salt" + "2026-11-21T06:00:00.000Z")
    const PASSHASH: &str = "780a2bd7ebc102ef3b8ef859e05048e49c67959aca0ea54ebec9d9f3ca4a0c279cdc134b7e9561150f70bb85f0c745687c0c9cbef4be164e0eb802f69460cbf5";
    const TOKEN: &str = "c43baa161282f5328380f9317e58176b03d32d66d0dda6b95fe8e4ad8e10a6bfd0917838d89fe1501ac46337399899cc1f221c5e8d1882fbccdc04b9542f9e24";

    #[test]
    fn token_headers_match_a_known_vector() {
        let passhash = passhash("4f2c1b7e-salt", "openhim-password");
        assert_eq!(passhash, PASSHASH);
        let headers =
            TokenHeaders::compute("root@openhim.org", &passhash, "2026-11-21T06:00:00.000Z", "6a1e3c44-request-salt");
        assert_eq!(headers.token, TOKEN);
        assert_eq!(headers.ts, "2026-11-21T06:00:00.000Z");
        assert_eq!(headers.username, "root@openhim.org");
    }

    #[test]
    fn every_request_gets_a_fresh_salt_and_a_current_timestamp() {
        let a = TokenHeaders::now("u", PASSHASH);
        let b = TokenHeaders::now("u", PASSHASH);
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.token, b.token);
        let ts = chrono::DateTime::parse_from_rfc3339(&a.ts).unwrap();
        assert!((chrono::Utc::now() - ts.to_utc()).num_seconds().abs() < 5);
        assert!(a.ts.ends_with('Z'));
    }
}
