//! Who the `local` driver's members run as. A member runs a tenant's code: it must not
//! run as the platform's user when that is root, and members of different tenants
//! should not share a uid either (a process may signal, trace and read the files of any
//! other process of its uid: `kill -9 -1` in one app would stop every member).
//!
//! So when the platform runs as root, each member gets a uid (and a group) of its own
//! from a range no account uses, as systemd's `DynamicUser=` does; an administrator
//! may instead name one user for every member, or keep the platform's.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub use crate::error::MemberUserError;

/// The default range of per-member uids: above the ranges distributions give to
/// accounts (`/etc/login.defs`) and to rootless containers (`/etc/subuid`, from 100000).
pub const DEFAULT_FIRST_UID: u32 = 1_900_000;
pub const DEFAULT_UID_COUNT: u32 = 100_000;

/// A uid and gid members run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// How the driver picks the identity of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberUsers {
    /// As the platform's own user (the only choice when it is not root).
    Platform,
    /// Every member as this one user.
    Fixed { name: String, identity: Identity },
    /// Each member with a uid and gid of its own, from `first` on (`count` of them).
    PerMember { first: u32, count: u32 },
}

impl MemberUsers {
    /// The default: a uid of its own per member when the platform runs as root, else
    /// the platform's user (which cannot give its processes away anyway).
    pub fn for_platform(range: Option<(u32, u32)>) -> MemberUsers {
        if !is_root() {
            return MemberUsers::Platform;
        }
        let (first, count) = range.unwrap_or((DEFAULT_FIRST_UID, DEFAULT_UID_COUNT));
        MemberUsers::PerMember { first, count }
    }

    /// `--member-user`: `platform`, `NAME` (from the password database) or `UID[:GID]`
    /// (the gid defaults to the user's own, or to the uid when no account has it).
    pub fn parse(spec: &str) -> Result<MemberUsers, MemberUserError> {
        if spec == "platform" {
            return Ok(MemberUsers::Platform);
        }
        let (uid_text, gid_text) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let Ok(uid) = uid_text.parse::<u32>() else {
            if gid_text.is_some() {
                return Err(MemberUserError::BadUser(spec.into()));
            }
            let (name, identity) =
                lookup(Lookup::Name(spec)).ok_or_else(|| MemberUserError::NoSuchUser(spec.into()))?;
            return Ok(MemberUsers::Fixed { name, identity });
        };
        let known = lookup(Lookup::Uid(uid));
        let gid = match gid_text {
            Some(g) => g.parse::<u32>().map_err(|_| MemberUserError::BadGid { spec: spec.into(), gid: g.into() })?,
            None => known.as_ref().map_or(uid, |(_, id)| id.gid),
        };
        let name = known.map_or_else(|| uid.to_string(), |(name, _)| name);
        Ok(MemberUsers::Fixed { name, identity: Identity { uid, gid } })
    }

    /// `--member-uids FIRST-LAST`.
    pub fn parse_range(spec: &str) -> Result<(u32, u32), MemberUserError> {
        let (first, last) = spec.split_once('-').ok_or_else(|| MemberUserError::NotARange(spec.into()))?;
        let first: u32 = first.trim().parse().map_err(|_| MemberUserError::BadUid(first.into()))?;
        let last: u32 = last.trim().parse().map_err(|_| MemberUserError::BadUid(last.into()))?;
        if first < 1000 || last < first || last == u32::MAX {
            return Err(MemberUserError::BadRange(spec.into()));
        }
        Ok((first, last - first + 1))
    }

    /// For the log: what members run as.
    pub fn describe(&self) -> String {
        match self {
            MemberUsers::Platform => "the platform's user".into(),
            MemberUsers::Fixed { name, identity } => format!("{name} (uid {}, gid {})", identity.uid, identity.gid),
            MemberUsers::PerMember { first, count } => {
                format!("a uid of their own (from {first} to {})", first + (count - 1))
            }
        }
    }

    /// Whether members would run as root.
    pub fn is_root(&self) -> bool {
        match self {
            MemberUsers::Platform => is_root(),
            MemberUsers::Fixed { identity, .. } => identity.uid == 0,
            MemberUsers::PerMember { .. } => false,
        }
    }
}

/// The next uid of `first..first+count` after `last` (wrapping) that `in_use` does not hold.
pub fn next_free_uid(first: u32, count: u32, last: Option<u32>, in_use: impl Fn(u32) -> bool) -> Option<u32> {
    let start = match last {
        Some(l) if l >= first && l - first < count => (l - first + 1) % count,
        _ => 0,
    };
    (0..count).map(|i| first + (start + i) % count).find(|uid| !in_use(*uid))
}

/// Whether a process of `identity` can reach `path` (search permission on every
/// directory from `/` down): from the mode bits, as the kernel checks them for a user
/// without supplementary groups (ACLs aside).
pub fn reachable_by(path: &Path, identity: Identity) -> Result<(), MemberUserError> {
    let inaccessible = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MemberUserError::Inaccessible { path, source }
    };
    let path = path.canonicalize().map_err(inaccessible(path))?;
    for dir in path.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let meta = std::fs::metadata(dir).map_err(inaccessible(dir))?;
        if !meta.is_dir() {
            continue;
        }
        let mode = meta.permissions().mode();
        let bit = if meta.uid() == identity.uid {
            0o100
        } else if meta.gid() == identity.gid {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Err(MemberUserError::NotSearchable {
                path: dir.to_path_buf(),
                mode: mode & 0o7777,
                owner: meta.uid(),
                uid: identity.uid,
            });
        }
    }
    Ok(())
}

/// When members run as other users: everything the platform creates from now on (its
/// store, tokens, logs) is its own alone (umask 077), and the SQLite files it already has
/// are made so too (SQLite gives its WAL and shared-memory files the database's mode).
/// Members reach their own directories through modes the driver sets explicitly.
pub fn keep_platform_files_private(data_dir: &Path) -> Result<(), MemberUserError> {
    // SAFETY: umask(2) cannot fail and touches no memory.
    unsafe { libc::umask(0o077) };
    for name in ["stratos.db", "stratos.db-wal", "stratos.db-shm"] {
        let path = data_dir.join(name);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                let private = std::fs::Permissions::from_mode(meta.permissions().mode() & 0o700);
                std::fs::set_permissions(&path, private)
                    .map_err(|source| MemberUserError::Restrict { path: path.clone(), source })?
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the platform runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

enum Lookup<'a> {
    Name(&'a str),
    Uid(u32),
}

/// A user from the password database (getpwnam_r / getpwuid_r: safe beside other threads).
fn lookup(by: Lookup) -> Option<(String, Identity)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpw*_r to overwrite.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let c_name = match by {
        Lookup::Name(name) => Some(std::ffi::CString::new(name).ok()?),
        Lookup::Uid(_) => None,
    };
    // SAFETY: every pointer is valid for the call; `buf` outlives the reads of `pw`'s strings.
    let rc = unsafe {
        match (&by, &c_name) {
            (Lookup::Name(_), Some(c)) => {
                libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found)
            }
            (Lookup::Uid(uid), _) => libc::getpwuid_r(*uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found),
            _ => return None,
        }
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }.to_str().ok()?.to_string();
    Some((name, Identity { uid: pw.pw_uid, gid: pw.pw_gid }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse() {
        assert_eq!(MemberUsers::parse("platform").unwrap(), MemberUsers::Platform);
        assert_eq!(
            MemberUsers::parse("1234:5678").unwrap(),
            MemberUsers::Fixed { name: "1234".into(), identity: Identity { uid: 1234, gid: 5678 } }
        );
        let MemberUsers::Fixed { name, identity } = MemberUsers::parse("0").unwrap() else { panic!() };
        assert_eq!((name.as_str(), identity), ("root", Identity { uid: 0, gid: 0 }));
        let MemberUsers::Fixed { identity, .. } = MemberUsers::parse("root").unwrap() else { panic!() };
        assert_eq!(identity, Identity { uid: 0, gid: 0 });
        assert!(MemberUsers::parse("no-such-user-xyz").unwrap_err().to_string().contains("no user"));
        assert!(matches!(MemberUsers::parse("a:1"), Err(MemberUserError::BadUser(_))));
        assert_eq!(MemberUsers::parse("1:x").unwrap_err().to_string(), r#""1:x": "x" is not a gid"#);
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(MemberUsers::parse_range("1900000-1999999").unwrap(), (1_900_000, 100_000));
        assert!(MemberUsers::parse_range("10-20").is_err(), "system uids");
        assert!(MemberUsers::parse_range("5000-4000").is_err());
        assert!(MemberUsers::parse_range("5000").is_err());
    }

    #[test]
    fn uids_are_handed_out_in_turn_skipping_those_in_use() {
        let none = |_| false;
        assert_eq!(next_free_uid(100, 3, None, none), Some(100));
        assert_eq!(next_free_uid(100, 3, Some(100), none), Some(101));
        assert_eq!(next_free_uid(100, 3, Some(102), none), Some(100), "wraps around");
        assert_eq!(next_free_uid(100, 3, Some(7), none), Some(100), "a last uid outside the range");
        assert_eq!(next_free_uid(100, 3, Some(100), |u| u == 101), Some(102));
        assert_eq!(next_free_uid(100, 3, None, |_| true), None, "all in use");
    }

    #[test]
    fn reachability_follows_the_mode_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let inner = tmp.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        let stranger = Identity { uid: 1_999_999, gid: 1_999_999 };
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(tmp.path().join("a"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = reachable_by(&inner, stranger).unwrap_err().to_string();
        assert!(err.contains("/a (mode 700"), "{err}");
        std::fs::set_permissions(tmp.path().join("a"), std::fs::Permissions::from_mode(0o701)).unwrap();
        assert!(reachable_by(&inner, stranger).is_ok());
    }
}
