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
