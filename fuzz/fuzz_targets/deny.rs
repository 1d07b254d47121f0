//! Any text as a deny list: parsing returns a list or one error naming the line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match omnishim::respond::parse_deny(std::path::Path::new("deny.txt"), &text) {
        Ok(list) => {
            for labels in list.values() {
                assert!(labels.iter().all(|l| !l.is_empty()));
            }
        }
        Err(e) => {
            let line = e.to_string();
            assert!(
                line.starts_with("deny.txt:") && !line.contains('\n'),
                "{line}"
            );
        }
    }
});
