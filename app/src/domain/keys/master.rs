//! The master key: the 256-bit key that encrypts the signing keys (and the
//! upstream providers' secrets) at rest, its file, and the keys derived from
//! it. It never touches the database, so a database dump alone signs nothing.

use std::path::Path;

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use rand::{rngs::OsRng, RngCore};

/// AES-GCM nonce length: 96 bits, the size GCM is defined for (NIST SP 800-38D §5.2.1.1).
const NONCE_LEN: usize = 12;

/// The 256-bit key that encrypts signing keys at rest (AES-256-GCM).
///
/// Deliberately neither `Serialize` nor printable: `{:?}` shows `[redacted]`.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl MasterKey {
    /// A new random key from the OS.
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// Reads a key written by [`MasterKey::to_base64url`] (surrounding whitespace is
    /// ignored). The error never repeats the input: it may be a real key with a typo.
    pub fn from_base64url(text: &str) -> Result<MasterKey, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| "the master key is not valid base64url (unpadded)".to_string())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "the master key must be exactly 32 bytes (43 base64url characters), got {} bytes",
                bytes.len()
            )
        })?;
        Ok(MasterKey(key))
    }

    /// The key as unpadded base64url (43 characters): how it is stored in its file.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Reads the key from `path`, or creates the file (and its folders) with a new
    /// key when it is missing. The file is created readable by its owner only
    /// (mode 0600 on Unix), atomically: if another process creates it first, its
    /// key is read instead of overwritten.
    pub fn load_or_create_file(path: impl AsRef<Path>) -> Result<MasterKey, String> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_readable_by_others(path);
                return MasterKey::from_base64url(&text)
                    .map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "cannot read the master key {}: {e}",
                    path.display()
                ))
            }
        }
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
        let key = MasterKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(format!("{}\n", key.to_base64url()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot write the master key {}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(key)
            }
            // Another instance won the race: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the master key {}: {e}", path.display()))?;
                MasterKey::from_base64url(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) => Err(format!(
                "cannot create the master key {}: {e}",
                path.display()
            )),
        }
    }

    /// Encrypts with a fresh random 96-bit nonce; returns base64 of `nonce || ciphertext`
    /// (the ciphertext ends with GCM's 128-bit tag). A random nonce is safe here: at
    /// most a handful of keys are ever encrypted under one master key, far below
    /// the 2^32 messages NIST SP 800-38D §8.3 allows.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new(&self.0.into());
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            // Only fails for plaintexts beyond 64 GiB.
            .expect("AES-GCM encryption of a small plaintext");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        STANDARD.encode(out)
    }

    /// Decrypts what [`MasterKey::encrypt`] produced. A wrong key, a changed byte or
    /// a truncated text all fail the GCM tag check and give `Err`.
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, String> {
        let bytes = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| "encrypted value is not valid base64".to_string())?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err("encrypted value is too short".into());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        Aes256Gcm::new(&self.0.into())
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| "cannot decrypt: wrong master key or altered data".to_string())
    }
}

/// A key file others can read is a leaked key; say so without refusing to start.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the master key file is readable by group or others; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl MasterKey {
    /// Another 256-bit key for one purpose, derived from this one
    /// (HMAC-SHA256 of `label`): the same on every instance, never stored,
    /// and what is encrypted under it cannot be decrypted with the master key
    /// itself or under another label.
    pub fn derive(&self, label: &str) -> MasterKey {
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let derived = ring::hmac::sign(&master, label.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        MasterKey(key)
    }

    /// The key refresh-token chains are MACed with, derived from this
    /// master key (HMAC-SHA256 of a fixed label): the same on every
    /// instance, and never stored.
    pub(super) fn refresh_chain_key(&self) -> ring::hmac::Key {
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let derived = ring::hmac::sign(&master, b"latchkey refresh-token chain key v1");
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secrets;

    #[test]
    fn master_key_round_trips_and_encrypts_randomly() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64url(&key.to_base64url()).unwrap();
        let secret = b"private key bytes";
        let a = key.encrypt(secret);
        let b = key.encrypt(secret);
        assert_ne!(a, b, "each encryption uses a fresh nonce");
        assert_eq!(again.decrypt(&a).unwrap(), secret);
        assert_eq!(key.decrypt(&b).unwrap(), secret);
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert_eq!(key.to_base64url().len(), 43);
    }

    #[test]
    fn wrong_master_key_fails_to_decrypt() {
        let encrypted = MasterKey::generate().encrypt(b"secret");
        let err = MasterKey::generate().decrypt(&encrypted).unwrap_err();
        assert!(err.contains("wrong master key"), "{err}");
    }

    #[test]
    fn tampered_ciphertext_fails_to_decrypt() {
        let key = MasterKey::generate();
        let encrypted = key.encrypt(b"secret");
        let mut bytes = STANDARD.decode(&encrypted).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            assert!(
                key.decrypt(&STANDARD.encode(&bytes)).is_err(),
                "byte {i} changed"
            );
            bytes[i] ^= 1;
        }
        assert!(key
            .decrypt(&STANDARD.encode(&bytes[..bytes.len() - 1]))
            .is_err());
        assert!(key.decrypt("").is_err());
        assert!(key.decrypt("not base64!").is_err());
        assert_eq!(key.decrypt(&STANDARD.encode(&bytes)).unwrap(), b"secret");
    }

    #[test]
    fn master_key_must_be_exactly_32_bytes() {
        let err = MasterKey::from_base64url(&URL_SAFE_NO_PAD.encode([7u8; 31])).unwrap_err();
        assert!(
            err.contains("exactly 32 bytes") && err.contains("got 31"),
            "{err}"
        );
        assert!(MasterKey::from_base64url(&URL_SAFE_NO_PAD.encode([7u8; 33])).is_err());
        let err = MasterKey::from_base64url("definitely*not*base64").unwrap_err();
        assert!(
            !err.contains("definitely"),
            "the input is not echoed: {err}"
        );
        assert!(
            MasterKey::from_base64url(&format!(" {}\n", URL_SAFE_NO_PAD.encode([7u8; 32]))).is_ok()
        );
    }

    #[test]
    fn master_key_file_is_created_private_then_reused() {
        let dir = tempfile_dir();
        let path = dir.join("nested/dir/master.key");
        let created = MasterKey::load_or_create_file(&path).unwrap();
        let loaded = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(created.to_base64url(), loaded.to_base64url());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "too-short").unwrap();
        let err = MasterKey::load_or_create_file(&path).unwrap_err();
        assert!(err.contains("master.key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh folder under the system temp dir (the app crate has no tempfile).
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("latchkey-keys-{}", secrets::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
