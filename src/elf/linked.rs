//! Rewriting the note of a linked file (executable, shared object) in place.
//!
//! A loaded section cannot be added after the link without a relayout, so every link gets a
//! placeholder object whose note (both entries, zero IDs) the linker keeps, as one COMDAT copy
//! with the notes of the objects it linked. We find that copy wherever the link put it (a
//! `.note.omnibor` section, or a note section a linker script gathered notes into, such as
//! the kernel's `.notes`) and overwrite it with our two entries. The size stays: gold and lld
//! place `.note.gnu.build-id` right after it in the same PT_NOTE. Extra OMNIBOR entries (from
//! inputs made by other tools, outside our COMDAT group) become padding notes (namesz 0,
//! type 0, zero descriptor of the same length), which keeps every note segment walkable.

use super::*;

/// A run of consecutive OMNIBOR entries: file offset and length.
struct Run {
    at: u64,
    len: u64,
}

/// Rewrite the note of a linked file in place. Returns the new bytes (same length).
pub fn rewrite_linked(bytes: &[u8], sha1: &Id, sha256: &Id) -> Result<Vec<u8>, ElfError> {
    check_ids(sha1, sha256);
    let e = Elf::parse(bytes)?;
    if e.etype != ET_EXEC && e.etype != ET_DYN {
        return Err(ElfError::WrongType(
            e.etype,
            "a linked file (ET_EXEC or ET_DYN)",
        ));
    }
    let runs = omnibor_runs(&e)?;
    let Some(main) = runs.iter().position(|r| r.len >= NOTE_LEN as u64) else {
        return Err(ElfError::NoSection);
    };
    // the bytes we overwrite must be notes, not the headers that describe the file
    let ehsize = if e.is64 { 64 } else { 52 };
    let strtab = if e.shnum > 0 {
        let s = e.shdr(e.shstrndx)?;
        (s.offset, s.size)
    } else {
        (0, 0)
    };
    let header_parts = [
        (0, ehsize),
        (e.phoff, (e.phnum * e.phentsize) as u64),
        (e.shoff, (e.shnum * e.shentsize) as u64),
        strtab,
    ];
    for r in &runs {
        let overlaps = |(a, n): (u64, u64)| r.at < a.saturating_add(n) && a < r.at + r.len;
        if header_parts.iter().any(|&p| overlaps(p)) {
            return Err(corrupt("the OmniBOR note overlaps the file's headers"));
        }
    }
    let mut out = bytes.to_vec();
    for (k, r) in runs.iter().enumerate() {
        let mut region = Vec::with_capacity(r.len as usize);
        let mut rest = r.len;
        if k == main {
            region = note_bytes(Some(sha1), Some(sha256), e.le);
            rest -= NOTE_LEN as u64;
        }
        if rest > 0 {
            if rest < 12 {
                return Err(ElfError::BadSize(r.len));
            }
            put_u32(&mut region, 0, e.le); // namesz
            put_u32(&mut region, (rest - 12) as u32, e.le);
            put_u32(&mut region, 0, e.le); // type
            region.resize(r.len as usize, 0);
        }
        let at = r.at as usize;
        out[at..at + r.len as usize].copy_from_slice(&region);
    }
    Ok(out)
}

/// Runs of consecutive OMNIBOR entries (ours, placeholders, other tools') in every note
/// region of the file, in file order.
fn omnibor_runs(e: &Elf) -> Result<Vec<Run>, ElfError> {
    let mut runs: Vec<Run> = Vec::new();
    for (off, size) in note_regions(e)? {
        let region = e.bytes(off, size)?;
        let entries = match walk_notes(e, region) {
            Ok(v) => v,
            Err(_) if e.shnum > 0 && !is_ours(e, off)? => continue,
            Err(err) => return Err(err),
        };
        let mut open = false;
        for n in entries {
            let ours = n.name == NOTE_NAME || n.name == b"OMNIBOR";
            if !ours {
                open = false;
                continue;
            }
            let at = off + n.at as u64;
            match runs.last_mut() {
                Some(r) if open && r.at + r.len == at => r.len += n.len as u64,
                _ => runs.push(Run {
                    at,
                    len: n.len as u64,
                }),
            }
            open = true;
        }
    }
    Ok(runs)
}
