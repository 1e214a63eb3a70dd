//! The real Docker Engine in tests: whether there is one (a test without it is skipped,
//! but fails under `CI=true`), the `docker` CLI as a harness, a dynamically linked
//! program carried into a `FROM scratch` image with its loader and libraries, and images
//! built here with no registry and no pull: `FROM scratch` plus files copied from this
//! machine (programs with the shared libraries `ldd` lists, at their own paths), tagged
//! by a hash of what went into them, so test binaries (and runs) reuse them rather than
//! build them again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether the engine answers; `false` (with a note on stderr) means skip the test. Under
/// `CI=true` a missing engine panics: CI must run the Docker tests.
pub fn engine_or_skip(test: &str) -> bool {
    let answered = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answered {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: no Docker Engine answers, and CI must run this test"
        );
        eprintln!("{test}: skipped, no Docker Engine answers");
    }
    answered
}

/// Runs `docker ARGS`, panicking with its stderr if it fails; returns its stdout, trimmed.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `docker ARGS` and gives its output, whatever its status.
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker runs")
}

/// Removes the named containers when dropped (`docker rm -f`).
pub struct Containers(pub Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = docker_output(&["rm", "-f", name]);
        }
    }
}

/// The loader's name in a carried directory.
pub const LOADER: &str = "ld-linux-x86-64.so.2";

/// Copies `binary` into `dir` with the shared libraries `ldd` lists (into `dir/lib`) and
/// the dynamic loader (as `dir/ld-linux-x86-64.so.2`): the program then runs in an image
/// that has nothing else, as `/DIR/ld-linux-x86-64.so.2 --library-path /DIR/lib /DIR/NAME`.
pub fn carry(binary: &Path, dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
    assert!(ldd.status.success(), "ldd {}: {}", binary.display(), String::from_utf8_lossy(&ldd.stderr));
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`,
        // `linux-vdso.so.1 (0x...)` (in the kernel, nothing to copy).
        let line = line.trim();
        let path = match line.split_once(" => ") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else { continue };
        let path = Path::new(path);
        let name = path.file_name().unwrap();
        let to =
            if name.to_str().is_some_and(|n| n.starts_with("ld-linux")) { dir.join(LOADER) } else { lib.join(name) };
        std::fs::copy(path, &to).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
    }
    assert!(dir.join(LOADER).is_file(), "ldd named no loader for {}", binary.display());
    let to = dir.join(binary.file_name().unwrap());
    std::fs::copy(binary, &to).unwrap();
    to
}

/// `docker ARGS` that may fail: its stdout, or its stderr as the error.
pub fn try_docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A `FROM scratch` image made of files of this machine.
#[derive(Debug, Clone, Default)]
pub struct ScratchImage {
    name: String,
    /// (source on this machine, path in the image)
    files: Vec<(PathBuf, String)>,
    /// Extra Dockerfile lines (`CMD [...]`, `ENV ...`).
    lines: Vec<String>,
}

impl ScratchImage {
    /// An image to be tagged `stratos-test/NAME:<hash>`.
    pub fn new(name: &str) -> ScratchImage {
        ScratchImage { name: name.to_string(), ..Default::default() }
    }

    /// `source` at `target` in the image.
    pub fn file(mut self, source: impl Into<PathBuf>, target: &str) -> ScratchImage {
        self.files.push((source.into(), target.to_string()));
        self
    }

    /// A dynamically linked program at `target`, with the libraries and loader `ldd`
    /// lists at their own paths (so it runs as it does here).
    pub fn program(mut self, source: &str, target: &str) -> ScratchImage {
        let out = Command::new("ldd").arg(source).output().expect("ldd runs");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next().unwrap_or_default().to_string(),
                None => line.split_whitespace().next().unwrap_or_default().to_string(),
            };
            if path.starts_with('/') && !self.files.iter().any(|(_, t)| *t == path) {
                self.files.push((PathBuf::from(&path), path));
            }
        }
        self.files.push((PathBuf::from(source), target.to_string()));
        self
    }

    /// A Dockerfile line after the files (`CMD ["/bin/sh"]`).
    pub fn line(mut self, line: &str) -> ScratchImage {
        self.lines.push(line.to_string());
        self
    }

    /// The image's tag: built now unless an image of the same contents exists.
    pub fn build(&self) -> String {
        let mut hasher = DefaultHasher::new();
        self.lines.hash(&mut hasher);
        for (source, target) in &self.files {
            target.hash(&mut hasher);
            std::fs::read(source).unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display())).hash(&mut hasher);
        }
        let tag = format!("stratos-test/{}:{:016x}", self.name, hasher.finish());
        if try_docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
            return tag;
        }
        let context = std::env::temp_dir().join(format!("stratos-image-{}-{}", self.name, std::process::id()));
        let _ = std::fs::remove_dir_all(&context);
        // One tree copied in one layer (the classic builder fails on two identical
        // layers in a row, as copying a library twice would make).
        let rootfs = context.join("rootfs");
        for (source, target) in &self.files {
            let to = rootfs.join(target.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(source, &to).unwrap_or_else(|e| panic!("cannot copy {}: {e}", source.display()));
        }
        let mut dockerfile = String::from("FROM scratch\nCOPY rootfs/ /\n");
        for line in &self.lines {
            dockerfile.push_str(line);
            dockerfile.push('\n');
        }
        std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        // The classic builder: it needs nothing from a registry for `FROM scratch`.
        let out = Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &tag])
            .arg(&context)
            .output()
            .expect("docker build runs");
        let _ = std::fs::remove_dir_all(&context);
        assert!(out.status.success(), "docker build of {tag} failed: {}", String::from_utf8_lossy(&out.stderr));
        tag
    }
}

/// A scratch image with a shell (`/bin/sh`, dash; `/bin/bash`, for its `/dev/tcp`),
/// `sleep` and `timeout`: enough for a cartridge command that waits, exits with a code,
/// or probes a TCP port. Nothing of Stratos is in it.
pub fn shell_image() -> String {
    ScratchImage::new("shell")
        .program(&which("sh"), "/bin/sh")
        .program(&which("bash"), "/bin/bash")
        .program(&which("sleep"), "/bin/sleep")
        .program(&which("timeout"), "/bin/timeout")
        .line("CMD [\"/bin/sh\"]")
        .build()
}

/// A program's path on this machine.
pub fn which(program: &str) -> String {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return std::fs::canonicalize(path).unwrap().display().to_string();
        }
    }
    panic!("{program} is not installed")
}
