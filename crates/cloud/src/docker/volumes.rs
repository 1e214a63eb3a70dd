//! The docker driver's persistent volumes: a named Docker volume per (cluster, slot,
//! volume id) on the member's engine, labelled with what it is (platform, tenant,
//! application, cluster, slot, volume id, mapping path, size, removeOnTermination), so
//! the engine lists them and the sweep (`crate::volume`) removes them by platform.
//! Made if absent when a member of the slot starts, mounted read-write at the volume's
//! `mappingPath` (which `STRATOS_VOLUME_<ID>` names, as on the local driver); another
//! member of the slot later mounts the same volume.
//!
//! A new volume's root belongs to root; before the container starts, its mount point is
//! given to the members' uid and gid (an archive of one directory entry, named as the
//! mount point, uploaded to the mount point's parent in the created container: the
//! engine applies the entry's owner and mode to the volume's root; uploaded to the mount
//! point itself, it would not), so the unprivileged member can write.
//!
//! Size: Docker's `local` volume driver cannot bound a volume's size (only a `tmpfs`
//! can, and that would not persist), so `size` is recorded in a label and shown, not
//! enforced.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, UploadToContainerOptionsBuilder};
use bollard::Docker;

use super::error::status;
use super::{labels, DockerDriver, DockerError};
use crate::driver::MemberSpec;
use crate::volume::{safe_name, SlotVolume};

pub const SLOT: &str = "io.stratos.slot";
pub const VOLUME: &str = "io.stratos.volume";
pub const MAPPING_PATH: &str = "io.stratos.mapping-path";
pub const SIZE: &str = "io.stratos.size";
pub const REMOVE_ON_TERMINATION: &str = "io.stratos.remove-on-termination";

/// A slot volume's name on the engine: the platform (its first 12 characters), the
/// cluster, the slot and the volume id.
pub fn volume_name(platform_id: &str, cluster_id: &str, slot: u32, volume_id: &str) -> String {
    let platform: String = platform_id.chars().take(12).collect();
    format!("stratos-{}", safe_name(&[&platform, cluster_id, &slot.to_string(), volume_id]))
}

/// The labels of the slot volume of `spec` for `volume`.
pub fn of_volume(spec: &MemberSpec, slot: u32, volume: &stratos_model::PersistentVolume) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = [
        (labels::PLATFORM, spec.platform_id.clone()),
        (labels::TENANT, spec.tenant_id.to_string()),
        (labels::APPLICATION, spec.app_id.clone()),
        (labels::CLUSTER, spec.cluster_id.clone()),
        (SLOT, slot.to_string()),
        (VOLUME, volume.id.clone()),
        (MAPPING_PATH, volume.mapping_path.clone().unwrap_or_default()),
        (REMOVE_ON_TERMINATION, volume.remove_on_termination.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(size) = volume.size {
        out.insert(SIZE.into(), size.to_string());
    }
    out
}

/// A volume of the engine at `host` as its labels say; `None` if they do not make one.
pub fn from_labels(name: &str, labels: &HashMap<String, String>, host: &str) -> Option<SlotVolume> {
    let get = |k: &str| labels.get(k).cloned();
    Some(SlotVolume {
        name: name.to_string(),
        driver: "docker".into(),
        platform_id: get(labels::PLATFORM)?,
        tenant_id: get(labels::TENANT)?.parse().ok()?,
        application_id: get(labels::APPLICATION)?,
        cluster_id: get(labels::CLUSTER)?,
        slot: get(SLOT)?.parse().ok()?,
        volume_id: get(VOLUME)?,
        mapping_path: get(MAPPING_PATH).unwrap_or_default(),
        size: get(SIZE).and_then(|s| s.parse().ok()),
        remove_on_termination: get(REMOVE_ON_TERMINATION).as_deref() == Some("true"),
        host: Some(host.to_string()),
    })
}

/// A tar archive of one entry, the directory `name` owned by `uid`:`gid` with mode 0700.
fn ownership_archive(name: &str, uid: u32, gid: u32) -> Result<Vec<u8>, std::io::Error> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_path(name)?;
    header.set_size(0);
    header.set_mode(0o700);
    header.set_uid(u64::from(uid));
    header.set_gid(u64::from(gid));
    header.set_mtime(stratos_bus::now_millis() / 1000);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, std::io::empty())?;
    builder.into_inner()
}

impl DockerDriver {
    /// Makes (or finds) the volumes of the member's slot on its engine; returns the
    /// spec with them mounted.
    pub(super) async fn with_slot_volumes(
        &self,
        docker: &Docker,
        host: &str,
        spec: &MemberSpec,
    ) -> Result<MemberSpec, DockerError> {
        let Some(slot) = spec.slot.filter(|_| !spec.persistent_volumes.is_empty()) else { return Ok(spec.clone()) };
        let mut spec = spec.clone();
        for v in &spec.persistent_volumes.clone() {
            let name = volume_name(&spec.platform_id, &spec.cluster_id, slot, &v.id);
            match docker.inspect_volume(&name).await {
                Ok(found) if found.labels.get(labels::PLATFORM) != Some(&spec.platform_id) => {
                    return Err(DockerError::Volume {
                        name,
                        host: host.to_string(),
                        reason: "the name is taken by a volume of another platform".into(),
                    });
                }
                Ok(_) => {}
                Err(e) if status(&e) == Some(404) => {
                    let create = VolumeCreateRequest {
                        name: Some(name.clone()),
                        driver: Some("local".into()),
                        labels: Some(of_volume(&spec, slot, v)),
                        ..Default::default()
                    };
                    docker
                        .create_volume(create)
                        .await
                        .map_err(DockerError::engine(host, format!("create volume {name:?}")))?;
                    tracing::info!(volume = %name, %host, cluster_id = %spec.cluster_id, slot, volume_id = %v.id, "persistent volume created");
                }
                Err(e) => return Err(DockerError::engine(host, format!("inspect volume {name:?}"))(e)),
            }
            // The local driver's contract too: where the volume is, by its id.
            spec.env.insert(crate::volume::env_name(&v.id), v.mapping_path.clone().unwrap_or_default());
            spec.volumes.push(stratos_model::Volume {
                source: name,
                target: v.mapping_path.clone().unwrap_or_default(),
                read_only: false,
            });
        }
        Ok(spec)
    }

    /// Gives the slot volumes' mount points in the created (not started) container
    /// `name` to the members' uid and gid.
    pub(super) async fn own_slot_volumes(
        &self,
        docker: &Docker,
        host: &str,
        name: &str,
        spec: &MemberSpec,
    ) -> Result<(), DockerError> {
        if spec.slot.is_none() {
            return Ok(());
        }
        let (uid, gid) = (self.config.confinement.uid, self.config.confinement.gid);
        for v in &spec.persistent_volumes {
            let Some(path) = v.mapping_path.as_deref().map(std::path::Path::new) else { continue };
            let (Some(parent), Some(dir)) = (path.parent(), path.file_name().and_then(|d| d.to_str())) else {
                continue;
            };
            let failed = |action: &str| format!("give volume {} of {name:?} to uid {uid} ({action})", path.display());
            let archive = ownership_archive(dir, uid, gid).map_err(|e| DockerError::Volume {
                name: name.to_string(),
                host: host.to_string(),
                reason: format!("{}: {e}", failed("archive")),
            })?;
            let options = UploadToContainerOptionsBuilder::default().path(&parent.display().to_string()).build();
            docker
                .upload_to_container(name, Some(options), bollard::body_full(archive.into()))
                .await
                .map_err(DockerError::engine(host, failed("upload")))?;
        }
        Ok(())
    }

    /// This platform's slot volumes on every engine it knows.
    pub(super) async fn slot_volumes(&self) -> Result<Vec<SlotVolume>, DockerError> {
        let Some(platform_id) = self.platform_id.read().unwrap().clone() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for host in self.known_hosts().await {
            let docker = self.engines.get(&host).await?;
            let filters = HashMap::from([("label".to_string(), vec![format!("{}={platform_id}", labels::PLATFORM)])]);
            let options = ListVolumesOptionsBuilder::default().filters(&filters).build();
            let listed =
                docker.list_volumes(Some(options)).await.map_err(DockerError::engine(&host, "list volumes"))?;
            out.extend(
                listed.volumes.unwrap_or_default().iter().filter_map(|v| from_labels(&v.name, &v.labels, &host)),
            );
        }
        Ok(out)
    }

    /// Removes a slot volume from its engine (refused by the engine while mounted).
    pub(super) async fn drop_slot_volume(&self, volume: &SlotVolume) -> Result<(), DockerError> {
        let host = volume.host.clone().unwrap_or_else(|| self.config.default_host.clone());
        let docker = self.engines.get(&host).await?;
        match docker.remove_volume(&volume.name, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
            Err(e) if status(&e) != Some(404) => {
                Err(DockerError::engine(&host, format!("remove volume {:?}", volume.name))(e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_back_as_the_volume() {
        let spec: MemberSpec = serde_json::from_value(serde_json::json!({
            "memberId": "m", "clusterId": "app.db", "serviceName": "db", "appId": "app", "tenantId": 7,
            "networkPartitionId": "np", "partitionId": "p", "command": [], "image": "i", "ports": [],
            "brokerUrl": "", "artifactRepository": null, "env": {}, "platformId": "0123456789abcdef"
        }))
        .unwrap();
        let v = stratos_model::PersistentVolume {
            id: "data".into(),
            size: Some(5),
            mapping_path: Some("/var/lib/db".into()),
            remove_on_termination: true,
            ..Default::default()
        };
        let name = volume_name(&spec.platform_id, &spec.cluster_id, 2, &v.id);
        assert_eq!(name, "stratos-0123456789ab-app.db-2-data");
        let back = from_labels(&name, &of_volume(&spec, 2, &v), "unix:///var/run/docker.sock").unwrap();
        assert_eq!(
            (back.tenant_id, back.cluster_id.as_str(), back.slot, back.volume_id.as_str(), back.size),
            (7, "app.db", 2, "data", Some(5))
        );
        assert_eq!((back.mapping_path.as_str(), back.remove_on_termination), ("/var/lib/db", true));
        assert!(from_labels("x", &HashMap::new(), "h").is_none());
    }

    #[test]
    fn the_archive_gives_the_directory_to_the_member() {
        let bytes = ownership_archive("keep", 2_000_000, 2_000_001).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u64, u64, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let h = e.unwrap().header().clone();
                (h.path().unwrap().display().to_string(), h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap())
            })
            .collect();
        assert_eq!(entries, [("keep".to_string(), 2_000_000, 2_000_001, 0o700)]);
    }
}
