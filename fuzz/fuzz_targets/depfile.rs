//! Any bytes as a depfile: parsing must return, and every name must come back as bytes
//! that the file really held (no byte made up, none lost to a lossy conversion).
#![no_main]
use libfuzzer_sys::fuzz_target;
use omnishim::classify::arg;

fuzz_target!(|data: &[u8]| {
    let rules = omnishim::depfile::parse(data);
    for r in &rules {
        for name in r.targets.iter().chain(&r.prereqs) {
            assert!(!name.is_empty());
            let bytes = arg::to_bytes(name);
            // a name's bytes are the file's bytes less the escapes (`\ `, `$$`, `\#`...)
            assert!(bytes.len() <= data.len());
            assert!(!bytes.contains(&b'\n'));
        }
    }
    let _ = omnishim::depfile::prerequisites(data);
});
