//! How the CLI trusts the API's certificate: the system's roots, a given CA
//! certificate, or the certificate itself pinned by its SHA-256 fingerprint.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

pub fn http_client(fingerprint: Option<&str>, ca_cert: Option<&Path>) -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = reqwest::Client::builder();
    let config = if let Some(fingerprint) = fingerprint {
        let pinned = Pinned { sha256: parse_fingerprint(fingerprint)?, provider: provider.clone() };
        Some(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
                .with_no_client_auth(),
        )
    } else if let Some(ca_cert) = ca_cert {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_cert)
            .with_context(|| format!("cannot read the CA certificate {}", ca_cert.display()))?
        {
            let cert = cert.with_context(|| format!("cannot read the CA certificate {}", ca_cert.display()))?;
            roots.add(cert).with_context(|| format!("{} is not a usable CA certificate", ca_cert.display()))?;
        }
        if roots.is_empty() {
            bail!("{} holds no certificate in PEM", ca_cert.display());
        }
        Some(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    } else {
        None
    };
    let builder = match config {
        Some(config) => builder.use_preconfigured_tls(config),
        None => builder,
    };
    builder.build().context("cannot set up the HTTP client")
}

/// `AB:CD:…` (as `stratos up` prints it), with or without colons and a `sha256:` prefix.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let hex: String = text.trim().trim_start_matches("sha256:").chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--tls-fingerprint {text:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)");
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits");
    }
    Ok(out)
}

/// Accepts exactly the certificate with this SHA-256; the handshake's signatures are
/// still verified, so only the holder of its key passes.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the API's certificate has fingerprint {}, not the pinned one",
                stratos_manager::tls::fingerprint(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let colons = (0..32).map(|i| format!("{i:02X}")).collect::<Vec<_>>().join(":");
        let plain = colons.replace(':', "").to_lowercase();
        assert_eq!(parse_fingerprint(&colons).unwrap(), parse_fingerprint(&plain).unwrap());
        assert_eq!(parse_fingerprint(&colons).unwrap()[31], 31);
        assert!(parse_fingerprint("AB:CD").is_err());
    }
}
