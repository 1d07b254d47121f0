//! gcc and clang driver command lines.
//!
//! A sorted table says how each option takes its value and what it means to us; the few rules
//! a table cannot say (`-x` applies only to the inputs after it, default output names, `--`,
//! `-Wp,-MD,file`) are written out below it. Options we do not know take no value and mean
//! nothing to us, which is also what the driver does with most of them (`-f...`, `-m...`,
//! `-W...`, `-O...`, `-g...`, `-std=...`).

/// How an option's value attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    /// No value.
    None,
    /// The next argument is the value (`-Xlinker x`).
    Sep,
    /// Value attached to the option (`-Wl,x`, `-print-file-name=x`); matched as a prefix.
    Joined,
    /// Attached or in the next argument (`-Idir`, `-I dir`, `-o out`, `-oout`).
    JoinedOrSep,
}

/// What an option means for recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Means {
    Other,
    Compile,
    Assemble,
    Preprocess,
    SyntaxOnly,
    Info,
    Verbose,
    Output,
    Lang,
    /// -M: make rule only (implies -E)
    DepM,
    /// -MM
    DepMM,
    DepMD,
    DepMMD,
    DepMF,
    /// -MT, -MQ, -MP, -MG: shape the depfile, not where it goes
    DepShape,
    /// -Wp,...: preprocessor options, may hold -MD,file
    Wp,
    /// -l: a library the linker looks up
    Lib,
    /// -r: relocatable link
    Relocatable,
}

use Means as M;
use Val as V;

/// Sorted by name (byte order); `table_is_sorted` keeps it so.
pub const FLAGS: &[(&str, Val, Means)] = &[
    ("-###", V::None, M::Info),
    ("--", V::None, M::Other), // handled before lookup: the rest are inputs
    ("--compile", V::None, M::Compile),
    ("--help", V::None, M::Info),
    ("--output", V::JoinedOrSep, M::Output),
    ("--param", V::JoinedOrSep, M::Other),
    ("--preprocess", V::None, M::Preprocess),
    ("--print-", V::Joined, M::Info),
    ("--serialize-diagnostics", V::Sep, M::Other),
    ("--sysroot", V::JoinedOrSep, M::Other),
    ("--target-help", V::None, M::Info),
    ("--version", V::None, M::Info),
    ("-B", V::JoinedOrSep, M::Other),
    ("-D", V::JoinedOrSep, M::Other),
    ("-E", V::None, M::Preprocess),
    ("-F", V::JoinedOrSep, M::Other),
    ("-I", V::JoinedOrSep, M::Other),
    ("-L", V::JoinedOrSep, M::Other),
    ("-M", V::None, M::DepM),
    ("-MD", V::None, M::DepMD),
    ("-MF", V::JoinedOrSep, M::DepMF),
    ("-MG", V::None, M::DepShape),
    ("-MJ", V::JoinedOrSep, M::Other),
    ("-MM", V::None, M::DepMM),
    ("-MMD", V::None, M::DepMMD),
    ("-MP", V::None, M::DepShape),
    ("-MQ", V::JoinedOrSep, M::DepShape),
    ("-MT", V::JoinedOrSep, M::DepShape),
    ("-S", V::None, M::Assemble),
    ("-T", V::JoinedOrSep, M::Other),
    ("-U", V::JoinedOrSep, M::Other),
    ("-Wp,", V::Joined, M::Wp),
    ("-Xassembler", V::Sep, M::Other),
    ("-Xclang", V::Sep, M::Other),
    ("-Xlinker", V::Sep, M::Other),
    ("-Xpreprocessor", V::Sep, M::Other),
    ("-arch", V::Sep, M::Other),
    ("-aux-info", V::Sep, M::Other),
    ("-c", V::None, M::Compile),
    ("-dumpbase", V::Sep, M::Other),
    ("-dumpbase-ext", V::Sep, M::Other),
    ("-dumpdir", V::Sep, M::Other),
    ("-dumpfullversion", V::None, M::Info),
    ("-dumpmachine", V::None, M::Info),
    ("-dumpspecs", V::None, M::Info),
    ("-dumpversion", V::None, M::Info),
    ("-fsyntax-only", V::None, M::SyntaxOnly),
    ("-gcc-toolchain", V::Sep, M::Other),
    ("-idirafter", V::JoinedOrSep, M::Other),
    ("-imacros", V::JoinedOrSep, M::Other),
    ("-imultilib", V::JoinedOrSep, M::Other),
    ("-include", V::JoinedOrSep, M::Other),
    ("-include-pch", V::Sep, M::Other),
    ("-iprefix", V::JoinedOrSep, M::Other),
    ("-iquote", V::JoinedOrSep, M::Other),
    ("-isysroot", V::JoinedOrSep, M::Other),
    ("-isystem", V::JoinedOrSep, M::Other),
    ("-ivfsoverlay", V::Sep, M::Other),
    ("-iwithprefix", V::JoinedOrSep, M::Other),
    ("-iwithprefixbefore", V::JoinedOrSep, M::Other),
    ("-l", V::JoinedOrSep, M::Lib),
    ("-mllvm", V::Sep, M::Other),
    ("-o", V::JoinedOrSep, M::Output),
    ("-print-", V::Joined, M::Info),
    ("-r", V::None, M::Relocatable),
    ("-target", V::Sep, M::Other),
    ("-u", V::JoinedOrSep, M::Other),
    ("-v", V::None, M::Verbose),
    ("-x", V::JoinedOrSep, M::Lang),
    ("-z", V::JoinedOrSep, M::Other),
];

/// Find an option: exact name first, then the longest table entry that is a prefix of the
/// argument and takes an attached value.
pub fn lookup(arg: &str) -> Option<(&'static str, Val, Means)> {
    if let Ok(i) = FLAGS.binary_search_by(|(n, _, _)| n.cmp(&arg)) {
        return Some(FLAGS[i]);
    }
    let mut end = arg.len();
    while end > 1 {
        end -= 1;
        if !arg.is_char_boundary(end) {
            continue;
        }
        let pre = &arg[..end];
        if let Ok(i) = FLAGS.binary_search_by(|(n, _, _)| n.cmp(&pre)) {
            let (_, v, _) = FLAGS[i];
            if matches!(v, V::Joined | V::JoinedOrSep) {
                return Some(FLAGS[i]);
            }
        }
    }
    None
}

/// What the driver will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// -c: sources to objects
    Compile,
    /// -S: sources to assembly
    Assemble,
    /// -E, or -M/-MM without -MD: no artifact
    Preprocess,
    /// -fsyntax-only, or -c with nothing to compile: no artifact
    NoOutput,
    /// sources compiled and linked in one command
    CompileLink,
    /// objects and libraries linked
    Link,
    /// --version, -print-*, -dumpmachine, no inputs at all...
    Info,
    /// Something we do not record, with the reason.
    Unsupported(String),
}

/// A source the driver compiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: String,
    /// The `-x` language in force for it, if any.
    pub lang: Option<String>,
    /// Its position in argv.
    pub index: usize,
}

/// Dependency-file options the user gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DepOpts {
    /// -MD or -MMD given (indexes of -MMD, which may be turned into -MD)
    pub md: bool,
    pub mmd_at: Vec<usize>,
    /// -MF value
    pub mf: Option<String>,
    /// -M or -MM given
    pub m: bool,
    /// -Wp,-MD,file or -Wp,-MMD,file alone in its argument: (index, file, was MMD)
    pub wp: Option<(usize, String, bool)>,
    /// -MT, -MQ, -MP or -MG given (to the driver or through -Wp): they shape the depfile
    pub shape: bool,
    /// Indexes of the `-Wp,` arguments that hold dependency options (a separate `-M` run
    /// leaves those options out, and keeps the rest of the argument).
    pub wp_dep_at: Vec<usize>,
    /// A `-Wp,` argument joins -MD/-MMD with other options (`-Wp,-MD,f,-MT,t`), or gives
    /// -MF: gcc passes them all to its preprocessor, clang keeps only -MD/-MMD and writes
    /// its default depfile instead, so where the depfile goes depends on the compiler.
    pub wp_joined: bool,
    /// -nostdinc given: no default system include directories.
    pub nostdinc: bool,
    /// An option that adds a system include directory (-isystem, -idirafter, -B...).
    pub system_dirs: bool,
}

/// How a single-source compile gets the list of files it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DepPlan {
    /// The user asked for no depfile: add `-MD -MF <private file>`.
    Private,
    /// The user's depfile (`-MD`, `-Wp,-MD,f`) lists every file read: read it, change
    /// nothing.
    User(String),
    /// The user's `-MMD` depfile, on a step with no system include directory at all: `-MD`
    /// lists the same files in the same bytes, so widen it to `-MD` and read it. (A header
    /// with `#pragma GCC system_header` makes what it includes later a system header; the
    /// depfile then lists those too.)
    Widen(String),
    /// Change nothing; ask the compiler again with `-M` after the step. For a `-MMD` that
    /// would leave out system headers (widening would change the user's depfile), for
    /// depfile options whose effect differs between gcc and clang, and for -MT/-MQ/-MP
    /// without -MD (gcc rejects them: adding our -MD would make the step succeed).
    Rerun,
}

/// Options that add system include directories: headers found there (and what they include)
/// are left out of a `-MMD` depfile. `-B` adds `<prefix>/include` as one for gcc.
fn adds_system_dir(opt: &str) -> bool {
    [
        "-isystem",
        "-idirafter",
        "-iwithprefix",
        "-iframework",
        "-cxx-isystem",
        "-internal-",
        "--system-header-prefix",
        "-B",
    ]
    .iter()
    .any(|p| opt.starts_with(p))
}

/// The parts of a `-Wp,` value (`-MD,f,-MT,t` -> `["-MD", "f", "-MT", "t"]`), grouped into
/// preprocessor options with their values.
fn wp_options(value: &str) -> Vec<Vec<&str>> {
    let parts: Vec<&str> = value.split(',').collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < parts.len() {
        let p = parts[k];
        let takes_value = matches!(
            p,
            "-MD"
                | "-MMD"
                | "-MF"
                | "-MT"
                | "-MQ"
                | "-isystem"
                | "-idirafter"
                | "-iwithprefix"
                | "-iwithprefixbefore"
                | "-I"
                | "-D"
                | "-U"
                | "-include"
                | "-imacros"
                | "-iquote"
        );
        let n = if takes_value { 2 } else { 1 };
        out.push(parts[k..(k + n).min(parts.len())].to_vec());
        k += n;
    }
    out
}

/// Is this preprocessor option (as given through `-Wp,`) about the depfile?
fn is_dep_option(opt: &str) -> bool {
    opt.starts_with("-M")
}

/// A `-Wp,` argument without its dependency options, for a separate `-M` run; None when
/// nothing is left.
pub fn wp_strip_deps(arg: &str) -> Option<String> {
    let value = arg.strip_prefix("-Wp,")?;
    let kept: Vec<String> = wp_options(value)
        .into_iter()
        .filter(|o| !is_dep_option(o[0]))
        .map(|o| o.join(","))
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(format!("-Wp,{}", kept.join(",")))
    }
}

/// A classified driver command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CcStep {
    pub mode: Mode,
    pub sources: Vec<Source>,
    /// Files given to the linker on the command line (objects, archives, scripts, others).
    pub link_inputs: Vec<String>,
    /// The -o value.
    pub output: Option<String>,
    pub dep: DepOpts,
    /// Some -x was given (so anything we append must reset it with `-x none`).
    pub x_used: bool,
    /// -r
    pub relocatable: bool,
    /// argv indexes that belong to compile/link control and to the inputs: what a separate
    /// `-M` run of the same command must leave out.
    pub control_idx: Vec<usize>,
}

/// Language of a file by its extension, as the driver sees it.
pub fn lang_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "c" => "c",
        "i" => "cpp-output",
        "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => "c++",
        "ii" => "c++-cpp-output",
        "h" => "c-header",
        "hh" | "H" | "hp" | "hxx" | "hpp" | "HPP" | "h++" | "tcc" => "c++-header",
        "s" => "assembler",
        "S" | "sx" => "assembler-with-cpp",
        "m" => "objective-c",
        "mi" => "objective-c-cpp-output",
        "mm" | "M" => "objective-c++",
        "mii" => "objective-c++-cpp-output",
        "f" | "for" | "ftn" | "f90" | "f95" | "f03" | "f08" => "f95",
        "F" | "FOR" | "fpp" | "FPP" | "F90" | "F95" | "F03" | "F08" => "f95-cpp-input",
        _ => return None,
    })
}

fn is_header_lang(lang: &str) -> bool {
    lang.ends_with("-header")
}

/// Headers given without -c are still only compiled (to precompiled headers), never linked.
fn only_headers(sources: &[Source]) -> bool {
    !sources.is_empty()
        && sources.iter().all(|s| {
            s.lang
                .as_deref()
                .or_else(|| lang_of(&s.path))
                .is_some_and(is_header_lang)
        })
}

/// `dir/name.ext` -> `name`
fn stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => name,
    }
}

/// Classify an (expanded) argv, without the program name.
pub fn classify(args: &[String]) -> CcStep {
    let mut st = CcStep {
        mode: Mode::Info,
        sources: Vec::new(),
        link_inputs: Vec::new(),
        output: None,
        dep: DepOpts::default(),
        x_used: false,
        relocatable: false,
        control_idx: Vec::new(),
    };
    let (mut compile, mut assemble, mut preprocess, mut syntax_only, mut info) =
        (false, false, false, false, false);
    let mut lang: Option<String> = None;
    let mut stdin = false;
    let mut missing_value: Option<String> = None;
    let mut only_inputs = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let is_input = only_inputs || a == "-" || !a.starts_with('-');
        if is_input {
            st.control_idx.push(i);
            if a == "-" {
                stdin = true;
            }
            let l = lang.clone().or_else(|| lang_of(a).map(str::to_string));
            match l {
                Some(l) if l != "none" => st.sources.push(Source {
                    path: a.clone(),
                    lang: lang.clone(),
                    index: i,
                }),
                _ => st.link_inputs.push(a.clone()),
            }
            i += 1;
            continue;
        }
        if a == "--" {
            only_inputs = true;
            i += 1;
            continue;
        }
        // before the lookup: most of these are not in the table
        if a == "-nostdinc" {
            st.dep.nostdinc = true;
        } else if adds_system_dir(a) {
            st.dep.system_dirs = true;
        }
        let Some((name, val, means)) = lookup(a) else {
            i += 1;
            continue;
        };
        // the value: attached, or the next argument
        let (value, used) = match val {
            V::None => (None, 1),
            V::Joined => (Some(a[name.len()..].to_string()), 1),
            V::Sep => (args.get(i + 1).cloned(), 2),
            V::JoinedOrSep => {
                let rest = &a[name.len()..];
                if a.len() > name.len() {
                    // --output=x / --sysroot=x; a single-dash option keeps a leading '='
                    let rest = if name.starts_with("--") {
                        rest.strip_prefix('=').unwrap_or(rest)
                    } else {
                        rest
                    };
                    (Some(rest.to_string()), 1)
                } else {
                    (args.get(i + 1).cloned(), 2)
                }
            }
        };
        if value.is_none() && val != V::None {
            missing_value = Some(a.clone());
        }
        let span: Vec<usize> = (i..(i + used).min(args.len())).collect();
        if a == "-Xpreprocessor" && value.as_deref().is_some_and(adds_system_dir) {
            st.dep.system_dirs = true;
        }
        match means {
            M::Other => {}
            M::DepShape => {
                st.dep.shape = true;
                st.control_idx.extend(&span);
            }
            M::Compile => {
                compile = true;
                st.control_idx.extend(&span);
            }
            M::Assemble => {
                assemble = true;
                st.control_idx.extend(&span);
            }
            M::Preprocess => {
                preprocess = true;
                st.control_idx.extend(&span);
            }
            M::SyntaxOnly => syntax_only = true,
            M::Info => info = true,
            M::Verbose => {}
            M::Output => {
                st.output = value;
                st.control_idx.extend(&span);
            }
            M::Lang => {
                lang = value.filter(|v| v != "none");
                st.x_used = true;
            }
            M::DepM | M::DepMM => {
                st.dep.m = true;
                st.control_idx.extend(&span);
            }
            M::DepMD => {
                st.dep.md = true;
                st.control_idx.extend(&span);
            }
            M::DepMMD => {
                st.dep.md = true;
                st.dep.mmd_at.push(i);
                st.control_idx.extend(&span);
            }
            M::DepMF => {
                st.dep.mf = value;
                st.control_idx.extend(&span);
            }
            M::Wp => {
                let v = value.unwrap_or_default();
                let opts = wp_options(&v);
                let mut deps = 0;
                let mut sets_file = false;
                for o in &opts {
                    let name = o[0];
                    if name == "-nostdinc" {
                        st.dep.nostdinc = true;
                    }
                    if adds_system_dir(name) {
                        st.dep.system_dirs = true;
                    }
                    if !is_dep_option(name) {
                        continue;
                    }
                    deps += 1;
                    match name {
                        "-MD" | "-MMD" | "-MF" if o.len() == 2 => {
                            sets_file = true;
                            if name != "-MF" {
                                st.dep.md = true;
                            }
                        }
                        "-MT" | "-MQ" if o.len() == 2 => st.dep.shape = true,
                        "-MP" => st.dep.shape = true,
                        _ if name.starts_with("-MF") && name.len() > 3 => sets_file = true,
                        _ if name.starts_with("-MT") || name.starts_with("-MQ") => {
                            st.dep.shape = true
                        }
                        _ => {
                            // -M, -MM (rule on standard output, no object), -MG (missing
                            // headers as generated: only with -M), a value missing
                            st.mode = Mode::Unsupported(format!(
                                "dependency option {} in {a}",
                                o.join(",")
                            ));
                        }
                    }
                }
                if deps > 0 {
                    st.dep.wp_dep_at.push(i);
                    st.control_idx.push(i);
                }
                match opts.as_slice() {
                    [o] if o.len() == 2 && (o[0] == "-MD" || o[0] == "-MMD") => {
                        st.dep.wp = Some((i, o[1].to_string(), o[0] == "-MMD"));
                    }
                    _ if sets_file => st.dep.wp_joined = true,
                    _ => {}
                }
            }
            M::Lib => {
                if let Some(v) = value {
                    st.link_inputs.push(format!("-l{v}"));
                }
            }
            M::Relocatable => st.relocatable = true,
        }
        i += used;
    }

    if let Mode::Unsupported(_) = st.mode {
        return st;
    }
    let no_inputs = st.sources.is_empty() && st.link_inputs.is_empty();
    // -v alone, like any call without inputs, only informs
    st.mode = if info || no_inputs {
        Mode::Info
    } else if preprocess || (st.dep.m && !st.dep.md) {
        Mode::Preprocess
    } else if syntax_only {
        Mode::NoOutput
    } else if stdin {
        Mode::Unsupported("source read from standard input".into())
    } else if let Some(opt) = missing_value {
        Mode::Unsupported(format!("{opt} without a value"))
    } else if st.output.as_deref() == Some("-") {
        Mode::Unsupported("output to standard output".into())
    } else if assemble || compile || only_headers(&st.sources) {
        if st.sources.is_empty() {
            Mode::NoOutput
        } else if st.sources.len() > 1 && st.output.is_some() {
            Mode::Unsupported("-o with several sources".into())
        } else if assemble {
            Mode::Assemble
        } else {
            Mode::Compile
        }
    } else if st.sources.is_empty() {
        Mode::Link
    } else {
        Mode::CompileLink
    };
    st
}

impl CcStep {
    /// The files this step writes, in source order, relative to the working directory.
    pub fn outputs(&self) -> Vec<String> {
        match self.mode {
            Mode::Compile | Mode::Assemble => {
                if let Some(o) = &self.output {
                    return vec![o.clone()];
                }
                self.sources
                    .iter()
                    .map(|s| {
                        let l = s
                            .lang
                            .clone()
                            .or_else(|| lang_of(&s.path).map(str::to_string));
                        if l.as_deref().is_some_and(is_header_lang) && self.mode == Mode::Compile {
                            format!("{}.gch", s.path)
                        } else if self.mode == Mode::Assemble {
                            format!("{}.s", stem(&s.path))
                        } else {
                            format!("{}.o", stem(&s.path))
                        }
                    })
                    .collect()
            }
            Mode::Link | Mode::CompileLink => {
                vec![self.output.clone().unwrap_or_else(|| "a.out".to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// How a compile of one source gets the list of files it read. `env_system_dirs`: the
    /// environment adds system include directories (`C_INCLUDE_PATH`...).
    pub fn deps_plan(&self, env_system_dirs: bool) -> DepPlan {
        let d = &self.dep;
        if self.sources.len() != 1 || d.wp_joined {
            return DepPlan::Rerun;
        }
        if !d.md {
            return if d.shape {
                DepPlan::Rerun
            } else {
                DepPlan::Private
            };
        }
        let Some(file) = self.user_depfile() else {
            return DepPlan::Rerun;
        };
        let mmd = !d.mmd_at.is_empty() || d.wp.as_ref().is_some_and(|w| w.2);
        if !mmd {
            DepPlan::User(file)
        } else if d.nostdinc && !d.system_dirs && !env_system_dirs {
            DepPlan::Widen(file)
        } else {
            DepPlan::Rerun
        }
    }

    /// Where the user's own `-MD`/`-MMD` depfile goes (when they asked for one and its name
    /// is fixed by the rules we know: -MF, -Wp,-MD,f, or -c/-S of one source).
    pub fn user_depfile(&self) -> Option<String> {
        if self.dep.wp_joined {
            return None; // gcc and clang disagree
        }
        if let Some((_, f, _)) = &self.dep.wp {
            return Some(f.clone());
        }
        if !self.dep.md {
            return None;
        }
        if let Some(mf) = &self.dep.mf {
            return Some(mf.clone());
        }
        match (&self.mode, self.sources.as_slice()) {
            (Mode::Compile | Mode::Assemble, [src]) => Some(match &self.output {
                Some(o) => {
                    // the output name with its suffix replaced by .d
                    let (dir, name) = match o.rsplit_once('/') {
                        Some((d, n)) => (format!("{d}/"), n),
                        None => (String::new(), o.as_str()),
                    };
                    let base = match name.rsplit_once('.') {
                        Some((s, _)) if !s.is_empty() => s,
                        _ => name,
                    };
                    format!("{dir}{base}.d")
                }
                None => format!("{}.d", stem(&src.path)),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted() {
        for w in FLAGS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn lookup_prefers_exact_then_longest_prefix() {
        assert_eq!(lookup("-MMD").map(|f| f.2), Some(M::DepMMD));
        assert_eq!(lookup("-MFdep.d").map(|f| f.2), Some(M::DepMF));
        assert_eq!(lookup("-include-pch").map(|f| f.2), Some(M::Other));
        assert_eq!(lookup("-iquotedir").map(|f| f.0), Some("-iquote"));
        assert_eq!(
            lookup("-print-file-name=crt1.o").map(|f| f.2),
            Some(M::Info)
        );
        assert_eq!(lookup("-O2"), None);
        assert_eq!(lookup("-lm").map(|f| f.2), Some(M::Lib));
    }
}
