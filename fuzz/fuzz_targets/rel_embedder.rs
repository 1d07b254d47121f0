//! Any bytes: embedding into an object or rewriting a linked file either fails cleanly or
//! gives a file whose note reads back as exactly what was embedded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omnishim::elf;
use omnishim::gitoid::ids_of_bytes;

fuzz_target!(|data: &[u8]| {
    let ids = ids_of_bytes(b"fuzz");
    if let Ok(out) = elf::embed_any(data, &ids.sha1, &ids.sha256) {
        let back = elf::read_note(&out).expect("an embedded note must read back");
        assert_eq!(back.sha1, Some(ids.sha1));
        assert_eq!(back.sha256, Some(ids.sha256));
    }
});
