//! `@file` response files, with the GNU (libiberty) tokenizer rules: white space separates
//! arguments; single and double quotes group; a backslash takes the next character literally,
//! inside quotes too. An `@file` that cannot be read stays as it is, as gcc and ld leave it.

use std::path::Path;

/// Split response-file text into arguments.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let (mut sq, mut dq, mut bs) = (false, false, false);
    for c in text.chars() {
        if bs {
            bs = false;
            cur.push(c);
            have = true;
        } else if c == '\\' {
            bs = true;
            have = true;
        } else if sq {
            if c == '\'' {
                sq = false;
            } else {
                cur.push(c);
            }
        } else if dq {
            if c == '"' {
                dq = false;
            } else {
                cur.push(c);
            }
        } else if c.is_whitespace() {
            if have {
                out.push(std::mem::take(&mut cur));
                have = false;
            }
        } else if c == '\'' {
            sq = true;
            have = true;
        } else if c == '"' {
            dq = true;
            have = true;
        } else {
            cur.push(c);
            have = true;
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// Expand `@file` arguments recursively (relative to `cwd`), at most `depth` levels deep.
/// Returns the expanded argv and whether any expansion happened.
pub fn expand(args: &[String], cwd: &Path) -> (Vec<String>, bool) {
    let mut out = Vec::with_capacity(args.len());
    let mut any = false;
    expand_into(args, cwd, 0, &mut out, &mut any);
    (out, any)
}

fn expand_into(args: &[String], cwd: &Path, depth: usize, out: &mut Vec<String>, any: &mut bool) {
    for a in args {
        if let Some(name) = a.strip_prefix('@') {
            if depth < 16 && !name.is_empty() {
                // a response file holds bytes like the arguments it stands for
                if let Ok(bytes) = std::fs::read(cwd.join(super::arg::path(name))) {
                    *any = true;
                    let text = super::arg::from_bytes(&bytes);
                    expand_into(&tokenize(&text), cwd, depth + 1, out, any);
                    continue;
                }
            }
        }
        out.push(a.clone());
    }
}

/// Quote an argument for a response file so that `tokenize` gives it back.
pub fn quote(arg: &str) -> String {
    let mut s = String::with_capacity(arg.len() + 2);
    for c in arg.chars() {
        if c.is_whitespace() || matches!(c, '\\' | '\'' | '"') {
            s.push('\\');
        }
        s.push(c);
    }
    if s.is_empty() {
        s.push_str("''");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tokenizer_rules() {
        let cases: &[(&str, &[&str])] = &[
            ("a b  c\n\td", &["a", "b", "c", "d"]),
            ("'a b' \"c d\"", &["a b", "c d"]),
            ("a\\ b c\\\\d", &["a b", "c\\d"]),
            ("\"a\\\"b\" 'it\\'s'", &["a\"b", "it's"]),
            ("''", &[""]),
            ("x'y z'w", &["xy zw"]),
            ("", &[]),
            ("   \n ", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(tokenize(text), *want, "{text:?}");
        }
    }

    #[test]
    fn quote_round_trips() {
        let args = [
            "plain",
            "with space",
            "q'uo\"te",
            "back\\slash",
            "",
            "tab\there",
        ];
        let text: Vec<String> = args.iter().map(|a| quote(a)).collect();
        assert_eq!(tokenize(&text.join(" ")), args);
    }

    #[test]
    fn response_file_bytes_that_are_not_utf8_are_kept() {
        use crate::classify::arg;
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a\u{e9}.rsp"), b"-c 'a\xff b.c' -o o\xfe.o").unwrap();
        let (got, any) = expand(&["@a\u{e9}.rsp".to_string()], t.path());
        assert!(any);
        let bytes: Vec<Vec<u8>> = got.iter().map(|a| arg::to_bytes(a)).collect();
        assert_eq!(
            bytes,
            vec![
                b"-c".to_vec(),
                b"a\xff b.c".to_vec(),
                b"-o".to_vec(),
                b"o\xfe.o".to_vec()
            ]
        );
    }

    #[test]
    fn nested_and_unreadable() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("outer"), "-c @inner 'x y.c'").unwrap();
        std::fs::write(t.path().join("inner"), "-O2 -DX=\"1 2\"").unwrap();
        let args: Vec<String> = ["@outer", "@missing", "-o", "out.o"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (got, any) = expand(&args, t.path());
        assert!(any);
        assert_eq!(
            got,
            vec!["-c", "-O2", "-DX=1 2", "x y.c", "@missing", "-o", "out.o"]
        );
    }
}
