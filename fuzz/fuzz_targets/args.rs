//! Any command line (NUL-separated arguments, any bytes) for each classifier: gcc, ld, ar,
//! ranlib, the linker-map options and the response-file tokenizer must return; bytes carried
//! in strings come back exactly; a quoted argument tokenizes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use omnishim::classify::{ar, arg, gcc, ld, rsp};

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data.split(|&b| b == 0).map(arg::from_bytes).collect();
    for (a, raw) in args.iter().zip(data.split(|&b| b == 0)) {
        assert_eq!(
            arg::to_bytes(a),
            raw,
            "an argument's bytes come back exactly"
        );
    }
    let step = gcc::classify(&args);
    let _ = step.outputs();
    let _ = step.deps_plan(false);
    let _ = step.user_depfile();
    for a in &args {
        let _ = gcc::wp_strip_deps(a);
        let _ = gcc::lang_of(a);
    }
    let _ = ld::classify(&args);
    let _ = ld::user_map(&args);
    let _ = ld::driver_linker_args(&args);
    let _ = ld::may_pull_members(&args);
    let _ = ar::classify(&args);
    let _ = ar::classify_ranlib(&args);
    let _ = omnishim::classify::family_of(&args[0]);
    // a response file: its text tokenized, and each argument quoted then tokenized back
    let text = arg::from_bytes(data);
    let _ = rsp::tokenize(&text);
    for a in &args {
        if !a.is_empty() {
            assert_eq!(
                rsp::tokenize(&rsp::quote(a)),
                vec![a.clone()],
                "quote of {a:?}"
            );
        }
    }
});
