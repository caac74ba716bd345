//! TLS for every upstream, always verified, with two ways to trust a self-signed server
//! certificate such as OpenHIM's bundled "OpenHIM Default Certificate" (self-signed, `CA:TRUE`,
//! no subjectAltName) — which rustls refuses even when it is a trusted root
//! (`CaUsedAsEndEntity`):
//! - a self-signed certificate in `TLS_CA_BUNDLE` is trusted as that exact certificate: the one
//!   the server presents must equal it byte for byte (its whole DER), and be within its validity;
//! - `OPENHIM_TLS_PIN_SHA256` / `FHIR_TLS_PIN_SHA256` / `CHT_TLS_PIN_SHA256`: the SHA-256
//!   fingerprint of the one certificate that upstream may present (within its validity).
//!
//! Everything else goes through the platform verifier (system roots plus the CAs of
//! `TLS_CA_BUNDLE`): chain, names, expiry. There is no switch that turns verification off, and
//! the handshake's signatures are always checked against the certificate's key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

mod der;

/// Where a client records the certificate the server presented.
pub type SeenCertificate = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// A SHA-256 certificate fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;
    /// 64 hex digits, colons allowed (`openssl x509 -fingerprint -sha256` prints it so).
    fn from_str(s: &str) -> Result<Self, String> {
        let hex: String = s.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
        let bytes =
            hex::decode(&hex).map_err(|_| "expected a SHA-256 fingerprint in hex (64 digits, colons allowed)")?;
        bytes.try_into().map(Self).map_err(|_| "expected a SHA-256 fingerprint: 32 bytes, 64 hex digits".into())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&hex.join(":"))
    }
}

/// Trust settings shared by the upstream clients.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `TLS_CA_BUNDLE`
    pub ca_bundle: Option<PathBuf>,
    /// `OPENHIM_TLS_PIN_SHA256`
    pub openhim_pin: Option<Fingerprint>,
    /// `FHIR_TLS_PIN_SHA256`
    pub fhir_pin: Option<Fingerprint>,
    /// `CHT_TLS_PIN_SHA256`
    pub cht_pin: Option<Fingerprint>,
}

impl TlsSettings {
    /// The trust of the OpenHIM API client.
    pub fn openhim_trust(&self) -> anyhow::Result<Trust> {
        Trust::load(self.ca_bundle.as_deref(), self.openhim_pin, "OPENHIM_TLS_PIN_SHA256")
    }
}

/// What one client trusts: the bundle's certificates and, optionally, one pinned fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Every certificate of the bundle, as extra roots of the platform verifier.
    roots: Vec<CertificateDer<'static>>,
    /// The bundle's self-signed certificates, trusted as exactly themselves.
    exact: Vec<CertificateDer<'static>>,
    /// `(fingerprint, the setting it came from)`.
    pin: Option<(Fingerprint, &'static str)>,
}

impl Trust {
    /// The bundle at `ca_bundle` (if any) and `pin` (named by `setting` in errors).
    pub fn load(ca_bundle: Option<&Path>, pin: Option<Fingerprint>, setting: &'static str) -> anyhow::Result<Self> {
        let mut trust = Self { pin: pin.map(|p| (p, setting)), ..Self::default() };
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("TLS_CA_BUNDLE {}: {e}", path.display()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("TLS_CA_BUNDLE {}: not a PEM bundle: {e}", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "TLS_CA_BUNDLE {}: no certificate in it", path.display());
            for cert in certs {
                let info = der::parse(&cert)
                    .ok_or_else(|| anyhow::anyhow!("TLS_CA_BUNDLE {}: a certificate is not X.509", path.display()))?;
                if info.self_signed {
                    trust.exact.push(cert.clone());
                }
                trust.roots.push(cert);
            }
        }
        Ok(trust)
    }

    /// A rustls client configuration with this trust; `seen` records the certificate the server
    /// presented (the `check` command prints its fingerprint).
    pub fn client_config(&self, seen: Option<SeenCertificate>) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(self.roots.clone(), provider.clone())?;
        let verifier =
            Verifier { platform, exact: self.exact.clone(), pin: self.pin, seen, provider: provider.clone() };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous() // a custom verifier; it verifies (see `Verifier`), it does not skip
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// What a certificate presented by a server is, for the `check` command.
#[derive(Debug, Clone)]
pub struct Presented {
    pub fingerprint: Fingerprint,
    pub self_signed: bool,
    /// Validity end as `YYYY-MM-DD`, when readable.
    pub not_after: Option<String>,
}

impl Presented {
    pub fn of(cert: &[u8]) -> Self {
        let info = der::parse(cert);
        Self {
            fingerprint: Fingerprint::of(cert),
            self_signed: info.as_ref().is_some_and(|i| i.self_signed),
            not_after: info
                .and_then(|i| chrono::DateTime::from_timestamp(i.not_after, 0))
                .map(|t| t.format("%Y-%m-%d").to_string()),
        }
    }
}

#[derive(Debug)]
struct Verifier {
    platform: rustls_platform_verifier::Verifier,
    exact: Vec<CertificateDer<'static>>,
    pin: Option<(Fingerprint, &'static str)>,
    seen: Option<SeenCertificate>,
    provider: Arc<CryptoProvider>,
}

/// A pinned certificate still has to be in date.
fn in_date(cert: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
    let info = der::parse(cert).ok_or(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < info.not_before {
        return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet));
    }
    if now > info.not_after {
        return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Expired));
    }
    Ok(())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(seen) = &self.seen {
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.clone().into_owned());
        }
        if let Some((pin, setting)) = self.pin {
            if Fingerprint::of(end_entity) != pin {
                return Err(rustls::Error::General(format!(
                    "the server's certificate (SHA-256 {}) is not the one {setting} pins",
                    Fingerprint::of(end_entity)
                )));
            }
            in_date(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            in_date(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.platform.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_as_openssl_prints_them() {
        let fp: Fingerprint =
            "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
                .parse()
                .unwrap();
        assert_eq!(fp.0[0], 0xab);
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }
}
