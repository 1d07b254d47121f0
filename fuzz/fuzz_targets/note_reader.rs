//! Any bytes: reading a note, or listing archive members, must return, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = omnishim::elf::read_note(data);
    let _ = omnishim::elf::Target::from_object(data);
    let _ = omnishim::archive::members(data, std::path::Path::new("fuzz.a"));
    let _ = omnishim::manifest::Manifest::parse(data);
});
