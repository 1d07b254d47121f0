//! Any bytes as an attestation: a DSSE envelope (JSON) checked against a key, a PEM key,
//! and a signed payload read as our statement. All must return with an error or a value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omnishim::attest::dsse::{Envelope, PAYLOAD_TYPE};
use omnishim::attest::keys::{KeyType, PrivateKey, PublicKey};
use std::sync::OnceLock;

fn key() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(KeyType::Ed25519))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(env) = serde_json::from_slice::<Envelope>(rest) {
                let _ = env.verify(&key().public());
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let _ = PublicKey::from_pem(&text).map(|k| k.keyid());
            let _ = PrivateKey::from_pem(&text);
        }
        _ => {
            // a payload signed by the key: past the signature, into the statement's reader
            let env = Envelope::sign(PAYLOAD_TYPE, rest, key()).expect("sign");
            let body = env.verify(&key().public()).expect("own signature verifies");
            assert_eq!(body, rest);
            let _ = omnishim::attest::read_claim(&body, "fuzz");
        }
    }
});
