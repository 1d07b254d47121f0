//! The DSSE envelope (v1): payload, payload type and signatures over the pre-authentication
//! encoding "DSSEv1" SP len(type) SP type SP len(body) SP body.

use super::keys::{KeyError, PrivateKey, PublicKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signature {
    /// A hint only (DSSE): verification tries the key given whatever the keyid says.
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the signature bytes.
    pub sig: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    /// Base64 of the serialized body.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("payload is not base64")]
    PayloadEncoding,
    #[error("payload type is {0:?}, not {PAYLOAD_TYPE}")]
    PayloadType(String),
    #[error("no signatures")]
    Unsigned,
    /// Every signature carries a keyid, none of them the given key's.
    #[error("signed by another key (keyids {found}; the key given has keyid {want})")]
    OtherKey { found: String, want: String },
    #[error("no signature verifies with the key given (the payload or the signature was changed, or another key signed it)")]
    BadSignature,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Envelope {
    pub fn sign(payload_type: &str, body: &[u8], key: &PrivateKey) -> Result<Envelope, DsseError> {
        let sig = key.sign(&pae(payload_type, body));
        Ok(Envelope {
            payload: B64.encode(body),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                keyid: key.public().keyid()?,
                sig: B64.encode(sig),
            }],
        })
    }

    /// The payload, once some signature verifies with `key` over its PAE.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, DsseError> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(DsseError::PayloadType(self.payload_type.clone()));
        }
        let body = B64
            .decode(self.payload.trim())
            .map_err(|_| DsseError::PayloadEncoding)?;
        if self.signatures.is_empty() {
            return Err(DsseError::Unsigned);
        }
        let msg = pae(&self.payload_type, &body);
        let ok = self.signatures.iter().any(|s| {
            B64.decode(s.sig.trim())
                .is_ok_and(|sig| key.verify(&msg, &sig))
        });
        if ok {
            return Ok(body);
        }
        let want = key.keyid()?;
        if self
            .signatures
            .iter()
            .all(|s| !s.keyid.is_empty() && s.keyid != want)
        {
            let found: Vec<&str> = self.signatures.iter().map(|s| s.keyid.as_str()).collect();
            return Err(DsseError::OtherKey {
                found: found.join(", "),
                want,
            });
        }
        Err(DsseError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::keys::KeyType;

    #[test]
    fn pae_matches_the_spec_example() {
        // from the DSSE protocol document
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_then_verify_both_types_and_reject_changes() {
        for t in [KeyType::Ed25519, KeyType::P256] {
            let k = PrivateKey::generate(t);
            let env = Envelope::sign(PAYLOAD_TYPE, b"{\"a\":1}", &k).unwrap();
            assert_eq!(env.verify(&k.public()).unwrap(), b"{\"a\":1}");
            let mut bad = env.clone();
            bad.payload = B64.encode(b"{\"a\":2}");
            assert!(matches!(
                bad.verify(&k.public()),
                Err(DsseError::BadSignature)
            ));
            let other = PrivateKey::generate(t);
            assert!(matches!(
                env.verify(&other.public()),
                Err(DsseError::OtherKey { .. })
            ));
            // keys survive PEM
            let k2 = PrivateKey::from_pem(&k.to_pem().unwrap()).unwrap();
            let p2 = PublicKey::from_pem(&k.public().to_pem().unwrap()).unwrap();
            assert_eq!(k2.public().keyid().unwrap(), p2.keyid().unwrap());
            assert!(env.verify(&p2).is_ok());
        }
    }
}
