//! Persistent volumes (a cartridge's `persistence`): one per (cluster, slot, volume id),
//! made by the driver when a member of that slot starts, kept across the member's
//! replacement, removed by the sweep here when `plan::slots::removable` says so.
//!
//! The drivers record each volume where they keep it (Docker volume labels; a JSON file
//! beside a local directory), so this listing, not the store, is the truth about them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratos_model::topology::Topology;
use stratos_model::{Deployment, DeploymentStatus};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::driver::Driver;
use crate::plan::slots::{removable, ClusterSlots, SlotVolumeKey};

/// A persistent volume as a driver lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotVolume {
    /// The driver's name for it: the Docker volume's name, the local directory's path.
    pub name: String,
    pub driver: String,
    pub platform_id: String,
    pub tenant_id: i64,
    pub application_id: String,
    pub cluster_id: String,
    pub slot: u32,
    /// The cartridge's volume id.
    pub volume_id: String,
    pub mapping_path: String,
    /// Gigabytes, as the cartridge asks; recorded, not enforced (see the drivers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    pub remove_on_termination: bool,
    /// The engine it is on (docker); absent for the local driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl SlotVolumeKey for SlotVolume {
    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
    fn slot(&self) -> u32 {
        self.slot
    }
    fn remove_on_termination(&self) -> bool {
        self.remove_on_termination
    }
}

/// The environment variable that tells a member where volume `id` is:
/// `STRATOS_VOLUME_<ID>`, the id upper-cased with every other character than a letter
/// or digit as `_` (`db-data` → `STRATOS_VOLUME_DB_DATA`).
pub fn env_name(volume_id: &str) -> String {
    let id: String =
        volume_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("STRATOS_VOLUME_{id}")
}

/// A name made of `parts` that Docker takes for a volume and a file system for a
/// directory: letters, digits, `_`, `.` and `-` kept, anything else as `_`.
pub fn safe_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect())
        .collect::<Vec<String>>()
        .join("-")
}

/// Every cluster the platform has, deployed (its desired size: the largest of its
/// minimum, its deployment's and the autoscaler's `desired`, so that a doubt keeps a
/// volume) or being undeployed (0), with the slots its recorded members hold.
pub fn cluster_slots(
    deployments: &[Deployment],
    scales: &HashMap<String, u32>,
    topology: &Topology,
) -> HashMap<String, ClusterSlots> {
    let mut out: HashMap<String, ClusterSlots> = HashMap::new();
    for d in deployments {
        for spec in &d.clusters {
            let desired = match d.status {
                DeploymentStatus::Deployed => {
                    spec.min.max(spec.desired).max(scales.get(&spec.cluster_id).copied().unwrap_or(0))
                }
                DeploymentStatus::Undeploying => 0,
            };
            out.entry(spec.cluster_id.clone()).or_default().desired = desired;
        }
    }
    for cluster in topology.services.values().flat_map(|s| s.clusters.values()) {
        let slots = out.entry(cluster.cluster_id.clone()).or_default();
        slots.used.extend(cluster.members.values().filter_map(crate::plan::slots::slot_of));
    }
    out
}

/// The controller's sweeps: one at a time, at most every [`SWEEP_EVERY`], each in a
/// task of its own (an engine that answers slowly holds up no reconcile).
#[derive(Debug, Default)]
pub struct Sweeper {
    last: Option<Instant>,
    running: Arc<AtomicBool>,
}

/// How often the volumes are listed to find those to remove (at most).
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

impl Sweeper {
    /// Starts a sweep unless one runs or the last was too recent.
    pub fn start_if_due(
        &mut self,
        drivers: Vec<Arc<dyn Driver>>,
        platform_id: &str,
        clusters: impl FnOnce() -> HashMap<String, ClusterSlots>,
    ) {
        if self.last.is_some_and(|at| at.elapsed() < SWEEP_EVERY) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last = Some(Instant::now());
        let (running, platform_id, clusters) = (self.running.clone(), platform_id.to_string(), clusters());
        tokio::spawn(async move {
            sweep(drivers, &platform_id, clusters).await;
            running.store(false, Ordering::Release);
        });
    }
}

/// Lists every driver's volumes of `platform_id` and removes those no slot needs any
/// more. `clusters` must hold every cluster the platform still has.
pub async fn sweep(drivers: Vec<Arc<dyn Driver>>, platform_id: &str, clusters: HashMap<String, ClusterSlots>) {
    for driver in drivers {
        let volumes = match driver.list_volumes().await {
            Ok(v) => v.into_iter().filter(|v| v.platform_id == platform_id).collect::<Vec<_>>(),
            Err(e) => {
                // An engine that does not answer is reported by the controller's listing.
                debug!(driver = driver.name(), error = %e, "cannot list persistent volumes; none removed");
                continue;
            }
        };
        for volume in removable(&volumes, &clusters) {
            match driver.remove_volume(volume).await {
                Ok(()) => info!(
                    volume = %volume.name,
                    cluster_id = %volume.cluster_id,
                    slot = volume.slot,
                    volume_id = %volume.volume_id,
                    "persistent volume removed (removeOnTermination, its slot no longer used)"
                ),
                Err(e) => warn!(volume = %volume.name, error = %e, "cannot remove a persistent volume"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_variable_names() {
        assert_eq!(env_name("data"), "STRATOS_VOLUME_DATA");
        assert_eq!(env_name("db-data.1"), "STRATOS_VOLUME_DB_DATA_1");
    }

    #[test]
    fn names_are_docker_names() {
        assert_eq!(safe_name(&["stratos", "app.php/x", "0", "data"]), "stratos-app.php_x-0-data");
    }
}
