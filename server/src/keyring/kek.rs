//! The key encryption key (KEK): the 32-byte key from the server's configuration that wraps
//! every root key before it is written to the store. It lives in a file (base64, mode 0600),
//! created with random bytes on first start; every server on one store must share the file.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// Length of every key the keyring handles (AES-256 and Ed25519 seeds alike).
pub const KEY_LEN: usize = 32;
/// Largest key file read (a base64 key and a newline need 45 bytes).
const MAX_KEY_FILE: u64 = 1024;

/// A nonce and a ciphertext (with its tag), both base64: a wrapped root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrapped {
    pub nonce: String,
    pub ciphertext: String,
}

/// The key that wraps root keys. Its bytes are never logged; `Debug` shows only its source.
pub struct Kek {
    key: LessSafeKey,
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("source", &self.source).finish()
    }
}

impl Kek {
    /// A random key kept only in memory: for tests and single-process stores that never
    /// restart (`AppState::new`'s default). Keys wrapped by it are lost with the process.
    pub fn random() -> Result<Kek, ServerError> {
        let bytes = random_key()?;
        Kek::from_bytes(&bytes, "an in-memory keyring key".to_string())
    }

    /// Reads the key file at `path`, creating it (with its directory) with 32 random bytes
    /// and mode 0600 when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Kek, ServerError> {
        let shown = path.display().to_string();
        let fail = |message: String| ServerError::KeyringKeyFile {
            path: shown.clone(),
            message,
        };
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_key_file(path).map_err(|e| fail(format!("cannot create it: {e}")))?
            }
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        }
        let text = read_key_file(path).map_err(fail)?;
        let bytes = decode_key(&text).map_err(fail)?;
        Kek::from_bytes(&bytes, format!("key file {shown}"))
    }

    /// A key from its bytes; `source` names it in errors (never the bytes).
    pub fn from_bytes(bytes: &[u8; KEY_LEN], source: String) -> Result<Kek, ServerError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| ServerError::Crypto("cannot build an AES-256-GCM key".into()))?;
        Ok(Kek {
            key: LessSafeKey::new(unbound),
            source,
        })
    }

    /// Where the key came from, for messages ("key file /var/lib/nomos/keyring.key").
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Wraps a root key's material, binding it to its key id (the associated data), so a
    /// wrapped key moved under another id does not unwrap.
    pub fn wrap(&self, key_id: &str, material: &[u8; KEY_LEN]) -> Result<Wrapped, ServerError> {
        let (nonce, ciphertext) = seal(&self.key, material, key_id.as_bytes())?;
        Ok(Wrapped {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Unwraps what [`Kek::wrap`] made for `key_id`; `None` when this key did not wrap it
    /// (or it was altered).
    pub fn unwrap(&self, key_id: &str, wrapped: &Wrapped) -> Option<[u8; KEY_LEN]> {
        let nonce = STANDARD.decode(&wrapped.nonce).ok()?;
        let ciphertext = STANDARD.decode(&wrapped.ciphertext).ok()?;
        let plain = open(&self.key, &nonce, ciphertext, key_id.as_bytes())?;
        plain.try_into().ok()
    }
}

/// 32 bytes from the operating system's random source.
pub fn random_key() -> Result<[u8; KEY_LEN], ServerError> {
    let mut bytes = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServerError::Crypto("the OS random source failed".into()))?;
    Ok(bytes)
}

/// AES-256-GCM with a random 96-bit nonce: returns the nonce and the ciphertext with its tag.
pub(crate) fn seal(
    key: &LessSafeKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), ServerError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| ServerError::Crypto("the OS random source failed".into()))?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| ServerError::Crypto("AES-256-GCM seal failed".into()))?;
    Ok((nonce, buf))
}

/// Opens what [`seal`] made; `None` on any mismatch (key, nonce, ciphertext, tag, aad).
pub(crate) fn open(
    key: &LessSafeKey,
    nonce: &[u8],
    mut ciphertext: Vec<u8>,
    aad: &[u8],
) -> Option<Vec<u8>> {
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut ciphertext)
        .ok()?;
    Some(plain.to_vec())
}

fn create_key_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!(
        "{}\n",
        STANDARD.encode(random_key().map_err(std::io::Error::other)?)
    );
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Another server process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created the keyring key file (keep it, and give every server the same one)");
    Ok(())
}

fn read_key_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the keyring key file is readable by others than its owner; chmod 600 it");
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "is larger than {MAX_KEY_FILE} bytes; expected a base64 32-byte key"
        ));
    }
    Ok(text)
}

fn decode_key(text: &str) -> Result<[u8; KEY_LEN], String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|e| {
        format!("expected a base64 32-byte key, found text that is not base64 ({e})")
    })?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("expected a base64 32-byte key, found {len} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_with_its_kek_and_its_id() {
        let kek = Kek::random().unwrap();
        let material = random_key().unwrap();
        let wrapped = kek.wrap("k1", &material).unwrap();
        assert!(!wrapped.ciphertext.contains(&STANDARD.encode(material)));
        assert_eq!(kek.unwrap("k1", &wrapped), Some(material));
        assert_eq!(kek.unwrap("k2", &wrapped), None, "moved to another id");
        let other = Kek::random().unwrap();
        assert_eq!(other.unwrap("k1", &wrapped), None, "another KEK");
        let mut tampered = wrapped.clone();
        let mut ct = STANDARD.decode(&tampered.ciphertext).unwrap();
        ct[0] ^= 1;
        tampered.ciphertext = STANDARD.encode(ct);
        assert_eq!(kek.unwrap("k1", &tampered), None, "altered ciphertext");
        let bad_nonce = Wrapped {
            nonce: "AAAA".into(),
            ..wrapped
        };
        assert_eq!(kek.unwrap("k1", &bad_nonce), None, "short nonce");
    }

    #[test]
    fn a_missing_key_file_is_created_0600_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keyring.key");
        let first = Kek::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let wrapped = first.wrap("k", &[7; KEY_LEN]).unwrap();
        let again = Kek::load_or_create(&path).unwrap();
        assert_eq!(again.unwrap("k", &wrapped), Some([7; KEY_LEN]));
        assert!(format!("{again:?}").contains("keyring.key"));
    }

    #[test]
    fn a_key_file_that_is_not_a_32_byte_base64_key_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("not base64!!", "not base64"),
            ("AAAA", "found 3 bytes"),
            (&"A".repeat(2000) as &str, "larger than"),
        ];
        for (i, (content, want)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("k{i}"));
            std::fs::write(&path, content).unwrap();
            let err = Kek::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
        let err = Kek::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
