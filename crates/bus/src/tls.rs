//! MQTT over TLS, the client side: whom a `mqtts://` connection trusts.
//!
//! The provider is aws-lc-rs, as on the API and the gate (rumqttc is built without a
//! provider of its own). The broker's certificate is checked against one CA (or
//! self-signed certificate) file when one is given, else against the system's roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The environment variable naming the CA (or self-signed certificate) file, in PEM,
/// that `mqtts://` connections trust. `stratos up` hands it to members.
pub const CA_CERT_ENV: &str = "STRATOS_BUS_CA_CERT";

/// The environment variable naming what the broker's certificate must be valid for, when
/// that is not the host of the URL (a member in a container reaches the platform's broker
/// on its network's gateway address, which the certificate does not name): a DNS name or
/// an IP address. The certificate is still checked against the trusted CA.
pub const TLS_NAME_ENV: &str = "STRATOS_BUS_TLS_NAME";

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

/// The name in [`TLS_NAME_ENV`], if set and not empty.
pub fn tls_name_from_env() -> Option<String> {
    std::env::var(TLS_NAME_ENV).ok().filter(|v| !v.is_empty())
}

/// A client configuration trusting the certificates in `ca_cert`, or (none given) the
/// system's roots.
pub fn client_config(ca_cert: Option<&Path>) -> Result<ClientConfig, TlsError> {
    client_config_for(ca_cert, None)
}

/// [`client_config`], the broker's certificate checked for `name` (a DNS name or an IP
/// address) rather than for the host the client connects to, when given.
pub fn client_config_for(ca_cert: Option<&Path>, name: Option<&str>) -> Result<ClientConfig, TlsError> {
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
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let Some(name) = name else {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    };
    let name = ServerName::try_from(name.to_string())
        .map_err(|_| TlsError::Config(format!("{TLS_NAME_ENV}: {name:?} is neither a DNS name nor an IP address")))?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(builder.dangerous().with_custom_certificate_verifier(Arc::new(VerifyAs { inner, name })).with_no_client_auth())
}

/// The usual verification (chain to the trusted roots, validity, signatures), for a
/// fixed name instead of the address connected to. Nothing is skipped.
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
