//! How an image build fails.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The cartridge names no image, or its image properties do not make one.
    #[error("{field}: {reason}")]
    Spec { field: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot reach the Docker Engine at {host}: {source}")]
    Connect { host: String, source: bollard::errors::Error },
    #[error("the Docker Engine refused {what}: {source}")]
    Engine { what: String, source: bollard::errors::Error },
    #[error("the build of {image} failed: {message}")]
    Build { image: String, message: String },
    #[error("cannot run {program} (apt-get install {package}): {source}")]
    Tool { program: &'static str, package: &'static str, source: std::io::Error },
    #[error("{program} failed ({status}); its last lines: {tail}")]
    ToolFailed { program: &'static str, status: std::process::ExitStatus, tail: String },
}
