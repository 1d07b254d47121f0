//! OmniBOR input manifests (spec v0.2 text, one manifest per algorithm).
//!
//! We write `gitoid:blob:<alg>\n` then one record per distinct input, sorted by the input's
//! hex ID: `<hex>\n` or `<hex> manifest <hex>\n`. We also read the older GitBOM records
//! (`blob <hex>`, `blob <hex> bom <hex>`) and a header written with spaces.

use crate::gitoid::{id_of_bytes, Alg, Id};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("line 1: missing or malformed header (expected 'gitoid:blob:sha1' or 'gitoid:blob:sha256'): {0:?}")]
    Header(String),
    #[error("line {line}: malformed record: {text:?}")]
    Record { line: usize, text: String },
    #[error("line {line}: ID {text:?} is not a {alg} ID")]
    WrongAlg { line: usize, text: String, alg: Alg },
    #[error("not UTF-8 text")]
    NotText,
}

/// An input manifest: inputs keyed by artifact ID, each with its own manifest ID if known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub alg: Alg,
    pub inputs: BTreeMap<Id, Option<Id>>,
}

impl Manifest {
    pub fn new(alg: Alg) -> Self {
        Manifest {
            alg,
            inputs: BTreeMap::new(),
        }
    }

    /// Add an input. Duplicates collapse; a known manifest ID wins over an unknown one.
    pub fn add(&mut self, artifact: Id, manifest: Option<Id>) {
        debug_assert_eq!(artifact.alg(), self.alg);
        let e = self.inputs.entry(artifact).or_insert(None);
        if manifest.is_some() {
            *e = manifest;
        }
    }

    /// The canonical bytes. Byte order of raw IDs equals order of their lower-case hex.
    pub fn to_bytes(&self) -> Vec<u8> {
        records(self.alg, self.inputs.len(), self.inputs.iter())
    }

    /// The manifest's own ID: the gitoid of its canonical bytes.
    pub fn id(&self) -> Id {
        id_of_bytes(self.alg, &self.to_bytes())
    }

    /// Parse manifest text (v0.2 or GitBOM records). Errors name the line.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
        let mut lines = text.split('\n');
        let first = lines.next().unwrap_or("");
        let alg = match first.trim_end_matches('\r') {
            "gitoid:blob:sha1" | "gitoid blob sha1" => Alg::Sha1,
            "gitoid:blob:sha256" | "gitoid blob sha256" => Alg::Sha256,
            other => return Err(ManifestError::Header(other.to_string())),
        };
        let mut m = Manifest::new(alg);
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            if line.is_empty() {
                continue;
            }
            let bad = || ManifestError::Record {
                line: n,
                text: line.to_string(),
            };
            let words: Vec<&str> = line.split(' ').collect();
            let (a, mf) = match words.as_slice() {
                [a] => (*a, None),
                [a, "manifest", b] => (*a, Some(*b)),
                ["blob", a] => (*a, None),
                ["blob", a, "bom", b] => (*a, Some(*b)),
                _ => return Err(bad()),
            };
            let parse = |s: &str| -> Result<Id, ManifestError> {
                let id = Id::from_hex(s).map_err(|_| bad())?;
                if id.alg() != alg {
                    return Err(ManifestError::WrongAlg {
                        line: n,
                        text: s.to_string(),
                        alg,
                    });
                }
                Ok(id)
            };
            let a = parse(a)?;
            let mf = mf.map(parse).transpose()?;
            m.add(a, mf);
        }
        Ok(m)
    }
}

/// The canonical bytes of the manifest of these inputs, as `Manifest::add` of each in turn
/// and then `to_bytes` would give them, without building the map: a step with hundreds of
/// inputs spent a tenth of its own time on the map's inserts. Sorted in place (a stable sort,
/// so that of one artifact's entries the last known manifest ID wins, as with `add`).
pub fn canonical_bytes(alg: Alg, inputs: &mut Vec<(Id, Option<Id>)>) -> Vec<u8> {
    inputs.sort_by_key(|a| a.0);
    // `dedup_by` keeps the first of a run and hands each later one with it
    inputs.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same && later.1.is_some() {
            first.1 = later.1;
        }
        same
    });
    records(alg, inputs.len(), inputs.iter().map(|(a, m)| (a, m)))
}

/// The header and one record per input, the inputs already sorted and distinct.
fn records<'a>(
    alg: Alg,
    n: usize,
    inputs: impl Iterator<Item = (&'a Id, &'a Option<Id>)>,
) -> Vec<u8> {
    let per = alg.digest_len() * 2 + 1;
    let mut out = Vec::with_capacity(24 + n * per * 2);
    out.extend_from_slice(format!("gitoid:blob:{alg}\n").as_bytes());
    for (a, m) in inputs {
        debug_assert_eq!(a.alg(), alg);
        a.push_hex(&mut out);
        if let Some(m) = m {
            out.extend_from_slice(b" manifest ");
            m.push_hex(&mut out);
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitoid::ids_of_bytes;

    #[test]
    fn format_vector() {
        let e = ids_of_bytes(b"");
        let h = ids_of_bytes(b"hello world");
        let mut m = Manifest::new(Alg::Sha256);
        m.add(h.sha256, None);
        m.add(e.sha256, None);
        m.add(e.sha256, None);
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            "gitoid:blob:sha256\n\
             473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813\n\
             fee53a18d32820613c0527aa79be5cb30173c823a9b448fa4817767cc84c6f03\n"
        );
        assert_eq!(
            m.id().hex(),
            "7087d342fc84220f19718837698f49cd1c0bde1c25c6282b9cbeaa7ac7f3fccb"
        );
        let mut m1 = Manifest::new(Alg::Sha1);
        m1.add(e.sha1, None);
        m1.add(h.sha1, None);
        assert_eq!(m1.id().hex(), "fcf242a00b8e0c63771491dd4ca9d19a3c253200");
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn canonical_bytes_are_those_of_the_map_built_input_by_input() {
        // many inputs in scrambled order, repeats, and an artifact seen with no manifest,
        // then with one, then with another, then with none again: the last known one wins
        let ids: Vec<_> = (0..300u32)
            .map(|i| ids_of_bytes(format!("input {}", (i * 7919) % 211).as_bytes()))
            .collect();
        let m1 = ids_of_bytes(b"manifest one");
        let m2 = ids_of_bytes(b"manifest two");
        for alg in Alg::ALL {
            let mut pairs = Vec::new();
            for (k, i) in ids.iter().enumerate() {
                // an artifact's two entries are 211 apart: m1 then m2, m2 then none, none
                // then m1
                let m = match k % 3 {
                    0 => Some(m1.get(alg)),
                    1 => Some(m2.get(alg)),
                    _ => None,
                };
                pairs.push((i.get(alg), m));
            }
            let mut built = Manifest::new(alg);
            for (a, m) in &pairs {
                built.add(*a, *m);
            }
            assert_eq!(built.inputs.len(), 211);
            assert!(built.inputs.values().any(|m| *m == Some(m1.get(alg))));
            assert!(built.inputs.values().any(|m| *m == Some(m2.get(alg))));
            assert!(built.inputs.values().any(|m| m.is_none()));
            assert_eq!(canonical_bytes(alg, &mut pairs), built.to_bytes());
        }
    }

    #[test]
    fn reads_gitbom_records_and_space_header() {
        let e = ids_of_bytes(b"");
        let h = ids_of_bytes(b"hello world");
        let text = format!(
            "gitoid blob sha1\nblob {}\nblob {} bom {}\n",
            h.sha1.hex(),
            e.sha1.hex(),
            h.sha1.hex()
        );
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.inputs.len(), 2);
        assert_eq!(m.inputs[&e.sha1], Some(h.sha1));
        assert_eq!(m.inputs[&h.sha1], None);
    }

    #[test]
    fn rejects_bad_lines_naming_them() {
        let h = ids_of_bytes(b"hello world");
        let cases: Vec<(String, &str)> = vec![
            ("gitoid:blob:md5\n".into(), "line 1"),
            ("".into(), "line 1"),
            (
                format!("gitoid:blob:sha1\n{} extra\n", h.sha1.hex()),
                "line 2",
            ),
            (format!("gitoid:blob:sha1\n{}\n", h.sha256.hex()), "line 2"),
            (
                format!("gitoid:blob:sha1\n{}\nXYZ\n", h.sha1.hex()),
                "line 3",
            ),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }
}
