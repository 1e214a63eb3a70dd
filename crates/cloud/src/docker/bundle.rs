//! The agent's bundle: this `stratos` binary with the shared libraries it links and
//! their loader, in one directory that every member's container mounts read-only at
//! `/.stratos`. The container runs the loader explicitly
//! (`/.stratos/ld-linux-x86-64.so.2 --library-path /.stratos/lib /.stratos/stratos agent`),
//! so the agent runs alike in a `FROM scratch` image and in a Debian one, whatever libc
//! the image has (or none): images need not contain Stratos.
//!
//! Why not a static build: the gnu target's `+crt-static` would have to be the
//! platform's own build too (one binary runs the platform and the agents), and glibc's
//! static NSS is a known trap; carrying the loader costs a few MiB once per binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the bundle appears in a container.
pub const MOUNT: &str = stratos_model::RESERVED_TARGET;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot list the libraries of {} with ldd: {reason}", exe.display())]
    Ldd { exe: PathBuf, reason: String },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.to_path_buf();
    move |source| BundleError::Io { action, path, source }
}

/// The bundle on the host, and how a container runs what is in it.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The host directory mounted at [`MOUNT`].
    pub dir: PathBuf,
    /// The loader's file name (`ld-linux-x86-64.so.2`); `None` for a static binary.
    loader: Option<String>,
}

impl Bundle {
    /// Makes (once per binary: its size and modification time name the directory) the
    /// bundle of `exe` under `root`.
    pub fn prepare(exe: &Path, root: &Path) -> Result<Bundle, BundleError> {
        let meta = std::fs::metadata(exe).map_err(io("read the metadata of", exe))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
        let dir = root.join(format!("{}-{}-{}", meta.len(), mtime.as_secs(), mtime.subsec_nanos()));
        let (libraries, loader) = libraries(exe)?;
        let loader_name = loader.as_ref().and_then(|l| l.file_name()).map(|n| n.to_string_lossy().into_owned());
        if dir.join(DONE).exists() {
            return Ok(Bundle { dir, loader: loader_name });
        }
        let tmp = root.join(format!(".tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let lib = tmp.join("lib");
        std::fs::create_dir_all(&lib).map_err(io("create", &lib))?;
        copy(exe, &tmp.join("stratos"))?;
        for library in &libraries {
            let name = library.file_name().expect("ldd lists files");
            copy(library, &lib.join(name))?;
        }
        if let (Some(loader), Some(name)) = (&loader, &loader_name) {
            copy(loader, &tmp.join(name))?;
        }
        std::fs::write(tmp.join(DONE), b"").map_err(io("write", &tmp.join(DONE)))?;
        // What the members' user reads and runs; never writes.
        for d in [&tmp, &lib] {
            set_mode(d, 0o755)?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(io("move the agent bundle to", &dir))?;
        tracing::info!(dir = %dir.display(), libraries = libraries.len(), "agent bundle for containers prepared");
        Ok(Bundle { dir, loader: loader_name })
    }

    #[cfg(test)]
    pub(crate) fn prepare_for_test(dir: &str) -> Bundle {
        Bundle { dir: dir.into(), loader: Some("ld-linux-x86-64.so.2".into()) }
    }

    /// The command that runs the bundled `stratos` with `args` in a container.
    pub fn command(&self, args: &[&str]) -> Vec<String> {
        let mut command = match &self.loader {
            Some(loader) => vec![format!("{MOUNT}/{loader}"), "--library-path".into(), format!("{MOUNT}/lib")],
            None => Vec::new(),
        };
        command.push(format!("{MOUNT}/stratos"));
        command.extend(args.iter().map(|a| a.to_string()));
        command
    }
}

const DONE: &str = ".complete";

fn set_mode(path: &Path, mode: u32) -> Result<(), BundleError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("set the mode of", path))
}

/// Copies a file (following links: the libraries are links to versioned files),
/// readable and, when it was, runnable by everyone. A hard link when the file is
/// already so and on the same file system (the binary: no copy of tens of MiB).
fn copy(from: &Path, to: &Path) -> Result<(), BundleError> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(from).map_err(io("resolve", from))?;
    let mode = std::fs::metadata(&real).map_err(io("read the metadata of", &real))?.mode();
    if mode & 0o7777 == 0o755 && std::fs::hard_link(&real, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(&real, to).map_err(io("copy into the agent bundle", from))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(to).map_err(io("read the metadata of", to))?.permissions().mode();
    set_mode(to, if mode & 0o111 != 0 { 0o755 } else { 0o644 })
}

/// The libraries `exe` loads and its loader, as `ldd` lists them.
fn libraries(exe: &Path) -> Result<(Vec<PathBuf>, Option<PathBuf>), BundleError> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| BundleError::Ldd { exe: exe.to_path_buf(), reason: e.to_string() })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary: ldd says so and fails; nothing to carry.
        if text.contains("not a dynamic executable") || String::from_utf8_lossy(&out.stderr).contains("not a dynamic") {
            return Ok((Vec::new(), None));
        }
        return Err(BundleError::Ldd { exe: exe.to_path_buf(), reason: String::from_utf8_lossy(&out.stderr).into() });
    }
    parse_ldd(&text).map_err(|reason| BundleError::Ldd { exe: exe.to_path_buf(), reason })
}

/// `ldd`'s lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` a library,
/// `/lib64/ld-linux-x86-64.so.2 (0x...)` the loader, `linux-vdso.so.1 (0x...)` the
/// kernel's (nothing to copy). Pure.
pub fn parse_ldd(text: &str) -> Result<(Vec<PathBuf>, Option<PathBuf>), String> {
    let mut libraries = Vec::new();
    let mut loader = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((name, rest)) = line.split_once("=>") {
            let path = rest.split_whitespace().next().unwrap_or_default();
            if path == "not" {
                return Err(format!("{} is not found", name.trim()));
            }
            if path.starts_with('/') {
                libraries.push(PathBuf::from(path));
            }
        } else if line.starts_with('/') {
            loader = line.split_whitespace().next().map(PathBuf::from);
        }
    }
    Ok((libraries, loader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let (libs, loader) = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"), "/lib/x86_64-linux-gnu/libc.so.6".into()]
        );
        assert_eq!(loader, Some(PathBuf::from("/lib64/ld-linux-x86-64.so.2")));
        assert!(parse_ldd("\tlibfoo.so => not found\n").unwrap_err().contains("libfoo.so"));
    }

    #[test]
    fn commands_run_the_loader() {
        let bundle = Bundle { dir: "/x".into(), loader: Some("ld-linux-x86-64.so.2".into()) };
        assert_eq!(
            bundle.command(&["agent"]),
            ["/.stratos/ld-linux-x86-64.so.2", "--library-path", "/.stratos/lib", "/.stratos/stratos", "agent"]
        );
        let bundle = Bundle { dir: "/x".into(), loader: None };
        assert_eq!(bundle.command(&["agent"]), ["/.stratos/stratos", "agent"]);
    }
}
