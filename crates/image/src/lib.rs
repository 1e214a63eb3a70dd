//! Images with no registry: `stratos image build` makes a cartridge's Docker image on the
//! engine itself, with no pull, and only when its inputs changed.
//!
//! What to build is the cartridge's `docker` iaasProvider ([`spec`]): a Dockerfile that
//! starts `FROM scratch` (its directory sent as the build context), or Debian packages
//! (a minimal root filesystem made by mmdebstrap, then imported). The content hash of the
//! inputs ([`inputs`]) is the image's `io.stratos.image.inputs` label: an image whose
//! label matches is up to date, and nothing is done.

mod context;
mod debian;
pub mod engine;
mod error;
pub mod inputs;
pub mod spec;

use bollard::Docker;

pub use crate::error::ImageError;
pub use crate::spec::{ImageSpec, Source};

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The image already carried the inputs' hash.
    UpToDate {
        id: String,
        inputs: String,
    },
    Built {
        id: String,
        inputs: String,
    },
}

/// Makes `spec`'s image on `docker` unless it is up to date (or `force`), passing what the
/// builder prints to `progress`, line by line.
pub async fn build(
    docker: &Docker,
    spec: &ImageSpec,
    force: bool,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Outcome, ImageError> {
    let name = spec.name.as_str();
    let current = engine::current(docker, name).await?;
    let up_to_date = |hash: &str| match &current {
        Some((id, Some(label))) if label == hash && !force => {
            Some(Outcome::UpToDate { id: id.clone(), inputs: hash.to_owned() })
        }
        _ => None,
    };
    match &spec.source {
        Source::Dockerfile { context, dockerfile } => {
            let entries = context::read(context)?;
            let hash = inputs::of_context(dockerfile, &entries);
            if let Some(done) = up_to_date(&hash) {
                return Ok(done);
            }
            check_bases(docker, &entries, dockerfile, name).await?;
            let tar = context::tar(&entries).map_err(|source| ImageError::Read { path: context.clone(), source })?;
            engine::build(docker, name, dockerfile, tar, &hash, progress).await?;
            built(docker, name, hash, previous(&current), progress).await
        }
        Source::Debian { suite, packages, mirror } => {
            let hash = inputs::of_debian(&spec.source);
            if let Some(done) = up_to_date(&hash) {
                return Ok(done);
            }
            let dir = tempfile::Builder::new()
                .prefix("stratos-image-")
                .tempdir()
                .map_err(|source| ImageError::Read { path: std::env::temp_dir(), source })?;
            let rootfs = dir.path().join("rootfs.tar");
            debian::rootfs(suite, packages, mirror.as_deref(), &rootfs, progress).await?;
            progress("importing the root filesystem");
            engine::import(docker, name, &rootfs, &hash, progress).await?;
            built(docker, name, hash, previous(&current), progress).await
        }
    }
}

fn previous(current: &Option<(String, Option<String>)>) -> Option<String> {
    current.as_ref().map(|(id, _)| id.clone())
}

/// The outcome of a build that went through; the image it replaced is removed unless a
/// container or another tag still uses it (no dangling image per rebuild).
async fn built(
    docker: &Docker,
    name: &str,
    inputs: String,
    previous: Option<String>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Outcome, ImageError> {
    match engine::current(docker, name).await? {
        Some((id, _)) => {
            if let Some(old) = previous.filter(|old| *old != id) {
                if engine::remove_if_unused(docker, &old).await {
                    progress(&format!("removed the image it replaces, {}", inputs::short(&old)));
                }
            }
            Ok(Outcome::Built { id, inputs })
        }
        None => Err(ImageError::Build {
            image: name.to_owned(),
            message: "the engine has no such image after the build".into(),
        }),
    }
}

/// Every `FROM` image of the Dockerfile must be `scratch`, an earlier stage, or an image
/// the engine has: there is no registry to pull from, so say so before the engine tries.
async fn check_bases(
    docker: &Docker,
    entries: &[context::Entry],
    dockerfile: &str,
    name: &str,
) -> Result<(), ImageError> {
    let text = entries.iter().find_map(|e| match &e.kind {
        context::EntryKind::File { bytes, .. } if e.path.as_os_str() == dockerfile => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    });
    let Some(text) = text else {
        return Err(ImageError::Build { image: name.to_owned(), message: format!("the context has no {dockerfile}") });
    };
    for base in spec::from_images(&text) {
        if engine::current(docker, &base).await?.is_none() {
            return Err(ImageError::Build {
                image: name.to_owned(),
                message: format!(
                    "FROM {base}: the engine has no such image and pulls none (start from scratch, or build {base} first with stratos image build)"
                ),
            });
        }
    }
    Ok(())
}
