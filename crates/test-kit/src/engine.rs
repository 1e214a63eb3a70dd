//! A second Docker Engine on this machine, standing for a second host in tests: its own
//! `dockerd` with its own socket, data root, exec root (and so its own containerd),
//! pidfile, default bridge (an interface made here: `--bridge none` would have it delete
//! the first engine's `docker0`), no iptables rules of its own, and an address pool apart
//! from the first engine's, so the networks it makes never clash with them. The
//! host routes to its bridges as to the first engine's. The test harness starts, stops
//! (whole: `dockerd` stops its containers and exits) and restarts it; dropped, it is
//! stopped and its state removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::docker::try_docker;

pub struct Engine {
    dir: PathBuf,
    pool: String,
    /// Its default bridge's interface.
    bridge: String,
    dockerd: Option<Child>,
}

impl Engine {
    /// Starts an engine named `name` (its directory under /tmp; unix socket paths are
    /// short) whose networks take /24s of `pool` (a /16 no other engine of the test uses,
    /// e.g. `10.231.0.0/16`; its last /24 is the default bridge's), and waits until it
    /// answers.
    pub fn start(name: &str, pool: &str) -> Engine {
        let dir = PathBuf::from(format!("/tmp/stratos-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The machine's daemon.json (data-root, storage driver) is the first engine's.
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        // Interface names are 15 bytes at most.
        let bridge = format!("stre{}", &format!("{:x}", hash(&(name, std::process::id())))[..10]);
        let octets: Vec<&str> = pool.split('/').next().unwrap().split('.').collect();
        let address = format!("{}.{}.255.1/24", octets[0], octets[1]);
        let _ = ip(&["link", "del", &bridge]);
        ip(&["link", "add", "name", &bridge, "type", "bridge"]).unwrap();
        ip(&["addr", "add", &address, "dev", &bridge]).unwrap();
        ip(&["link", "set", &bridge, "up"]).unwrap();
        let mut engine = Engine { dir, pool: pool.to_string(), bridge, dockerd: None };
        engine.restart();
        engine
    }

    /// The engine's address, as a partition's `dockerHost` names it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// Starts its `dockerd` (again, on the same data: containers it had are listed as
    /// exited) and waits until it answers. Its networks are not kept: `dockerd`, finding
    /// its default bridge network again at start, deletes the host's `docker0` (the first
    /// engine's) whatever bridge it was given, so its network store goes before a restart.
    pub fn restart(&mut self) {
        assert!(self.dockerd.is_none(), "the engine runs already");
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_file(self.dir.join("data/network/files/local-kv.db"));
        // The storage driver the first engine uses works on this machine's file systems.
        let driver = try_docker(&["info", "--format", "{{.Driver}}"]).unwrap_or_else(|_| "vfs".into());
        let log = std::fs::File::create(self.dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .args(["--bridge", &self.bridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args(["--storage-driver", &driver])
            .args(["--default-address-pool", &format!("base={},size=24", self.pool)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs (the docker.io package)");
        self.dockerd = Some(child);
        let started = Instant::now();
        while self.docker(&["version", "--format", "{{.Server.Version}}"]).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the second engine did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops it whole: `dockerd` stops its containers and exits; its socket answers no
    /// more. The bridges of its networks go too (their store does not survive a restart).
    pub fn stop(&mut self) {
        let Some(mut child) = self.dockerd.take() else { return };
        let bridges: Vec<String> = self
            .docker(&["network", "ls", "-q", "--no-trunc", "--filter", "driver=bridge"])
            .unwrap_or_default()
            .split_whitespace()
            .map(|id| format!("br-{}", &id[..12.min(id.len())]))
            .collect();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for bridge in bridges {
            let _ = ip(&["link", "del", &bridge]);
        }
    }

    /// `docker -H <this engine> ARGS`: its stdout, or its stderr as the error.
    pub fn docker(&self, args: &[&str]) -> Result<String, String> {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        try_docker(&all)
    }

    /// Copies an image of the first engine here (`docker save | docker load`): no registry.
    pub fn load_image(&self, image: &str) {
        if self.docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_ok() {
            return;
        }
        let mut save =
            Command::new("docker").args(["save", image]).stdout(Stdio::piped()).spawn().expect("docker save runs");
        let load = Command::new("docker")
            .args(["-H", &self.host(), "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load runs");
        assert!(save.wait().unwrap().success(), "docker save {image} failed");
        assert!(load.status.success(), "docker load of {image} failed: {}", String::from_utf8_lossy(&load.stderr));
    }

    /// Its daemon's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.dockerd.is_some() {
            // Its containers first, so that stopping it is quick.
            if let Ok(ids) = self.docker(&["ps", "-aq"]) {
                for id in ids.split_whitespace() {
                    let _ = self.docker(&["rm", "-f", id]);
                }
            }
        }
        self.stop();
        let _ = ip(&["link", "del", &self.bridge]);
        // Mounts of its storage driver may outlive it briefly; what cannot go now is
        // left under /tmp.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ip ARGS` (iproute2): its stderr as the error.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn hash(value: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
