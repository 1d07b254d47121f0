//! Make-style dependency files as gcc and clang (`-MD`) and the linkers
//! (`--dependency-file`) write them: `target...: prereq...` with backslash-newline
//! continuations, `\ ` for a space, `\#` for `#`, `$$` for `$`.

/// One rule of a dependency file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub targets: Vec<String>,
    pub prereqs: Vec<String>,
}

/// Parse every rule. Phony rules from `-MP` come out with no prerequisites. A name that is
/// not UTF-8 comes out as `classify::arg` carries it, so that its path is exact.
pub fn parse(text: impl AsRef<[u8]>) -> Vec<Rule> {
    // Bytes, not chars: every byte with a meaning here is ASCII (a depfile lists every
    // header of a compile: tens of kilobytes).
    let b = text.as_ref();
    let mut rules = Vec::new();
    let mut cur = Rule::default();
    let mut seen_colon = false;
    let mut tok: Vec<u8> = Vec::new();
    let mut in_tok = false;
    let mut i = 0;

    fn end_tok(tok: &mut Vec<u8>, in_tok: &mut bool, cur: &mut Rule, seen_colon: bool) {
        if *in_tok {
            // a copy of its exact size: `tok` keeps its buffer for the next name
            let t = String::from_utf8(tok.clone());
            tok.clear();
            let t = match t {
                // U+10FF80 and up start with the byte F4; most names have no such byte
                Ok(t) if !t.bytes().any(|b| b >= 0xf4) => t,
                Ok(t) if !t.chars().any(|c| u32::from(c) >= 0x10_FF80) => t,
                Ok(t) => crate::classify::arg::from_bytes(t.as_bytes()),
                Err(e) => crate::classify::arg::from_bytes(e.as_bytes()),
            };
            if seen_colon {
                cur.prereqs.push(t);
            } else {
                cur.targets.push(t);
            }
            *in_tok = false;
        }
    }

    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b'\\' if next == Some(b'\n') => {
                end_tok(&mut tok, &mut in_tok, &mut cur, seen_colon);
                i += 2;
                continue;
            }
            b'\\' if next == Some(b'\r') && b.get(i + 2) == Some(&b'\n') => {
                end_tok(&mut tok, &mut in_tok, &mut cur, seen_colon);
                i += 3;
                continue;
            }
            b'\\' if matches!(next, Some(b' ' | b'#' | b'\t' | b':')) => {
                tok.push(b[i + 1]);
                in_tok = true;
                i += 2;
                continue;
            }
            b'$' if next == Some(b'$') => {
                tok.push(b'$');
                in_tok = true;
                i += 2;
                continue;
            }
            b' ' | b'\t' | b'\r' => end_tok(&mut tok, &mut in_tok, &mut cur, seen_colon),
            b'\n' => {
                end_tok(&mut tok, &mut in_tok, &mut cur, seen_colon);
                if !cur.targets.is_empty() || !cur.prereqs.is_empty() {
                    rules.push(std::mem::take(&mut cur));
                }
                seen_colon = false;
            }
            b':' if !seen_colon
                && matches!(next, None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'\\')) =>
            {
                end_tok(&mut tok, &mut in_tok, &mut cur, seen_colon);
                seen_colon = true;
            }
            _ => {
                // the rest of a run of plain bytes at once
                let start = i;
                i += 1;
                while i < b.len()
                    && !matches!(b[i], b'\\' | b'$' | b' ' | b'\t' | b'\r' | b'\n' | b':')
                {
                    i += 1;
                }
                tok.extend_from_slice(&b[start..i]);
                in_tok = true;
                continue;
            }
        }
        i += 1;
    }
    end_tok(&mut tok, &mut in_tok, &mut cur, seen_colon);
    if !cur.targets.is_empty() || !cur.prereqs.is_empty() {
        rules.push(cur);
    }
    rules
}

/// Every prerequisite of every rule, first occurrence order, without duplicates.
pub fn prerequisites(text: impl AsRef<[u8]>) -> Vec<String> {
    let all: Vec<String> = parse(text).into_iter().flat_map(|r| r.prereqs).collect();
    // which to keep, marked without copying a name (every step reads one or two of these)
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(all.len());
        all.iter().map(|p| seen.insert(p.as_str())).collect()
    };
    all.into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcc_style_with_continuations_and_escapes() {
        let text = "obj/a.o: src/a.c /usr/include/stdio.h \\\n  my\\ dir/b.h cost$$.h \\#x.h\n";
        let r = parse(text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].targets, vec!["obj/a.o"]);
        assert_eq!(
            r[0].prereqs,
            vec![
                "src/a.c",
                "/usr/include/stdio.h",
                "my dir/b.h",
                "cost$.h",
                "#x.h"
            ]
        );
    }

    #[test]
    fn mp_phony_rules_and_multiple_targets() {
        let text = "a.o b.o: a.c a.h\n\na.h:\n";
        let r = parse(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].targets, vec!["a.o", "b.o"]);
        assert_eq!(r[1].targets, vec!["a.h"]);
        assert!(r[1].prereqs.is_empty());
        assert_eq!(prerequisites(text), vec!["a.c", "a.h"]);
    }

    #[test]
    fn linker_style_one_per_line_and_no_trailing_newline() {
        let text = "prog: \\\n  /usr/lib/crt1.o \\\n  main.o \\\n  /usr/lib/libc.so";
        assert_eq!(
            prerequisites(text),
            vec!["/usr/lib/crt1.o", "main.o", "/usr/lib/libc.so"]
        );
    }

    #[test]
    fn multibyte_names_beside_escapes_stay_whole() {
        let text = "é.o: src/ü\\ dir/ö.h naïve$$.h \\#ß.h \\\n  日本/語.h\n";
        assert_eq!(
            prerequisites(text),
            vec!["src/ü dir/ö.h", "naïve$.h", "#ß.h", "日本/語.h"]
        );
        assert_eq!(parse(text)[0].targets, vec!["é.o"]);
    }

    #[test]
    fn names_that_are_not_utf8_keep_their_bytes() {
        let text = b"a\xff.o: src/a\xff.c b\\ \xfe.h\n";
        let p = prerequisites(&text[..]);
        let bytes: Vec<Vec<u8>> = p
            .iter()
            .map(|s| crate::classify::arg::to_bytes(s))
            .collect();
        assert_eq!(bytes, vec![b"src/a\xff.c".to_vec(), b"b \xfe.h".to_vec()]);
        assert_eq!(
            crate::classify::arg::to_bytes(&parse(&text[..])[0].targets[0]),
            b"a\xff.o"
        );
    }

    #[test]
    fn colon_inside_a_name_is_not_a_separator() {
        let text = "out: dir/a:b.h c.h\n";
        assert_eq!(prerequisites(text), vec!["dir/a:b.h", "c.h"]);
    }
}
