//! MQTT over TLS, the client side: whom a `mqtts://` connection trusts.
//!
//! The provider is aws-lc-rs, as on the API and the gate (rumqttc is built without a
//! provider of its own). The broker's certificate is checked against one CA (or
//! self-signed certificate) file when one is given, else against the system's roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The environment variable naming the CA (or self-signed certificate) file, in PEM,
/// that `mqtts://` connections trust. `stratos up` hands it to members.
pub const CA_CERT_ENV: &str = "STRATOS_BUS_CA_CERT";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the bus CA certificate {} ({CA_CERT_ENV}): {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("the bus CA certificate {} ({CA_CERT_ENV}) holds no usable certificate in PEM", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no trusted root certificates: the system has none; set {CA_CERT_ENV}")]
    NoRoots,
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The CA file named by [`CA_CERT_ENV`], if set and not empty.
pub fn ca_cert_from_env() -> Option<PathBuf> {
    std::env::var_os(CA_CERT_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A client configuration trusting the certificates in `ca_cert`, or (none given) the
/// system's roots.
pub fn client_config(ca_cert: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            let read =
                |e: rustls_pki_types::pem::Error| TlsError::Read { path: path.to_owned(), reason: e.to_string() };
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(path).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::NoCertificate { path: path.to_owned() });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "a system root certificate could not be loaded");
            }
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
