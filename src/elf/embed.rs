//! Embedding the note in relocatable objects, and the placeholder object every link gets.

use super::*;

/// Serialize a section header.
#[allow(clippy::too_many_arguments)]
fn shdr_bytes(
    out: &mut Vec<u8>,
    is64: bool,
    le: bool,
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
) {
    put_u32(out, name, le);
    put_u32(out, kind, le);
    put_word(out, flags, is64, le);
    put_word(out, 0, is64, le); // addr
    put_word(out, offset, is64, le);
    put_word(out, size, is64, le);
    put_u32(out, link, le);
    put_u32(out, info, le);
    put_word(out, align, is64, le);
    put_word(out, entsize, is64, le);
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

fn set_u16(b: &mut [u8], off: usize, v: u16, le: bool) {
    b[off..off + 2].copy_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
}

fn set_word(b: &mut [u8], off: usize, v: u64, is64: bool, le: bool) {
    if is64 {
        b[off..off + 8].copy_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    } else {
        b[off..off + 4].copy_from_slice(&if le {
            (v as u32).to_le_bytes()
        } else {
            (v as u32).to_be_bytes()
        });
    }
}

/// The COMDAT group signature every object's note shares, so that a linker keeps one copy:
/// a weak hidden symbol defined at the note, the way C++ inline functions are grouped (a
/// signature symbol must exist; weak so that copies never clash, hidden so that it never
/// reaches a dynamic symbol table).
pub const SIGNATURE: &str = "__omnibor_note";

const ELFOSABI_NONE: u8 = 0;
const ELFOSABI_GNU: u8 = 3;

/// Embed our note in a relocatable object, returning the new file bytes.
pub fn embed_rel(bytes: &[u8], sha1: &Id, sha256: &Id) -> Result<Vec<u8>, ElfError> {
    check_ids(sha1, sha256);
    let e = Elf::parse(bytes)?;
    embed_note(bytes, &note_bytes(Some(sha1), Some(sha256), e.le))
}

/// Put `note` in the object as the one member of a COMDAT group named [`SIGNATURE`].
///
/// Everything new (the note, a group section, copies of the string and symbol tables with
/// one name and one symbol appended, a new section-header table) goes to the end of the
/// file, and the ELF header points at the new table. Every existing section keeps its index
/// and every symbol its index, so relocations, symbols and other groups stay valid. When the
/// group is already there (an earlier embed, or `ld -r` of our objects) its note is re-pointed
/// at the new bytes instead, so a file never holds two. Notes named `.note.omnibor` outside
/// the group (other tools', older layouts) are marked SHF_EXCLUDE: kept in the file, left
/// out of every link.
fn embed_note(bytes: &[u8], note: &[u8]) -> Result<Vec<u8>, ElfError> {
    let e = Elf::parse(bytes)?;
    if e.etype != ET_REL {
        return Err(ElfError::WrongType(
            e.etype,
            "a relocatable object (ET_REL)",
        ));
    }
    if e.shnum == 0 {
        return Err(corrupt("relocatable object without section headers"));
    }
    let (is64, le) = (e.is64, e.le);
    let w = if is64 { 8 } else { 4 };
    let mut grouped = None;
    let mut legacy = Vec::new();
    for i in 1..e.shnum {
        let sh = e.shdr(i)?;
        if e.section_name(&sh)? != SECTION.as_bytes() {
            continue;
        }
        if i == e.shstrndx {
            return Err(corrupt("the section-name table is named .note.omnibor"));
        }
        if sh.kind != SHT_NOTE {
            continue;
        }
        if grouped.is_none() && in_our_group(&e, i)? {
            grouped = Some(i);
        } else if sh.flags & SHF_EXCLUDE == 0 {
            legacy.push(i);
        }
    }

    let mut out = bytes.to_vec();
    pad_to(&mut out, 4);
    let note_off = out.len() as u64;
    out.extend_from_slice(note);
    let mut table = e.bytes(e.shoff, (e.shnum * e.shentsize) as u64)?.to_vec();
    let entsize = e.shentsize;
    let set_flags = |table: &mut Vec<u8>, idx: usize, flags: u64| {
        set_word(table, idx * entsize + 8, flags, is64, le);
    };
    for &i in &legacy {
        let sh = e.shdr(i)?;
        set_flags(&mut table, i, sh.flags | SHF_EXCLUDE);
    }
    if let Some(i) = grouped {
        repoint_in(&mut table, &e, i, note_off, note.len() as u64);
    } else {
        add_group(&e, &mut out, &mut table, note_off, note.len() as u64)?;
    }
    // ld.bfd honours SHF_GNU_RETAIN only in objects marked for the GNU ABI, as gas marks
    // every object that uses it; the linked output's own OS/ABI stays what it was
    if out[7] == ELFOSABI_NONE {
        out[7] = ELFOSABI_GNU;
    }

    pad_to(&mut out, w);
    let new_shoff = out.len() as u64;
    let shnum = table.len() / entsize;
    // extended numbering past SHN_LORESERVE: section 0's sh_size holds the count
    if shnum >= SHN_LORESERVE {
        set_word(&mut table, 8 + 3 * w, shnum as u64, is64, le);
    }
    out.extend_from_slice(&table);
    let (shoff_at, shnum_at) = if is64 { (40, 60) } else { (32, 48) };
    set_word(&mut out, shoff_at, new_shoff, is64, le);
    let field = if shnum >= SHN_LORESERVE {
        0
    } else {
        shnum as u16
    };
    set_u16(&mut out, shnum_at, field, le);
    Ok(out)
}

/// Is section `idx` a member of a COMDAT group whose signature is ours?
fn in_our_group(e: &Elf, idx: usize) -> Result<bool, ElfError> {
    for g in 1..e.shnum {
        let sh = e.shdr(g)?;
        if sh.kind != SHT_GROUP {
            continue;
        }
        let words = e.bytes(sh.offset, sh.size)?;
        let word = |k: usize| e.u32(sh.offset as usize + 4 * k);
        let n = words.len() / 4;
        if n < 2 || word(0)? & GRP_COMDAT == 0 {
            continue;
        }
        let mut member = false;
        for k in 1..n {
            member |= word(k)? as usize == idx;
        }
        if member && symbol_name(e, sh.link as usize, sh.info as usize)? == SIGNATURE.as_bytes() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The name of symbol `sym` of symbol table `tab`.
fn symbol_name<'a>(e: &Elf<'a>, tab: usize, sym: usize) -> Result<&'a [u8], ElfError> {
    let st = e.shdr(tab)?;
    let size = if e.is64 { 24 } else { 16 };
    if st.kind != SHT_SYMTAB || (sym as u64 + 1) * size > st.size {
        return Ok(b"");
    }
    let name = e.u32((st.offset + sym as u64 * size) as usize)? as usize;
    let strs = e.shdr(st.link as usize)?;
    let tab = e.bytes(strs.offset, strs.size)?;
    let rest = tab.get(name..).ok_or(corrupt("symbol name out of range"))?;
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or(corrupt("unterminated symbol name"))?;
    Ok(&rest[..end])
}

/// Strings appended to string tables: the section index, its original size and the names.
struct StrAdds {
    tables: Vec<(usize, u64, Vec<u8>)>,
}

impl StrAdds {
    /// Append `s` to table `idx` (original size `size`); its offset in the new table (a
    /// table too large for a 32-bit name offset is refused).
    fn add(&mut self, idx: usize, size: u64, s: &str) -> Result<u32, ElfError> {
        let pos = match self.tables.iter().position(|t| t.0 == idx) {
            Some(p) => p,
            None => {
                self.tables.push((idx, size, Vec::new()));
                self.tables.len() - 1
            }
        };
        let t = &mut self.tables[pos];
        let at =
            t.1.checked_add(t.2.len() as u64)
                .and_then(|at| u32::try_from(at).ok())
                .ok_or(corrupt("string table too large"))?;
        t.2.extend_from_slice(s.as_bytes());
        t.2.push(0);
        Ok(at)
    }
}

/// Add the group section, the note in it and the signature symbol.
fn add_group(
    e: &Elf,
    out: &mut Vec<u8>,
    table: &mut Vec<u8>,
    note_off: u64,
    note_len: u64,
) -> Result<(), ElfError> {
    let (is64, le) = (e.is64, e.le);
    let w = if is64 { 8 } else { 4 };
    let symsize: u64 = if is64 { 24 } else { 16 };
    let group_idx = e.shnum;
    let note_idx = e.shnum + 1;
    let mut next = e.shnum + 2;
    let mut strs = StrAdds { tables: Vec::new() };
    let shstr = e.shdr(e.shstrndx)?;
    let n_group = strs.add(e.shstrndx, shstr.size, ".group")?;
    let n_note = strs.add(e.shstrndx, shstr.size, SECTION)?;
    let xindex = note_idx >= SHN_LORESERVE;
    let sym_shndx = if xindex { SHN_XINDEX } else { note_idx } as u16;
    let symbol = |name: u32| {
        let mut s = Vec::new();
        put_u32(&mut s, name, le);
        let (info, other) = (0x20u8, 2u8); // STB_WEAK, STT_NOTYPE; STV_HIDDEN
        if is64 {
            s.extend_from_slice(&[info, other]);
            s.extend_from_slice(&u16_bytes(sym_shndx, le));
            put_word(&mut s, 0, true, le);
            put_word(&mut s, 0, true, le);
        } else {
            put_word(&mut s, 0, false, le);
            put_word(&mut s, 0, false, le);
            s.extend_from_slice(&[info, other]);
            s.extend_from_slice(&u16_bytes(sym_shndx, le));
        }
        s
    };
    let mut new_shdrs: Vec<u8> = Vec::new();
    let symtab = (1..e.shnum).find(|&i| e.shdr(i).is_ok_and(|s| s.kind == SHT_SYMTAB));
    let (symtab_idx, sym_idx) = match symtab {
        Some(si) => {
            let st = e.shdr(si)?;
            if st.entsize != symsize || st.size % symsize != 0 {
                return Err(corrupt("symbol table with an odd entry size"));
            }
            let nsyms = st.size / symsize;
            let strs_sh = e.shdr(st.link as usize)?;
            let name = strs.add(st.link as usize, strs_sh.size, SIGNATURE)?;
            pad_to(out, w);
            let at = out.len() as u64;
            out.extend_from_slice(e.bytes(st.offset, st.size)?);
            out.extend_from_slice(&symbol(name));
            repoint_in(table, e, si, at, st.size + symsize);
            let shndx = (1..e.shnum).find(|&i| {
                e.shdr(i)
                    .is_ok_and(|s| s.kind == SHT_SYMTAB_SHNDX && s.link as usize == si)
            });
            let ext = if xindex { note_idx as u32 } else { 0 };
            match shndx {
                Some(xi) => {
                    let x = e.shdr(xi)?;
                    pad_to(out, 4);
                    let at = out.len() as u64;
                    out.extend_from_slice(e.bytes(x.offset, x.size)?);
                    put_u32(out, ext, le);
                    repoint_in(table, e, xi, at, x.size + 4);
                }
                None if xindex => {
                    let n_x = strs.add(e.shstrndx, shstr.size, ".symtab_shndx")?;
                    pad_to(out, 4);
                    let at = out.len() as u64;
                    out.extend(std::iter::repeat_n(0u8, 4 * nsyms as usize));
                    put_u32(out, ext, le);
                    let size = out.len() as u64 - at;
                    let mut sh = Vec::new();
                    shdr_bytes(
                        &mut sh,
                        is64,
                        le,
                        n_x,
                        SHT_SYMTAB_SHNDX,
                        0,
                        at,
                        size,
                        si as u32,
                        0,
                        4,
                        4,
                    );
                    new_shdrs.extend_from_slice(&sh);
                    next += 1;
                }
                None => {}
            }
            (si, nsyms as usize)
        }
        None => {
            // no symbol table at all (hand-made objects): a new one, with its own names
            let (si, stri) = (next, next + 1);
            let n_sym = strs.add(e.shstrndx, shstr.size, ".symtab")?;
            let n_str = strs.add(e.shstrndx, shstr.size, ".strtab")?;
            let names = format!("\0{SIGNATURE}\0");
            pad_to(out, w);
            let at = out.len() as u64;
            out.extend(std::iter::repeat_n(0u8, symsize as usize));
            out.extend_from_slice(&symbol(1));
            let str_at = out.len() as u64;
            out.extend_from_slice(names.as_bytes());
            let mut sh = Vec::new();
            shdr_bytes(
                &mut sh,
                is64,
                le,
                n_sym,
                SHT_SYMTAB,
                0,
                at,
                2 * symsize,
                stri as u32,
                1,
                w as u64,
                symsize,
            );
            shdr_bytes(
                &mut sh,
                is64,
                le,
                n_str,
                SHT_STRTAB,
                0,
                str_at,
                names.len() as u64,
                0,
                0,
                1,
                0,
            );
            new_shdrs.extend_from_slice(&sh);
            (si, 1)
        }
    };
    for (idx, size, added) in &strs.tables {
        let sh = e.shdr(*idx)?;
        if sh.size != *size {
            return Err(corrupt("string table changed size"));
        }
        let at = out.len() as u64;
        out.extend_from_slice(e.bytes(sh.offset, sh.size)?);
        out.extend_from_slice(added);
        repoint_in(table, e, *idx, at, sh.size + added.len() as u64);
    }
    pad_to(out, 4);
    let group_off = out.len() as u64;
    put_u32(out, GRP_COMDAT, le);
    put_u32(out, note_idx as u32, le);
    let mut sh = Vec::new();
    shdr_bytes(
        &mut sh,
        is64,
        le,
        n_group,
        SHT_GROUP,
        0,
        group_off,
        8,
        symtab_idx as u32,
        sym_idx as u32,
        4,
        4,
    );
    shdr_bytes(
        &mut sh,
        is64,
        le,
        n_note,
        SHT_NOTE,
        SHF_ALLOC | SHF_GROUP | SHF_GNU_RETAIN,
        note_off,
        note_len,
        0,
        0,
        4,
        0,
    );
    debug_assert_eq!(table.len() / e.shentsize, group_idx);
    table.extend_from_slice(&sh);
    table.extend_from_slice(&new_shdrs);
    debug_assert!(table.len() / e.shentsize == next || symtab.is_none());
    Ok(())
}

fn u16_bytes(v: u16, le: bool) -> [u8; 2] {
    if le {
        v.to_le_bytes()
    } else {
        v.to_be_bytes()
    }
}

/// Point section `idx` of the new header table at other bytes.
fn repoint_in(table: &mut [u8], e: &Elf, idx: usize, off: u64, size: u64) {
    let w = if e.is64 { 8 } else { 4 };
    let o = idx * e.shentsize + 8 + 2 * w;
    set_word(table, o, off, e.is64, e.le);
    set_word(table, o + w, size, e.is64, e.le);
}

/// The placeholder as assembler source, for a driver link with no object to copy the target
/// from (the driver assembles it for the right target): the same group as `embed_rel` makes.
pub fn placeholder_asm() -> String {
    format!(
        "\t.section .note.omnibor,\"aGR\",%note,{SIGNATURE},comdat\n\
         \t.weak {SIGNATURE}\n\t.hidden {SIGNATURE}\n\t.balign 4\n{SIGNATURE}:\n\
         \t.long 8, 20, 1\n\t.asciz \"OMNIBOR\"\n\t.zero 20\n\
         \t.long 8, 32, 2\n\t.asciz \"OMNIBOR\"\n\t.zero 32\n\
         \t.section .note.GNU-stack,\"\",%progbits\n"
    )
}

/// What a placeholder object must match to be accepted by the linker next to real inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub is64: bool,
    pub le: bool,
    pub osabi: u8,
    pub machine: u16,
    pub flags: u32,
    /// `.note.gnu.property` of the template object, copied so that the AND/OR of the link's
    /// properties (CET, ISA level) is what it would have been without us.
    pub property: Option<Vec<u8>>,
}

impl Target {
    /// Take the target from a relocatable object that is part of the same link.
    pub fn from_object(bytes: &[u8]) -> Result<Target, ElfError> {
        let e = Elf::parse(bytes)?;
        if e.etype != ET_REL {
            return Err(ElfError::WrongType(
                e.etype,
                "a relocatable object (ET_REL)",
            ));
        }
        let property = match e.section_bytes(".note.gnu.property")? {
            Some((SHT_NOTE, _, b)) if !b.is_empty() => Some(b.to_vec()),
            _ => None,
        };
        Ok(Target {
            is64: e.is64,
            le: e.le,
            osabi: bytes[7],
            machine: e.machine,
            flags: e.flags,
            property,
        })
    }
}

/// A relocatable object holding a zeroed 92-byte `.note.omnibor` in our COMDAT group, an empty
/// `.note.GNU-stack` (so the linker does not assume an executable stack) and the template's
/// property note.
pub fn placeholder_object(t: &Target) -> Vec<u8> {
    let (is64, le) = (t.is64, t.le);
    let ehsize: usize = if is64 { 64 } else { 52 };
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.push(if is64 { 2 } else { 1 });
    out.push(if le { 1 } else { 2 });
    out.push(1); // EV_CURRENT
    out.push(t.osabi);
    out.resize(16, 0);
    out.resize(ehsize, 0); // filled below

    let mut strtab: Vec<u8> = vec![0];
    let mut name = |s: &str| {
        let at = strtab.len() as u32;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        at
    };
    let n_stack = name(".note.GNU-stack");
    let n_prop = t.property.as_ref().map(|_| name(".note.gnu.property"));
    let n_shstr = name(".shstrtab");

    let prop_off = {
        pad_to(&mut out, if is64 { 8 } else { 4 });
        let at = out.len() as u64;
        if let Some(p) = &t.property {
            out.extend_from_slice(p);
        }
        at
    };
    let str_off = out.len() as u64;
    out.extend_from_slice(&strtab);
    pad_to(&mut out, if is64 { 8 } else { 4 });
    let shoff = out.len() as u64;
    let mut count = 0u16;
    let mut sh = |out: &mut Vec<u8>, name, kind, flags, off, size, align| {
        shdr_bytes(out, is64, le, name, kind, flags, off, size, 0, 0, align, 0);
        count += 1;
    };
    sh(&mut out, 0, SHT_NULL, 0, 0, 0, 0);
    sh(&mut out, n_stack, SHT_PROGBITS, 0, prop_off, 0, 1);
    if let (Some(n), Some(p)) = (n_prop, &t.property) {
        let align = if is64 { 8 } else { 4 };
        sh(
            &mut out,
            n,
            SHT_NOTE,
            SHF_ALLOC,
            prop_off,
            p.len() as u64,
            align,
        );
    }
    sh(
        &mut out,
        n_shstr,
        SHT_STRTAB,
        0,
        str_off,
        strtab.len() as u64,
        1,
    );
    let shstrndx = count - 1;

    let mut h = Vec::new();
    h.extend_from_slice(&u16_bytes(ET_REL, le));
    h.extend_from_slice(&u16_bytes(t.machine, le));
    put_u32(&mut h, 1, le);
    put_word(&mut h, 0, is64, le); // entry
    put_word(&mut h, 0, is64, le); // phoff
    put_word(&mut h, shoff, is64, le);
    put_u32(&mut h, t.flags, le);
    h.extend_from_slice(&u16_bytes(ehsize as u16, le));
    h.extend_from_slice(&u16_bytes(0, le)); // phentsize
    h.extend_from_slice(&u16_bytes(0, le)); // phnum
    h.extend_from_slice(&u16_bytes(if is64 { 64 } else { 40 }, le));
    h.extend_from_slice(&u16_bytes(count, le));
    h.extend_from_slice(&u16_bytes(shstrndx, le));
    out[16..ehsize].copy_from_slice(&h);
    // the note, its group and the signature symbol, as every object gets them
    match embed_note(&out, &note_bytes(None, None, le)) {
        Ok(v) => v,
        // the base object above is well formed by construction
        Err(e) => unreachable!("placeholder object: {e}"),
    }
}
