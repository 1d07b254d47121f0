//! Reading `ar` archives to list their members, as `ar t` / `ar p` see them: GNU (SysV) and BSD
//! member names of any length, the `/`, `/SYM64/` and `__.SYMDEF*` symbol tables, thin
//! archives, and the members of regular archives a thin archive refers to (GNU ar's `/N:M`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArError {
    #[error("not an ar archive")]
    NotArchive,
    #[error("corrupt archive: {0}")]
    Corrupt(&'static str),
    /// A thin archive refers to members of another archive that cannot be read.
    #[error("nested archive {0}")]
    Nested(String),
}

/// Where a member's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<'a> {
    /// In the archive itself (owned when read from a regular archive a thin archive refers to).
    Inline(Cow<'a, [u8]>),
    /// A thin archive's member: a file, relative to the archive's directory unless absolute.
    External(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: String,
    pub content: Content<'a>,
}

pub fn is_archive(head: &[u8]) -> bool {
    head.starts_with(b"!<arch>\n") || head.starts_with(b"!<thin>\n")
}

/// How deep thin archives may refer to other archives (GNU ar writes one level).
const MAX_NESTING: usize = 4;

/// Every real member (symbol tables and the long-name table left out), in archive order.
/// A thin archive's reference to a member of another archive (GNU ar's `/N:M`, written when a
/// regular archive is added to a thin one) gives that member, read from the other archive.
pub fn members<'a>(bytes: &'a [u8], archive_path: &Path) -> Result<Vec<Member<'a>>, ArError> {
    Ok(parse(bytes, archive_path, 0)?
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

/// The value of a header field: its bytes up to the trailing spaces.
fn field(h: &[u8]) -> &[u8] {
    let end = h.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &h[..end]
}

fn decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A GNU long-name reference `/N`, or `/N:M` (a member at offset M of the archive named N).
/// GNU ar leaves a `/` at the end of the field when the name was exactly 15 bytes long
/// (`/21            /`), so trailing spaces and one `/` are allowed after the number.
fn long_ref(name: &[u8]) -> Option<(usize, Option<usize>)> {
    let rest = name.strip_prefix(b"/")?;
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    let rest = field(rest);
    match rest.iter().position(|&c| c == b':') {
        Some(i) => Some((decimal(&rest[..i])?, Some(decimal(&rest[i + 1..])?))),
        None => Some((decimal(rest)?, None)),
    }
}

/// The name at `i` of a GNU long-name table: entries end in `/\n` (`\0` in some writers).
fn long_name(table: &[u8], i: usize) -> Result<&[u8], ArError> {
    let rest = table
        .get(i..)
        .ok_or(ArError::Corrupt("long-name index out of range"))?;
    let end = rest
        .iter()
        .position(|&c| c == b'\n' || c == b'\0')
        .unwrap_or(rest.len());
    let n = &rest[..end];
    Ok(n.strip_suffix(b"/").unwrap_or(n))
}

/// A name in the header itself, read as GNU ar and llvm-ar read it: up to the first NUL,
/// else the first `/` (GNU, which allows spaces), else the first space (BSD). So GNU ar's
/// `ar rcP` of `kernel/sysctl.o`, written in the field as is, reads back as `kernel`.
fn short_name(f: &[u8]) -> &[u8] {
    let end = f
        .iter()
        .position(|&c| c == 0)
        .or_else(|| f.iter().position(|&c| c == b'/'))
        .or_else(|| f.iter().position(|&c| c == b' '))
        .unwrap_or(f.len());
    &f[..end]
}

fn is_symbol_table(name: &[u8]) -> bool {
    matches!(
        name,
        b"__.SYMDEF" | b"__.SYMDEF SORTED" | b"__.SYMDEF_64" | b"__.SYMDEF_64 SORTED"
    )
}

/// The members with the offset of each one's header.
fn parse<'a>(
    bytes: &'a [u8],
    archive_path: &Path,
    depth: usize,
) -> Result<Vec<(usize, Member<'a>)>, ArError> {
    let thin = if bytes.starts_with(b"!<arch>\n") {
        false
    } else if bytes.starts_with(b"!<thin>\n") {
        true
    } else {
        return Err(ArError::NotArchive);
    };
    let dir = archive_path.parent().unwrap_or(Path::new(""));
    let in_dir = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let mut out = Vec::new();
    let mut long_names: &[u8] = &[];
    // archives a thin archive refers to, read once each
    let mut nested = HashMap::new();
    let mut off = 8usize;
    while off < bytes.len() {
        if bytes.len() - off < 60 {
            if bytes[off..].iter().all(|&c| c == b'\n') {
                break;
            }
            return Err(ArError::Corrupt("member header past end of file"));
        }
        let at = off;
        let h = &bytes[off..off + 60];
        if &h[58..60] != b"`\n" {
            return Err(ArError::Corrupt("bad member header magic"));
        }
        let size = decimal(field(&h[48..58])).ok_or(ArError::Corrupt("bad member size"))?;
        let raw = field(&h[..16]);
        let table = raw == b"/" || raw == b"//" || raw == b"/SYM64/";
        let long = if raw.starts_with(b"/") && !table {
            Some(long_ref(raw).ok_or(ArError::Corrupt("bad long-name reference"))?)
        } else {
            None
        };
        let data_at = off + 60;
        // a thin archive keeps only its symbol and name tables inline
        let stored = if !thin || table { size } else { 0 };
        let end = data_at
            .checked_add(stored)
            .filter(|&e| e <= bytes.len())
            .ok_or(ArError::Corrupt("member data past end of file"))?;
        let data = &bytes[data_at..end];
        off = end + (end % 2); // members are 2-aligned
        if raw == b"//" {
            long_names = data;
            continue;
        }
        if table {
            continue;
        }
        let (name, data): (&[u8], &'a [u8]) = if let Some(n) = raw.strip_prefix(b"#1/") {
            // BSD: the name is at the start of the data, NUL-padded
            let n = decimal(n).ok_or(ArError::Corrupt("bad BSD name length"))?;
            if n > data.len() {
                return Err(ArError::Corrupt("BSD name past member end"));
            }
            let name = &data[..n];
            let end = name.iter().position(|&c| c == 0).unwrap_or(n);
            (&name[..end], &data[n..])
        } else if let Some((i, origin)) = long {
            let name = long_name(long_names, i)?;
            if let Some(origin) = origin {
                if !thin {
                    return Err(ArError::Corrupt("nested member in a regular archive"));
                }
                let m = nested_member(
                    &mut nested,
                    &in_dir(Path::new(OsStr::from_bytes(name))),
                    origin,
                    depth,
                )?;
                out.push((at, m));
                continue;
            }
            (name, data)
        } else {
            (short_name(&h[..16]), data)
        };
        if is_symbol_table(name) {
            continue;
        }
        let content = if thin {
            Content::External(in_dir(Path::new(OsStr::from_bytes(name))))
        } else {
            Content::Inline(Cow::Borrowed(data))
        };
        // the bytes, as `classify::arg` carries them: a member name that is not UTF-8 still
        // matches the linker map's
        let name = crate::classify::arg::from_bytes(name);
        out.push((at, Member { name, content }));
    }
    Ok(out)
}

/// The member whose header is at `origin` in the archive at `path`; each archive is read and
/// parsed once.
fn nested_member(
    cache: &mut HashMap<PathBuf, HashMap<usize, Member<'static>>>,
    path: &Path,
    origin: usize,
    depth: usize,
) -> Result<Member<'static>, ArError> {
    let err = |e: String| ArError::Nested(format!("{}: {e}", path.display()));
    if !cache.contains_key(path) {
        if depth >= MAX_NESTING {
            return Err(err(format!("archives nested more than {MAX_NESTING} deep")));
        }
        // a name such as /dev/zero must not be read
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let all = parse(&bytes, path, depth + 1)
            .map_err(|e| err(e.to_string()))?
            .into_iter()
            .map(|(at, m)| (at, m.into_owned()))
            .collect();
        cache.insert(path.to_path_buf(), all);
    }
    cache
        .get(path)
        .and_then(|all| all.get(&origin))
        .cloned()
        .ok_or_else(|| err(format!("no member at offset {origin}")))
}

impl Member<'_> {
    fn into_owned(self) -> Member<'static> {
        Member {
            name: self.name,
            content: match self.content {
                Content::Inline(d) => Content::Inline(Cow::Owned(d.into_owned())),
                Content::External(p) => Content::External(p),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(name: &str, size: usize) -> Vec<u8> {
        let s = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name, 0, 0, 0, 644, size
        );
        assert_eq!(s.len(), 60);
        s.into_bytes()
    }

    #[test]
    fn gnu_names_long_names_and_padding() {
        let mut a = b"!<arch>\n".to_vec();
        a.extend(hdr("/", 4));
        a.extend(b"\0\0\0\0");
        let longs = b"a_very_long_member_name.o/\n";
        a.extend(hdr("//", longs.len()));
        a.extend(longs);
        a.push(b'\n'); // pad to even
        a.extend(hdr("short.o/", 3));
        a.extend(b"abc\n");
        a.extend(hdr("/0", 2));
        a.extend(b"xy");
        let m = members(&a, Path::new("/x/lib.a")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "short.o");
        assert_eq!(m[0].content, Content::Inline(Cow::Borrowed(b"abc")));
        assert_eq!(m[1].name, "a_very_long_member_name.o");
        assert_eq!(m[1].content, Content::Inline(Cow::Borrowed(b"xy")));
    }

    #[test]
    fn thin_members_are_paths() {
        let mut a = b"!<thin>\n".to_vec();
        let longs = b"sub/a.o/\n";
        a.extend(hdr("//", longs.len()));
        a.extend(longs);
        a.push(b'\n');
        a.extend(hdr("/0", 1234));
        // a path in the header itself ends at its first `/`, as `ar t` reads it
        a.extend(hdr("sub/a.o/", 1234));
        let m = members(&a, Path::new("/x/lib.a")).unwrap();
        assert_eq!(m[0].content, Content::External(PathBuf::from("/x/sub/a.o")));
        assert_eq!(m[1].name, "sub");
    }

    #[test]
    fn fifteen_byte_long_name_reference_ends_in_slash() {
        // GNU ar: `ar cDPrST t15.a kernel/sysctl.o`
        let mut a = b"!<thin>\n".to_vec();
        let longs = b"kernel/sysctl.o/\nsub/a.o/\n";
        a.extend(hdr("//", longs.len()));
        a.extend(longs);
        a.extend(hdr("/0             /", 1104));
        a.extend(hdr("/17", 1104));
        let m = members(&a, Path::new("/x/t15.a")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "kernel/sysctl.o");
        assert_eq!(
            m[0].content,
            Content::External(PathBuf::from("/x/kernel/sysctl.o"))
        );
        assert_eq!(m[1].name, "sub/a.o");
    }

    #[test]
    fn bsd_names_and_symbol_tables() {
        let mut a = b"!<arch>\n".to_vec();
        a.extend(hdr("#1/12", 12 + 4));
        a.extend(b"__.SYMDEF\0\0\0\0\0\0\0");
        a.extend(hdr("#1/20", 20 + 2));
        a.extend(b"a_long_bsd_name.o\0\0\0xy");
        a.extend(hdr("/SYM64/", 2));
        a.extend(b"\0\0");
        a.extend(hdr("b.o", 1));
        a.extend(b"z\n");
        let m = members(&a, Path::new("l.a")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "a_long_bsd_name.o");
        assert_eq!(m[0].content, Content::Inline(Cow::Borrowed(b"xy")));
        assert_eq!(m[1].name, "b.o");
        assert_eq!(m[1].content, Content::Inline(Cow::Borrowed(b"z")));
    }

    #[test]
    fn thin_reference_into_a_regular_archive() {
        let dir = tempfile::tempdir().unwrap();
        let mut inner = b"!<arch>\n".to_vec();
        inner.extend(hdr("a.o/", 3));
        inner.extend(b"aaa\n");
        let b_at = inner.len();
        inner.extend(hdr("b.o/", 2));
        inner.extend(b"bb");
        std::fs::write(dir.path().join("normal.a"), &inner).unwrap();
        let mut a = b"!<thin>\n".to_vec();
        let longs = b"normal.a/\n";
        a.extend(hdr("//", longs.len()));
        a.extend(longs);
        a.extend(hdr(&format!("/0:{b_at}"), 2));
        a.extend(hdr("/0:8", 3));
        let m = members(&a, &dir.path().join("outer.a")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "b.o");
        assert_eq!(m[0].content, Content::Inline(Cow::Owned(b"bb".to_vec())));
        assert_eq!(m[1].name, "a.o");
        assert_eq!(m[1].content, Content::Inline(Cow::Owned(b"aaa".to_vec())));
        // a reference to no member, or to a missing archive, is an error, not a panic
        let mut bad = a.clone();
        bad.extend(hdr("/0:9", 3));
        assert!(matches!(
            members(&bad, &dir.path().join("outer.a")),
            Err(ArError::Nested(_))
        ));
        assert!(matches!(
            members(&a, Path::new("/nonexistent/outer.a")),
            Err(ArError::Nested(_))
        ));
    }

    #[test]
    fn corrupt_never_panics() {
        let mut a = b"!<arch>\n".to_vec();
        a.extend(hdr("x.o/", 100));
        a.extend(b"short");
        assert!(members(&a, Path::new("l.a")).is_err());
        for cut in 0..a.len() {
            let _ = members(&a[..cut], Path::new("l.a"));
        }
        assert_eq!(members(b"nope", Path::new("l.a")), Err(ArError::NotArchive));
    }
}
