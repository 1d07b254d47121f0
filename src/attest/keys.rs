//! PEM keys as the ecosystem writes them: PKCS#8 private keys and SPKI public keys for
//! Ed25519 and ECDSA P-256 (what `openssl genpkey` makes), and their securesystemslib keyids.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM PKCS#8 Ed25519 or ECDSA P-256 private key")]
    BadPrivate,
    #[error("not a PEM SPKI Ed25519 or ECDSA P-256 public key")]
    BadPublic,
    #[error("cannot encode the key: {0}")]
    Encode(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    P256,
}

pub enum PrivateKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

#[derive(Clone, Debug)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PrivateKey {
    pub fn generate(t: KeyType) -> PrivateKey {
        let mut rng = rand_core::OsRng;
        match t {
            KeyType::Ed25519 => PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            KeyType::P256 => PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    /// A PKCS#8 "PRIVATE KEY" (either type), or a SEC1 "EC PRIVATE KEY" (P-256).
    pub fn from_pem(pem: &str) -> Result<PrivateKey, KeyError> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Ed25519(k));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        Err(KeyError::BadPrivate)
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pem = match self {
            // PKCS#8 v1 without the public key, as openssl writes it: pyca/cryptography
            // (securesystemslib) rejects the v2 form ed25519-dalek writes by default
            PrivateKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
            PrivateKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        pem.map(|z| z.to_string())
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// Ed25519: the 64-byte signature. ECDSA: DER, as securesystemslib's
    /// ecdsa-sha2-nistp256 (pyca/cryptography) signs and verifies, over SHA-256 of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        match self {
            PrivateKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

impl PublicKey {
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(k));
        }
        Err(KeyError::BadPublic)
    }

    pub fn to_pem(&self) -> Result<String, KeyError> {
        match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|e| KeyError::Encode(e.to_string()))
    }

    pub fn key_type(&self) -> KeyType {
        match self {
            PublicKey::Ed25519(_) => KeyType::Ed25519,
            PublicKey::P256(_) => KeyType::P256,
        }
    }

    /// Whether `sig` signs `msg`. ECDSA signatures are DER; the fixed 64-byte form is taken
    /// too (some DSSE signers write it).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use ed25519_dalek::Verifier as _;
        match self {
            PublicKey::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            PublicKey::P256(k) => {
                let s = p256::ecdsa::Signature::from_der(sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(sig));
                s.is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
        }
    }

    /// securesystemslib's default keyid: the SHA-256 (hex) of the canonical JSON of
    /// {keytype, scheme, keyval: {public}}, where `public` is the raw key in hex (Ed25519)
    /// or the SPKI PEM (ECDSA).
    pub fn keyid(&self) -> Result<String, KeyError> {
        let (keytype, scheme, public) = match self {
            PublicKey::Ed25519(k) => ("ed25519", "ed25519", crate::gitoid::to_hex(k.as_bytes())),
            PublicKey::P256(_) => ("ecdsa", "ecdsa-sha2-nistp256", self.to_pem()?),
        };
        // canonical JSON (securesystemslib's encode_canonical): sorted keys, no spaces,
        // only '"' and '\' escaped in strings
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let canon = format!(
            "{{\"keytype\":\"{}\",\"keyval\":{{\"public\":\"{}\"}},\"scheme\":\"{}\"}}",
            esc(keytype),
            esc(&public),
            esc(scheme)
        );
        Ok(crate::gitoid::to_hex(&Sha256::digest(canon.as_bytes())))
    }
}
