//! Any text as a hash-cache log: indexing it and looking keys up must return, and the index
//! must answer as the scan of the lines does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // keys: the first word of each line, and one that is not there
    let mut keys: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    keys.push("0-0-0-0.0-0.0");
    for k in keys {
        let scan = omnishim::store::hashcache_entry(&text, k).map(|c| (c.ids, c.elf));
        let indexed = omnishim::store::hashcache_entry_indexed(&text, k).map(|c| (c.ids, c.elf));
        assert_eq!(scan, indexed, "key {k:?}");
    }
});
