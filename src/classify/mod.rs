//! Pure classification of tool command lines: argv in, a description of the step out. No I/O
//! here; response files are expanded beforehand by `rsp`.

pub mod ar;
pub mod arg;
pub mod gcc;
pub mod ld;
pub mod rsp;

/// Which tool family a program name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Cc,
    Cxx,
    Ld,
    Ar,
    Ranlib,
}

const NAMES: &[(&str, Family)] = &[
    ("c++", Family::Cxx),
    ("c89", Family::Cc),
    ("c99", Family::Cc),
    ("cc", Family::Cc),
    ("clang", Family::Cc),
    ("clang++", Family::Cxx),
    ("g++", Family::Cxx),
    ("gcc", Family::Cc),
    ("ar", Family::Ar),
    ("ld", Family::Ld),
    ("ld.bfd", Family::Ld),
    ("ld.gold", Family::Ld),
    ("ld.lld", Family::Ld),
    ("ld.mold", Family::Ld),
    ("mold", Family::Ld),
    ("ranlib", Family::Ranlib),
];

/// The family of a masquerade name: `gcc`, `x86_64-linux-gnu-gcc-12`, `clang++-14`,
/// `aarch64-linux-gnu-ld.bfd`, `gcc-ar`, `llvm-ar-14`, `ranlib`...
pub fn family_of(name: &str) -> Option<Family> {
    // drop a trailing version: -12, -14.0
    let mut core = name;
    if let Some((head, tail)) = name.rsplit_once('-') {
        if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit() || c == '.') {
            core = head;
        }
    }
    // longest base name that the core is, or ends with after a '-'
    let mut best: Option<(usize, Family)> = None;
    for &(base, fam) in NAMES {
        let hit = core == base
            || (core.len() > base.len()
                && core.ends_with(base)
                && core.as_bytes()[core.len() - base.len() - 1] == b'-');
        if hit && best.is_none_or(|(l, _)| base.len() > l) {
            best = Some((base.len(), fam));
        }
    }
    best.map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_names() {
        for (n, f) in [
            ("gcc", Some(Family::Cc)),
            ("cc", Some(Family::Cc)),
            ("x86_64-linux-gnu-gcc-12", Some(Family::Cc)),
            ("aarch64-linux-gnu-gcc", Some(Family::Cc)),
            ("clang++-14", Some(Family::Cxx)),
            ("g++", Some(Family::Cxx)),
            ("x86_64-linux-gnu-g++-12", Some(Family::Cxx)),
            ("ld.lld", Some(Family::Ld)),
            ("aarch64-linux-gnu-ld.bfd", Some(Family::Ld)),
            ("mold", Some(Family::Ld)),
            ("gcc-ar", Some(Family::Ar)),
            ("x86_64-linux-gnu-gcc-ar-12", Some(Family::Ar)),
            ("llvm-ar-14", Some(Family::Ar)),
            ("ranlib", Some(Family::Ranlib)),
            ("gcc-ranlib", Some(Family::Ranlib)),
            ("make", None),
            ("cpp", None),
            ("xcc", None),
        ] {
            assert_eq!(family_of(n), f, "{n}");
        }
    }
}
