//! Why the docker driver cannot do what it was asked.

use super::bundle::BundleError;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect to the Docker Engine at {host}: {source}")]
    Connect { host: String, source: bollard::errors::Error },
    #[error("the Docker Engine at {host} cannot {action}: {source}")]
    Engine { host: String, action: String, source: bollard::errors::Error },
    #[error("the cartridge names no image for the docker driver (iaasProvider imageId)")]
    NoImageName,
    #[error("image {image:?} does not exist on the Docker Engine at {host}; nothing is pulled: build it with `stratos image build` (or `docker build`/`docker load` there)")]
    ImageMissing { image: String, host: String },
    #[error("image {image:?} has no command and the cartridge gives none (iaasProvider command)")]
    NoCommand { image: String },
    #[error("the Docker network {network:?} on {host} has no IPv4 gateway for members to reach the bus on")]
    NoGateway { network: String, host: String },
    #[error("members on network {network:?} cannot be given a bus address: {reason}")]
    Bus { network: String, reason: String },
    /// An engine's listing failed (`reason` names the engine).
    #[error("{reason}")]
    Unreachable { host: String, reason: String },
    #[error("cannot use volume {name:?} on the Docker Engine at {host}: {reason}")]
    Volume { name: String, host: String, reason: String },
    #[error("cannot prepare the agent for containers: {0}")]
    Bundle(#[from] BundleError),
}

impl DockerError {
    pub(crate) fn engine(host: &str, action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let (host, action) = (host.to_string(), action.into());
        move |source| DockerError::Engine { host, action, source }
    }
}

/// The engine's HTTP status in an error, if it answered one.
pub(crate) fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}
