//! Linker command lines (ld.bfd, gold, lld, mold): what is output, what is input, which mode.
//! The linker itself says what it read (`--dependency-file`); here we only need the output,
//! the mode, and the options whose value is a separate argument (so it is not taken for an
//! input).

/// Options whose value is the next argument when not attached. Sorted; see the test.
pub const SEPARATE: &[&str] = &[
    "--architecture",
    "--audit",
    "--auxiliary",
    "--defsym",
    "--dynamic-linker",
    "--dynamic-list",
    "--entry",
    "--exclude-libs",
    "--filter",
    "--format",
    "--hash-style",
    "--image-base",
    "--library",
    "--library-path",
    "--output",
    "--plugin",
    "--plugin-opt",
    "--retain-symbols-file",
    "--script",
    "--section-start",
    "--soname",
    "--sysroot",
    "--trace-symbol",
    "--undefined",
    "--version-script",
    "--wrap",
    "-A",
    "-F",
    "-G",
    "-L",
    "-Map",
    "-O",
    "-R",
    "-T",
    "-Tbss",
    "-Tdata",
    "-Ttext",
    "-Y",
    "-a",
    "-b",
    "-dT",
    "-e",
    "-f",
    "-h",
    "-l",
    "-m",
    "-o",
    "-plugin",
    "-plugin-opt",
    "-rpath",
    "-rpath-link",
    "-soname",
    "-u",
    "-y",
    "-z",
];

/// Options that take no value but that share a prefix with one that does.
const NO_VALUE: &[&str] = &[
    "-Bdynamic",
    "-Bshareable",
    "-Bstatic",
    "-Bsymbolic",
    "-Bsymbolic-functions",
    "-E",
    "-M",
    "-N",
    "-Qy",
    "-S",
    "-V",
    "-X",
    "-d",
    "-dc",
    "-dp",
    "-g",
    "-i",
    "-n",
    "-q",
    "-r",
    "-s",
    "-t",
    "-v",
    "-x",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LdMode {
    /// A link producing an executable or shared object.
    Link,
    /// `-r`: a relocatable object.
    Relocatable,
    /// --version, -v, --help, no inputs.
    Info,
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdStep {
    pub mode: LdMode,
    pub output: String,
    /// Input files named on the command line (not -l).
    pub inputs: Vec<String>,
    /// A `-b`/`--format` was given: what we append must reset it.
    pub format_set: bool,
}

fn takes_separate(a: &str) -> bool {
    SEPARATE.binary_search(&a).is_ok()
}

/// Classify an (expanded) linker argv, without the program name.
pub fn classify(args: &[String]) -> LdStep {
    let mut st = LdStep {
        mode: LdMode::Link,
        output: "a.out".into(),
        inputs: Vec::new(),
        format_set: false,
    };
    let (mut info, mut reloc) = (false, false);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if !a.starts_with('-') || a == "-" {
            st.inputs.push(a.to_string());
            i += 1;
            continue;
        }
        // long options may be written with one or two dashes; --opt=value attaches
        let (name, attached) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (a, None),
        };
        let canon = if name.starts_with("--") {
            name.to_string()
        } else if name.len() > 2 && takes_separate(&format!("-{name}")) {
            format!("-{name}")
        } else {
            name.to_string()
        };
        let value: Option<String>;
        if attached.is_none() && takes_separate(&canon) && !NO_VALUE.contains(&a) {
            value = args.get(i + 1).cloned();
            i += 2;
        } else if attached.is_some() {
            value = attached.map(str::to_string);
            i += 1;
        } else {
            // short options with the value attached: -ofile, -lfoo, -Lpath, -Tscript
            let short = ["-o", "-l", "-L", "-T", "-e", "-u", "-m", "-z", "-h", "-y"]
                .iter()
                .find(|p| a.starts_with(**p) && a.len() > p.len() && !NO_VALUE.contains(&a));
            value = short.map(|p| a[p.len()..].to_string());
            i += 1;
            match short {
                Some(&"-o") => st.output = value.clone().unwrap_or_default(),
                _ => match a {
                    "-r" | "-i" | "--relocatable" | "-relocatable" => reloc = true,
                    "--version" | "-v" | "-V" | "--help" | "-version" => info = true,
                    _ => {}
                },
            }
            continue;
        }
        match canon.as_str() {
            "-o" | "--output" => match value {
                Some(v) => st.output = v,
                None => st.mode = LdMode::Unsupported(format!("{a} without a value")),
            },
            "-b" | "--format" => st.format_set = true,
            _ => {}
        }
    }
    if matches!(st.mode, LdMode::Unsupported(_)) {
        return st;
    }
    st.mode = if info || st.inputs.is_empty() && !args.iter().any(|a| a.starts_with("-l")) {
        LdMode::Info
    } else if reloc {
        LdMode::Relocatable
    } else {
        LdMode::Link
    };
    st
}

/// The map the user asked the linker for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserMap {
    /// `-Map FILE`, `-Map=FILE`, `--Map=FILE`.
    File(String),
    /// `-M`, `--print-map`: on standard output, where we may not add anything.
    Stdout,
}

/// The user's own map request among linker arguments, if any (a file wins over stdout).
pub fn user_map(args: &[String]) -> Option<UserMap> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-M" | "--print-map" => {
                if found.is_none() {
                    found = Some(UserMap::Stdout);
                }
            }
            "-Map" | "--Map" => {
                if let Some(v) = args.get(i + 1) {
                    found = Some(UserMap::File(v.clone()));
                }
                i += 1;
            }
            _ => {
                if let Some(v) = a.strip_prefix("-Map=").or_else(|| a.strip_prefix("--Map=")) {
                    found = Some(UserMap::File(v.to_string()));
                }
            }
        }
        i += 1;
    }
    found
}

/// The arguments a compiler driver hands to its linker: `-Wl,a,b` and `-Xlinker a`.
pub fn driver_linker_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(rest) = a.strip_prefix("-Wl,") {
            out.extend(rest.split(',').map(str::to_string));
        } else if a == "-Xlinker" {
            if let Some(v) = args.get(i + 1) {
                out.push(v.clone());
            }
            i += 1;
        }
        i += 1;
    }
    out
}

/// Does the command line name a static archive or a library to search for (which may be
/// one)? Only then can a link pull archive members, and only then do we ask for a map.
pub fn may_pull_members(args: &[String]) -> bool {
    args.iter().any(|a| {
        a.ends_with(".a") || (a.starts_with("-l") && a.len() > 2) || a.starts_with("--library")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> LdStep {
        classify(&s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn tables_are_sorted() {
        for w in SEPARATE.windows(2) {
            assert!(w[0] < w[1], "{} before {}", w[0], w[1]);
        }
    }

    #[test]
    fn linker_lines() {
        let cases: &[(&str, LdMode, &str, &[&str])] = &[
            (
                "-r a.o b.o -o ab.o",
                LdMode::Relocatable,
                "ab.o",
                &["a.o", "b.o"],
            ),
            (
                "--relocatable a.o -oab.o",
                LdMode::Relocatable,
                "ab.o",
                &["a.o"],
            ),
            (
                "-shared -soname libx.so.1 a.o -o libx.so",
                LdMode::Link,
                "libx.so",
                &["a.o"],
            ),
            (
                "-pie -dynamic-linker /lib/ld.so crt1.o a.o -lc -o p",
                LdMode::Link,
                "p",
                &["crt1.o", "a.o"],
            ),
            (
                "--dynamic-linker=/lib/ld.so a.o",
                LdMode::Link,
                "a.out",
                &["a.o"],
            ),
            ("-T script.ld a.o --output=x", LdMode::Link, "x", &["a.o"]),
            (
                "-m elf_x86_64 -z now -L /usr/lib a.o -o p",
                LdMode::Link,
                "p",
                &["a.o"],
            ),
            (
                "--start-group a.a b.a --end-group -o p",
                LdMode::Link,
                "p",
                &["a.a", "b.a"],
            ),
            (
                "--whole-archive a.a --no-whole-archive -o p",
                LdMode::Link,
                "p",
                &["a.a"],
            ),
            (
                "-Bstatic -lfoo -Bdynamic a.o",
                LdMode::Link,
                "a.out",
                &["a.o"],
            ),
            ("-static a.o -o p", LdMode::Link, "p", &["a.o"]),
            ("--version", LdMode::Info, "a.out", &[]),
            ("-v", LdMode::Info, "a.out", &[]),
            ("", LdMode::Info, "a.out", &[]),
            ("-lc -o p", LdMode::Link, "p", &[]),
            (
                "-o",
                LdMode::Unsupported("-o without a value".into()),
                "a.out",
                &[],
            ),
            (
                "-plugin /x/liblto.so -plugin-opt=-pass-through=-lgcc a.o -o p",
                LdMode::Link,
                "p",
                &["a.o"],
            ),
            (
                "-rpath /opt/lib -rpath-link /x a.o",
                LdMode::Link,
                "a.out",
                &["a.o"],
            ),
            (
                "-b binary data.bin -o d.o -r",
                LdMode::Relocatable,
                "d.o",
                &["data.bin"],
            ),
        ];
        for (line, mode, out, inputs) in cases {
            let st = c(line);
            assert_eq!(&st.mode, mode, "{line}");
            assert_eq!(st.output, *out, "{line}");
            assert_eq!(st.inputs, *inputs, "{line}");
        }
        assert!(c("-b binary x -o y").format_set);
    }
}
