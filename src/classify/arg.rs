//! Arguments and paths as bytes, carried in `String`s.
//!
//! A Unix argument or path is any bytes but NUL; the classifiers work on `String`s. Bytes
//! that are not UTF-8 (a source file named with a 0xff byte) are carried as characters of a
//! private-use range, U+10FF80..=U+10FFFF for the bytes 0x80..=0xFF, and turned back into the
//! very bytes wherever a string becomes a path or an argument again (`path`, `to_os`). Every
//! byte with a meaning to a classifier or a parser is ASCII, so they see such a byte as one
//! opaque character. A real character of that range in an argument is carried as its four
//! UTF-8 bytes, each escaped the same way, so that every byte sequence comes back exactly.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const BASE: u32 = 0x10_FF00;

fn escaped(c: char) -> bool {
    (BASE + 0x80..=BASE + 0xFF).contains(&u32::from(c))
}

fn escape(out: &mut String, b: u8) {
    // b >= 0x80 here: BASE + b is in the private-use plane 16, a valid char
    out.extend(char::from_u32(BASE + u32::from(b)));
}

/// Bytes as a string that `to_bytes` turns back into the same bytes.
pub fn from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.chars().any(escaped) {
            for c in valid.chars() {
                if escaped(c) {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        escape(&mut out, b);
                    }
                } else {
                    out.push(c);
                }
            }
        } else {
            out.push_str(valid);
        }
        for &b in chunk.invalid() {
            escape(&mut out, b);
        }
    }
    out
}

/// An argument (or path) as a string (see `from_bytes`); a UTF-8 argument stays as it is.
pub fn from_os(a: &OsStr) -> String {
    match a.to_str() {
        Some(s) if !s.chars().any(escaped) => s.to_string(),
        _ => from_bytes(a.as_bytes()),
    }
}

/// The bytes a string of `from_bytes` stands for.
pub fn to_bytes(s: &str) -> Vec<u8> {
    if !s.chars().any(escaped) {
        return s.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if escaped(c) {
            out.push((u32::from(c) - BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    out
}

/// The argument a string stands for.
pub fn to_os(s: &str) -> OsString {
    OsString::from_vec(to_bytes(s))
}

/// The path a string stands for.
pub fn path(s: &str) -> PathBuf {
    PathBuf::from(to_os(s))
}

/// A path as a string (see `from_bytes`).
pub fn from_path(p: &Path) -> String {
    from_os(p.as_os_str())
}

/// A string for people: bytes that are not UTF-8 shown as U+FFFD.
pub fn display(s: &str) -> String {
    if !s.chars().any(escaped) {
        return s.to_string();
    }
    String::from_utf8_lossy(&to_bytes(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let cases: &[&[u8]] = &[
            b"",
            b"a.c",
            b"a\xff.c",
            b"\x80\xfe\xff",
            "caf\u{e9}.c".as_bytes(),
            // a real character of the escape range, and one that is its first bytes only
            "x\u{10ff80}y\u{10ffff}".as_bytes(),
            b"\xf4\x8f\xbe",
            b"\xc3",
        ];
        for &b in cases {
            let s = from_bytes(b);
            assert_eq!(to_bytes(&s), b, "{b:?}");
            assert_eq!(path(&s).as_os_str().as_bytes(), b);
            assert_eq!(from_os(OsStr::from_bytes(b)), s);
        }
        assert_eq!(from_bytes(b"plain/a.c"), "plain/a.c");
        let s = from_bytes(b"a\xff.c");
        assert!(s.ends_with(".c") && s.starts_with('a') && s.chars().count() == 4);
        assert_eq!(display(&s), "a\u{fffd}.c");
    }
}
