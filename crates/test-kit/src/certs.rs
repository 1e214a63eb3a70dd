//! Certificates as an operator would be given them: a certificate authority made for the
//! test, and a server certificate it signed for `localhost` and 127.0.0.1.

use std::path::{Path, PathBuf};

/// The PEM files of a test CA and of a server certificate (with its key) it signed.
pub struct GivenCertificate {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl GivenCertificate {
    /// Makes them in `dir`, their names starting with `name` (`NAME-ca.pem`,
    /// `NAME-cert.pem`, `NAME-key.pem`).
    pub fn make(dir: &Path, name: &str) -> GivenCertificate {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let out = GivenCertificate {
            ca_cert: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&out.ca_cert, ca.pem()).unwrap();
        std::fs::write(&out.cert, cert.pem()).unwrap();
        std::fs::write(&out.key, key.serialize_pem()).unwrap();
        out
    }
}
