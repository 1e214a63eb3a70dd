//! The Docker Engine calls an image build makes (bollard): find an image's input label,
//! build a context, import a root filesystem. No call pulls: this platform's engines may
//! reach no registry.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};

use crate::{inputs, ImageError};

/// The engine at `host` (`unix:///run/docker.sock`, `tcp://HOST:PORT`, `http://...`), or the
/// local one (`DOCKER_HOST`, else the default socket), at the newest API version both know.
pub async fn connect(host: Option<&str>) -> Result<Docker, ImageError> {
    let shown = host.unwrap_or("the local socket").to_owned();
    let connect_err = |source| ImageError::Connect { host: shown.clone(), source };
    let docker = match host {
        None => Docker::connect_with_local_defaults(),
        Some(h) if h.starts_with("unix://") || h.starts_with('/') => {
            Docker::connect_with_socket(h, 120, bollard::API_DEFAULT_VERSION)
        }
        Some(h) => Docker::connect_with_http(h, 120, bollard::API_DEFAULT_VERSION),
    }
    .map_err(connect_err)?;
    docker.negotiate_version().await.map_err(connect_err)
}

/// The id of image `name` and its input label, or `None` when the engine has no such image.
pub async fn current(docker: &Docker, name: &str) -> Result<Option<(String, Option<String>)>, ImageError> {
    match docker.inspect_image(name).await {
        Ok(image) => {
            let label = image.config.and_then(|c| c.labels).and_then(|mut l| l.remove(inputs::LABEL));
            Ok(Some((image.id.unwrap_or_default(), label)))
        }
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        Err(source) => Err(ImageError::Engine { what: format!("inspecting {name}"), source }),
    }
}

/// Builds `context` (a tar) into image `name`, labelled with `hash`.
pub async fn build(
    docker: &Docker,
    name: &str,
    dockerfile: &str,
    context: Vec<u8>,
    hash: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), ImageError> {
    let labels = HashMap::from([(inputs::LABEL.to_owned(), hash.to_owned())]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(dockerfile)
        .t(name)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(info) = stream.next().await {
        let info = info.map_err(|source| build_error(name, source))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Build { image: name.to_owned(), message: error.trim().to_owned() });
        }
        for line in info.stream.iter().flat_map(|s| s.lines()).filter(|l| !l.trim().is_empty()) {
            progress(line);
        }
    }
    Ok(())
}

fn build_error(name: &str, source: bollard::errors::Error) -> ImageError {
    match source {
        bollard::errors::Error::DockerStreamError { error } => {
            ImageError::Build { image: name.to_owned(), message: error }
        }
        source => ImageError::Engine { what: format!("the build of {name}"), source },
    }
}

/// Imports the root filesystem tar at `rootfs` as image `name` (`repo:tag`), labelled with
/// `hash`, with the standard `PATH` (an imported image has no environment).
pub async fn import(
    docker: &Docker,
    name: &str,
    rootfs: &Path,
    hash: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), ImageError> {
    let (repo, tag) = split_tag(name);
    let changes = vec![
        format!("LABEL {}={hash}", inputs::LABEL),
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
    ];
    let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).changes(changes).build();
    let file = tokio::fs::File::open(rootfs)
        .await
        .map_err(|source| ImageError::Read { path: rootfs.to_path_buf(), source })?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(info) = stream.try_next().await.map_err(|source| build_error(name, source))? {
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Build { image: name.to_owned(), message: error });
        }
        if let Some(status) = info.status {
            progress(&status);
        }
    }
    Ok(())
}

/// Removes image `id` if nothing uses it any more (no tag, no container): the image a
/// rebuild replaced. Whether it went is not an error either way.
pub async fn remove_if_unused(docker: &Docker, id: &str) -> bool {
    let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
    docker.remove_image(id, Some(options), None).await.is_ok()
}

/// `repo:tag` split at the tag's colon (not a registry's port).
fn split_tag(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(super::split_tag("stratos/php:latest"), ("stratos/php", "latest"));
        assert_eq!(super::split_tag("localhost:5000/php"), ("localhost:5000/php", "latest"));
        assert_eq!(super::split_tag("localhost:5000/php:7"), ("localhost:5000/php", "7"));
    }
}
