//! A real OAuth2 token endpoint for tests (tests/support/token-server.mjs, on
//! @node-oauth/oauth2-server, installed into the cache on first use), and a wiremock matcher
//! that lets through only requests whose bearer token that server issued and still honours.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// Where the token server's library is installed (tests/support/token-server-install.sh).
fn install_dir() -> &'static str {
    static DIR: OnceLock<String> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("bash")
            .arg("tests/support/token-server-install.sh")
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/support/token-server-install.sh");
        assert!(out.status.success(), "installing the token server failed (see above)");
        String::from_utf8(out.stdout).unwrap().lines().last().expect("install dir").to_owned()
    })
}

/// A running token server for one client; stopped when dropped.
pub struct TokenServer {
    pub port: u16,
    child: Child,
}

impl TokenServer {
    /// Issues tokens living `expires_in` seconds to `client_id` with `secret` only.
    pub fn start(client_id: &str, secret: &str, expires_in: u64) -> Self {
        let mut child = Command::new("node")
            .args(["tests/support/token-server.mjs", install_dir(), client_id, secret, &expires_in.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start node tests/support/token-server.mjs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("token server said {line:?}"));
        Self { port: port.parse().unwrap(), child }
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// What it counted: `issued`, `refused`, `basic`, `post` (how clients authenticated), `scopes`.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("http://127.0.0.1:{}/stats", self.port)).await.unwrap().json().await.unwrap()
    }

    /// Forgets every token issued, as a server revoking them before they expire.
    pub async fn revoke_all(&self) {
        let url = format!("http://127.0.0.1:{}/revoke-all", self.port);
        assert!(reqwest::Client::new().post(url).send().await.unwrap().status().is_success());
    }

    /// A matcher accepting requests with a token this server honours now.
    pub fn honoured(&self) -> HonouredToken {
        HonouredToken { port: self.port }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Matches a request whose `Authorization: Bearer` token the token server's introspection calls
/// active (issued by it, not expired, not revoked).
pub struct HonouredToken {
    port: u16,
}

impl wiremock::Match for HonouredToken {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let header = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        match header.strip_prefix("Bearer ") {
            Some(token) => introspect(self.port, token),
            None => false,
        }
    }
}

/// RFC 7662 introspection over a plain blocking socket: wiremock matchers are synchronous, and
/// a blocking HTTP client would panic inside its runtime.
fn introspect(port: u16, token: &str) -> bool {
    let body = format!("token={}", url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>());
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /introspect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str::<Value>(json).map(|v| v["active"] == true).unwrap_or(false)
}
