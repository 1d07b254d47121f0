//! A compacted copy of the user's hash cache: one read-only file, mapped, where a file's
//! identity costs one probe of a hash table.
//!
//! The user's shard logs hold every system header, crt file and library any build of this
//! user has read, each directory's in one log; a compile-and-link of a file that includes
//! `stdio.h` reads eleven of them (about 100 KB) and looks through their lines, about a
//! third of its whole lookup time. The snapshot answers such a step from a few pages of one
//! mapped file. The logs stay the truth: an identity the snapshot lacks is looked up there,
//! and a step that found one there, or appended to them, writes a new snapshot (see
//! `HashCache::settle`).
//!
//! Layout: a 64-byte header (`MAGIC`, the slot count as u64 LE, the entry count, the time it
//! was written and how long reading the logs took, in ns), the slot count of each shard's
//! table (`SHARDS` u64 LE values, each 0 or a power of two), and then the shards' tables one
//! after another, each of slots of 128 bytes, open addressing with linear probing (within the
//! table) by the FNV-1a hash of the identity. A file is looked up in the table of its log's
//! shard, so that the files of one directory share pages: a step looks up files of a few
//! directories, and each page it touches costs a page fault (2-3 us in this VM; one table
//! for all shards cost a fault for most lookups). A slot: a check value (FNV-1a of the slot's
//! other 120 bytes, never 0; 0 is an empty slot), the identity (the seven values of the key:
//! device, inode, size, mtime s and ns, ctime s and ns, u64 LE), sha1, sha256, flags. A slot
//! with the identity sought whose check fails (a torn or damaged file) ends the lookup as a
//! miss, so a damaged snapshot can only send a lookup back to the logs, never give it wrong
//! IDs.

use super::hashcache::{fnv1a, Cached};
use crate::gitoid::{Id, Ids};

pub const MAGIC: &[u8; 8] = b"omsnap02";
/// The hash cache's shard logs (see `HashCache::shard_of`), each with its own table.
pub const SHARDS: usize = 64;
const HEADER: usize = 64;
/// The tables' slot counts after the header.
const DIR: usize = SHARDS * 8;
const SLOT: usize = 128;
/// More entries than this (an identity in two shards' logs counts twice) are not kept (the
/// newest lines of the logs are not preferred: a user cache this large is far beyond what
/// the logs' caps let them hold).
const MAX_ENTRIES: usize = 1 << 18;

/// A file's identity: what the hash cache's key is made of.
pub type Identity = [u64; 7];

const ELF: u8 = 1;
const NO_NOTE: u8 = 2;
const SHARED_KNOWN: u8 = 4;
const SHARED: u8 = 8;

fn identity_bytes(id: &Identity) -> [u8; 56] {
    let mut b = [0u8; 56];
    for (i, v) in id.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A slot's check value: never 0, which marks an empty slot.
fn check_of(slot: &[u8]) -> u64 {
    fnv1a(&slot[8..SLOT]) | 1
}

/// The bytes of a snapshot of `entries`, each with the set of shards (bit k: shard k) whose
/// logs hold it, written at `now_ns` from logs read in `cost_ns`. An identity given twice
/// in one shard keeps the first.
pub fn encode(entries: &[(Identity, Cached, u64)], now_ns: u64, cost_ns: u64) -> Vec<u8> {
    let mut n = [0usize; SHARDS];
    let mut placed = 0;
    let entries = entries
        .iter()
        .take_while(|(_, _, shards)| {
            placed += shards.count_ones() as usize;
            placed <= MAX_ENTRIES
        })
        .inspect(|(_, _, shards)| shards_in(*shards).for_each(|k| n[k] += 1))
        .collect::<Vec<_>>();
    // each at most half full: a miss (a file no build has hashed yet) ends at an empty
    // slot soon
    let counts = n.map(|c| match c {
        0 => 0,
        c => (2 * c).max(8).next_power_of_two(),
    });
    let total: usize = counts.iter().sum();
    let mut out = vec![0u8; HEADER + DIR + total * SLOT];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&(total as u64).to_le_bytes());
    out[24..32].copy_from_slice(&now_ns.to_le_bytes());
    out[32..40].copy_from_slice(&cost_ns.to_le_bytes());
    let mut starts = [0usize; SHARDS];
    let mut at_slot = 0;
    for (k, &c) in counts.iter().enumerate() {
        out[HEADER + 8 * k..HEADER + 8 * k + 8].copy_from_slice(&(c as u64).to_le_bytes());
        starts[k] = at_slot;
        at_slot += c;
    }
    let mut kept = 0u64;
    for (id, c, shards) in entries {
        let filled = slot_of(id, c);
        let key = &filled[8..64];
        for k in shards_in(*shards) {
            let size = counts[k];
            let mut at = (fnv1a(key) as usize) & (size - 1);
            loop {
                let s = HEADER + DIR + (starts[k] + at) * SLOT;
                let slot = &mut out[s..s + SLOT];
                if u64_at(slot, 0) == 0 {
                    slot.copy_from_slice(&filled);
                    kept += 1;
                    break;
                }
                if &slot[8..64] == key {
                    break;
                }
                at = (at + 1) & (size - 1);
            }
        }
    }
    out[16..24].copy_from_slice(&kept.to_le_bytes());
    out
}

/// The shards a set names (bit k: shard k).
fn shards_in(set: u64) -> impl Iterator<Item = usize> {
    (0..SHARDS).filter(move |k| set >> k & 1 == 1)
}

/// An entry's slot, its check value filled in.
fn slot_of(id: &Identity, c: &Cached) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[8..64].copy_from_slice(&identity_bytes(id));
    slot[64..84].copy_from_slice(c.ids.sha1.as_bytes());
    slot[84..116].copy_from_slice(c.ids.sha256.as_bytes());
    let mut flags = 0;
    if c.elf {
        flags |= ELF;
    }
    if c.no_note {
        flags |= NO_NOTE;
    }
    if let Some(shared) = c.shared {
        flags |= SHARED_KNOWN | if shared { SHARED } else { 0 };
    }
    slot[116] = flags;
    let check = check_of(&slot);
    slot[..8].copy_from_slice(&check.to_le_bytes());
    slot
}

/// A snapshot's bytes, checked for their shape.
pub struct Snapshot<B> {
    bytes: B,
    /// Each shard's table: its first slot and its slot count.
    tables: [(usize, usize); SHARDS],
}

impl<B: AsRef<[u8]>> Snapshot<B> {
    /// None unless the bytes are a whole snapshot (magic, tables of power-of-two slot
    /// counts adding up to the slot count, the length that count gives).
    pub fn new(bytes: B) -> Option<Snapshot<B>> {
        let b = bytes.as_ref();
        if b.len() < HEADER + DIR || &b[..8] != MAGIC {
            return None;
        }
        let total = usize::try_from(u64_at(b, 8)).ok()?;
        let mut tables = [(0, 0); SHARDS];
        let mut at = 0usize;
        for (k, t) in tables.iter_mut().enumerate() {
            let c = usize::try_from(u64_at(b, HEADER + 8 * k)).ok()?;
            if c != 0 && !c.is_power_of_two() {
                return None;
            }
            *t = (at, c);
            at = at.checked_add(c)?;
        }
        if at != total || total.checked_mul(SLOT)?.checked_add(HEADER + DIR)? != b.len() {
            return None;
        }
        Some(Snapshot { bytes, tables })
    }

    /// When it was written (ns since the epoch).
    pub fn written_ns(&self) -> u64 {
        u64_at(self.bytes.as_ref(), 24)
    }

    /// How long reading the logs it was made of took (ns).
    pub fn cost_ns(&self) -> u64 {
        u64_at(self.bytes.as_ref(), 32)
    }

    /// The entry of an identity in a shard's table, if it has one whose slot is intact.
    pub fn get(&self, shard: usize, id: &Identity) -> Option<Cached> {
        let b = self.bytes.as_ref();
        let (start, size) = *self.tables.get(shard)?;
        if size == 0 {
            return None;
        }
        let key = identity_bytes(id);
        let mut at = (fnv1a(&key) as usize) & (size - 1);
        for _ in 0..size {
            let s = HEADER + DIR + (start + at) * SLOT;
            let slot = &b[s..s + SLOT];
            let check = u64_at(slot, 0);
            if check == 0 {
                return None;
            }
            // only the slot with this identity is checked whole: another one, damaged or
            // not, is passed over as any other file's slot
            if slot[8..64] == key {
                if check != check_of(slot) {
                    return None;
                }
                let flags = slot[116];
                return Some(Cached {
                    ids: Ids {
                        sha1: Id::from_raw(&slot[64..84])?,
                        sha256: Id::from_raw(&slot[84..116])?,
                    },
                    elf: flags & ELF != 0,
                    no_note: flags & NO_NOTE != 0,
                    mtime: None,
                    shared: (flags & SHARED_KNOWN != 0).then_some(flags & SHARED != 0),
                });
            }
            at = (at + 1) & (size - 1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitoid::ids_of_bytes;

    /// An entry in shard `i % 5` (and also in shard 63 when `i % 7 == 0`).
    fn entry(i: u64, elf: bool, no_note: bool, shared: Option<bool>) -> (Identity, Cached, u64) {
        (
            [0xfe00, i, i * 7, 1_700_000_000 + i, i * 3, 1_700_000_001, i],
            Cached {
                ids: ids_of_bytes(&i.to_le_bytes()),
                elf,
                no_note,
                mtime: None,
                shared,
            },
            1 << (i % 5) | if i.is_multiple_of(7) { 1 << 63 } else { 0 },
        )
    }

    fn same(a: &Cached, b: &Cached) -> bool {
        a.ids == b.ids && a.elf == b.elf && a.no_note == b.no_note && a.shared == b.shared
    }

    #[test]
    fn every_entry_comes_back_with_its_flags_and_others_miss() {
        let flags = [
            (false, false, Some(false)),
            (true, false, None),
            (true, true, Some(false)),
            (true, false, Some(true)),
        ];
        let entries: Vec<_> = (0..500u64)
            .map(|i| {
                let (e, n, s) = flags[(i % 4) as usize];
                entry(i, e, n, s)
            })
            .collect();
        let bytes = encode(&entries, 42, 7);
        let snap = Snapshot::new(&bytes[..]).expect("a whole snapshot");
        assert_eq!((snap.written_ns(), snap.cost_ns()), (42, 7));
        assert_eq!(u64_at(&bytes, 16), 500 + 72, "entries of shard 63 twice");
        for (id, c, mask) in &entries {
            for k in 0..SHARDS {
                match snap.get(k, id) {
                    Some(got) => {
                        assert!(mask >> k & 1 == 1, "{id:?} found in shard {k}");
                        assert!(same(&got, c), "{id:?}");
                    }
                    None => assert!(mask >> k & 1 == 0, "{id:?} lost in shard {k}"),
                }
            }
        }
        // an identity differing in any one value (the ctime ns of a file changed in place
        // with its old mtime given back, say) is a miss
        for k in 0..7 {
            let mut id = entries[3].0;
            id[k] ^= 1 << 40;
            assert!(snap.get(3, &id).is_none(), "value {k}");
        }
        // an empty snapshot answers nothing
        let empty = encode(&[], 1, 1);
        assert!(Snapshot::new(&empty[..]).is_some_and(|s| s.get(0, &entries[0].0).is_none()));
        assert!(snap.get(SHARDS, &entries[0].0).is_none());
    }

    #[test]
    fn a_shards_entries_lie_together() {
        // 2,000 files of one directory and 30 of each of four others: a lookup in one of
        // the four never reads past its own few pages
        let entries: Vec<_> = (0..2120u64)
            .map(|i| {
                let (id, c, _) = entry(i, false, false, None);
                (id, c, if i < 2000 { 1 << 9 } else { 1 << (10 + i % 4) })
            })
            .collect();
        let bytes = encode(&entries, 1, 1);
        let snap = Snapshot::new(&bytes[..]).unwrap();
        assert_eq!(snap.tables[9].1, 4096);
        for k in 10..14 {
            let (start, size) = snap.tables[k];
            assert_eq!(size, 64, "shard {k}");
            let from = HEADER + DIR + start * SLOT;
            // every slot of the table, and only those, decides the lookups: a snapshot
            // whose bytes outside it are zeroed still answers them all
            let mut b = vec![0u8; bytes.len()];
            b[..HEADER + DIR].copy_from_slice(&bytes[..HEADER + DIR]);
            b[from..from + size * SLOT].copy_from_slice(&bytes[from..from + size * SLOT]);
            let only = Snapshot::new(&b[..]).unwrap();
            for (id, c, mask) in &entries {
                if mask >> k & 1 == 1 {
                    assert!(only.get(k, id).is_some_and(|g| same(&g, c)));
                }
            }
        }
    }

    #[test]
    fn a_damaged_snapshot_sends_lookups_back_to_the_logs_never_to_wrong_ids() {
        let entries: Vec<_> = (0..200u64)
            .map(|i| entry(i, false, false, Some(false)))
            .collect();
        let lookups = |snap: &Snapshot<&[u8]>| {
            entries
                .iter()
                .flat_map(|(id, c, mask)| shards_in(*mask).map(move |k| (k, id, c)))
                .filter_map(|(k, id, c)| snap.get(k, id).map(|g| (g, c)))
                .collect::<Vec<_>>()
        };
        let bytes = encode(&entries, 1, 1);
        // any one byte of any used slot changed: that entry is a miss or (a byte outside
        // what it reads) still its own; never another file's IDs
        let mut changed = 0;
        for s in 0..(bytes.len() - HEADER - DIR) / SLOT {
            let at = HEADER + DIR + s * SLOT;
            if u64_at(&bytes, at) == 0 {
                continue;
            }
            for off in [0, 9, 40, 70, 100, 116, 127] {
                let mut b = bytes.clone();
                b[at + off] ^= 0x10;
                let snap = Snapshot::new(&b[..]).unwrap();
                for (got, c) in lookups(&snap) {
                    assert!(same(&got, c), "slot {s} byte {off}");
                }
                changed += 1;
            }
        }
        assert!(changed >= 200 * 7);
        // a torn file (cut short), a wrong magic or slot count is no snapshot at all
        assert!(Snapshot::new(&bytes[..bytes.len() - 1]).is_none());
        let mut b = bytes.clone();
        b[0] ^= 1;
        assert!(Snapshot::new(&b[..]).is_none());
        let mut b = bytes.clone();
        b[8] = 3;
        assert!(Snapshot::new(&b[..]).is_none());
        // a table's slot count changed, or no power of two
        for v in [0u8, 3, 64] {
            let mut b = bytes.clone();
            b[HEADER + 8] = v;
            assert!(Snapshot::new(&b[..]).is_none(), "{v}");
        }
        assert!(Snapshot::new(&bytes[..10]).is_none());
        // zeroed pages (a file whose data never reached the disk) hold no entries
        let mut b = bytes.clone();
        for x in &mut b[HEADER + DIR..] {
            *x = 0;
        }
        let snap = Snapshot::new(&b[..]).unwrap();
        assert!(lookups(&snap).is_empty());
        assert!(!lookups(&Snapshot::new(&bytes[..]).unwrap()).is_empty());
    }
}
