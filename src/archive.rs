//! Reading `ar` archives (GNU and BSD member names, thin archives) to list their members.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArError {
    #[error("not an ar archive")]
    NotArchive,
    #[error("corrupt archive: {0}")]
    Corrupt(&'static str),
}

/// Where a member's bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum Content<'a> {
    /// In the archive itself.
    Inline(&'a [u8]),
    /// A thin archive's member: a file, relative to the archive's directory unless absolute.
    External(PathBuf),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: String,
    pub content: Content<'a>,
}

pub fn is_archive(head: &[u8]) -> bool {
    head.starts_with(b"!<arch>\n") || head.starts_with(b"!<thin>\n")
}

fn field(h: &[u8], a: usize, b: usize) -> &str {
    std::str::from_utf8(&h[a..b]).unwrap_or("").trim_end()
}

/// Every real member (symbol tables and the long-name table left out), in archive order.
pub fn members<'a>(bytes: &'a [u8], archive_path: &Path) -> Result<Vec<Member<'a>>, ArError> {
    let thin = if bytes.starts_with(b"!<arch>\n") {
        false
    } else if bytes.starts_with(b"!<thin>\n") {
        true
    } else {
        return Err(ArError::NotArchive);
    };
    let dir = archive_path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut out = Vec::new();
    let mut long_names: &[u8] = &[];
    let mut off = 8usize;
    while off < bytes.len() {
        if bytes.len() - off < 60 {
            if bytes[off..].iter().all(|&c| c == b'\n') {
                break;
            }
            return Err(ArError::Corrupt("member header past end of file"));
        }
        let h = &bytes[off..off + 60];
        if &h[58..60] != b"`\n" {
            return Err(ArError::Corrupt("bad member header magic"));
        }
        let size: usize = field(h, 48, 58)
            .parse()
            .map_err(|_| ArError::Corrupt("bad member size"))?;
        let raw_name = field(h, 0, 16).to_string();
        let data_at = off + 60;
        // thin archives keep only the symbol and name tables inline
        let inline =
            !thin || raw_name == "/" || raw_name == "//" || raw_name.starts_with("/SYM64/");
        let stored = if inline { size } else { 0 };
        let end = data_at
            .checked_add(stored)
            .filter(|&e| e <= bytes.len())
            .ok_or(ArError::Corrupt("member data past end of file"))?;
        let data = &bytes[data_at..end];
        off = end + (end % 2); // members are 2-aligned
        if raw_name == "/"
            || raw_name.starts_with("/SYM64/")
            || raw_name == "__.SYMDEF"
            || raw_name == "__.SYMDEF SORTED"
        {
            continue;
        }
        if raw_name == "//" {
            long_names = data;
            continue;
        }
        let (name, content) = if let Some(n) = raw_name.strip_prefix("#1/") {
            // BSD: name stored at the start of the data
            let n: usize = n
                .parse()
                .map_err(|_| ArError::Corrupt("bad BSD name length"))?;
            if n > data.len() {
                return Err(ArError::Corrupt("BSD name past member end"));
            }
            let name = String::from_utf8_lossy(&data[..n])
                .trim_end_matches('\0')
                .to_string();
            (name, &data[n..])
        } else if let Some(idx) = raw_name.strip_prefix('/') {
            let i: usize = idx
                .parse()
                .map_err(|_| ArError::Corrupt("bad long-name index"))?;
            let rest = long_names
                .get(i..)
                .ok_or(ArError::Corrupt("long-name index out of range"))?;
            let endn = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            let name = String::from_utf8_lossy(&rest[..endn])
                .trim_end_matches('/')
                .to_string();
            (name, data)
        } else {
            (raw_name.trim_end_matches('/').to_string(), data)
        };
        let content = if thin {
            let p = PathBuf::from(&name);
            Content::External(if p.is_absolute() { p } else { dir.join(p) })
        } else {
            Content::Inline(content)
        };
        out.push(Member { name, content });
    }
    Ok(out)
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
        assert_eq!(m[0].content, Content::Inline(b"abc"));
        assert_eq!(m[1].name, "a_very_long_member_name.o");
        assert_eq!(m[1].content, Content::Inline(b"xy"));
    }

    #[test]
    fn thin_members_are_paths() {
        let mut a = b"!<thin>\n".to_vec();
        a.extend(hdr("sub/a.o/", 1234));
        let m = members(&a, Path::new("/x/lib.a")).unwrap();
        assert_eq!(m[0].content, Content::External(PathBuf::from("/x/sub/a.o")));
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
