//! What image a cartridge wants, from its `docker` iaasProvider: the image's name is its
//! `imageId`, and one property says how to make it:
//!
//! - `IMAGE_DOCKERFILE`: a Dockerfile (relative to the cartridge file) that starts `FROM
//!   scratch`; its directory is the build context.
//! - `IMAGE_DEBIAN_PACKAGES`: Debian packages (space- or comma-separated) installed into a
//!   minimal root filesystem (mmdebstrap's `essential` variant), with
//!   `IMAGE_DEBIAN_SUITE` (default `bookworm`) and `IMAGE_DEBIAN_MIRROR` (default
//!   mmdebstrap's).
//!
//! Pure: the files are read when the build hashes them.

use std::path::{Path, PathBuf};

use stratos_model::{property, Cartridge};

use crate::ImageError;

pub const DOCKERFILE: &str = "IMAGE_DOCKERFILE";
pub const DEBIAN_PACKAGES: &str = "IMAGE_DEBIAN_PACKAGES";
pub const DEBIAN_SUITE: &str = "IMAGE_DEBIAN_SUITE";
pub const DEBIAN_MIRROR: &str = "IMAGE_DEBIAN_MIRROR";
/// The suite when the cartridge names none: the one this platform is built and tested on.
pub const DEFAULT_SUITE: &str = "bookworm";

/// One image to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// `repository:tag` (`:latest` when the cartridge gives no tag).
    pub name: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A build context sent to the engine's builder.
    Dockerfile { context: PathBuf, dockerfile: String },
    /// A root filesystem made from Debian packages, then imported.
    Debian { suite: String, packages: Vec<String>, mirror: Option<String> },
}

impl ImageSpec {
    /// The image of `cartridge`'s `docker` iaasProvider; `base` is the cartridge file's
    /// directory, which `IMAGE_DOCKERFILE` is relative to.
    pub fn from_cartridge(cartridge: &Cartridge, base: &Path) -> Result<ImageSpec, ImageError> {
        let spec_err = |field: String, reason: &str| ImageError::Spec { field, reason: reason.into() };
        let (i, docker) = cartridge
            .iaas_provider
            .iter()
            .enumerate()
            .find(|(_, p)| p.iaas_type == "docker")
            .ok_or_else(|| spec_err("iaasProvider".into(), "has no entry of type \"docker\""))?;
        let at = |field: &str| format!("iaasProvider[{i}].{field}");
        let name = docker
            .image_id
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| spec_err(at("imageId"), "names no image"))?;
        let name = normalise_name(name).map_err(|reason| spec_err(at("imageId"), &reason))?;
        let props = &docker.property;
        let source = match (property(props, DOCKERFILE), property(props, DEBIAN_PACKAGES)) {
            (Some(_), Some(_)) => {
                return Err(spec_err(
                    at("property"),
                    &format!("has both {DOCKERFILE} and {DEBIAN_PACKAGES}: choose one"),
                ))
            }
            (None, None) => {
                return Err(spec_err(
                    at("property"),
                    &format!("says nothing of how to build the image: add {DOCKERFILE} or {DEBIAN_PACKAGES}"),
                ))
            }
            (Some(file), None) => {
                let path = base.join(file);
                let dockerfile = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
                let context = path.parent().map(Path::to_path_buf);
                match (dockerfile, context) {
                    (Some(dockerfile), Some(context)) => Source::Dockerfile { context, dockerfile },
                    _ => return Err(spec_err(at(DOCKERFILE), "is not a file path")),
                }
            }
            (None, Some(list)) => {
                let packages = parse_packages(list).map_err(|reason| spec_err(at(DEBIAN_PACKAGES), &reason))?;
                let suite = property(props, DEBIAN_SUITE).unwrap_or(DEFAULT_SUITE).trim().to_owned();
                if !is_word(&suite) {
                    return Err(spec_err(at(DEBIAN_SUITE), "is not a Debian suite name (bookworm, trixie)"));
                }
                let mirror = property(props, DEBIAN_MIRROR).map(|m| m.trim().to_owned()).filter(|m| !m.is_empty());
                if mirror.as_deref().is_some_and(|m| !(m.starts_with("http://") || m.starts_with("https://"))) {
                    return Err(spec_err(at(DEBIAN_MIRROR), "must be an http:// or https:// URL"));
                }
                Source::Debian { suite, packages, mirror }
            }
        };
        Ok(ImageSpec { name, source })
    }

    /// One line saying what the image is made from.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Dockerfile { context, dockerfile } => {
                format!("from {} (context {})", context.join(dockerfile).display(), context.display())
            }
            Source::Debian { suite, packages, .. } => {
                format!("from Debian {suite} packages: {}", packages.join(" "))
            }
        }
    }
}

/// `name` with `:latest` when it has no tag; refuses digests and what Docker would refuse.
fn normalise_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.contains('@') {
        return Err(format!("{name:?} is a digest: name a repository and tag to build"));
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c);
    if !name.chars().all(ok) {
        return Err(format!("{name:?} may hold only lower-case letters, digits and . _ - / :"));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    Ok(if last.contains(':') { name.to_owned() } else { format!("{name}:latest") })
}

/// Package names, space- or comma-separated, sorted and without repeats (their order does
/// not change the image, so it must not change its hash).
fn parse_packages(list: &str) -> Result<Vec<String>, String> {
    let mut packages: Vec<String> =
        list.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if packages.is_empty() {
        return Err("lists no package".into());
    }
    if let Some(bad) = packages.iter().find(|p| !is_package(p)) {
        return Err(format!("{bad:?} is not a Debian package name"));
    }
    packages.sort();
    packages.dedup();
    Ok(packages)
}

/// Debian policy: lower-case letters, digits, `+ - .`, starting with a letter or digit.
fn is_package(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cartridge(docker: &str) -> Cartridge {
        let json = format!(
            r#"{{"type":"php","category":"framework","iaasProvider":[{{"type":"local","command":["x"]}},{docker}]}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn spec(docker: &str) -> Result<ImageSpec, String> {
        ImageSpec::from_cartridge(&cartridge(docker), Path::new("/cartridges")).map_err(|e| e.to_string())
    }

    #[test]
    fn debian_packages() {
        let s = spec(r#"{"type":"docker","imageId":"stratos/php","property":[{"name":"IMAGE_DEBIAN_PACKAGES","value":"php-cli, ca-certificates php-cli"}]}"#).unwrap();
        assert_eq!(s.name, "stratos/php:latest");
        assert_eq!(
            s.source,
            Source::Debian {
                suite: "bookworm".into(),
                packages: vec!["ca-certificates".into(), "php-cli".into()],
                mirror: None
            }
        );
        assert_eq!(s.describe(), "from Debian bookworm packages: ca-certificates php-cli");
    }

    #[test]
    fn a_dockerfile_is_relative_to_the_cartridge() {
        let s = spec(r#"{"type":"docker","imageId":"localhost:5000/x/y:1","property":[{"name":"IMAGE_DOCKERFILE","value":"images/scratch/Dockerfile"}]}"#).unwrap();
        assert_eq!(s.name, "localhost:5000/x/y:1", "a registry port is not a tag");
        assert_eq!(
            s.source,
            Source::Dockerfile { context: "/cartridges/images/scratch".into(), dockerfile: "Dockerfile".into() }
        );
    }

    #[test]
    fn bad_specs_name_the_field() {
        let no_docker: Cartridge =
            serde_json::from_str(r#"{"type":"php","category":"framework","iaasProvider":[]}"#).unwrap();
        let e = ImageSpec::from_cartridge(&no_docker, Path::new(".")).unwrap_err().to_string();
        assert!(e.starts_with("iaasProvider: has no entry"), "{e}");
        let e = spec(r#"{"type":"docker","property":[{"name":"IMAGE_DEBIAN_PACKAGES","value":"php"}]}"#).unwrap_err();
        assert_eq!(e, "iaasProvider[1].imageId: names no image");
        let e = spec(r#"{"type":"docker","imageId":"x"}"#).unwrap_err();
        assert!(e.starts_with("iaasProvider[1].property: says nothing"), "{e}");
        let e =
            spec(r#"{"type":"docker","imageId":"x","property":[{"name":"IMAGE_DEBIAN_PACKAGES","value":"Php;rm"}]}"#)
                .unwrap_err();
        assert!(e.starts_with("iaasProvider[1].IMAGE_DEBIAN_PACKAGES: \"Php;rm\" is not"), "{e}");
        let e = spec(r#"{"type":"docker","imageId":"x","property":[{"name":"IMAGE_DEBIAN_PACKAGES","value":" , "}]}"#)
            .unwrap_err();
        assert_eq!(e, "iaasProvider[1].IMAGE_DEBIAN_PACKAGES: lists no package");
        let e = spec(r#"{"type":"docker","imageId":"X Y","property":[{"name":"IMAGE_DOCKERFILE","value":"D"}]}"#)
            .unwrap_err();
        assert!(e.starts_with("iaasProvider[1].imageId: \"X Y\" may hold only"), "{e}");
        let e = spec(r#"{"type":"docker","imageId":"x","property":[{"name":"IMAGE_DEBIAN_PACKAGES","value":"a1"},{"name":"IMAGE_DEBIAN_MIRROR","value":"ftp://m"}]}"#).unwrap_err();
        assert_eq!(e, "iaasProvider[1].IMAGE_DEBIAN_MIRROR: must be an http:// or https:// URL");
    }
}

/// The images a Dockerfile's `FROM` lines start from, other than `scratch` and its own
/// earlier stages (`FROM ... AS name`).
pub fn from_images(dockerfile: &str) -> Vec<String> {
    let mut stages = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut words = words.skip_while(|w| w.starts_with("--"));
        let Some(image) = words.next() else { continue };
        if !image.eq_ignore_ascii_case("scratch") && !stages.iter().any(|s: &String| s.eq_ignore_ascii_case(image)) {
            images.push(image.to_owned());
        }
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("AS")) {
            stages.extend(words.next().map(str::to_owned));
        }
    }
    images
}

#[cfg(test)]
mod from_tests {
    #[test]
    fn bases_other_than_scratch_and_stages() {
        let file = "# a comment\nFROM scratch AS base\nCOPY x /x\nFROM --platform=linux/amd64 base\nfrom debian:12 as d\nFROM d\n";
        assert_eq!(super::from_images(file), ["debian:12"]);
        assert!(super::from_images("FROM scratch\n").is_empty());
    }
}
