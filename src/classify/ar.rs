//! `ar` and `ranlib` command lines: which archive, and whether the step changes it.
//!
//! GNU syntax: `ar [--plugin p] [--target t] [--thin] [-X32_64] [-]key[mods] [relpos]
//! [count] archive [member...]`. The key holds one operation (d m p q r s t x) and modifiers;
//! `a`, `b`, `i` take a member name and `N` a count before the archive.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArMode {
    /// Creates or changes the archive: d, m, q, r, s, or ranlib.
    Modify,
    /// t, x, p: reads only.
    Read,
    /// --version, --help, nothing to do.
    Info,
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArStep {
    pub mode: ArMode,
    pub archive: Option<String>,
}

/// Classify an (expanded) ar argv, without the program name.
pub fn classify(args: &[String]) -> ArStep {
    let mut st = ArStep {
        mode: ArMode::Info,
        archive: None,
    };
    let mut i = 0;
    let mut key: Option<String> = None;
    let mut extra_positional = 0; // relpos / count arguments before the archive
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--version" | "-V" | "--help" | "-h" => return st,
            "--plugin" | "--target" | "--output" | "--format" => {
                i += 2;
                continue;
            }
            "--thin" | "-X32_64" | "-X32" | "-X64" | "--record-libdeps" => {
                i += 1;
                continue;
            }
            _ if a.starts_with("--") => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if key.is_none() {
            let k = a.strip_prefix('-').unwrap_or(a);
            if k.is_empty() {
                st.mode = ArMode::Unsupported(format!("cannot read the operation in '{a}'"));
                return st;
            }
            // modifiers may follow as separate -x words (ar -r -c -s lib.a ...)
            let mut k = k.to_string();
            while let Some(next) = args.get(i + 1) {
                let more = next.strip_prefix('-').filter(|m| {
                    !m.is_empty() && m.chars().all(|c| "abcDfilNoOPsSTuUvV".contains(c))
                });
                match more {
                    Some(m) => {
                        k.push_str(m);
                        i += 1;
                    }
                    None => break,
                }
            }
            extra_positional = k
                .chars()
                .filter(|c| matches!(c, 'a' | 'b' | 'i' | 'N'))
                .count();
            key = Some(k);
            i += 1;
            continue;
        }
        if extra_positional > 0 {
            extra_positional -= 1;
            i += 1;
            continue;
        }
        st.archive = Some(a.to_string());
        break;
    }
    let Some(k) = key else { return st };
    let ops: Vec<char> = k.chars().filter(|c| "dmpqrstx".contains(*c)).collect();
    // `s` is an operation alone and a modifier next to another one
    let op = ops.iter().find(|c| **c != 's').or(ops.first()).copied();
    st.mode = match op {
        Some('d' | 'm' | 'q' | 'r' | 's') => ArMode::Modify,
        Some('t' | 'x' | 'p') => ArMode::Read,
        _ => ArMode::Unsupported(format!("unknown operation in '{k}'")),
    };
    if st.archive.is_none() && st.mode == ArMode::Modify {
        st.mode = ArMode::Unsupported("no archive named".into());
    }
    st
}

/// ranlib: every non-option argument is an archive it rewrites.
pub fn classify_ranlib(args: &[String]) -> Vec<String> {
    if args
        .iter()
        .any(|a| a == "--version" || a == "-v" || a == "-V" || a == "--help" || a == "-h")
    {
        return Vec::new();
    }
    args.iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> ArStep {
        classify(&s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn ar_lines() {
        let m = |a: &str| (ArMode::Modify, Some(a.to_string()));
        let r = |a: &str| (ArMode::Read, Some(a.to_string()));
        let cases: Vec<(&str, (ArMode, Option<String>))> = vec![
            ("rcs libx.a a.o b.o", m("libx.a")),
            ("-rcs libx.a a.o", m("libx.a")),
            ("cr libx.a a.o", m("libx.a")),
            ("q libx.a a.o", m("libx.a")),
            ("s libx.a", m("libx.a")),
            ("d libx.a a.o", m("libx.a")),
            ("rcsD libx.a a.o", m("libx.a")),
            ("rcsU libx.a a.o", m("libx.a")),
            ("rcT libx.a a.o", m("libx.a")),
            ("--thin rc libx.a a.o", m("libx.a")),
            ("rb b.o libx.a a.o", m("libx.a")),
            ("ma a.o libx.a c.o", m("libx.a")),
            ("rN 2 libx.a a.o", m("libx.a")),
            ("--plugin /x/lto.so rcs libx.a a.o", m("libx.a")),
            ("-r -c -s libx.a a.o", m("libx.a")),
            ("t libx.a", r("libx.a")),
            ("tv libx.a", r("libx.a")),
            ("x libx.a a.o", r("libx.a")),
            ("p libx.a a.o", r("libx.a")),
            ("--version", (ArMode::Info, None)),
            ("", (ArMode::Info, None)),
            (
                "z libx.a",
                (
                    ArMode::Unsupported("unknown operation in 'z'".into()),
                    Some("libx.a".into()),
                ),
            ),
            (
                "rcs",
                (ArMode::Unsupported("no archive named".into()), None),
            ),
        ];
        for (line, (mode, archive)) in cases {
            let st = c(line);
            assert_eq!(st.mode, mode, "{line}");
            assert_eq!(st.archive, archive, "{line}");
        }
        assert_eq!(classify_ranlib(&["-D".into(), "l.a".into()]), vec!["l.a"]);
    }
}
