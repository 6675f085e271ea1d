//! Which transactions may run at the same time. A transaction's key set is every unique-key
//! value its row images touch (before and after images), per table; a table without a usable
//! unique key, an image that cannot be decoded, or a table in a foreign-key relationship is
//! locked whole. Two transactions conflict when they share a key or one locks a table the
//! other touches; conflicting transactions keep their binlog order, everything else may run
//! (and commit) in any order. Statements are barriers and never get here.
//!
//! The source's group commit relaxes table locks on transactional tables: transactions that
//! committed in one group (MariaDB `commit_id`, MySQL `last_committed`) held their row locks
//! at the same time on the source, so their writes are disjoint and they may run together
//! even where floodgate cannot tell their rows apart (no usable key, foreign keys). Locks on
//! non-transactional tables stay exclusive: their statements never waited for each other.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::event::{Event, Gtid};
use crate::reader::RawEvent;
use crate::rows::{self, TableMap};
use crate::txn::Txn;

/// What the scheduler knows about one table on the target.
#[derive(Debug, Clone, Default)]
pub struct TableKeys {
    /// Column count (a table map with another count is from another version of the table).
    pub columns: usize,
    /// Unique keys (primary first if any) as column positions, all exact (compared as bytes).
    pub unique: Vec<Vec<usize>>,
    /// False when some unique key cannot be compared as bytes (a string column with a
    /// collation: 'a' and 'A ' may be the same key) or there is none: lock the table.
    pub usable: bool,
    /// Part of a foreign key (either side): lock all such tables together.
    pub foreign_key: bool,
    /// Rolls back (InnoDB): row locks on the source kept one commit group's writes apart.
    pub transactional: bool,
}

/// Table number reserved for "every table in a foreign-key relationship".
pub const FK_GROUP: u32 = u32::MAX;

/// The keys one transaction touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Hashes of (table, key index, key value). A hash collision only adds a false conflict.
    pub rows: Vec<u64>,
    /// Tables touched by row keys.
    pub shared: Vec<u32>,
    /// Tables locked whole.
    pub exclusive: Vec<u32>,
    /// Tables locked whole, except against transactions of the same commit group.
    pub group_exclusive: Vec<u32>,
    /// The source's commit group, when it logged one.
    pub group: Option<u64>,
}

impl Keys {
    /// Locks at least one table whole.
    pub fn locks_tables(&self) -> bool {
        !self.exclusive.is_empty() || !self.group_exclusive.is_empty()
    }

    fn normalize(&mut self) {
        for v in [&mut self.shared, &mut self.exclusive, &mut self.group_exclusive] {
            v.sort_unstable();
            v.dedup();
        }
        self.rows.sort_unstable();
        self.rows.dedup();
    }
}

/// Row keys are already SipHash values and table numbers are small: hashing them again
/// was a fifth of the dispatcher's time. One multiply spreads a table number well enough.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type FastMap<K> = HashMap<K, u32, BuildHasherDefault<PrehashedHasher>>;

/// Holders of a table: how many, and their commit group if they all share one.
#[derive(Debug, Clone, Copy)]
struct Holders {
    count: u32,
    group: Option<u64>,
}

type TableMap32 = HashMap<u32, Holders, BuildHasherDefault<PrehashedHasher>>;

/// Keys in use, with counts, so they can be removed when a transaction commits.
#[derive(Debug, Default)]
pub struct Busy {
    rows: FastMap<u64>,
    shared: TableMap32,
    exclusive: FastMap<u32>,
    group_exclusive: TableMap32,
}

/// Nobody holds the table, or every holder belongs to `group` (a group the source logged).
fn same_group(held: Option<&Holders>, group: Option<u64>) -> bool {
    held.is_none_or(|h| h.group.is_some() && h.group == group)
}

impl Busy {
    /// Would a transaction with `k` conflict with anything here?
    pub fn conflicts(&self, k: &Keys) -> bool {
        k.rows.iter().any(|r| self.rows.contains_key(r))
            || k.shared
                .iter()
                .any(|t| self.exclusive.contains_key(t) || !same_group(self.group_exclusive.get(t), k.group))
            || k.exclusive.iter().any(|t| {
                self.exclusive.contains_key(t) || self.shared.contains_key(t) || self.group_exclusive.contains_key(t)
            })
            || k.group_exclusive.iter().any(|t| {
                self.exclusive.contains_key(t)
                    || !same_group(self.shared.get(t), k.group)
                    || !same_group(self.group_exclusive.get(t), k.group)
            })
    }

    /// Does `k` take a group lock on a table that another transaction holds right now (which
    /// only a transaction of the same commit group can, without a conflict)?
    pub fn shares_group_lock(&self, k: &Keys) -> bool {
        k.group_exclusive.iter().any(|t| self.group_exclusive.contains_key(t) || self.shared.contains_key(t))
    }

    /// Records `k` as in use.
    pub fn add(&mut self, k: &Keys) {
        fn hold(m: &mut TableMap32, t: u32, group: Option<u64>) {
            let h = m.entry(t).or_insert(Holders { count: 0, group });
            if h.group != group {
                h.group = None;
            }
            h.count += 1;
        }
        for r in &k.rows {
            *self.rows.entry(*r).or_default() += 1;
        }
        for t in &k.shared {
            hold(&mut self.shared, *t, k.group);
        }
        for t in &k.exclusive {
            *self.exclusive.entry(*t).or_default() += 1;
        }
        for t in &k.group_exclusive {
            hold(&mut self.group_exclusive, *t, k.group);
        }
    }

    /// Releases `k`.
    pub fn remove(&mut self, k: &Keys) {
        fn dec<K: Hash + Eq + Copy>(m: &mut FastMap<K>, key: K) {
            if let Some(c) = m.get_mut(&key) {
                *c -= 1;
                if *c == 0 {
                    m.remove(&key);
                }
            }
        }
        fn release(m: &mut TableMap32, t: u32) {
            if let Some(h) = m.get_mut(&t) {
                h.count -= 1;
                if h.count == 0 {
                    m.remove(&t);
                }
            }
        }
        k.rows.iter().for_each(|r| dec(&mut self.rows, *r));
        k.shared.iter().for_each(|t| release(&mut self.shared, *t));
        k.exclusive.iter().for_each(|t| dec(&mut self.exclusive, *t));
        k.group_exclusive.iter().for_each(|t| release(&mut self.group_exclusive, *t));
    }

    /// Nothing in use.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.shared.is_empty() && self.exclusive.is_empty() && self.group_exclusive.is_empty()
    }
}

/// MariaDB GTID flag: every change of the transaction was to transactional tables.
const FL_TRANSACTIONAL: u8 = 4;

/// The commit group a transaction belonged to on the source: MariaDB's commit id (with its
/// domain; only for transactions the source marked transactional, whatever the target's
/// engines are now), or MySQL's `last_committed` (which counts from the start of each file,
/// hence the file in the key). None when the server logged no group.
pub fn commit_group(txn: &Txn) -> Option<u64> {
    let mut h = DefaultHasher::new();
    txn.file.index.hash(&mut h);
    match txn.gtid.as_ref()? {
        Gtid::Mariadb { domain, commit_id, flags, .. } => {
            if flags & FL_TRANSACTIONAL == 0 {
                return None;
            }
            (domain, (*commit_id)?).hash(&mut h);
        }
        Gtid::Mysql { last_committed, .. } => (*last_committed)?.hash(&mut h),
    }
    Some(h.finish())
}

/// Tables named in a transaction's table maps, for schema look-ups.
pub fn tables(txn: &Txn) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = txn
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::TableMap(m) => Some((m.db.clone(), m.table.clone())),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Computes a transaction's keys. `table_no` numbers tables; `schema` gives their keys.
pub fn keys(
    txn: &Txn,
    mut table_no: impl FnMut(&str, &str) -> u32,
    schema: impl Fn(&str, &str) -> Option<TableKeys>,
) -> Keys {
    let mut maps: HashMap<u64, &TableMap> = HashMap::new();
    let mut k = Keys { group: commit_group(txn), ..Keys::default() };
    let crc = if txn.file.fde.checksum { 4 } else { 0 };
    for ev in &txn.events {
        match &ev.event {
            Event::TableMap(m) => {
                maps.insert(m.table_id, m);
            }
            Event::Rows(r) => {
                let Some(map) = maps.get(&r.table_id) else {
                    // Rows without a table map: nothing to key on; lock everything it could be.
                    k.exclusive.push(FK_GROUP);
                    continue;
                };
                let no = table_no(&map.db, &map.table);
                let info = schema(&map.db, &map.table).unwrap_or_default();
                // A whole-table lock; shared within a commit group where the table rolls back.
                let lock = |k: &mut Keys, table: u32| {
                    if info.transactional { &mut k.group_exclusive } else { &mut k.exclusive }.push(table);
                };
                if info.foreign_key {
                    lock(&mut k, FK_GROUP);
                }
                if !info.usable
                    || info.columns != map.columns.len()
                    || !row_keys(ev, r, map, &info, no, crc, &mut k.rows)
                {
                    lock(&mut k, no);
                    continue;
                }
                k.shared.push(no);
            }
            _ => {}
        }
    }
    k.normalize();
    k
}

/// Adds the key hashes of every image of a rows event; false if they cannot be read.
fn row_keys(
    ev: &RawEvent,
    r: &crate::event::Rows,
    map: &TableMap,
    info: &TableKeys,
    no: u32,
    crc: usize,
    out: &mut Vec<u64>,
) -> bool {
    let end = ev.bytes.len().saturating_sub(crc);
    let Some(body) = ev.bytes.get(crate::event::HEADER_LEN..end) else { return false };
    let Some(images) = rows::images(body, r, map) else { return false };
    for (present, image) in &images {
        for (idx, cols) in info.unique.iter().enumerate() {
            if cols.iter().any(|&c| !present.get(c).copied().unwrap_or(false)) {
                // A minimal image without the key's columns: cannot tell which row it is.
                return false;
            }
            let values: Option<Vec<&[u8]>> = cols.iter().map(|&c| image.get(c).copied().flatten()).collect();
            // A NULL in a unique key never collides with anything.
            let Some(values) = values else { continue };
            let mut h = DefaultHasher::new();
            (no, idx).hash(&mut h);
            for v in values {
                v.hash(&mut h);
            }
            out.push(h.finish());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rows: &[u64], shared: &[u32], exclusive: &[u32]) -> Keys {
        Keys { rows: rows.to_vec(), shared: shared.to_vec(), exclusive: exclusive.to_vec(), ..Keys::default() }
    }

    fn group_locked(table: u32, group: Option<u64>) -> Keys {
        Keys { group_exclusive: vec![table], group, ..Keys::default() }
    }

    fn row_keyed(table: u32, group: Option<u64>) -> Keys {
        Keys { shared: vec![table], group, ..Keys::default() }
    }

    #[test]
    fn one_commit_group_shares_a_table_lock_and_nothing_else_does() {
        let mut busy = Busy::default();
        busy.add(&group_locked(7, Some(1)));
        assert!(!busy.conflicts(&group_locked(7, Some(1))), "same group");
        assert!(busy.shares_group_lock(&group_locked(7, Some(1))));
        assert!(busy.conflicts(&group_locked(7, Some(2))), "another group");
        assert!(busy.conflicts(&group_locked(7, None)), "no group logged");
        assert!(!busy.conflicts(&row_keyed(7, Some(1))), "row keys, same group");
        assert!(busy.conflicts(&row_keyed(7, Some(2))), "row keys, other group");
        assert!(busy.conflicts(&Keys { exclusive: vec![7], group: Some(1), ..Keys::default() }), "a hard lock");
        // Row keys of two groups on the table: a group lock waits for both to end.
        busy.remove(&group_locked(7, Some(1)));
        busy.add(&row_keyed(7, Some(1)));
        busy.add(&row_keyed(7, Some(2)));
        assert!(busy.conflicts(&group_locked(7, Some(1))));
        busy.remove(&row_keyed(7, Some(1)));
        busy.remove(&row_keyed(7, Some(2)));
        assert!(busy.is_empty());
    }

    #[test]
    fn a_hard_table_lock_ignores_groups() {
        let mut busy = Busy::default();
        busy.add(&Keys { exclusive: vec![7], group: Some(1), ..Keys::default() });
        assert!(busy.conflicts(&group_locked(7, Some(1))));
        assert!(busy.conflicts(&row_keyed(7, Some(1))));
    }

    #[test]
    fn row_keys_conflict_only_on_the_same_key() {
        let mut busy = Busy::default();
        busy.add(&keys(&[1, 2], &[7], &[]));
        assert!(busy.conflicts(&keys(&[2], &[7], &[])));
        assert!(!busy.conflicts(&keys(&[3], &[7], &[])));
        assert!(busy.conflicts(&keys(&[], &[], &[7])));
        assert!(!busy.conflicts(&keys(&[], &[], &[8])));
        busy.remove(&keys(&[1, 2], &[7], &[]));
        assert!(busy.is_empty());
    }

    #[test]
    fn a_locked_table_conflicts_with_any_row_of_it() {
        let mut busy = Busy::default();
        busy.add(&keys(&[], &[], &[7]));
        assert!(busy.conflicts(&keys(&[99], &[7], &[])));
        assert!(!busy.conflicts(&keys(&[99], &[6], &[])));
    }
}
