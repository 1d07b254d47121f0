//! Any text as a hash-cache log: indexing it and looking keys up must return; an entry found
//! is a whole line of the log.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // keys: the first word of each line, and one that is not there
    let mut keys: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    keys.push("0-0-0-0.0-0.0");
    for k in keys {
        let _ = omnishim::store::hashcache_entry(&text, k);
    }
});
