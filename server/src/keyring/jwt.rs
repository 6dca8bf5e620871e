//! Compact JWS (RFC 7515) with EdDSA (Ed25519, RFC 8037) only: `header.payload.signature`,
//! each base64url without padding. Parsing refuses every other algorithm (`none` included)
//! before any key is looked up, and a token larger than [`MAX_JWT_LEN`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use super::root::RootKey;
use crate::error::ServerError;

/// Largest token accepted.
pub const MAX_JWT_LEN: usize = 8 * 1024;
/// The one signature algorithm identities use.
pub const ALG: &str = "EdDSA";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    typ: String,
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub struct Unverified {
    /// The key id the header names.
    pub kid: String,
    signing_input: String,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

impl Unverified {
    /// Checks the signature with an Ed25519 public key and returns the payload's bytes.
    pub fn verify(self, public_key: &[u8]) -> Result<Vec<u8>, ServerError> {
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| invalid(format!("signature does not verify with key {}", self.kid)))?;
        Ok(self.payload)
    }
}

/// Signs `claims` with `key`'s Ed25519 key; the header names the key's id as `kid`.
pub fn sign<T: Serialize>(key: &RootKey, claims: &T) -> Result<String, ServerError> {
    let header = Header {
        alg: ALG.into(),
        kid: key.meta.key_id.clone(),
        typ: "JWT".into(),
    };
    let input = format!("{}.{}", b64_json(&header)?, b64_json(claims)?);
    let signature = key.signer.sign(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// Splits and decodes a token, refusing one that is too large, malformed, or signed with any
/// algorithm but EdDSA.
pub fn parse(jwt: &str) -> Result<Unverified, ServerError> {
    if jwt.len() > MAX_JWT_LEN {
        return Err(invalid(format!(
            "token is {} bytes, more than the {MAX_JWT_LEN} accepted",
            jwt.len()
        )));
    }
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("expected three dot-separated parts".into()));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| invalid(format!("{what} is not base64url: {e}")))
    };
    let header: Header = serde_json::from_slice(&decode(header, "header")?)
        .map_err(|e| invalid(format!("header is not valid JSON: {e}")))?;
    if header.alg != ALG {
        return Err(invalid(format!(
            "header alg {:?} is not accepted; expected {ALG:?}",
            header.alg
        )));
    }
    if header.kid.is_empty() {
        return Err(invalid("header names no kid".into()));
    }
    Ok(Unverified {
        kid: header.kid,
        signing_input: jwt[..jwt.len() - signature.len() - 1].to_string(),
        signature: decode(signature, "signature")?,
        payload: decode(payload, "payload")?,
    })
}

fn invalid(message: String) -> ServerError {
    ServerError::InvalidIdentity(message)
}

fn b64_json<T: Serialize + ?Sized>(value: &T) -> Result<String, ServerError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::root::{KeyMeta, KeyState, ALGORITHM};

    fn key(id: &str, seed: u8) -> RootKey {
        let meta = KeyMeta {
            key_id: id.into(),
            state: KeyState::Active,
            create_time: 0,
            algorithm: ALGORITHM.into(),
        };
        RootKey::derive(meta, &[seed; 32]).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_only() {
        let k = key("k1", 1);
        let jwt = sign(&k, &serde_json::json!({"sub": "x"})).unwrap();
        let parsed = parse(&jwt).unwrap();
        assert_eq!(parsed.kid, "k1");
        let payload = parse(&jwt).unwrap().verify(k.public_key()).unwrap();
        assert_eq!(payload, br#"{"sub":"x"}"#);
        let other = key("k1", 2);
        let err = parsed.verify(other.public_key()).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
    }

    #[test]
    fn hostile_tokens_are_refused_before_any_key_is_used() {
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        let hs_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        let no_kid = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let cases = [
            (format!("{none_header}.{body}."), "\"none\" is not accepted"),
            (
                format!("{hs_header}.{body}.AAAA"),
                "\"HS256\" is not accepted",
            ),
            (format!("{no_kid}.{body}.AAAA"), "no kid"),
            ("a.b".to_string(), "three"),
            ("a.b.c.d".to_string(), "three"),
            ("!!.b.c".to_string(), "header is not base64url"),
            ("x".repeat(MAX_JWT_LEN + 1), "more than"),
        ];
        for (jwt, want) in cases {
            let err = parse(&jwt).unwrap_err().to_string();
            assert!(err.contains(want), "{jwt:.40}: {err}");
        }
    }

    #[test]
    fn a_payload_changed_after_signing_fails_verification() {
        let k = key("k1", 1);
        let jwt = sign(&k, &serde_json::json!({"sub": "a"})).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(br#"{"sub":"b"}"#),
            parts[2]
        );
        assert!(parse(&forged).unwrap().verify(k.public_key()).is_err());
    }
}
