//! The local driver's persistent volumes: a directory per (cluster, slot, volume id)
//! under `<data-dir>/volumes/`, with the volume's record (`volume.json`) beside it.
//!
//! A local process cannot mount anything, so a member is told where each volume is:
//! `STRATOS_VOLUME_<ID>` (see `volume::env_name`) is the directory's absolute path, and
//! `volumes/<id>` in the member's working directory is a symbolic link to it. The
//! cartridge's `mappingPath` is recorded, not used. The directory is given to the
//! member's user at every start (the whole tree, when members have uids of their own:
//! a replacement runs as another uid), and is its alone (0700).
//!
//! `size` is recorded, not enforced: a directory has no size of its own.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{io, set_mode, LocalDriver, LocalError, WORK_DIR};
use crate::driver::MemberSpec;
use crate::member_user::Identity;
use crate::volume::{env_name, safe_name, SlotVolume};

/// The record beside each volume's data.
const RECORD: &str = "volume.json";
/// The volume's data, inside its directory.
const DATA: &str = "data";

impl LocalDriver {
    /// Where volumes live: beside the members' root, in the data directory.
    pub(super) fn volumes_root(&self) -> PathBuf {
        self.root.parent().unwrap_or(&self.root).join("volumes")
    }

    /// Makes (or finds) the volumes of the member's slot, gives them to its user, and
    /// tells the member where they are.
    pub(super) fn attach_volumes(
        &self,
        cmd: &mut tokio::process::Command,
        spec: &MemberSpec,
        dir: &Path,
        identity: Option<Identity>,
    ) -> Result<(), LocalError> {
        let Some(slot) = spec.slot else { return Ok(()) };
        if spec.persistent_volumes.is_empty() {
            return Ok(());
        }
        let root = self.volumes_root();
        std::fs::create_dir_all(&root).map_err(io("create", &root))?;
        set_mode(&root, 0o711)?;
        let links = dir.join(WORK_DIR).join("volumes");
        std::fs::create_dir_all(&links).map_err(io("create", &links))?;
        if let Some(id) = identity {
            give(&links, id)?;
        }
        for v in &spec.persistent_volumes {
            let name = safe_name(&[&spec.cluster_id, &slot.to_string(), &v.id]);
            let home = root.join(&name);
            let data = home.join(DATA);
            std::fs::create_dir_all(&data).map_err(io("create", &data))?;
            set_mode(&home, 0o711)?;
            let record = SlotVolume {
                name: data.display().to_string(),
                driver: "local".into(),
                platform_id: spec.platform_id.clone(),
                tenant_id: spec.tenant_id,
                application_id: spec.app_id.clone(),
                cluster_id: spec.cluster_id.clone(),
                slot,
                volume_id: v.id.clone(),
                mapping_path: v.mapping_path.clone().unwrap_or_default(),
                size: v.size,
                remove_on_termination: v.remove_on_termination,
                host: None,
            };
            let record_path = home.join(RECORD);
            super::write_atomically(&record_path, &serde_json::to_vec_pretty(&record).expect("record serialises"))
                .map_err(io("write", &record_path))?;
            if let Some(id) = identity {
                give(&data, id)?;
            }
            set_mode(&data, 0o700)?;
            let link = links.join(safe_name(&[&v.id]));
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&data, &link).map_err(io("link", &link))?;
            cmd.env(env_name(&v.id), &data);
        }
        Ok(())
    }

    /// Every volume recorded under the volumes' root.
    pub(super) fn volumes(&self) -> Vec<SlotVolume> {
        let Ok(entries) = std::fs::read_dir(self.volumes_root()) else { return Vec::new() };
        let mut out: Vec<SlotVolume> = entries
            .flatten()
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path().join(RECORD)).ok()?;
                let mut volume: SlotVolume = serde_json::from_str(&text).ok()?;
                // Where it is now (a data directory may have been moved or restored elsewhere).
                volume.name = e.path().join(DATA).display().to_string();
                Some(volume)
            })
            .collect();
        out.sort_by(|a, b| (&a.cluster_id, a.slot, &a.volume_id).cmp(&(&b.cluster_id, b.slot, &b.volume_id)));
        out
    }

    /// Removes a volume's directory, record and data.
    pub(super) fn delete_volume(&self, volume: &SlotVolume) -> Result<(), LocalError> {
        let data = Path::new(&volume.name);
        let home = data.parent().filter(|h| h.parent() == Some(self.volumes_root().as_path()));
        let Some(home) = home else {
            return Err(LocalError::Io {
                action: "remove",
                path: data.to_path_buf(),
                source: std::io::Error::other("not a volume of this driver"),
            });
        };
        match std::fs::remove_dir_all(home) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", home)(e)),
            _ => Ok(()),
        }
    }
}

/// Gives `path` and everything under it to `id` (what an earlier member of the slot, as
/// another uid, wrote there included). Symbolic links are changed, not followed.
fn give(path: &Path, id: Identity) -> Result<(), LocalError> {
    let meta = std::fs::symlink_metadata(path).map_err(io("read the metadata of", path))?;
    if meta.uid() != id.uid || meta.gid() != id.gid {
        std::os::unix::fs::lchown(path, Some(id.uid), Some(id.gid)).map_err(|source| LocalError::Chown {
            path: path.to_path_buf(),
            uid: id.uid,
            source,
        })?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io("read", path))?.flatten() {
            give(&entry.path(), id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(slot: Option<u32>) -> MemberSpec {
        let mut spec: MemberSpec = serde_json::from_value(serde_json::json!({
            "memberId": "app.db.1", "clusterId": "app.db", "serviceName": "db", "appId": "app", "tenantId": 7,
            "networkPartitionId": "np", "partitionId": "p", "command": ["x"], "image": null, "ports": [],
            "brokerUrl": "", "artifactRepository": null, "env": {}, "platformId": "plat"
        }))
        .unwrap();
        spec.slot = slot;
        spec.persistent_volumes = vec![stratos_model::PersistentVolume {
            id: "db-data".into(),
            size: Some(3),
            mapping_path: Some("/var/lib/db".into()),
            remove_on_termination: true,
            ..Default::default()
        }];
        spec
    }

    #[test]
    fn a_slot_volume_is_made_listed_linked_and_removed() {
        let data = tempfile::tempdir().unwrap();
        let driver = LocalDriver::new(data.path().join("members"), vec!["stratos".into()]);
        let member = data.path().join("members").join("app.db.1");
        let mut cmd = tokio::process::Command::new("true");
        driver.attach_volumes(&mut cmd, &spec(Some(2)), &member, None).unwrap();
        let env: Vec<(String, String)> = cmd
            .as_std()
            .get_envs()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.unwrap().to_string_lossy().into_owned()))
            .collect();
        let dir = data.path().join("volumes").join("app.db-2-db-data").join(DATA);
        assert_eq!(env, [("STRATOS_VOLUME_DB_DATA".to_string(), dir.display().to_string())]);
        assert!(dir.is_dir());
        assert_eq!(std::fs::read_link(member.join(WORK_DIR).join("volumes").join("db-data")).unwrap(), dir);
        let listed = driver.volumes();
        assert_eq!(listed.len(), 1);
        let v = &listed[0];
        assert_eq!((v.cluster_id.as_str(), v.slot, v.volume_id.as_str(), v.size), ("app.db", 2, "db-data", Some(3)));
        assert_eq!((v.tenant_id, v.application_id.as_str(), v.platform_id.as_str()), (7, "app", "plat"));
        assert!(v.remove_on_termination);
        // The same slot again (a replacement): the same directory, what it holds kept.
        std::fs::write(dir.join("f"), "kept").unwrap();
        driver.attach_volumes(&mut cmd, &spec(Some(2)), &member, None).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "kept");
        driver.delete_volume(v).unwrap();
        assert!(driver.volumes().is_empty() && !dir.exists());
    }

    #[test]
    fn no_slot_no_volume() {
        let data = tempfile::tempdir().unwrap();
        let driver = LocalDriver::new(data.path().join("members"), vec!["stratos".into()]);
        let mut cmd = tokio::process::Command::new("true");
        driver.attach_volumes(&mut cmd, &spec(None), &data.path().join("m"), None).unwrap();
        assert!(driver.volumes().is_empty());
        assert!(!data.path().join("volumes").exists());
    }

    #[test]
    fn only_its_own_directories_are_removed() {
        let data = tempfile::tempdir().unwrap();
        let driver = LocalDriver::new(data.path().join("members"), vec!["stratos".into()]);
        let mut v: SlotVolume = serde_json::from_value(serde_json::json!({
            "name": "/etc/data", "driver": "local", "platformId": "p", "tenantId": 1, "applicationId": "a",
            "clusterId": "c", "slot": 0, "volumeId": "v", "mappingPath": "/d", "removeOnTermination": true
        }))
        .unwrap();
        assert!(driver.delete_volume(&v).is_err());
        v.name = data.path().join("elsewhere").join(DATA).display().to_string();
        assert!(driver.delete_volume(&v).is_err());
    }
}
