//! A real Mosquitto 2 for the tests of the bus and of `stratos up --broker`: started on a
//! port, plain or with a configuration file, killed on drop; and its dynamic-security
//! plugin initialised with the platform's user as its admin, as the README sets it up.
//!
//! The platform's own Mosquitto configuration (`stratos_bus::mosquitto::mosquitto_conf`)
//! is given by the caller: this crate depends on no platform crate, so that every crate's
//! tests may use it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::net::{free_port, wait_listening};

/// Set to `1` on a machine without Mosquitto: the tests that need it skip (and say so).
pub const SKIP_ENV: &str = "STRATOS_SKIP_MOSQUITTO";

/// Whether this machine said it has no Mosquitto ([`SKIP_ENV`]); prints that the test skips.
pub fn skipped() -> bool {
    let skip = std::env::var(SKIP_ENV).as_deref() == Ok("1");
    if skip {
        println!("skipped: {SKIP_ENV}=1");
    }
    skip
}

/// Whether a test may use Mosquitto with its dynamic-security plugin at `plugin`: `false`
/// (the test skips) when [`skipped`]; a missing plugin otherwise fails the test.
pub fn dynsec_available(plugin: &str) -> bool {
    if skipped() {
        return false;
    }
    assert!(Path::new(plugin).exists(), "this test needs Mosquitto 2 with {plugin}: apt-get install -y mosquitto");
    true
}

/// A running `mosquitto`, killed when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
}

impl Mosquitto {
    /// Starts `mosquitto -p port` (0: a free port); `None` when [`skipped`].
    pub fn start(port: u16) -> Option<Mosquitto> {
        if skipped() {
            return None;
        }
        let port = if port == 0 { free_port() } else { port };
        Some(Mosquitto::spawn(Command::new(path()).args(["-p", &port.to_string()]), port))
    }

    /// Starts `mosquitto -c config`, which listens on `port`; `None` when [`skipped`].
    pub fn start_with_config(config: &Path, port: u16) -> Option<Mosquitto> {
        if skipped() {
            return None;
        }
        Some(Mosquitto::spawn(Command::new(path()).arg("-c").arg(config), port))
    }

    /// Writes `conf` as `dir/mosquitto.conf`, run as this process's user (tests may run
    /// as root, which Mosquitto would otherwise leave for the `mosquitto` account), and
    /// starts Mosquitto with it on `port`; `None` when [`skipped`].
    pub fn start_configured(dir: &Path, conf: &str, port: u16) -> Option<Mosquitto> {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, format!("{conf}user {user}\n")).expect("write mosquitto.conf");
        Mosquitto::start_with_config(&path, port)
    }

    fn spawn(command: &mut Command, port: u16) -> Mosquitto {
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("mosquitto must be installed (apt-get install -y mosquitto), or set {SKIP_ENV}=1: {e}")
        });
        wait_listening(port, "mosquitto");
        Mosquitto { child, port }
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills it now (for a test that restarts the broker on the same port).
    pub fn stop(self) {}
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "mosquitto".into())
}

/// `mosquitto_ctrl dynsec init`: the dynamic-security plugin's file in `dir`, with
/// `admin` (the platform's user) and `password` as its administrator. Returns its path.
pub fn dynsec_init(dir: &Path, admin: &str, password: &str) -> PathBuf {
    let file = dir.join("dynamic-security.json");
    let init = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&file)
        .args([admin, password])
        .output()
        .expect("mosquitto_ctrl (package mosquitto-clients or mosquitto)");
    assert!(init.status.success(), "mosquitto_ctrl dynsec init: {}", String::from_utf8_lossy(&init.stderr));
    file
}
