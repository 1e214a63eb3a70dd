//! Identity from the command line: `stratos up` leaves an admin token (0600) that the
//! CLI on the same machine finds by itself; `stratos login`/`logout`; TLS on the API
//! with a self-signed certificate pinned by its fingerprint.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{config_home, free_port, spawn, stratos, Platform, BIN};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `stratos ARGS` with `stdin` on its standard input and `XDG_CONFIG_HOME=config`.
fn stratos_with(config: &Path, args: &[&str], stdin: &str) -> support::Output {
    support::stratos_in(config, args, stdin)
}

fn text(out: &support::Output) -> String {
    out.to_string()
}

#[test]
fn up_leaves_an_admin_token_that_the_cli_finds_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &[]);
    let token_file = dir.path().join("admin-token");
    let password_file = dir.path().join("admin-password");
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&password_file), 0o600);
    let token = platform.admin_token();
    let password = std::fs::read_to_string(&password_file).unwrap().trim().to_owned();
    let banner = platform.proc.stdout();
    assert!(banner.contains(token_file.canonicalize().unwrap().to_str().unwrap()), "the banner says where\n{banner}");
    for secret in [&token, &password] {
        assert!(
            !banner.contains(secret.as_str()) && !platform.proc.stderr().contains(secret.as_str()),
            "a secret printed"
        );
    }
    // No flag, no login: the CLI uses the token file `stratos up` recorded for its URL.
    platform.add_php_web();
    let listed = platform.list("cartridge");
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let record = std::fs::read_dir(config_home().join("stratos/apis")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(mode(&record), 0o600);
    // A wrong token is refused and the CLI says how to log in.
    let out = platform.cli(&["cartridge", "list", "--token", "stratos_0000000000000000_00"]);
    assert!(!out.success() && out.stderr.contains("(401)") && out.stderr.contains("stratos login"), "{out}");
    // The API refuses requests without a token.
    let (status, _) = support::http_get(platform.api_port, "/api/cartridges").unwrap();
    assert_eq!(status, 401);

    // A restart keeps the admin and its token; no new password.
    let platform = platform.restart();
    assert_eq!(platform.admin_token(), token, "the live token is reused");
    assert!(!platform.proc.stdout().contains("first platform admin"), "{}", platform.proc.stdout());
    assert_eq!(std::fs::read_to_string(&password_file).unwrap().trim(), password);
    platform.ok(&["cartridge", "show", "php"]);
}

#[test]
fn login_saves_a_private_token_and_logout_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &[]);
    let password = std::fs::read_to_string(dir.path().join("admin-password")).unwrap();
    // A config directory of its own: no token file recorded, only what login saves.
    let config = tempfile::tempdir().unwrap();
    let api = platform.api();
    let out = stratos_with(config.path(), &["whoami", "--api", &api], "");
    assert!(!out.status.success() && text(&out).contains("401"), "{}", text(&out));
    let out = stratos_with(
        config.path(),
        &["login", "--api", &api, "--user", "admin", "--password-stdin"],
        "wrong password\n",
    );
    assert!(!out.status.success() && text(&out).contains("wrong user name or password"), "{}", text(&out));
    let out = stratos_with(config.path(), &["login", "--api", &api, "--user", "admin", "--password-stdin"], &password);
    assert!(out.status.success(), "{}", text(&out));
    let saved = std::fs::read_dir(config.path().join("stratos/apis")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(mode(&saved), 0o600);
    assert_eq!(mode(&config.path().join("stratos/apis")), 0o700);
    let out = stratos_with(config.path(), &["whoami", "--api", &api], "");
    assert!(out.status.success() && text(&out).contains("admin (platform-admin)"), "{}", text(&out));
    // A tenant, a viewer of it, its quota.
    let admin = platform.admin_token();
    let out = stratos_with(config.path(), &["tenant", "add", "acme.test", "--api", &api], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = stratos_with(
        config.path(),
        &[
            "user",
            "add",
            "viewer1",
            "--role",
            "viewer",
            "--tenant",
            "acme.test",
            "--password-stdin",
            "--api",
            &api,
            "--token",
            &admin,
        ],
        "a long enough password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = stratos_with(config.path(), &["tenant", "quota", "acme.test", "--max-clusters", "3", "--api", &api], "");
    assert!(out.status.success() && text(&out).contains("3 clusters"), "{}", text(&out));
    let viewer = tempfile::tempdir().unwrap();
    let login = ["login", "--api", &api, "--user", "viewer1", "--password-stdin"];
    let out = stratos_with(viewer.path(), &login, "a long enough password\n");
    assert!(out.status.success(), "{}", text(&out));
    let out = stratos_with(viewer.path(), &["tenant", "list", "-o", "json", "--api", &api], "");
    assert!(out.status.success() && text(&out).contains("acme.test"), "{}", text(&out));
    let policy = support::examples_dir().join("autoscaling-policy-economy.json");
    let out = stratos_with(viewer.path(), &["autoscaling-policy", "add", policy.to_str().unwrap(), "--api", &api], "");
    assert!(!out.status.success() && text(&out).contains("(403)"), "a viewer writes: {}", text(&out));
    let out = stratos_with(config.path(), &["user", "list", "--api", &api, "-o", "json"], "");
    assert!(text(&out).contains("viewer1") && !text(&out).contains("argon2"), "{}", text(&out));
    // The first admin changes its generated password; the login token stays, the old password goes.
    let out = stratos_with(
        config.path(),
        &["user", "passwd", "admin", "--password-stdin", "--api", &api],
        &format!("{}\nthe admin's own password\n", password.trim()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let again = tempfile::tempdir().unwrap();
    let out = stratos_with(again.path(), &["login", "--api", &api, "--user", "admin", "--password-stdin"], &password);
    assert!(!out.status.success(), "the old password still works: {}", text(&out));
    let out = stratos_with(
        again.path(),
        &["login", "--api", &api, "--user", "admin", "--password-stdin"],
        "the admin's own password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = stratos_with(config.path(), &["logout", "--api", &api], "");
    assert!(out.status.success() && text(&out).contains("revoked"), "{}", text(&out));
    let out = stratos_with(config.path(), &["whoami", "--api", &api], "");
    assert!(!out.status.success(), "logged out, yet: {}", text(&out));
}

#[test]
fn a_non_loopback_api_needs_tls_or_an_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command.args(["up", "--api-listen", &format!("0.0.0.0:{}", free_port())]);
    command.args(["--mqtt-listen", &format!("127.0.0.1:{}", free_port())]).arg("--data-dir").arg(dir.path());
    let mut proc = spawn("stratos up", command);
    let status = proc.wait_exit(Duration::from_secs(30)).expect("it exits");
    assert!(!status.success(), "{}", proc.describe());
    assert!(
        proc.stderr().contains("--api-insecure-http") && proc.stderr().contains("--api-tls-self-signed"),
        "{}",
        proc.describe()
    );
}

#[test]
fn tls_with_a_self_signed_certificate_pinned_by_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), &["--api-tls-self-signed"]);
    let banner = platform.proc.stdout();
    let fingerprint = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("SHA-256 fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint in the banner\n{banner}"))
        .to_owned();
    assert_eq!(mode(&dir.path().join("api-key.pem")), 0o600);
    let api = format!("https://127.0.0.1:{}", platform.api_port);
    // The CLI on this machine trusts it by what `stratos up` recorded.
    let out = stratos(&["cartridge", "list", "--api", &api]);
    assert!(out.success(), "{out}");
    // Elsewhere: the fingerprint and a token are enough; a wrong fingerprint is refused.
    let config = tempfile::tempdir().unwrap();
    let token = platform.admin_token();
    let out = stratos_with(
        config.path(),
        &["whoami", "--api", &api, "--token", &token, "--tls-fingerprint", &fingerprint],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let wrong = fingerprint.replace(&fingerprint[..2], if &fingerprint[..2] == "00" { "11" } else { "00" });
    let out =
        stratos_with(config.path(), &["whoami", "--api", &api, "--token", &token, "--tls-fingerprint", &wrong], "");
    assert!(!out.status.success() && text(&out).contains("fingerprint"), "{}", text(&out));
    // Without any trust setting the system's roots do not know it.
    let out = stratos_with(config.path(), &["whoami", "--api", &api, "--token", &token], "");
    assert!(!out.status.success() && text(&out).contains("cannot reach"), "{}", text(&out));
    // The certificate as a CA works too; plain HTTP gets nothing.
    let cert = dir.path().join("api-cert.pem");
    let out = stratos_with(
        config.path(),
        &["whoami", "--api", &api, "--token", &token, "--ca-cert", cert.to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(support::http_get(platform.api_port, "/api/health").map_or(true, |(status, _)| status != 200));
    // A restart keeps the certificate: the pinned fingerprint still holds.
    let platform = platform.restart();
    assert!(platform.proc.stdout().contains(&fingerprint), "{}", platform.proc.stdout());
}
