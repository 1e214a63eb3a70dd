//! Passwords: argon2id hashes in PHC strings, never the password itself.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use stratos_model::Problems;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 1024;

/// Problems with a new password, at `path`.
pub fn check(path: &str, password: &str, problems: &mut Problems) {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        problems.push(path, format!("must be at least {MIN_LENGTH} characters, found {chars}"));
    } else if password.len() > MAX_LENGTH {
        problems.push(path, format!("must be at most {MAX_LENGTH} bytes"));
    }
}

/// An argon2id hash (OWASP's parameters, the crate's defaults) with a random salt
/// from the OS, as a PHC string.
pub fn hash(password: &str) -> String {
    Argon2::default().hash_password(password.as_bytes()).expect("argon2 hashes any password").to_string()
}

/// Whether `password` matches `phc`; a malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Spends the time of a verification against a hash of nothing, so that a login with an
/// unknown user name takes as long as one with a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("no user has this password"));
    let _ = verify(password, phc);
}

/// A random password for the first admin: 24 characters from an unambiguous alphabet.
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random number generator");
    // 256 is not a multiple of 55: the slight bias leaves well over 128 bits.
    bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let phc = hash("correct horse battery");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterY", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(hash("same"), hash("same"), "salted");
    }

    #[test]
    fn weak_passwords_are_named() {
        let mut p = Problems::default();
        check("password", "short", &mut p);
        assert_eq!(p.0[0].path, "password");
        let mut p = Problems::default();
        check("password", &generate(), &mut p);
        assert!(p.is_empty());
    }
}
