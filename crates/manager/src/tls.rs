//! TLS on the API (rustls): a certificate and key from PEM files, or a self-signed
//! certificate generated once into the data directory and identified by its SHA-256
//! fingerprint, which clients pin.
//!
//! Handshakes run in tasks of their own (with a deadline), so that a client that
//! stalls in its handshake holds up no other connection.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; more connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;

/// A server certificate ready to serve, with what to tell clients about it.
pub struct ApiTls {
    pub config: Arc<ServerConfig>,
    pub cert_file: PathBuf,
    /// SHA-256 of the leaf certificate (DER), colon-separated upper-case hex.
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: String },
    #[error("{} holds no certificate in PEM", path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

impl ApiTls {
    /// From PEM files: the certificate chain (leaf first) and its private key.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<ApiTls, TlsError> {
        let read = |path: &Path, error: String| TlsError::Read { path: path.to_owned(), error };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .map_err(|e| read(cert_file, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| read(cert_file, e.to_string()))?;
        let leaf = certs.first().ok_or_else(|| TlsError::NoCertificate { path: cert_file.to_owned() })?;
        let fingerprint = fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| read(key_file, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ApiTls { config: Arc::new(config), cert_file: cert_file.to_owned(), fingerprint })
    }

    /// The self-signed certificate in `dir` (`api-cert.pem`, `api-key.pem`), generated
    /// the first time for `names` and `addresses` (and `localhost`, `127.0.0.1`, `::1`);
    /// kept afterwards, so that its fingerprint stays what clients pinned.
    pub fn self_signed(dir: &Path, names: &[String], addresses: &[IpAddr]) -> Result<ApiTls, TlsError> {
        ApiTls::self_signed_as("api", dir, names, addresses)
    }

    /// As [`ApiTls::self_signed`], in `<stem>-cert.pem` and `<stem>-key.pem`: the
    /// embedded MQTT broker's certificate (`mqtt`) is made the same way.
    pub fn self_signed_as(stem: &str, dir: &Path, names: &[String], addresses: &[IpAddr]) -> Result<ApiTls, TlsError> {
        let (cert_file, key_file) = (dir.join(format!("{stem}-cert.pem")), dir.join(format!("{stem}-key.pem")));
        if !(cert_file.exists() && key_file.exists()) {
            let mut subject_alt_names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            subject_alt_names.extend(names.iter().cloned());
            subject_alt_names.extend(addresses.iter().filter(|a| !a.is_unspecified()).map(|a| a.to_string()));
            subject_alt_names.dedup();
            let generated =
                rcgen::generate_simple_self_signed(subject_alt_names).map_err(|e| TlsError::Generate(e.to_string()))?;
            write_private(&key_file, generated.signing_key.serialize_pem().as_bytes())?;
            write_private(&cert_file, generated.cert.pem().as_bytes())?;
            tracing::info!(cert = %cert_file.display(), stem, "generated a self-signed certificate");
        }
        ApiTls::from_files(&cert_file, &key_file)
    }
}

/// SHA-256 of a certificate, as `AB:CD:...`.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Writes a file only its owner can read (0600), replacing any other atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    crate::files::write_private(path, contents).map_err(|error| TlsError::Write { path: path.to_owned(), error })
}

/// A listener that hands axum connections whose TLS handshake is done.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                // Once the server is gone (its receiver dropped), the port is let go at once.
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended (the runtime is going down): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
