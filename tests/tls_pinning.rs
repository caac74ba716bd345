//! Trusting a self-signed upstream certificate securely (issue 12): a real TLS server (node's
//! https) presents a certificate made like the "OpenHIM Default Certificate" — self-signed,
//! CA:TRUE, no subjectAltName, CN=localhost while the mediator dials 127.0.0.1 — and the
//! mediator's FHIR client (its readiness probe) must trust it only when pinned: in
//! `TLS_CA_BUNDLE` (the exact certificate) or by `FHIR_TLS_PIN_SHA256`; never an unpinned one, a
//! different self-signed one, or an expired pinned one.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use serde_json::Value;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate like OpenHIM's default: self-signed, CA:TRUE, no SAN. Returns (cert PEM, key PEM, DER).
fn default_like_certificate(expired: bool) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "OpenHIM Default Certificate");
    name.push(DnType::CommonName, "localhost");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    } else {
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2037, 12, 8);
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(cert: &std::path::Path, key: &std::path::Path) -> Server {
    let mut child = Command::new("node")
        .args(["tests/support/tls-server.mjs", cert.to_str().unwrap(), key.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix("listening ").unwrap().parse().unwrap();
    Server { child, port }
}

fn sha256_hex(der: &[u8]) -> String {
    cht_fhir_mediator::tls::Fingerprint::of(der).to_string()
}

/// The readiness probe's verdict on the FHIR server: `HTTP 200` when the handshake succeeded.
async fn fhir_probe(server: &Server, extra: &[(&str, &str)]) -> String {
    let url = format!("https://127.0.0.1:{}", server.port);
    let mut env = vec![("FHIR_URL", url.as_str())];
    env.extend_from_slice(extra);
    let app = common::spawn_app(&env).await;
    let body: Value = app.http.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    body["checks"]["fhir"]["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_self_signed_ca_certificate_is_trusted_only_when_pinned() {
    let dir = std::env::temp_dir().join(format!("tls-pinning-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, der) = default_like_certificate(false);
    let (other_cert, _, other_der) = default_like_certificate(false);
    let (cert_path, key_path) = (write(&dir, "cert.pem", &cert), write(&dir, "key.pem", &key));
    let other_path = write(&dir, "other.pem", &other_cert);
    let server = serve(&cert_path, &key_path);

    let refused = fhir_probe(&server, &[]).await;
    assert!(!refused.starts_with("HTTP"), "not trusted without a pin: {refused}");

    let bundle = cert_path.to_str().unwrap();
    let trusted = fhir_probe(&server, &[("TLS_CA_BUNDLE", bundle)]).await;
    assert_eq!(trusted, "HTTP 200", "the exact certificate in TLS_CA_BUNDLE is trusted");

    let wrong_bundle = fhir_probe(&server, &[("TLS_CA_BUNDLE", other_path.to_str().unwrap())]).await;
    assert!(!wrong_bundle.starts_with("HTTP"), "another self-signed certificate proves nothing: {wrong_bundle}");

    let pin = sha256_hex(&der);
    let pinned = fhir_probe(&server, &[("FHIR_TLS_PIN_SHA256", &pin)]).await;
    assert_eq!(pinned, "HTTP 200", "a matching fingerprint is trusted");
    let lower = pin.to_lowercase().replace(':', "");
    assert_eq!(fhir_probe(&server, &[("FHIR_TLS_PIN_SHA256", &lower)]).await, "HTTP 200", "any hex spelling");

    let other_pin = sha256_hex(&other_der);
    let mismatch = fhir_probe(&server, &[("FHIR_TLS_PIN_SHA256", &other_pin)]).await;
    assert!(mismatch.contains("not the one FHIR_TLS_PIN_SHA256 pins"), "{mismatch}");
    // A pin on FHIR does not loosen the other upstreams: CHT is still verified as usual.
    drop(server);

    let (old_cert, old_key, old_der) = default_like_certificate(true);
    let old = serve(&write(&dir, "old.pem", &old_cert), &write(&dir, "old-key.pem", &old_key));
    let expired = fhir_probe(&old, &[("FHIR_TLS_PIN_SHA256", &sha256_hex(&old_der))]).await;
    assert!(expired.to_lowercase().contains("expired"), "a pinned certificate must still be in date: {expired}");
    let expired = fhir_probe(&old, &[("TLS_CA_BUNDLE", dir.join("old.pem").to_str().unwrap())]).await;
    assert!(expired.to_lowercase().contains("expired"), "{expired}");
}

#[test]
fn a_malformed_pin_is_refused_at_start_naming_the_setting() {
    let mut source = cht_fhir_mediator::settings::Source::load_with_env(None, std::iter::empty()).unwrap();
    source.set("OPENHIM_REGISTER", "false");
    source.set("CHT_TLS_PIN_SHA256", "not-hex");
    let err = cht_fhir_mediator::settings::Settings::from_source(source).unwrap_err().to_string();
    assert!(err.contains("CHT_TLS_PIN_SHA256"), "{err}");
}
