//! The content hash of an image's inputs, carried by the image as a label: an image whose
//! label matches is up to date, and anything else is rebuilt. For a Dockerfile, every
//! file of the context (path, executable bit, bytes) in path order; for Debian packages,
//! the suite, mirror and sorted package list (the packages' own updates do not change it:
//! `--force` rebuilds).

use sha2::{Digest, Sha256};

use crate::context::{Entry, EntryKind};
use crate::spec::Source;

/// The label an image's input hash is kept in.
pub const LABEL: &str = "io.stratos.image.inputs";

/// Bumped when the way an image is made changes, so that images made the old way rebuild.
const RECIPE: &str = "stratos-image 1";

/// `sha256:<hex>` of a Dockerfile build's context entries (sorted by path).
pub fn of_context(dockerfile: &str, entries: &[Entry]) -> String {
    let mut h = Sha256::new();
    field(&mut h, RECIPE.as_bytes());
    field(&mut h, b"dockerfile");
    field(&mut h, dockerfile.as_bytes());
    for e in entries {
        field(&mut h, e.path.to_string_lossy().as_bytes());
        match &e.kind {
            EntryKind::Dir => field(&mut h, b"dir"),
            EntryKind::File { executable, bytes } => {
                field(&mut h, if *executable { b"exec" } else { b"file" });
                field(&mut h, bytes);
            }
            EntryKind::Symlink(target) => {
                field(&mut h, b"link");
                field(&mut h, target.to_string_lossy().as_bytes());
            }
        }
    }
    hex(h)
}

/// `sha256:<hex>` of a Debian build's inputs.
pub fn of_debian(source: &Source) -> String {
    let mut h = Sha256::new();
    field(&mut h, RECIPE.as_bytes());
    if let Source::Debian { suite, packages, mirror } = source {
        field(&mut h, b"debian");
        field(&mut h, suite.as_bytes());
        field(&mut h, mirror.as_deref().unwrap_or("").as_bytes());
        for p in packages {
            field(&mut h, p.as_bytes());
        }
    }
    hex(h)
}

/// A length-prefixed field, so that no two input lists hash alike by running together.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn hex(h: Sha256) -> String {
    let digest = h.finalize();
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A short form for messages: the first 12 hex digits.
pub fn short(hash: &str) -> &str {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8], executable: bool) -> Entry {
        Entry { path: path.into(), kind: EntryKind::File { executable, bytes: bytes.to_vec() } }
    }

    #[test]
    fn a_context_hash_follows_every_input() {
        let base = vec![file("Dockerfile", b"FROM scratch\n", false), file("x/app", b"\x7fELF", true)];
        let h = of_context("Dockerfile", &base);
        assert!(h.starts_with("sha256:") && h.len() == 71, "{h}");
        assert_eq!(h, of_context("Dockerfile", &base.clone()), "stable");
        let mut changed = base.clone();
        changed[1] = file("x/app", b"\x7fELF2", true);
        assert_ne!(h, of_context("Dockerfile", &changed), "bytes");
        changed[1] = file("x/app", b"\x7fELF", false);
        assert_ne!(h, of_context("Dockerfile", &changed), "mode");
        changed[1] = file("x/app2", b"\x7fELF", true);
        assert_ne!(h, of_context("Dockerfile", &changed), "path");
        assert_ne!(h, of_context("Other", &base), "dockerfile name");
        let joined = vec![file("Dockerfile", b"FROM scratch\nx/app", false)];
        assert_ne!(h, of_context("Dockerfile", &joined), "fields do not run together");
        assert_eq!(short(&h).len(), 12);
    }

    #[test]
    fn a_debian_hash_follows_suite_mirror_and_packages() {
        let src = |suite: &str, packages: &[&str], mirror: Option<&str>| Source::Debian {
            suite: suite.into(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            mirror: mirror.map(str::to_owned),
        };
        let h = of_debian(&src("bookworm", &["php-cli"], None));
        assert_eq!(h, of_debian(&src("bookworm", &["php-cli"], None)));
        assert_ne!(h, of_debian(&src("trixie", &["php-cli"], None)));
        assert_ne!(h, of_debian(&src("bookworm", &["php-cli", "curl"], None)));
        assert_ne!(h, of_debian(&src("bookworm", &["php-cli"], Some("http://m/debian"))));
    }
}
