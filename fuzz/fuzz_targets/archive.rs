//! Any bytes as an ar archive (regular, GNU or BSD long names, thin): listing members must
//! return, and every member's bytes lie inside the archive.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = omnishim::archive::is_archive(data);
    if let Ok(ms) = omnishim::archive::members(data, std::path::Path::new("fuzz.a")) {
        for m in ms {
            let _ = format!("{m:?}");
        }
    }
});
