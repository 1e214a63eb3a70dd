//! Images with no registry and per-member figures, on the real Docker Engine: `stratos
//! image build` makes a FROM-scratch image once and then says "up to date"; a Debian
//! image is made from packages (cached by its inputs across runs and test binaries); and
//! two containers under `--cpus 0.5`, one burning CPU and one idle, report about 100% and
//! about 0% through the agent's own reader (`stratos usage`, carried into a scratch image
//! with its loader and libraries).
//!
//! Without a Docker Engine these tests are skipped, but fail under `CI=true`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use stratos_test_kit::docker::{carry, docker, docker_output, engine_or_skip, Containers, LOADER};
use stratos_test_kit::eventually;

const STRATOS: &str = env!("CARGO_BIN_EXE_stratos");

/// `stratos image build FILE`: its status and output.
fn image_build(cartridge: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(STRATOS).args(["image", "build"]).arg(cartridge).args(extra).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A cartridge file in `dir` whose docker image `image` is built from `properties`.
fn cartridge(dir: &Path, image: &str, properties: Value) -> std::path::PathBuf {
    let file = dir.join("cartridge.json");
    let body = json!({
        "type": "t", "category": "framework",
        "iaasProvider": [{"type": "docker", "imageId": image, "property": properties}]
    });
    std::fs::write(&file, body.to_string()).unwrap();
    file
}

fn image_id(image: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).trim().to_owned()
}

/// Removes an image when dropped.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker_output(&["rmi", "-f", &self.0]);
    }
}

#[test]
fn a_scratch_image_is_built_once_then_up_to_date_until_its_context_changes() {
    if !engine_or_skip("a_scratch_image_is_built_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY hello.txt /hello.txt\nCMD [\"/nothing\"]\n").unwrap();
    std::fs::write(ctx.join("hello.txt"), "one\n").unwrap();
    let name = format!("stratos-test/tiny-{}:latest", std::process::id());
    let _image = Image(name.clone());
    let file = cartridge(dir.path(), &name, json!([{"name": "IMAGE_DOCKERFILE", "value": "ctx/Dockerfile"}]));

    let (ok, out) = image_build(&file, &[]);
    assert!(ok && out.contains(&format!("{name}: built")), "{out}");
    assert!(out.contains("  | Step 1/4 : FROM scratch"), "the builder's progress is shown: {out}");
    let first = image_id(&name);

    let (ok, out) = image_build(&file, &[]);
    assert!(ok && out.contains(&format!("{name}: up to date")), "{out}");
    assert!(!out.contains("Step 1/"), "nothing was built: {out}");
    assert_eq!(image_id(&name), first);

    std::fs::write(ctx.join("hello.txt"), "two\n").unwrap();
    let (ok, out) = image_build(&file, &[]);
    assert!(ok && out.contains(&format!("{name}: built")), "a changed file rebuilds: {out}");
    assert_ne!(image_id(&name), first);
    assert!(out.contains("removed the image it replaces"), "{out}");
    assert!(!docker_output(&["image", "inspect", &first]).status.success(), "the replaced image is gone");

    // No registry: a base image the engine lacks is named, with what to do.
    std::fs::write(ctx.join("Dockerfile"), "FROM debian:bookworm\nCOPY hello.txt /\n").unwrap();
    let (ok, out) = image_build(&file, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("FROM debian:bookworm: the engine has no such image and pulls none"), "{out}");
}

#[test]
fn a_bad_image_spec_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = cartridge(dir.path(), "x", json!([{"name": "IMAGE_DEBIAN_PACKAGES", "value": "Bad;name"}]));
    let (ok, out) = image_build(&file, &[]);
    assert!(!ok);
    assert!(out.contains("iaasProvider[0].IMAGE_DEBIAN_PACKAGES: \"Bad;name\" is not a Debian package name"), "{out}");
}

#[test]
fn a_debian_image_is_made_from_packages_and_cached_by_its_inputs() {
    if !engine_or_skip("a_debian_image_is_made_from_packages") {
        return;
    }
    // A fixed name and a small package set: the image is kept, so later runs (and other
    // test binaries asking for the same inputs) find it up to date.
    let name = "stratos-test/debian-busybox:bookworm";
    let dir = tempfile::tempdir().unwrap();
    let file = cartridge(dir.path(), name, json!([{"name": "IMAGE_DEBIAN_PACKAGES", "value": "busybox"}]));
    let (ok, out) = image_build(&file, &[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{name}: built")) || out.contains(&format!("{name}: up to date")), "{out}");
    let (ok, out) = image_build(&file, &[]);
    assert!(ok && out.contains(&format!("{name}: up to date")), "{out}");
    let ran = docker(&["run", "--rm", "--network", "none", name, "busybox", "echo", "from debian"]);
    assert_eq!(ran.trim(), "from debian");
}

/// The figures `stratos usage` printed in `container`, once it printed `count`.
fn figures(container: &str, count: usize) -> Vec<Value> {
    eventually(Duration::from_secs(90), &format!("{count} figures from {container}"), || {
        let out = docker_output(&["logs", container]);
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if lines.len() >= count {
            Ok(lines)
        } else {
            Err(format!("{} so far; stdout {text:?}, stderr {:?}", lines.len(), String::from_utf8_lossy(&out.stderr)))
        }
    })
}

#[test]
fn containers_under_half_a_core_report_their_own_cpu_busy_and_idle() {
    if !engine_or_skip("containers_under_half_a_core") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    carry(Path::new(STRATOS), &ctx.join("x"));
    carry(Path::new("/bin/dash"), &ctx.join("x"));
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY x /x\n").unwrap();
    let image = "stratos-test/usage:latest";
    let _image = Image(image.into());
    let file = cartridge(dir.path(), image, json!([{"name": "IMAGE_DOCKERFILE", "value": "ctx/Dockerfile"}]));
    let (ok, out) = image_build(&file, &[]);
    assert!(ok, "{out}");

    let loader = format!("/x/{LOADER}");
    let run = |name: &str| format!("{loader} --library-path /x/lib /x/{name}");
    let usage = format!("{} usage --every 2s --count 4", run("stratos"));
    let (busy, idle) = (format!("stratos-busy-{}", std::process::id()), format!("stratos-idle-{}", std::process::id()));
    let _containers = Containers(vec![busy.clone(), idle.clone()]);
    let start = |name: &str, command: Vec<String>| {
        let mut args =
            vec!["run", "-d", "--name", name, "--cpus", "0.5", "--memory", "256m", "--network", "none", image];
        args.extend(command.iter().map(String::as_str));
        docker(&args);
    };
    let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    // The image has no shell of its own: dash, carried in, runs through the loader too.
    let mut busy_cmd = words(&run("dash"));
    busy_cmd.extend(["-c".to_owned(), format!("while :; do :; done & exec {usage}")]);
    start(&busy, busy_cmd);
    start(&idle, words(&usage));

    let (busy_figures, idle_figures) = (figures(&busy, 4), figures(&idle, 4));
    let load = |f: &Value| f["loadAverage"].as_f64().unwrap();
    for f in busy_figures.iter().chain(&idle_figures) {
        assert!(f["source"].as_str().unwrap().starts_with("cgroup v"), "{f}");
        let memory = f["memoryConsumption"].as_f64().unwrap();
        assert!(memory > 0.0 && memory < 50.0, "memory against the 256 MiB limit: {f}");
    }
    // The first figure may cover the busy loop's start; the others a steady state. Half a
    // core busy is 100% of --cpus 0.5 (the quota caps it, so never much more); a machine
    // shared with other work (two cores, builds beside) gives it less, but a share.
    eprintln!("busy container: {busy_figures:?}\nidle container: {idle_figures:?}");
    for f in &busy_figures[1..] {
        assert!((30.0..=115.0).contains(&load(f)), "busy: {busy_figures:?}");
    }
    for f in &idle_figures[1..] {
        assert!(load(f) < 10.0, "idle: {idle_figures:?}");
    }
}
