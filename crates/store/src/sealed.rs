//! Secrets sealed at rest: AES-256-GCM (`ring::aead`) under a platform key, a random
//! nonce per value, the key's id stored beside each ciphertext ([`Sealed`]).
//!
//! The keys live in one file ([`KEY_FILE`] in the data directory, or the file
//! `--secrets-key-file` names on every process of a distributed install), mode 0600:
//! `{"current": ID, "keys": {ID: hex}}`. New values are sealed under the current key; a
//! value opens under the key its id names, so during a rotation ([`KeyRing::add_key`],
//! then re-sealing, then [`KeyRing::retire_others`]) values under the old and the new
//! key are both readable, and a crash half-way leaves nothing unreadable. A process that
//! meets a key id it does not hold reads the file again (another process rotated).
//!
//! Each value is sealed with a context (its additional authenticated data: what it is
//! and whose, `config/<tenant>/<app>/<scope>/<key>`), so a ciphertext moved to another
//! place in the store does not open. Opened values are [`Secret`]s, whose `Debug` shows
//! no value; nothing here logs a value or a key.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// A value sealed under the platform key `key_id`: what the store holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sealed {
    pub key_id: String,
    /// 12 bytes, hex.
    pub nonce: String,
    /// The ciphertext with its 16-byte tag, hex.
    pub ciphertext: String,
}

impl Sealed {
    /// The length of the value it seals, in bytes.
    pub fn plaintext_len(&self) -> usize {
        (self.ciphertext.len() / 2).saturating_sub(TAG_LEN)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).field("len", &self.plaintext_len()).finish()
    }
}

/// An opened value. Its `Debug` is `Secret(<redacted>)`; it has no `Display` nor
/// `Serialize`: whoever passes it on says so with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no secrets key {key_id:?} in {where_}: the value was sealed under a key this platform does not hold")]
    UnknownKey { key_id: String, where_: String },
    #[error("a value sealed under key {key_id:?} does not open: the key is not the one it was sealed with, or the ciphertext or its context was altered")]
    Open { key_id: String },
    #[error("secrets key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the system gave no randomness")]
    Random,
    #[error("a sealed value is malformed: {0}")]
    Malformed(&'static str),
}

/// One key's bytes; never printed.
#[derive(Clone)]
struct KeyBytes([u8; KEY_LEN]);

struct Keys {
    current: String,
    all: BTreeMap<String, KeyBytes>,
}

/// The key file's body.
#[derive(Serialize, Deserialize)]
struct KeyFileBody {
    current: String,
    keys: BTreeMap<String, String>,
}

/// The platform's secrets keys: the current one seals, any opens what names it.
pub struct KeyRing {
    file: Option<PathBuf>,
    keys: RwLock<Keys>,
    rng: SystemRandom,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("file", &self.file).field("keys", &self.key_ids()).finish()
    }
}

impl KeyRing {
    /// Reads the key file at `path`, or creates it (mode 0600) with one new key.
    pub fn load_or_create(path: &Path) -> Result<KeyRing, SealError> {
        if path.exists() {
            return KeyRing::load(path);
        }
        let rng = SystemRandom::new();
        let (id, key) = new_key(&rng)?;
        let keys = Keys { current: id.clone(), all: BTreeMap::from([(id, key)]) };
        let body = serde_json::to_vec_pretty(&file_body(&keys)).expect("a key file serialises");
        let write = |e: std::io::Error| key_file_error(path, format!("cannot create it: {e}"));
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(write)?;
        file.write_all(&body).and_then(|()| file.sync_all()).map_err(write)?;
        tracing::info!(file = %path.display(), key_id = %keys.current, "secrets key created");
        Ok(KeyRing { file: Some(path.to_owned()), keys: RwLock::new(keys), rng })
    }

    /// Reads the key file at `path`; one that others may read (mode beyond 0600) is refused.
    pub fn load(path: &Path) -> Result<KeyRing, SealError> {
        let keys = read_key_file(path)?;
        Ok(KeyRing { file: Some(path.to_owned()), keys: RwLock::new(keys), rng: SystemRandom::new() })
    }

    /// A key ring with one new key and no file (tests; nothing survives the process).
    pub fn in_memory() -> Result<KeyRing, SealError> {
        let rng = SystemRandom::new();
        let (id, key) = new_key(&rng)?;
        let keys = Keys { current: id.clone(), all: BTreeMap::from([(id, key)]) };
        Ok(KeyRing { file: None, keys: RwLock::new(keys), rng })
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The id of the key new values are sealed under.
    pub fn current_key_id(&self) -> String {
        self.read().current.clone()
    }

    /// Every key held, by id.
    pub fn key_ids(&self) -> Vec<String> {
        self.read().all.keys().cloned().collect()
    }

    /// Seals `plaintext` under the current key, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Sealed, SealError> {
        let (key_id, key) = {
            let keys = self.read();
            (keys.current.clone(), keys.all[&keys.current].clone())
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut in_out = plaintext.to_vec();
        aead_key(&key)
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Malformed("too long to seal"))?;
        Ok(Sealed { key_id, nonce: hex(&nonce), ciphertext: hex(&in_out) })
    }

    /// Opens a value sealed with `context` under the key it names (read from the key
    /// file again if this ring does not hold it yet).
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret, SealError> {
        let key = match self.key(&sealed.key_id) {
            Some(key) => key,
            None => {
                self.reload()?;
                self.key(&sealed.key_id).ok_or_else(|| SealError::UnknownKey {
                    key_id: sealed.key_id.clone(),
                    where_: self.describe_source(),
                })?
            }
        };
        let nonce: [u8; NONCE_LEN] = unhex(&sealed.nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Malformed("the nonce is not 12 bytes of hex"))?;
        let mut in_out = unhex(&sealed.ciphertext).ok_or(SealError::Malformed("the ciphertext is not hex"))?;
        let opened = aead_key(&key)
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Open { key_id: sealed.key_id.clone() })?;
        let text = String::from_utf8(opened.to_vec()).map_err(|_| SealError::Malformed("the value is not UTF-8"))?;
        Ok(Secret(text))
    }

    /// Starts a rotation: a new key becomes current, the others stay (values under them
    /// still open). The key file is rewritten first, so a crash loses no key. The new id.
    pub fn add_key(&self) -> Result<String, SealError> {
        let (id, key) = new_key(&self.rng)?;
        let mut keys = self.write();
        let mut next = Keys { current: id.clone(), all: keys.all.clone() };
        next.all.insert(id.clone(), key);
        self.save(&next)?;
        *keys = next;
        tracing::info!(key_id = %id, "secrets key added: new values are sealed under it");
        Ok(id)
    }

    /// Ends a rotation once no stored value names another key: every key but the current
    /// one is dropped from the file. The ids retired.
    pub fn retire_others(&self) -> Result<Vec<String>, SealError> {
        let mut keys = self.write();
        let retired: Vec<String> = keys.all.keys().filter(|id| **id != keys.current).cloned().collect();
        if retired.is_empty() {
            return Ok(retired);
        }
        let current = keys.current.clone();
        let next = Keys { all: BTreeMap::from([(current.clone(), keys.all[&current].clone())]), current };
        self.save(&next)?;
        *keys = next;
        tracing::info!(retired = ?retired, "secrets keys retired");
        Ok(retired)
    }

    /// Reads the key file again (keys another process added); keys it no longer has are
    /// kept in memory, never lost by a read.
    fn reload(&self) -> Result<(), SealError> {
        let Some(path) = &self.file else { return Ok(()) };
        let fresh = read_key_file(path)?;
        let mut keys = self.write();
        for (id, key) in fresh.all {
            keys.all.entry(id).or_insert(key);
        }
        keys.current = fresh.current;
        Ok(())
    }

    fn key(&self, id: &str) -> Option<KeyBytes> {
        self.read().all.get(id).cloned()
    }

    fn describe_source(&self) -> String {
        match &self.file {
            Some(path) => path.display().to_string(),
            None => "this process's keys".into(),
        }
    }

    /// Writes the key file atomically (a new file, mode 0600, renamed over the old).
    fn save(&self, keys: &Keys) -> Result<(), SealError> {
        let Some(path) = &self.file else { return Ok(()) };
        let body = serde_json::to_vec_pretty(&file_body(keys)).expect("a key file serialises");
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        let fail = |e: std::io::Error| key_file_error(path, format!("cannot write it: {e}"));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(fail)?;
        file.write_all(&body).and_then(|()| file.sync_all()).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn file_body(keys: &Keys) -> KeyFileBody {
    KeyFileBody {
        current: keys.current.clone(),
        keys: keys.all.iter().map(|(id, k)| (id.clone(), hex(&k.0))).collect(),
    }
}

fn read_key_file(path: &Path) -> Result<Keys, SealError> {
    let meta = std::fs::metadata(path).map_err(|e| key_file_error(path, format!("cannot read it: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_file_error(path, format!("others may read it (mode {mode:04o}); chmod 600 it")));
    }
    let text = std::fs::read(path).map_err(|e| key_file_error(path, format!("cannot read it: {e}")))?;
    let body: KeyFileBody = serde_json::from_slice(&text).map_err(|e| {
        key_file_error(path, format!("not a key file ({{\"current\": ID, \"keys\": {{ID: hex}}}}): {e}"))
    })?;
    let mut all = BTreeMap::new();
    for (id, text) in body.keys {
        let bytes: [u8; KEY_LEN] = unhex(&text)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| key_file_error(path, format!("key {id:?} is not {KEY_LEN} bytes of hex")))?;
        all.insert(id, KeyBytes(bytes));
    }
    if !all.contains_key(&body.current) {
        return Err(key_file_error(path, format!("the current key {:?} is not among its keys", body.current)));
    }
    Ok(Keys { current: body.current, all })
}

fn key_file_error(path: &Path, reason: String) -> SealError {
    SealError::KeyFile { path: path.display().to_string(), reason }
}

/// A new key and its id: the time in hex and 4 random bytes, so ids sort by age.
fn new_key(rng: &SystemRandom) -> Result<(String, KeyBytes), SealError> {
    let mut bytes = [0u8; KEY_LEN];
    rng.fill(&mut bytes).map_err(|_| SealError::Random)?;
    let mut tag = [0u8; 4];
    rng.fill(&mut tag).map_err(|_| SealError::Random)?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok((format!("{secs:x}-{}", hex(&tag)), KeyBytes(bytes)))
}

fn aead_key(key: &KeyBytes) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.0).expect("32 bytes is an AES-256 key"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_context_and_nothing_else() {
        let ring = KeyRing::in_memory().unwrap();
        let sealed = ring.seal(b"s3cr3t value", "config/1/app/app/TOKEN").unwrap();
        assert_eq!(sealed.key_id, ring.current_key_id());
        assert!(!sealed.ciphertext.contains(&hex(b"s3cr3t")), "the value shows through");
        assert_eq!(sealed.plaintext_len(), 12);
        assert_eq!(ring.open(&sealed, "config/1/app/app/TOKEN").unwrap().expose(), "s3cr3t value");
        // Moved to another key or application: does not open.
        assert!(matches!(ring.open(&sealed, "config/1/app/app/OTHER"), Err(SealError::Open { .. })));
        // A random nonce per value: the same value seals differently.
        let again = ring.seal(b"s3cr3t value", "config/1/app/app/TOKEN").unwrap();
        assert_ne!(sealed.nonce, again.nonce);
        assert_ne!(sealed.ciphertext, again.ciphertext);
    }

    #[test]
    fn a_wrong_key_or_a_tampered_ciphertext_fails() {
        let ring = KeyRing::in_memory().unwrap();
        let sealed = ring.seal(b"value", "ctx").unwrap();
        // Another key under the same id.
        let other = KeyRing::in_memory().unwrap();
        let renamed = Sealed { key_id: other.current_key_id(), ..sealed.clone() };
        assert!(matches!(other.open(&renamed, "ctx"), Err(SealError::Open { .. })));
        // An id nobody holds.
        let unknown = Sealed { key_id: "nope".into(), ..sealed.clone() };
        assert!(matches!(ring.open(&unknown, "ctx"), Err(SealError::UnknownKey { .. })));
        // Each byte flipped in turn, in the ciphertext, its tag and the nonce.
        for field in 0..2 {
            let text = if field == 0 { &sealed.ciphertext } else { &sealed.nonce };
            for i in (0..text.len()).step_by(2) {
                let mut bytes = unhex(text).unwrap();
                bytes[i / 2] ^= 0x01;
                let mut tampered = sealed.clone();
                if field == 0 {
                    tampered.ciphertext = hex(&bytes);
                } else {
                    tampered.nonce = hex(&bytes);
                }
                assert!(ring.open(&tampered, "ctx").is_err(), "byte {i} of field {field} flipped still opens");
            }
        }
        let truncated = Sealed { ciphertext: sealed.ciphertext[..10].into(), ..sealed.clone() };
        assert!(ring.open(&truncated, "ctx").is_err());
        let garbage = Sealed { nonce: "zz".into(), ..sealed };
        assert!(matches!(ring.open(&garbage, "ctx"), Err(SealError::Malformed(_))));
    }

    #[test]
    fn the_key_file_is_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let ring = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sealed = ring.seal(b"kept", "ctx").unwrap();
        let again = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(again.current_key_id(), ring.current_key_id());
        assert_eq!(again.open(&sealed, "ctx").unwrap().expose(), "kept");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = KeyRing::load(&path).unwrap_err().to_string();
        assert!(refused.contains("chmod 600"), "{refused}");
    }

    #[test]
    fn a_rotation_keeps_old_values_readable_until_the_old_key_retires() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let ring = KeyRing::load_or_create(&path).unwrap();
        let old_id = ring.current_key_id();
        let old = ring.seal(b"before", "ctx").unwrap();
        // Another process of the platform (the controller of a distributed install).
        let other = KeyRing::load(&path).unwrap();
        let new_id = ring.add_key().unwrap();
        assert_ne!(new_id, old_id);
        assert_eq!(ring.key_ids().len(), 2);
        let new = ring.seal(b"after", "ctx").unwrap();
        assert_eq!(new.key_id, new_id);
        // Both open, in this process and (reading the file again) in the other.
        assert_eq!(ring.open(&old, "ctx").unwrap().expose(), "before");
        assert_eq!(other.open(&new, "ctx").unwrap().expose(), "after");
        // The value re-sealed, then the old key retired: gone from the file too.
        let resealed = ring.seal(ring.open(&old, "ctx").unwrap().expose().as_bytes(), "ctx").unwrap();
        assert_eq!(ring.retire_others().unwrap(), vec![old_id.clone()]);
        assert_eq!(ring.key_ids(), vec![new_id.clone()]);
        let fresh = KeyRing::load(&path).unwrap();
        assert_eq!(fresh.key_ids(), vec![new_id]);
        assert_eq!(fresh.open(&resealed, "ctx").unwrap().expose(), "before");
        assert!(matches!(fresh.open(&old, "ctx"), Err(SealError::UnknownKey { .. })));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&old_id), "{text}");
    }

    #[test]
    fn nothing_prints_a_value_or_a_key() {
        let ring = KeyRing::in_memory().unwrap();
        let secret = ring.open(&ring.seal(b"hunter2", "ctx").unwrap(), "ctx").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let shown = format!("{ring:?} {:?}", ring.seal(b"hunter2", "ctx").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        let key = hex(&ring.read().all[&ring.current_key_id()].0);
        assert!(!shown.contains(&key), "{shown}");
    }
}
