//! Any text as a linker map (ld.bfd, gold, lld, mold): reading the archive members and
//! files it names must return, and every member named has an archive and a name.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let abs = |p: &Path| -> PathBuf { Path::new("/build").join(p) };
    for files in [false, true] {
        let r = omnishim::shim::link::map_refs(&text, files, &abs);
        for (ar, m) in &r.members {
            assert!(ar.is_absolute() && !m.is_empty());
        }
        if !files {
            assert!(r.files.is_empty());
        }
    }
});
