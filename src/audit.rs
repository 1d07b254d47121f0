//! `omnishim audit`: the source files a binary's DWARF names (compile units and line-table
//! files, read with gimli) against the leaves of its graph, by path and by content. A
//! completeness check anyone can run on a binary built with `-g`.

use crate::gitoid::{self, Id};
use crate::resolve::{self, Resolver};
use crate::shim::record::absolute;
use object::{Object, ObjectSection};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// Relocations of one DWARF section, applied while reading it (a relocatable object's
/// DWARF holds zeros, or addends, where the section offsets of strings, abbreviations and
/// line tables go).
#[derive(Debug, Default)]
struct Relocations(object::read::RelocationMap);

impl gimli::read::Relocate for &Relocations {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(self.0.relocate(offset as u64, value))
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        <usize as gimli::ReaderOffset>::from_u64(self.0.relocate(offset as u64, value as u64))
    }
}

/// A DWARF section's data and, in a relocatable object, its relocations.
struct Section<'d> {
    data: Cow<'d, [u8]>,
    relocations: Relocations,
}

fn load_section<'d>(
    obj: &object::File<'d>,
    id: gimli::SectionId,
    relocatable: bool,
) -> Result<Section<'d>, String> {
    let Some(s) = obj.section_by_name(id.name()) else {
        return Ok(Section {
            data: Cow::Borrowed(&[]),
            relocations: Relocations::default(),
        });
    };
    let data = s
        .uncompressed_data()
        .map_err(|e| format!("section {}: {e}", id.name()))?;
    let mut map = object::read::RelocationMap::default();
    if relocatable {
        for (offset, r) in s.relocations() {
            // DWARF only needs absolute relocations; others (e.g. RISC-V's ADD/SUB pairs in
            // line tables) are left out rather than refusing the whole file
            let _ = map.add(obj, offset, r);
        }
    }
    Ok(Section {
        data,
        relocations: Relocations(map),
    })
}

/// A DWARF string as a path, byte for byte.
fn path_of<R: gimli::Reader>(r: &R) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let b = r.to_slice().ok()?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&b)))
}

/// Every source file the DWARF of an ELF file names, as absolute paths. In a relocatable
/// object (`gcc -c`, `ld -r`) the DWARF sections' relocations are applied first.
pub fn dwarf_sources(bytes: &[u8]) -> Result<BTreeSet<PathBuf>, String> {
    let obj = object::File::parse(bytes).map_err(|e| format!("not a readable object: {e}"))?;
    let endian = if obj.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let relocatable = obj.kind() == object::ObjectKind::Relocatable;
    let sections = gimli::DwarfSections::load(|id| load_section(&obj, id, relocatable))?;
    let dwarf = sections.borrow(|s| {
        gimli::RelocateReader::new(gimli::EndianSlice::new(&s.data, endian), &s.relocations)
    });
    let mut out = BTreeSet::new();
    let mut units = dwarf.units();
    let err = |e: gimli::Error| format!("DWARF: {e}");
    while let Some(header) = units.next().map_err(err)? {
        let unit = dwarf.unit(header).map_err(err)?;
        let comp_dir = unit
            .comp_dir
            .as_ref()
            .and_then(path_of)
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut add = |p: PathBuf| {
            let s = p.to_string_lossy();
            if !s.contains('<') {
                out.insert(absolute(&comp_dir, &p));
            }
        };
        if let Some(name) = unit.name.as_ref().and_then(path_of) {
            add(name);
        }
        if let Some(program) = unit.line_program.clone() {
            let header = program.header();
            for file in header.file_names() {
                let mut path = PathBuf::new();
                if let Some(dir) = file.directory(header) {
                    if let Some(d) = dwarf.attr_string(&unit, dir).ok().and_then(|d| path_of(&d)) {
                        path.push(d);
                    }
                }
                if let Some(n) = dwarf
                    .attr_string(&unit, file.path_name())
                    .ok()
                    .and_then(|n| path_of(&n))
                {
                    path.push(n);
                }
                add(path);
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub struct AuditReport {
    /// Named by DWARF, present on this machine, and neither its path nor its content is a
    /// leaf of the graph.
    pub missing: Vec<PathBuf>,
    /// Named by DWARF, not found by path but its current content is in the graph.
    pub by_content_only: Vec<PathBuf>,
    /// Named by DWARF but not on this machine (built elsewhere): cannot be compared.
    pub not_here: Vec<PathBuf>,
    /// Leaves of the graph whose paths DWARF does not name (headers without code, linker
    /// inputs, archive members not linked in...).
    pub graph_only: Vec<String>,
    pub dwarf_count: usize,
    pub leaf_count: usize,
}

pub fn audit(r: &mut Resolver, file: &Path, follow_dynamic: bool) -> Result<AuditReport, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let named = dwarf_sources(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let node = r.resolve_file(file, follow_dynamic)?;
    let leaves = resolve::leaves(&node);
    let leaf_ids: HashSet<Id> = leaves.iter().copied().collect();
    let mut leaf_paths: HashSet<PathBuf> = HashSet::new();
    let mut by_leaf: Vec<(Id, Vec<String>)> = Vec::new();
    for id in &leaves {
        let ps = r.paths(id);
        leaf_paths.extend(ps.iter().map(PathBuf::from));
        by_leaf.push((*id, ps));
    }
    let mut rep = AuditReport {
        dwarf_count: named.len(),
        leaf_count: leaves.len(),
        ..Default::default()
    };
    for p in &named {
        if leaf_paths.contains(p) {
            continue;
        }
        match gitoid::ids_of_file(p) {
            Ok(ids) if leaf_ids.contains(&ids.get(r.alg)) => rep.by_content_only.push(p.clone()),
            Ok(_) => rep.missing.push(p.clone()),
            Err(_) => rep.not_here.push(p.clone()),
        }
    }
    for (_, ps) in by_leaf {
        if !ps.iter().any(|p| named.contains(Path::new(p))) {
            rep.graph_only
                .push(ps.first().cloned().unwrap_or_else(|| "?".into()));
        }
    }
    rep.graph_only.sort();
    Ok(rep)
}
