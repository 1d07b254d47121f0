//! Any bytes as a linked ELF file (executable or shared library): the rewriter either fails
//! cleanly or gives a file of the same size whose note reads back as what was written.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omnishim::elf;
use omnishim::gitoid::ids_of_bytes;

fuzz_target!(|data: &[u8]| {
    let ids = ids_of_bytes(b"fuzz");
    if let Ok(out) = elf::rewrite_linked(data, &ids.sha1, &ids.sha256) {
        assert_eq!(out.len(), data.len(), "a linked file is rewritten in place");
        let back = elf::read_note(&out).expect("a rewritten note must read back");
        assert_eq!(back.sha1, Some(ids.sha1));
        assert_eq!(back.sha256, Some(ids.sha256));
    }
});
