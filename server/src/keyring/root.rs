//! Root keys: the record kept in the store (metadata and the wrapped material) and the keys
//! derived from a root key's material with HKDF-SHA256: an AES-256-GCM key for Variables and
//! an Ed25519 key pair for workload identities.

use ring::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::kek::{Kek, Wrapped, KEY_LEN};
use crate::error::ServerError;

/// The only algorithm root keys have (Nomad's name for it).
pub const ALGORITHM: &str = "aes256-gcm";
const HKDF_SALT: &[u8] = b"nomos keyring v1";
const INFO_VARIABLES: &[u8] = b"nomos variables aes-256-gcm";
const INFO_IDENTITY: &[u8] = b"nomos workload identity ed25519";

/// Whether a root key encrypts and signs new things (`active`, exactly one) or only opens and
/// verifies old ones (`inactive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Inactive,
}

/// A root key's metadata, as `GET /v1/operator/keyring/keys` lists it (Nomad's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    #[serde(rename = "KeyID")]
    pub key_id: String,
    #[serde(rename = "State")]
    pub state: KeyState,
    /// Nanoseconds since the Unix epoch, as Nomad reports it.
    #[serde(rename = "CreateTime")]
    pub create_time: i64,
    #[serde(rename = "Algorithm")]
    pub algorithm: String,
}

/// The value at `/nomos/keyring/keys/<key_id>`: the metadata and the material wrapped by the
/// KEK. The plaintext material is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    #[serde(flatten)]
    pub meta: KeyMeta,
    #[serde(rename = "WrappedKey")]
    pub wrapped: Wrapped,
}

/// A root key unwrapped in memory, with the keys derived from it.
pub struct RootKey {
    pub meta: KeyMeta,
    pub(crate) variables: LessSafeKey,
    pub(crate) signer: Ed25519KeyPair,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey").field("meta", &self.meta).finish()
    }
}

impl RootKey {
    /// Derives the Variables and identity keys from a root key's material.
    pub fn derive(meta: KeyMeta, material: &[u8; KEY_LEN]) -> Result<RootKey, ServerError> {
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(material);
        let mut aead = [0u8; KEY_LEN];
        let mut seed = [0u8; KEY_LEN];
        for (info, out) in [(INFO_VARIABLES, &mut aead), (INFO_IDENTITY, &mut seed)] {
            prk.expand(&[info], Len32)
                .and_then(|okm| okm.fill(out))
                .map_err(|_| ServerError::Crypto("HKDF expansion failed".into()))?;
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &aead)
            .map_err(|_| ServerError::Crypto("cannot build an AES-256-GCM key".into()))?;
        let signer = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| ServerError::Crypto("cannot build an Ed25519 key".into()))?;
        Ok(RootKey {
            meta,
            variables: LessSafeKey::new(unbound),
            signer,
        })
    }

    /// Unwraps a stored key with `kek`; `None` when `kek` did not wrap it.
    pub fn unwrap_stored(stored: &StoredKey, kek: &Kek) -> Option<Result<RootKey, ServerError>> {
        let material = kek.unwrap(&stored.meta.key_id, &stored.wrapped)?;
        Some(RootKey::derive(stored.meta.clone(), &material))
    }

    /// The Ed25519 public key that verifies this key's identities.
    pub fn public_key(&self) -> &[u8] {
        self.signer.public_key().as_ref()
    }
}

/// HKDF output length of 32 bytes (an AES-256 key, an Ed25519 seed).
struct Len32;

impl KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> KeyMeta {
        KeyMeta {
            key_id: id.into(),
            state: KeyState::Active,
            create_time: 1,
            algorithm: ALGORITHM.into(),
        }
    }

    #[test]
    fn one_material_always_derives_the_same_keys_and_distinct_materials_differ() {
        let a = RootKey::derive(meta("a"), &[1; KEY_LEN]).unwrap();
        let again = RootKey::derive(meta("a"), &[1; KEY_LEN]).unwrap();
        let b = RootKey::derive(meta("b"), &[2; KEY_LEN]).unwrap();
        assert_eq!(a.public_key(), again.public_key());
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(a.public_key().len(), 32);
    }

    #[test]
    fn a_stored_key_serialises_without_its_material_and_with_nomads_field_names() {
        let kek = Kek::random().unwrap();
        let material = [9u8; KEY_LEN];
        let stored = StoredKey {
            meta: meta("k"),
            wrapped: kek.wrap("k", &material).unwrap(),
        };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["KeyID"], "k");
        assert_eq!(json["State"], "active");
        assert_eq!(json["Algorithm"], "aes256-gcm");
        assert!(json["WrappedKey"]["ciphertext"].is_string());
        let text = json.to_string();
        use base64::Engine;
        let plain_b64 = base64::engine::general_purpose::STANDARD.encode(material);
        assert!(!text.contains(&plain_b64));
        let back: StoredKey = serde_json::from_value(json).unwrap();
        assert!(RootKey::unwrap_stored(&back, &kek).is_some());
        assert!(RootKey::unwrap_stored(&back, &Kek::random().unwrap()).is_none());
    }
}
