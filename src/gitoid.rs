//! Artifact IDs: git blob object IDs ("gitoids") over sha1 and sha256.
//!
//! `HASH("blob " + len + "\0" + bytes)`, byte-exact (no newline normalisation), so a source
//! file's sha1 ID equals its blob ID in git. Both algorithms are computed in one read of the
//! file; large files are hashed by the two algorithms on two threads side by side.

use sha1::Digest;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::{mpsc, Arc};

/// The hash algorithms OmniBOR defines for gitoids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Alg {
    Sha1,
    Sha256,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::Sha1, Alg::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            Alg::Sha1 => "sha1",
            Alg::Sha256 => "sha256",
        }
    }

    /// Length of a raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Alg::Sha1 => 20,
            Alg::Sha256 => 32,
        }
    }

    /// Algorithm of a hex ID, told by its length (40 = sha1, 64 = sha256).
    pub fn from_hex_len(n: usize) -> Option<Alg> {
        match n {
            40 => Some(Alg::Sha1),
            64 => Some(Alg::Sha256),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Alg {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        match s {
            "sha1" => Ok(Alg::Sha1),
            "sha256" => Ok(Alg::Sha256),
            _ => Err(IdError::UnknownAlg(s.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("unknown hash algorithm '{0}' (expected sha1 or sha256)")]
    UnknownAlg(String),
    #[error("'{0}' is not a gitoid URI (expected gitoid:blob:sha1:<40 hex> or gitoid:blob:sha256:<64 hex>)")]
    BadUri(String),
    #[error("'{0}' is not a lower-case hex ID of 40 (sha1) or 64 (sha256) digits")]
    BadHex(String),
}

/// An owned artifact or manifest ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl Id {
    pub fn alg(&self) -> Alg {
        match self {
            Id::Sha1(_) => Alg::Sha1,
            Id::Sha256(_) => Alg::Sha256,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Id::Sha1(b) => b,
            Id::Sha256(b) => b,
        }
    }

    /// Build from raw digest bytes; the length picks the algorithm.
    pub fn from_raw(b: &[u8]) -> Option<Id> {
        match b.len() {
            20 => b.try_into().ok().map(Id::Sha1),
            32 => b.try_into().ok().map(Id::Sha256),
            _ => None,
        }
    }

    pub fn hex(&self) -> String {
        to_hex(self.as_bytes())
    }

    /// Append the lower-case hex to `out` (a manifest, a path index record: no `String`
    /// per ID).
    pub fn push_hex(&self, out: &mut Vec<u8>) {
        push_hex(out, self.as_bytes());
    }

    pub fn uri(&self) -> String {
        format!("gitoid:blob:{}:{}", self.alg(), self.hex())
    }

    /// Parse a bare lower-case hex ID (40 or 64 digits).
    pub fn from_hex(s: &str) -> Result<Id, IdError> {
        // into a buffer on the stack: a step parses two IDs for every hash-cache hit
        let bad = || IdError::BadHex(s.to_string());
        Alg::from_hex_len(s.len()).ok_or_else(bad)?;
        let mut raw = [0u8; 32];
        let raw = &mut raw[..s.len() / 2];
        if !decode_hex(s.as_bytes(), raw) {
            return Err(bad());
        }
        Id::from_raw(raw).ok_or_else(bad)
    }

    /// Parse a `gitoid:blob:<alg>:<hex>` URI.
    pub fn from_uri(s: &str) -> Result<Id, IdError> {
        let bad = || IdError::BadUri(s.to_string());
        let rest = s.strip_prefix("gitoid:blob:").ok_or_else(bad)?;
        let (alg, hex) = rest.split_once(':').ok_or_else(bad)?;
        let alg: Alg = alg.parse().map_err(|_| bad())?;
        let id = Id::from_hex(hex).map_err(|_| bad())?;
        if id.alg() != alg {
            return Err(bad());
        }
        Ok(id)
    }

    /// Accept either a URI or a bare hex ID.
    pub fn parse_any(s: &str) -> Result<Id, IdError> {
        if s.starts_with("gitoid:") {
            Id::from_uri(s)
        } else {
            Id::from_hex(s)
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Id::parse_any(s)
    }
}

pub fn to_hex(b: &[u8]) -> String {
    let mut v = Vec::with_capacity(b.len() * 2);
    push_hex(&mut v, b);
    // hex digits are ASCII; the check is a quick pass over a few dozen bytes
    String::from_utf8(v).unwrap_or_default()
}

/// Append `b` in lower-case hex to `out`. Byte pairs from a table: a step writes a few
/// hundred IDs (manifests, the path index), and pushing `char`s one at a time cost a
/// link step about as many instructions as reading its depfile.
pub fn push_hex(out: &mut Vec<u8>, b: &[u8]) {
    const D: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2);
    for &x in b {
        out.extend_from_slice(&[D[usize::from(x >> 4)], D[usize::from(x & 15)]]);
    }
}

/// Lower-case hex only: IDs are written lower-case, so anything else is malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let mut out = vec![0u8; s.len() / 2];
    decode_hex(s.as_bytes(), &mut out).then_some(out)
}

/// Decode lower-case hex into `out` (exactly twice its length); false on anything else.
fn decode_hex(hex: &[u8], out: &mut [u8]) -> bool {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if hex.len() != out.len() * 2 {
        return false;
    }
    for (o, p) in out.iter_mut().zip(hex.chunks_exact(2)) {
        match (nib(p[0]), nib(p[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

/// Both IDs of one artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ids {
    pub sha1: Id,
    pub sha256: Id,
}

impl Ids {
    pub fn get(&self, alg: Alg) -> Id {
        match alg {
            Alg::Sha1 => self.sha1,
            Alg::Sha256 => self.sha256,
        }
    }
}

fn header(len: u64) -> Vec<u8> {
    format!("blob {len}\0").into_bytes()
}

/// The gitoid of an in-memory byte string.
pub fn id_of_bytes(alg: Alg, bytes: &[u8]) -> Id {
    let h = header(bytes.len() as u64);
    match alg {
        Alg::Sha1 => {
            let mut d = sha1::Sha1::new();
            d.update(&h);
            d.update(bytes);
            Id::Sha1(d.finalize().into())
        }
        Alg::Sha256 => {
            let mut d = sha2::Sha256::new();
            d.update(&h);
            d.update(bytes);
            Id::Sha256(d.finalize().into())
        }
    }
}

pub fn ids_of_bytes(bytes: &[u8]) -> Ids {
    Ids {
        sha1: id_of_bytes(Alg::Sha1, bytes),
        sha256: id_of_bytes(Alg::Sha256, bytes),
    }
}

/// Which algorithms to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    One(Alg),
    Both,
}

/// Result of hashing a file: one or both IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIds {
    pub sha1: Option<Id>,
    pub sha256: Option<Id>,
}

impl FileIds {
    pub fn both(&self) -> Option<Ids> {
        Some(Ids {
            sha1: self.sha1?,
            sha256: self.sha256?,
        })
    }
}

const CHUNK: usize = 1 << 20;
/// Below this size two threads cost more than they save.
const PARALLEL_MIN: u64 = 8 << 20;

/// Hash a file in one streaming read (never loading it whole).
pub fn id_file(path: &Path, which: Which) -> io::Result<FileIds> {
    let mut f = crate::store::open_path(path, libc::O_RDONLY)?;
    let meta = f.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    id_reader(&mut f, meta.len(), which)
}

/// Hash `len` bytes from a reader. The length goes into the header first, so it must be exact;
/// a reader that yields a different number of bytes (a file changed while read) is an error.
pub fn id_reader(r: &mut dyn Read, len: u64, which: Which) -> io::Result<FileIds> {
    if which == Which::Both && len >= PARALLEL_MIN {
        return id_reader_parallel(r, len);
    }
    let h = header(len);
    let mut s1 = matches!(which, Which::Both | Which::One(Alg::Sha1)).then(sha1::Sha1::new);
    let mut s2 = matches!(which, Which::Both | Which::One(Alg::Sha256)).then(sha2::Sha256::new);
    if let Some(d) = s1.as_mut() {
        d.update(&h);
    }
    if let Some(d) = s2.as_mut() {
        d.update(&h);
    }
    let mut buf = vec![0u8; CHUNK.min(len as usize + 1).max(4096)];
    let mut total = 0u64;
    loop {
        let n = read_some(r, &mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if let Some(d) = s1.as_mut() {
            d.update(&buf[..n]);
        }
        if let Some(d) = s2.as_mut() {
            d.update(&buf[..n]);
        }
    }
    check_len(total, len)?;
    Ok(FileIds {
        sha1: s1.map(|d| Id::Sha1(d.finalize().into())),
        sha256: s2.map(|d| Id::Sha256(d.finalize().into())),
    })
}

fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn check_len(total: u64, len: u64) -> io::Result<()> {
    if total != len {
        return Err(io::Error::other(format!(
            "file changed while being read ({len} bytes expected, {total} read)"
        )));
    }
    Ok(())
}

/// Large files: this thread reads and hashes sha256, a helper hashes sha1 from the same
/// buffers. Buffers come back to a small pool once the helper has dropped its reference.
fn id_reader_parallel(r: &mut dyn Read, len: u64) -> io::Result<FileIds> {
    let h = header(len);
    let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(2);
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let mut d = sha1::Sha1::new();
            d.update(&h);
            for buf in rx {
                d.update(&buf[..]);
            }
            Id::Sha1(d.finalize().into())
        });
        let mut d2 = sha2::Sha256::new();
        d2.update(header(len));
        let mut pool: Vec<Arc<Vec<u8>>> = Vec::new();
        let mut total = 0u64;
        let res: io::Result<()> = (|| loop {
            // Reuse a buffer the helper is done with, else make one (bounded by the channel).
            let mut buf = match pool.iter().position(|b| Arc::strong_count(b) == 1) {
                Some(i) => pool.swap_remove(i),
                None => Arc::new(vec![0u8; CHUNK]),
            };
            let v = Arc::get_mut(&mut buf).ok_or_else(|| io::Error::other("buffer busy"))?;
            v.resize(CHUNK, 0);
            let n = read_some(r, v)?;
            if n == 0 {
                return Ok(());
            }
            v.truncate(n);
            total += n as u64;
            if tx.send(Arc::clone(&buf)).is_err() {
                return Err(io::Error::other("hash worker stopped"));
            }
            d2.update(&buf[..]);
            pool.push(buf);
        })();
        drop(tx);
        let sha1 = worker
            .join()
            .map_err(|_| io::Error::other("hash worker panicked"))?;
        res?;
        check_len(total, len)?;
        Ok(FileIds {
            sha1: Some(sha1),
            sha256: Some(Id::Sha256(d2.finalize().into())),
        })
    })
}

/// Both IDs of a file.
pub fn ids_of_file(path: &Path) -> io::Result<Ids> {
    let f = id_file(path, Which::Both)?;
    f.both()
        .ok_or_else(|| io::Error::other("internal: both hashes requested"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(to_hex(&all), want);
        let mut out = b"x ".to_vec();
        push_hex(&mut out, &[0x0f, 0xa0]);
        assert_eq!(out, b"x 0fa0");
        assert_eq!(to_hex(&[]), "");
    }

    #[test]
    fn vectors() {
        let e = ids_of_bytes(b"");
        assert_eq!(e.sha1.hex(), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert_eq!(
            e.sha256.hex(),
            "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813"
        );
        let h = ids_of_bytes(b"hello world");
        assert_eq!(h.sha1.hex(), "95d09f2b10159347eece71399a7e2e907ea3df4f");
        assert_eq!(
            h.sha256.hex(),
            "fee53a18d32820613c0527aa79be5cb30173c823a9b448fa4817767cc84c6f03"
        );
    }

    #[test]
    fn uri_round_trip_and_errors() {
        let h = ids_of_bytes(b"hello world");
        for id in [h.sha1, h.sha256] {
            assert_eq!(Id::from_uri(&id.uri()), Ok(id));
            assert_eq!(Id::parse_any(&id.hex()), Ok(id));
        }
        for bad in [
            "gitoid:blob:sha1:abc",
            "gitoid:blob:sha256:95d09f2b10159347eece71399a7e2e907ea3df4f",
            "gitoid:tree:sha1:95d09f2b10159347eece71399a7e2e907ea3df4f",
            "gitoid:blob:md5:95d09f2b10159347eece71399a7e2e907ea3df4f",
            "gitoid:blob:sha1:95D09F2B10159347EECE71399A7E2E907EA3DF4F",
            "gitoid:blob:sha1:95d09f2b10159347eece71399a7e2e907ea3df4g",
            "",
        ] {
            assert!(Id::from_uri(bad).is_err(), "{bad}");
        }
        // bare IDs: upper case, a non-hex digit, a multi-byte character, a wrong length
        let sha1 = h.sha1.hex();
        for bad in [
            sha1.to_uppercase(),
            format!("{}g", &sha1[..39]),
            format!("{}é", &sha1[..38]),
            sha1[..38].to_string(),
            format!("{sha1}00"),
        ] {
            assert!(Id::from_hex(&bad).is_err(), "{bad}");
        }
        assert_eq!(from_hex("00ff7a"), Some(vec![0, 255, 0x7a]));
        assert_eq!(from_hex("0"), None);
    }

    #[test]
    fn parallel_equals_sequential() {
        let data: Vec<u8> = (0..(PARALLEL_MIN as usize + 12345))
            .map(|i| (i * 7 + i / 3) as u8)
            .collect();
        let par = id_reader(&mut &data[..], data.len() as u64, Which::Both).unwrap();
        assert_eq!(par.both().unwrap(), ids_of_bytes(&data));
        let short = id_reader(&mut &data[..10], 11, Which::Both);
        assert!(short.is_err());
    }
}
