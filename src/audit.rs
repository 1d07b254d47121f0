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

/// Every source file the DWARF of an ELF file names, as absolute paths.
pub fn dwarf_sources(bytes: &[u8]) -> Result<BTreeSet<PathBuf>, String> {
    let obj = object::File::parse(bytes).map_err(|e| format!("not a readable object: {e}"))?;
    let endian = if obj.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Cow<[u8]>, gimli::Error> {
        Ok(obj
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    let owned = gimli::DwarfSections::load(load).map_err(|e| format!("DWARF: {e}"))?;
    let dwarf = owned.borrow(|s| gimli::EndianSlice::new(s, endian));
    let mut out = BTreeSet::new();
    let mut units = dwarf.units();
    let err = |e: gimli::Error| format!("DWARF: {e}");
    while let Some(header) = units.next().map_err(err)? {
        let unit = dwarf.unit(header).map_err(err)?;
        let comp_dir = unit
            .comp_dir
            .map(|d| PathBuf::from(d.to_string_lossy().into_owned()))
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut add = |p: PathBuf| {
            let s = p.to_string_lossy();
            if !s.contains('<') {
                out.insert(absolute(&comp_dir, &p));
            }
        };
        if let Some(name) = unit.name {
            add(PathBuf::from(name.to_string_lossy().into_owned()));
        }
        if let Some(program) = unit.line_program.clone() {
            let header = program.header();
            for file in header.file_names() {
                let mut path = PathBuf::new();
                if let Some(dir) = file.directory(header) {
                    if let Ok(d) = dwarf.attr_string(&unit, dir) {
                        path.push(d.to_string_lossy().into_owned());
                    }
                }
                if let Ok(n) = dwarf.attr_string(&unit, file.path_name()) {
                    path.push(n.to_string_lossy().into_owned());
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
