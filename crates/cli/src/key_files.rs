//! The files of a data directory that a backup does not hold, and what `stratos restore`
//! tells the operator to copy (pure: the list and the words, from what is present).
//!
//! A backup holds the store's documents only. The keys stay out of it: a backup with the
//! key that decrypts its secrets beside them would be the secrets in clear, and a backup
//! travels (object storage, another machine) where the data directory does not. The
//! operator keeps these files as they keep the data directory, and copies them back.

use std::path::Path;

/// One group of files, and why it matters.
pub struct KeyFile {
    pub names: &'static [&'static str],
    pub why: &'static str,
}

/// What a restored platform needs from the old data directory (those that existed there).
pub const KEY_FILES: &[KeyFile] = &[
    KeyFile {
        names: &[crate::up::BUS_PASSWORD_FILE],
        why: "the embedded broker's platform secret: running members' bus credentials derive from it (without it they cannot reconnect, and are replaced)",
    },
    KeyFile {
        names: &["secrets.key"],
        why: "the key applications' secrets are encrypted with (or the file --secrets-key-file named): without it no secret can be read",
    },
    KeyFile {
        names: &["api-cert.pem", "api-key.pem"],
        why: "the API's self-signed certificate (--api-tls-self-signed): clients pinned its fingerprint",
    },
    KeyFile {
        names: &["mqtt-cert.pem", "mqtt-key.pem"],
        why: "the bus's self-signed certificate (--mqtt-tls-self-signed): running members trust it",
    },
];

/// Where the local driver's members live in a data directory.
pub const MEMBERS_DIR: &str = "members";
/// Where the local driver's persistent volumes live in a data directory.
pub const VOLUMES_DIR: &str = "volumes";

/// What to copy into `data_dir` before `stratos up` there: one line per file group,
/// marked as already there or not, then the members directory.
pub fn instructions(data_dir: &Path) -> String {
    let d = data_dir.display();
    let mut out = format!(
        "Not in a backup: before `stratos up --data-dir {d}`, copy these files from the old data directory into {d}, as \
         they are (mode 0600), those that existed there:\n"
    );
    for key in KEY_FILES {
        let present = key.names.iter().all(|n| data_dir.join(n).exists());
        let mark = if present { "present" } else { "missing" };
        out.push_str(&format!("  {:<28} [{mark}] {}\n", key.names.join(" "), key.why));
    }
    let members = data_dir.join(MEMBERS_DIR);
    let mark = if members.exists() { "present" } else { "missing" };
    out.push_str(&format!(
        "  {:<28} [{mark}] the local driver's running members: move the old data directory's {MEMBERS_DIR}/ to \
         {} while no platform runs (`mv OLD/{MEMBERS_DIR} {}`), and they are adopted; without it they are started \
         again (stop the old ones)\n",
        format!("{MEMBERS_DIR}/"),
        members.display(),
        members.display(),
    ));
    out.push_str(&format!(
        "  {:<28} the local driver's volumes are found by their absolute paths: if members have volumes, restore into \
         the old data directory itself instead (its stratos.db* moved aside), where every file above already is\n",
        format!("{VOLUMES_DIR}/"),
    ));
    out.push_str(
        "Start it with the same --mqtt-listen address as before (running members reconnect there); docker members are \
         found by their platform id, which the backup kept.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_name_every_file_and_say_which_are_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bus-password"), "x").unwrap();
        let text = instructions(dir.path());
        for name in
            ["bus-password", "secrets.key", "api-cert.pem api-key.pem", "mqtt-cert.pem mqtt-key.pem", "members/"]
        {
            assert!(text.contains(name), "{name} in {text}");
        }
        let line = |name: &str| text.lines().find(|l| l.trim_start().starts_with(name)).unwrap().to_owned();
        assert!(line("bus-password").contains("[present]"), "{text}");
        assert!(line("secrets.key").contains("[missing]"), "{text}");
        assert!(line("members/").contains("[missing]") && line("members/").contains("mv OLD/members"), "{text}");
        assert!(text.contains(&format!("stratos up --data-dir {}", dir.path().display())), "{text}");
        assert!(line("volumes/").contains("old data directory itself"), "{text}");
    }
}
