//! The containers and networks a test's platforms make on the Docker Engines: removed
//! when the test ends, even by a panic, by their platform id label.

use stratos_cloud::docker::labels;
use stratos_test_kit::docker::try_docker;

use super::Platform;

/// Removes every container and network of the platform ids it was given, on the local
/// engine and on each engine added with [`Cleanup::engine`], when dropped.
#[derive(Default)]
pub struct Cleanup {
    platforms: std::sync::Mutex<Vec<String>>,
    /// `-H` hosts besides the local engine.
    engines: std::sync::Mutex<Vec<String>>,
}

impl Cleanup {
    pub fn platform(&self, platform_id: &str) {
        self.platforms.lock().unwrap().push(platform_id.to_string());
    }

    pub fn engine(&self, host: &str) {
        self.engines.lock().unwrap().push(host.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut engines: Vec<Option<String>> = vec![None];
        engines.extend(self.engines.lock().unwrap().iter().cloned().map(Some));
        for platform_id in self.platforms.lock().unwrap().iter() {
            let filter = format!("label={}={platform_id}", labels::PLATFORM);
            for engine in &engines {
                let docker = |args: &[&str]| {
                    let mut all: Vec<&str> = engine.as_deref().map(|h| vec!["-H", h]).unwrap_or_default();
                    all.extend_from_slice(args);
                    try_docker(&all)
                };
                if let Ok(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
                    for id in ids.split_whitespace() {
                        let _ = docker(&["rm", "-f", id]);
                    }
                }
                // Persistent volumes (kept ones outlive the undeploy, not the test).
                if let Ok(volumes) = docker(&["volume", "ls", "-q", "--filter", &filter]) {
                    for volume in volumes.split_whitespace() {
                        let _ = docker(&["volume", "rm", "-f", volume]);
                    }
                }
                if let Ok(nets) = docker(&["network", "ls", "-q", "--filter", &filter]) {
                    for net in nets.split_whitespace() {
                        let _ = docker(&["network", "rm", net]);
                    }
                }
            }
        }
    }
}

/// The platform id from `stratos up`'s banner.
pub fn platform_id(platform: &Platform) -> String {
    let out = platform.proc.stdout();
    let at = out.find("(platform ").unwrap_or_else(|| panic!("no platform id in the banner\n{out}"));
    out[at + 10..].split(')').next().unwrap().to_string()
}

/// This platform's containers on an engine (`None`: the local one), by member id.
pub fn member_containers(engine: Option<&str>, platform_id: &str) -> std::collections::BTreeSet<String> {
    let filter = format!("label={}={platform_id}", labels::PLATFORM);
    let format = format!("{{{{.Label \"{}\"}}}}", labels::MEMBER);
    let mut args: Vec<&str> = engine.map(|h| vec!["-H", h]).unwrap_or_default();
    args.extend_from_slice(&["ps", "-a", "--filter", &filter, "--format", &format]);
    try_docker(&args).unwrap_or_default().lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}
