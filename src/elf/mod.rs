//! The `.note.omnibor` ELF note: read it (here), embed it in relocatable objects
//! (`embed`), rewrite it in place in linked files (`linked`), and write files (`file`).
//!
//! Format (FORMAT.md section 4): section `.note.omnibor`, SHT_NOTE, SHF_ALLOC, align 4; entries
//! named `OMNIBOR\0`, type 1 = sha1 manifest ID (20 bytes), type 2 = sha256 (32 bytes), in the
//! file's byte order. Readers tell the algorithm by descriptor length (20 = sha1, 32 or 33 with
//! a trailing NUL = sha256) so spec v0.2 notes read too.
//!
//! One note per output, whatever the number of inputs: every object's note sits in a COMDAT
//! group of one fixed signature, so each linker (and `ld -r`) keeps exactly one 92-byte copy,
//! which the link's shim then rewrites in place with the output's own IDs. A linker script
//! may gather it into another note section (the kernel's `.notes`): readers and the rewrite
//! look for OMNIBOR entries in every note section, not only in one named `.note.omnibor`.

use crate::gitoid::{Alg, Id};
use std::path::Path;

pub const SECTION: &str = ".note.omnibor";
pub const NOTE_NAME: &[u8; 8] = b"OMNIBOR\0";
mod embed;
mod file;
mod linked;
pub use embed::{embed_rel, placeholder_asm, placeholder_object, Target, SIGNATURE};
pub use file::{embed_file, replace_file, update_file};
pub use linked::rewrite_linked;

const SHT_NOTE: u32 = 7;
const SHT_NULL: u32 = 0;
const SHT_STRTAB: u32 = 3;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_GROUP: u32 = 17;
const SHT_SYMTAB_SHNDX: u32 = 18;
const SHF_ALLOC: u64 = 2;
const SHF_GROUP: u64 = 0x200;
/// Kept by `--gc-sections` (ld.bfd and lld collect a note in a group otherwise).
const SHF_GNU_RETAIN: u64 = 0x20_0000;
/// Sections the linker leaves out of its output: notes of an older layout, kept in the file.
const SHF_EXCLUDE: u64 = 0x8000_0000;
const GRP_COMDAT: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const SHN_LORESERVE: usize = 0xff00;
const SHN_XINDEX: usize = 0xffff;
/// Both entries: (12 + 8 + 20) + (12 + 8 + 32).
pub const NOTE_LEN: usize = 92;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("truncated or corrupt ELF: {0}")]
    Corrupt(&'static str),
    #[error("corrupt .note.omnibor: {0}")]
    BadNote(&'static str),
    #[error(
        "no OmniBOR note to rewrite in any note section (was the placeholder object linked in?)"
    )]
    NoSection,
    #[error(".note.omnibor is {0} bytes, cannot hold our entries plus padding")]
    BadSize(u64),
    #[error("is an ELF file of type {0}, expected {1}")]
    WrongType(u16, &'static str),
}

/// The manifest IDs a note holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoteIds {
    pub sha1: Option<Id>,
    pub sha256: Option<Id>,
}

impl NoteIds {
    pub fn get(&self, alg: Alg) -> Option<Id> {
        match alg {
            Alg::Sha1 => self.sha1,
            Alg::Sha256 => self.sha256,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.sha1.is_none() && self.sha256.is_none()
    }
}

#[derive(Clone, Copy, Debug)]
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

#[derive(Clone, Copy, Debug)]
struct Phdr {
    kind: u32,
    offset: u64,
    filesz: u64,
}

/// A bounds-checked view of an ELF file.
pub struct Elf<'a> {
    b: &'a [u8],
    pub is64: bool,
    pub le: bool,
    pub etype: u16,
    pub machine: u16,
    pub flags: u32,
    shoff: u64,
    shentsize: usize,
    shnum: usize,
    shstrndx: usize,
    phoff: u64,
    phentsize: usize,
    phnum: usize,
}

fn corrupt(what: &'static str) -> ElfError {
    ElfError::Corrupt(what)
}

impl<'a> Elf<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        if b.len() < 16 || &b[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let is64 = match b[4] {
            1 => false,
            2 => true,
            _ => return Err(corrupt("bad ELF class")),
        };
        let le = match b[5] {
            1 => true,
            2 => false,
            _ => return Err(corrupt("bad ELF data encoding")),
        };
        let mut e = Elf {
            b,
            is64,
            le,
            etype: 0,
            machine: 0,
            flags: 0,
            shoff: 0,
            shentsize: 0,
            shnum: 0,
            shstrndx: 0,
            phoff: 0,
            phentsize: 0,
            phnum: 0,
        };
        let ehsize = if is64 { 64 } else { 52 };
        if b.len() < ehsize {
            return Err(corrupt("file shorter than its ELF header"));
        }
        e.etype = e.u16(16)?;
        e.machine = e.u16(18)?;
        let (phoff, shoff, flags, rest) = if is64 {
            (e.u64(32)?, e.u64(40)?, e.u32(48)?, 54)
        } else {
            (e.u32(28)? as u64, e.u32(32)? as u64, e.u32(36)?, 42)
        };
        e.phoff = phoff;
        e.shoff = shoff;
        e.flags = flags;
        e.phentsize = e.u16(rest)? as usize;
        e.phnum = e.u16(rest + 2)? as usize;
        e.shentsize = e.u16(rest + 4)? as usize;
        e.shnum = e.u16(rest + 6)? as usize;
        e.shstrndx = e.u16(rest + 8)? as usize;
        let (want_sh, want_ph) = if is64 { (64, 56) } else { (40, 32) };
        if e.shoff != 0 {
            if e.shentsize != want_sh {
                return Err(corrupt("bad section header size"));
            }
            // Extended numbering: the real counts live in section header 0.
            if e.shnum == 0 || e.shstrndx == SHN_XINDEX {
                let s0 = e.raw_shdr(0)?;
                if e.shnum == 0 {
                    e.shnum = usize::try_from(s0.size).map_err(|_| corrupt("section count"))?;
                }
                if e.shstrndx == SHN_XINDEX {
                    e.shstrndx = s0.link as usize;
                }
            }
            let end = (e.shnum as u64)
                .checked_mul(want_sh as u64)
                .and_then(|n| n.checked_add(e.shoff))
                .ok_or(corrupt("section header table out of range"))?;
            if end > b.len() as u64 {
                return Err(corrupt("section header table past end of file"));
            }
        } else {
            e.shnum = 0;
        }
        if e.phoff != 0 && e.phnum != 0 {
            if e.phentsize != want_ph {
                return Err(corrupt("bad program header size"));
            }
            let end = (e.phnum as u64 * want_ph as u64)
                .checked_add(e.phoff)
                .ok_or(corrupt("program header table out of range"))?;
            if end > b.len() as u64 {
                return Err(corrupt("program header table past end of file"));
            }
        } else {
            e.phnum = 0;
        }
        Ok(e)
    }

    fn bytes(&self, off: u64, n: u64) -> Result<&'a [u8], ElfError> {
        let end = off.checked_add(n).ok_or(corrupt("offset overflow"))?;
        if end > self.b.len() as u64 {
            return Err(corrupt("reference past end of file"));
        }
        Ok(&self.b[off as usize..end as usize])
    }

    /// An unsigned integer of `n` bytes at `off`, in the file's byte order.
    fn uint(&self, off: usize, n: u64) -> Result<u64, ElfError> {
        let s = self.bytes(off as u64, n)?;
        let acc = |a: u64, &b: &u8| a << 8 | u64::from(b);
        Ok(if self.le {
            s.iter().rev().fold(0, acc)
        } else {
            s.iter().fold(0, acc)
        })
    }
    fn u16(&self, off: usize) -> Result<u16, ElfError> {
        self.uint(off, 2).map(|v| v as u16)
    }
    fn u32(&self, off: usize) -> Result<u32, ElfError> {
        self.uint(off, 4).map(|v| v as u32)
    }
    fn u64(&self, off: usize) -> Result<u64, ElfError> {
        self.uint(off, 8)
    }
    fn word(&self, off: usize) -> Result<u64, ElfError> {
        if self.is64 {
            self.u64(off)
        } else {
            self.u32(off).map(u64::from)
        }
    }

    fn shdr_off(&self, i: usize) -> usize {
        self.shoff as usize + i * self.shentsize
    }

    fn raw_shdr(&self, i: usize) -> Result<Shdr, ElfError> {
        let o = self.shdr_off(i);
        let w = if self.is64 { 8 } else { 4 };
        Ok(Shdr {
            name: self.u32(o)?,
            kind: self.u32(o + 4)?,
            flags: self.word(o + 8)?,
            offset: self.word(o + 8 + 2 * w)?,
            size: self.word(o + 8 + 3 * w)?,
            link: self.u32(o + 8 + 4 * w)?,
            info: self.u32(o + 12 + 4 * w)?,
            entsize: self.word(o + 16 + 5 * w)?,
        })
    }

    fn shdr(&self, i: usize) -> Result<Shdr, ElfError> {
        if i >= self.shnum {
            return Err(corrupt("section index out of range"));
        }
        self.raw_shdr(i)
    }

    fn phdr(&self, i: usize) -> Result<Phdr, ElfError> {
        let o = self.phoff as usize + i * self.phentsize;
        Ok(if self.is64 {
            Phdr {
                kind: self.u32(o)?,
                offset: self.u64(o + 8)?,
                filesz: self.u64(o + 32)?,
            }
        } else {
            Phdr {
                kind: self.u32(o)?,
                offset: self.u32(o + 4)? as u64,
                filesz: self.u32(o + 16)? as u64,
            }
        })
    }

    fn section_name(&self, sh: &Shdr) -> Result<&'a [u8], ElfError> {
        let strtab = self.shdr(self.shstrndx)?;
        let tab = self.bytes(strtab.offset, strtab.size)?;
        let start = sh.name as usize;
        if start >= tab.len() {
            return Err(corrupt("section name out of range"));
        }
        let rest = &tab[start..];
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or(corrupt("unterminated section name"))?;
        Ok(&rest[..end])
    }

    /// Index and header of the named section, if present.
    fn find_section(&self, name: &str) -> Result<Option<(usize, Shdr)>, ElfError> {
        if self.shnum == 0 {
            return Ok(None);
        }
        for i in 1..self.shnum {
            let sh = self.shdr(i)?;
            if self.section_name(&sh)? == name.as_bytes() {
                return Ok(Some((i, sh)));
            }
        }
        Ok(None)
    }

    /// Type, flags and bytes of the named section, if present (SHT_NOBITS sections have none).
    pub fn section_bytes(&self, name: &str) -> Result<Option<SectionData<'a>>, ElfError> {
        match self.find_section(name)? {
            None => Ok(None),
            Some((_, sh)) if sh.kind == 8 => Ok(Some((sh.kind, sh.flags, &[]))),
            Some((_, sh)) => Ok(Some((sh.kind, sh.flags, self.bytes(sh.offset, sh.size)?))),
        }
    }
}

/// (sh_type, sh_flags, contents) of a section.
pub type SectionData<'a> = (u32, u64, &'a [u8]);

/// One note entry; the walk stops at the end of the region.
struct NoteEntry<'a> {
    name: &'a [u8],
    desc: &'a [u8],
    /// Where the entry starts in its region, and its length with padding.
    at: usize,
    len: usize,
}

fn walk_notes<'a>(e: &Elf<'a>, region: &'a [u8]) -> Result<Vec<NoteEntry<'a>>, ElfError> {
    let rd = |off: usize| -> Result<u32, ElfError> {
        let s = region
            .get(off..off + 4)
            .ok_or(ElfError::BadNote("note header past end of section"))?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if e.le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let pad = |n: usize| n.div_ceil(4) * 4;
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < region.len() {
        if region.len() - off < 12 {
            return Err(ElfError::BadNote(
                "trailing bytes shorter than a note header",
            ));
        }
        let namesz = rd(off)? as usize;
        let descsz = rd(off + 4)? as usize;
        let name_at = off + 12;
        let desc_at = name_at
            .checked_add(pad(namesz))
            .ok_or(ElfError::BadNote("name size overflow"))?;
        let next = desc_at
            .checked_add(pad(descsz))
            .ok_or(ElfError::BadNote("descriptor size overflow"))?;
        if next > region.len() {
            return Err(ElfError::BadNote("note runs past the end of its section"));
        }
        out.push(NoteEntry {
            name: &region[name_at..name_at + namesz],
            desc: &region[desc_at..desc_at + descsz],
            at: off,
            len: next - off,
        });
        off = next;
    }
    Ok(out)
}

/// The manifest ID an entry holds: None for other notes and for a placeholder not yet
/// rewritten (zeros). The type is not trusted (v0.1 and v0.2 disagree on it): the
/// descriptor length tells the algorithm.
fn entry_id(n: &NoteEntry) -> Result<Option<Id>, ElfError> {
    if n.name != NOTE_NAME && n.name != b"OMNIBOR" {
        return Ok(None);
    }
    let raw = match n.desc.len() {
        20 | 32 => n.desc,
        33 if n.desc[32] == 0 => &n.desc[..32],
        _ => {
            return Err(ElfError::BadNote(
                "OMNIBOR entry with a descriptor of unknown length",
            ))
        }
    };
    if raw.iter().all(|&c| c == 0) {
        return Ok(None);
    }
    Id::from_raw(raw)
        .map(Some)
        .ok_or(ElfError::BadNote("bad ID length"))
}

/// Collect OMNIBOR entries. Several entries of one algorithm (notes concatenated by a linker
/// that nobody rewrote) are reported as the first one; `count` tells how many there were.
fn collect(entries: &[NoteEntry]) -> Result<(NoteIds, usize), ElfError> {
    let mut ids = NoteIds::default();
    let mut count = 0;
    for n in entries {
        let Some(id) = entry_id(n)? else { continue };
        count += 1;
        match id.alg() {
            Alg::Sha1 => {
                ids.sha1.get_or_insert(id);
            }
            Alg::Sha256 => {
                ids.sha256.get_or_insert(id);
            }
        }
    }
    Ok((ids, count))
}

/// The note regions (offset, size) to look for OMNIBOR entries in: every SHT_NOTE section
/// the linker would use (a linker script may have gathered ours into another one, such as
/// the kernel's `.notes`), or, when section headers are gone, every PT_NOTE segment.
fn note_regions(e: &Elf) -> Result<Vec<(u64, u64)>, ElfError> {
    let mut out = Vec::new();
    if e.shnum > 0 {
        for i in 1..e.shnum {
            let sh = e.shdr(i)?;
            // excluded notes never reach a link; mold 1.10 still copies them to its output,
            // where they are read (and rewritten) like any other
            let excluded = e.etype == ET_REL && sh.flags & SHF_EXCLUDE != 0;
            if sh.kind == SHT_NOTE && !excluded {
                out.push((sh.offset, sh.size));
            }
        }
        return Ok(out);
    }
    for i in 0..e.phnum {
        let ph = e.phdr(i)?;
        if ph.kind == PT_NOTE {
            out.push((ph.offset, ph.filesz));
        }
    }
    Ok(out)
}

/// Read the OmniBOR note of an ELF file: the OMNIBOR entries of its note sections (or of its
/// PT_NOTE segments when section headers are gone). A note section that is not ours and
/// does not parse as notes is skipped; a malformed OMNIBOR entry is an error.
pub fn read_note(bytes: &[u8]) -> Result<NoteIds, ElfError> {
    let e = Elf::parse(bytes)?;
    let mut all = Vec::new();
    for (off, size) in note_regions(&e)? {
        match walk_notes(&e, e.bytes(off, size)?) {
            Ok(v) => all.extend(v),
            // another tool's odd note section says nothing about ours
            Err(_) if e.shnum > 0 && !is_ours(&e, off)? => {}
            Err(err) => return Err(err),
        }
    }
    Ok(collect(&all)?.0)
}

/// Is the note section at this offset named `.note.omnibor`?
fn is_ours(e: &Elf, off: u64) -> Result<bool, ElfError> {
    for i in 1..e.shnum {
        let sh = e.shdr(i)?;
        if sh.kind == SHT_NOTE && sh.offset == off {
            return Ok(e.section_name(&sh)? == SECTION.as_bytes());
        }
    }
    Ok(false)
}

pub fn read_note_file(path: &Path) -> Result<NoteIds, NoteFileError> {
    let io = |err| NoteFileError::Io {
        path: path.to_path_buf(),
        err,
    };
    let bytes = read_note_parts(path).map_err(io)?;
    read_note(&bytes).map_err(|err| NoteFileError::Elf {
        path: path.to_path_buf(),
        err,
    })
}

/// The bytes of a file that reading its note needs, at their offsets; the rest left zero.
/// Shared libraries are megabytes and links read several of them: only the ELF header, the
/// header tables, the section-name table and the note sections and segments are read.
fn read_note_parts(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = crate::store::open_path(path, libc::O_RDONLY)?;
    let len = f.metadata()?.len();
    if len <= 256 << 10 {
        return crate::store::read_up_to(&f, len as usize);
    }
    // zero pages cost nothing until written
    let mut buf = vec![0u8; len as usize];
    let fill = |buf: &mut Vec<u8>, off: u64, n: u64| -> std::io::Result<()> {
        let end = off.saturating_add(n).min(len);
        if off < end {
            f.read_exact_at(&mut buf[off as usize..end as usize], off)?;
        }
        Ok(())
    };
    fill(&mut buf, 0, 64)?;
    let ranges = match Elf::parse(&buf) {
        Ok(e) => [
            (e.phoff, (e.phnum * e.phentsize) as u64),
            (e.shoff, (e.shnum * e.shentsize) as u64),
        ],
        Err(_) => return Ok(buf), // read_note reports it
    };
    for (o, n) in ranges {
        fill(&mut buf, o, n)?;
    }
    // section 0 may hold the real section count: parse again with the tables in place
    let mut wanted: Vec<(u64, u64)> = Vec::new();
    if let Ok(e) = Elf::parse(&buf) {
        if let Ok(st) = e.shdr(e.shstrndx) {
            wanted.push((st.offset, st.size));
        }
        for i in 0..e.shnum {
            if let Ok(sh) = e.raw_shdr(i) {
                if sh.kind == SHT_NOTE {
                    wanted.push((sh.offset, sh.size));
                }
            }
        }
        for i in 0..e.phnum {
            if let Ok(ph) = e.phdr(i) {
                if ph.kind == PT_NOTE {
                    wanted.push((ph.offset, ph.filesz));
                }
            }
        }
    }
    for (o, n) in wanted {
        fill(&mut buf, o, n)?;
    }
    Ok(buf)
}

#[derive(Debug, thiserror::Error)]
pub enum NoteFileError {
    #[error("{}: {err}", path.display())]
    Io {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
    #[error("{}: {err}", path.display())]
    Elf {
        path: std::path::PathBuf,
        err: ElfError,
    },
}

fn put_u32(out: &mut Vec<u8>, v: u32, le: bool) {
    out.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
}

fn put_word(out: &mut Vec<u8>, v: u64, is64: bool, le: bool) {
    if is64 {
        out.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    } else {
        put_u32(out, v as u32, le);
    }
}

/// The 92 bytes of our two entries (zero IDs where none is given).
pub fn note_bytes(sha1: Option<&Id>, sha256: Option<&Id>, le: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(NOTE_LEN);
    for (kind, len, id) in [(1u32, 20usize, sha1), (2, 32, sha256)] {
        put_u32(&mut out, 8, le);
        put_u32(&mut out, len as u32, le);
        put_u32(&mut out, kind, le);
        out.extend_from_slice(NOTE_NAME);
        match id {
            Some(id) => out.extend_from_slice(id.as_bytes()),
            None => out.extend(std::iter::repeat_n(0u8, len)),
        }
    }
    out
}

fn check_ids(sha1: &Id, sha256: &Id) {
    debug_assert_eq!(sha1.alg(), Alg::Sha1);
    debug_assert_eq!(sha256.alg(), Alg::Sha256);
}

/// Embed into whatever kind of ELF file this is.
pub fn embed_any(bytes: &[u8], sha1: &Id, sha256: &Id) -> Result<Vec<u8>, ElfError> {
    let e = Elf::parse(bytes)?;
    let out = match e.etype {
        ET_REL => embed_rel(bytes, sha1, sha256)?,
        ET_EXEC | ET_DYN => rewrite_linked(bytes, sha1, sha256)?,
        t => {
            return Err(ElfError::WrongType(
                t,
                "an object, executable or shared library",
            ))
        }
    };
    // a file that is corrupt where we did not look (a section past its end) gives one
    // whose note does not read back: refuse it rather than write it
    match read_note(&out) {
        Ok(n) if n.sha1 == Some(*sha1) && n.sha256 == Some(*sha256) => Ok(out),
        Ok(_) => Err(corrupt("the embedded note does not read back")),
        Err(e) => Err(e),
    }
}

/// Is this file an ELF file at all (cheap check on the first bytes)?
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && &bytes[..4] == b"\x7fELF"
}

/// The ELF type from the header alone (the first 18 bytes are enough).
pub fn header_type(bytes: &[u8]) -> Option<u16> {
    if bytes.len() < 18 || !is_elf(bytes) {
        return None;
    }
    let b = [bytes[16], bytes[17]];
    match bytes[5] {
        1 => Some(u16::from_le_bytes(b)),
        2 => Some(u16::from_be_bytes(b)),
        _ => None,
    }
}

/// A shared library (or a position-independent executable), from the header alone.
pub fn is_shared_header(bytes: &[u8]) -> bool {
    header_type(bytes) == Some(ET_DYN)
}

/// The ELF type, if the bytes are ELF.
pub fn elf_type(bytes: &[u8]) -> Option<u16> {
    Elf::parse(bytes).ok().map(|e| e.etype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitoid::ids_of_bytes;

    fn ids() -> (Id, Id) {
        let i = ids_of_bytes(b"manifest");
        (i.sha1, i.sha256)
    }

    #[test]
    fn update_file_in_place_keeps_the_inode_and_spares_hard_links() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.o");
        let old: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        // grown, one byte changed in the first block and one in the third
        let mut new = old.clone();
        new[3] = 0xAA;
        new[9000] = 0xBB;
        new.extend_from_slice(b"appended section headers");
        std::fs::write(&p, &old).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        update_file(&p, &old, &new).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), new);
        assert_eq!(
            std::fs::metadata(&p).unwrap().ino(),
            ino,
            "written in place"
        );
        // shrunk
        update_file(&p, &new, &old[..5000]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), &old[..5000]);
        // a hard-linked file (a ccache entry) is replaced: the other name keeps its bytes
        std::fs::write(&p, &old).unwrap();
        let other = d.path().join("cache-entry");
        std::fs::hard_link(&p, &other).unwrap();
        update_file(&p, &old, &new).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), new);
        assert_eq!(std::fs::read(&other).unwrap(), old);
        // a file that changed since it was read is replaced whole, never patched
        let q = d.path().join("changed.o");
        std::fs::write(&q, b"something else entirely").unwrap();
        update_file(&q, &old, &new).unwrap();
        assert_eq!(std::fs::read(&q).unwrap(), new);
    }

    #[test]
    fn entry_layout_matches_format_md() {
        let (a, b) = ids();
        let n = note_bytes(Some(&a), Some(&b), true);
        assert_eq!(n.len(), NOTE_LEN);
        assert_eq!(
            &n[40..60],
            &[8, 0, 0, 0, 0x20, 0, 0, 0, 2, 0, 0, 0, 0x4f, 0x4d, 0x4e, 0x49, 0x42, 0x4f, 0x52, 0]
        );
        let be = note_bytes(Some(&a), Some(&b), false);
        assert_eq!(&be[..12], &[0, 0, 0, 8, 0, 0, 0, 20, 0, 0, 0, 1]);
    }

    #[test]
    fn placeholder_round_trips_for_every_class_and_order() {
        let (a, b) = ids();
        for (is64, le) in [(true, true), (false, true), (true, false), (false, false)] {
            let t = Target {
                is64,
                le,
                osabi: 0,
                machine: 62,
                flags: 0,
                property: None,
            };
            let obj = placeholder_object(&t);
            assert_eq!(read_note(&obj).unwrap(), NoteIds::default());
            let emb = embed_rel(&obj, &a, &b).unwrap();
            let got = read_note(&emb).unwrap();
            assert_eq!(got.sha1, Some(a));
            assert_eq!(got.sha256, Some(b));
            // embedding again replaces, never adds
            let c = ids_of_bytes(b"other");
            let twice = embed_rel(&emb, &c.sha1, &c.sha256).unwrap();
            let e = Elf::parse(&twice).unwrap();
            assert_eq!(e.shnum, Elf::parse(&emb).unwrap().shnum);
            assert_eq!(read_note(&twice).unwrap().sha1, Some(c.sha1));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let t = Target {
            is64: true,
            le: true,
            osabi: 0,
            machine: 62,
            flags: 0,
            property: None,
        };
        let (a, b) = ids();
        let good = embed_rel(&placeholder_object(&t), &a, &b).unwrap();
        for cut in 0..good.len() {
            let _ = read_note(&good[..cut]);
            let _ = embed_rel(&good[..cut], &a, &b);
        }
        let mut x = 0x12345u32;
        for i in 0..good.len() {
            let mut m = good.clone();
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            m[i] ^= (x >> 24) as u8 | 1;
            let _ = read_note(&m);
            let _ = embed_rel(&m, &a, &b);
            let _ = rewrite_linked(&m, &a, &b);
        }
        assert_eq!(read_note(b"not elf"), Err(ElfError::NotElf));
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;
    use crate::gitoid::{ids_of_bytes, Ids};

    /// The fuzzer's input `fuzz-rel-embedder-N.bin` and the IDs the fuzz target embeds.
    fn found(n: u32) -> (Vec<u8>, Ids) {
        let p = format!(
            "{}/tests/data/fuzz-rel-embedder-{n}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        (std::fs::read(p).unwrap(), ids_of_bytes(b"fuzz"))
    }

    /// Found by `cargo fuzz run rel_embedder`: an object whose section-name table is itself
    /// named `.note.omnibor`. Re-pointing it at the note destroyed every section name; it
    /// must be refused instead.
    #[test]
    fn name_table_called_note_omnibor_is_refused() {
        let (data, ids) = found(1);
        assert!(matches!(
            embed_any(&data, &ids.sha1, &ids.sha256),
            Err(ElfError::Corrupt(_))
        ));
    }

    /// Found by `scripts/fuzz` (rel_embedder): an object whose section-name table claims a
    /// size near 2^64. Appending our section names overflowed the name offset; it must be
    /// refused instead.
    #[test]
    fn name_table_of_absurd_size_is_refused() {
        let (data, ids) = found(3);
        assert!(matches!(
            embed_any(&data, &ids.sha1, &ids.sha256),
            Err(ElfError::Corrupt(_))
        ));
    }

    /// Found by `scripts/fuzz` (rel_embedder): an object with a reference past its end that
    /// the embedder copied into a file whose note did not read back; it must be refused.
    #[test]
    fn object_that_would_not_read_back_is_refused() {
        let (data, ids) = found(4);
        match embed_any(&data, &ids.sha1, &ids.sha256) {
            Err(e) => assert!(matches!(e, ElfError::Corrupt(_)), "{e}"),
            Ok(out) => assert_eq!(read_note(&out).unwrap().sha1, Some(ids.sha1)),
        }
    }

    /// Found by the same fuzzer: a linked file whose `.note.omnibor` lies over its ELF header.
    /// Rewriting it in place destroyed the header; it must be refused instead.
    #[test]
    fn note_over_the_headers_is_refused() {
        let (data, ids) = found(2);
        match embed_any(&data, &ids.sha1, &ids.sha256) {
            Err(_) => {}
            Ok(out) => assert_eq!(read_note(&out).unwrap().sha1, Some(ids.sha1)),
        }
    }
}
