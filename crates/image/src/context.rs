//! A Dockerfile's build context: the files of its directory, read once, hashed
//! ([`crate::inputs`]) and sent to the engine as a tar made from the same bytes, so the
//! image built is the image hashed. Owners and times are not kept (every file is root's,
//! at time 0): they do not change the image's hash, so they must not change its files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::ImageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context directory.
    pub path: PathBuf,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { executable: bool, bytes: Vec<u8> },
    Symlink(PathBuf),
}

/// Every entry under `dir`, parents before children, in path order.
pub fn read(dir: &Path) -> Result<Vec<Entry>, ImageError> {
    let mut entries = Vec::new();
    walk(dir, Path::new(""), &mut entries)?;
    Ok(entries)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<Entry>) -> Result<(), ImageError> {
    let dir = root.join(rel);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Read { path, source }
    };
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(err(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(err(&dir))?;
    names.sort();
    for name in names {
        let path = rel.join(&name);
        let full = root.join(&path);
        let meta = fs::symlink_metadata(&full).map_err(err(&full))?;
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_symlink() {
            EntryKind::Symlink(fs::read_link(&full).map_err(err(&full))?)
        } else if meta.is_file() {
            let executable = meta.permissions().mode() & 0o111 != 0;
            EntryKind::File { executable, bytes: fs::read(&full).map_err(err(&full))? }
        } else {
            continue; // sockets, fifos, devices: nothing a build can copy
        };
        let is_dir = kind == EntryKind::Dir;
        out.push(Entry { path: path.clone(), kind });
        if is_dir {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// The entries as a tar archive.
pub fn tar(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match &e.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, &e.path, std::io::empty())?;
            }
            EntryKind::File { executable, bytes } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &e.path, bytes.as_slice())?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &e.path, target)?;
            }
        }
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_is_read_in_order_and_tarred_as_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY x /x\n").unwrap();
        fs::create_dir(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x/run"), "#!").unwrap();
        fs::set_permissions(dir.path().join("x/run"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("run", dir.path().join("x/alias")).unwrap();
        let entries = read(dir.path()).unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["Dockerfile", "x", "x/alias", "x/run"]);
        assert_eq!(entries[3].kind, EntryKind::File { executable: true, bytes: b"#!".to_vec() });
        assert_eq!(entries[2].kind, EntryKind::Symlink("run".into()));

        let bytes = tar(&entries).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let got: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), e.header().mode().unwrap())
            })
            .collect();
        assert_eq!(got[0], ("Dockerfile".into(), 0o644));
        assert_eq!(got[3], ("x/run".into(), 0o755));
        assert_eq!(tar(&entries).unwrap(), bytes, "the same entries make the same archive");
    }
}
