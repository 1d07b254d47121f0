//! Any bytes as a manifest (v0.2 or GitBOM records): parsing must return; a manifest that
//! parses writes canonical bytes that parse back to the same manifest and ID.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omnishim::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let canon = m.to_bytes();
        let again = Manifest::parse(&canon).expect("canonical bytes parse");
        assert_eq!(again.to_bytes(), canon, "canonical form is a fixed point");
        assert_eq!(again.id(), m.id());
    }
});
