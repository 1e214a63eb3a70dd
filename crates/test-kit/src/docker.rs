//! The real Docker Engine in tests: whether there is one (a test without it is skipped,
//! but fails under `CI=true`), the `docker` CLI as a harness, and a dynamically linked
//! program carried into a `FROM scratch` image with its loader and libraries.

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

/// Runs `docker ARGS`, panicking with its stderr if it fails; returns its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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
