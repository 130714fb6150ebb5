//! Every row of a vault, storage-neutral: what one backend exports and another imports when
//! the vault moves (`mailconnect storage copy`), and the digest that proves both hold the
//! same rows. Values are the stored bytes, never decoded and re-encoded, so what was sealed or
//! wrapped in one opens in the other.

use std::{
    collections::{BTreeMap, btree_map::Entry},
    fmt,
};

use sha2::{Digest as _, Sha256};

/// One audit event as stored: its grant, its writer's sequence (microseconds) and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditRow {
    pub grant: String,
    pub seq: u64,
    pub record: Vec<u8>,
}

/// Every row of every table of a vault, by key (docs/storage-schema.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Grant id → grant record.
    pub grants: BTreeMap<String, Vec<u8>>,
    /// A token's SHA-256 → token record.
    pub tokens: BTreeMap<[u8; 32], Vec<u8>>,
    /// Grant id → tombstone of a connection that ended.
    pub revoked: BTreeMap<String, Vec<u8>>,
    /// The audit log, sorted (two instances may write one sequence twice: kept apart).
    pub audit: Vec<AuditRow>,
    /// Client id → client record.
    pub clients: BTreeMap<String, Vec<u8>>,
    /// `upstream-client\0<issuer>\0<redirect>` → our client id at that upstream.
    pub registrations: BTreeMap<Vec<u8>, String>,
    /// Approval id → approval record.
    pub approvals: BTreeMap<String, Vec<u8>>,
    /// Account digest → the notifier's sealed upstream tokens.
    pub notifiers: BTreeMap<String, Vec<u8>>,
    /// Account digest → where the notifier left off.
    pub cursors: BTreeMap<String, String>,
    /// Grant id → its sealed background destination.
    pub backgrounds: BTreeMap<String, Vec<u8>>,
}

/// The tables of a [`Snapshot`], in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Grants,
    Tokens,
    Revoked,
    Audit,
    Clients,
    Registrations,
    Approvals,
    Notifiers,
    Cursors,
    Backgrounds,
}

impl Table {
    pub const ALL: [Self; 10] = [
        Self::Grants,
        Self::Tokens,
        Self::Revoked,
        Self::Audit,
        Self::Clients,
        Self::Registrations,
        Self::Approvals,
        Self::Notifiers,
        Self::Cursors,
        Self::Backgrounds,
    ];

    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Grants => "grants",
            Self::Tokens => "tokens",
            Self::Revoked => "revoked",
            Self::Audit => "audit events",
            Self::Clients => "clients",
            Self::Registrations => "upstream registrations",
            Self::Approvals => "approvals",
            Self::Notifiers => "notifiers",
            Self::Cursors => "notifier cursors",
            Self::Backgrounds => "backgrounds",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One table's row count and SHA-256 over its rows in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDigest {
    pub table: Table,
    pub rows: usize,
    pub sha256: [u8; 32],
}

/// Every table's [`TableDigest`], and a SHA-256 over them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDigest {
    pub tables: Vec<TableDigest>,
    pub sha256: [u8; 32],
}

impl SnapshotDigest {
    /// The tables whose count or digest differs from `other`'s.
    #[must_use]
    pub fn differing(&self, other: &Self) -> Vec<Table> {
        Table::ALL
            .into_iter()
            .filter(|t| {
                let find = |d: &Self| d.tables.iter().find(|x| x.table == *t).copied();
                find(self) != find(other)
            })
            .collect()
    }
}

/// A row count per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCounts(pub Vec<(Table, usize)>);

/// The tables with rows, as `grants: 1, clients: 2` (`none` when there are none).
impl fmt::Display for TableCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (table, rows) in self.0.iter().filter(|(_, n)| *n > 0) {
            if any {
                f.write_str(", ")?;
            }
            write!(f, "{table}: {rows}")?;
            any = true;
        }
        if !any {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Rows of `a` that `b` does not hold with the same value.
fn minus<K: Ord + Clone, V: PartialEq + Clone>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
) -> BTreeMap<K, V> {
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Feeds one row into a table's hash: each part length-prefixed, so no two rows run together.
fn hash_row(hash: &mut Sha256, key: &[&[u8]], value: &[u8]) {
    for part in key.iter().chain([&value]) {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
}

fn hash_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(map: &BTreeMap<K, V>) -> [u8; 32] {
    let mut hash = Sha256::new();
    for (k, v) in map {
        hash_row(&mut hash, &[k.as_ref()], v.as_ref());
    }
    hash.finalize().into()
}

impl Snapshot {
    /// How many rows `table` holds.
    #[must_use]
    pub fn rows(&self, table: Table) -> usize {
        match table {
            Table::Grants => self.grants.len(),
            Table::Tokens => self.tokens.len(),
            Table::Revoked => self.revoked.len(),
            Table::Audit => self.audit.len(),
            Table::Clients => self.clients.len(),
            Table::Registrations => self.registrations.len(),
            Table::Approvals => self.approvals.len(),
            Table::Notifiers => self.notifiers.len(),
            Table::Cursors => self.cursors.len(),
            Table::Backgrounds => self.backgrounds.len(),
        }
    }

    /// How many rows each table holds.
    #[must_use]
    pub fn counts(&self) -> TableCounts {
        TableCounts(Table::ALL.into_iter().map(|t| (t, self.rows(t))).collect())
    }

    /// Whether it holds no row at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        Table::ALL.into_iter().all(|t| self.rows(t) == 0)
    }

    /// The rows of it that `other` does not hold, byte for byte (audit events counted: two
    /// equal events in this one and one in `other` leave one).
    #[must_use]
    pub fn without(&self, other: &Self) -> Self {
        let mut left: BTreeMap<&AuditRow, usize> = BTreeMap::new();
        for row in &other.audit {
            *left.entry(row).or_default() += 1;
        }
        let audit = self
            .audit
            .iter()
            .filter(|row| match left.entry(row) {
                Entry::Occupied(mut n) if *n.get() > 0 => {
                    *n.get_mut() -= 1;
                    false
                }
                _ => true,
            })
            .cloned()
            .collect();
        Self {
            grants: minus(&self.grants, &other.grants),
            tokens: minus(&self.tokens, &other.tokens),
            revoked: minus(&self.revoked, &other.revoked),
            audit,
            clients: minus(&self.clients, &other.clients),
            registrations: minus(&self.registrations, &other.registrations),
            approvals: minus(&self.approvals, &other.approvals),
            notifiers: minus(&self.notifiers, &other.notifiers),
            cursors: minus(&self.cursors, &other.cursors),
            backgrounds: minus(&self.backgrounds, &other.backgrounds),
        }
    }

    /// Per table, the row count and a SHA-256 over the rows in key order; the same for every
    /// backend's export of the same rows.
    #[must_use]
    pub fn digest(&self) -> SnapshotDigest {
        let tables: Vec<TableDigest> = Table::ALL
            .into_iter()
            .map(|table| TableDigest {
                table,
                rows: self.rows(table),
                sha256: self.table_sha256(table),
            })
            .collect();
        let mut all = Sha256::new();
        for t in &tables {
            hash_row(&mut all, &[t.table.name().as_bytes()], &t.sha256);
        }
        SnapshotDigest {
            tables,
            sha256: all.finalize().into(),
        }
    }

    fn table_sha256(&self, table: Table) -> [u8; 32] {
        match table {
            Table::Grants => hash_map(&self.grants),
            Table::Tokens => hash_map(&self.tokens),
            Table::Revoked => hash_map(&self.revoked),
            Table::Audit => {
                let mut sorted: Vec<&AuditRow> = self.audit.iter().collect();
                sorted.sort();
                let mut hash = Sha256::new();
                for row in sorted {
                    hash_row(
                        &mut hash,
                        &[row.grant.as_bytes(), &row.seq.to_be_bytes()],
                        &row.record,
                    );
                }
                hash.finalize().into()
            }
            Table::Clients => hash_map(&self.clients),
            Table::Registrations => hash_map(&self.registrations),
            Table::Approvals => hash_map(&self.approvals),
            Table::Notifiers => hash_map(&self.notifiers),
            Table::Cursors => hash_map(&self.cursors),
            Table::Backgrounds => hash_map(&self.backgrounds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut s = Snapshot::default();
        s.grants.insert("g1".into(), b"{}".to_vec());
        s.tokens.insert([1; 32], b"{\"t\":1}".to_vec());
        s.audit.push(AuditRow {
            grant: "g1".into(),
            seq: 2,
            record: b"b".to_vec(),
        });
        s.audit.push(AuditRow {
            grant: "g1".into(),
            seq: 1,
            record: b"a".to_vec(),
        });
        s.cursors.insert("acct".into(), "c1".into());
        s
    }

    #[test]
    fn the_digest_depends_on_rows_not_on_the_order_they_were_read() {
        let a = sample();
        let mut b = sample();
        b.audit.reverse();
        assert_eq!(a.digest(), b.digest());
        b.cursors.insert("acct".into(), "c2".into());
        assert_eq!(a.digest().differing(&b.digest()), vec![Table::Cursors]);
        assert_ne!(a.digest().sha256, b.digest().sha256);
        let counts: Vec<usize> = a.digest().tables.iter().map(|t| t.rows).collect();
        assert_eq!(counts, [1, 1, 0, 2, 0, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn rows_run_together_do_not_collide() {
        let mut a = Snapshot::default();
        a.grants.insert("ab".into(), b"c".to_vec());
        let mut b = Snapshot::default();
        b.grants.insert("a".into(), b"bc".to_vec());
        assert_eq!(a.digest().differing(&b.digest()), vec![Table::Grants]);
    }

    #[test]
    fn without_leaves_what_the_other_lacks_or_holds_otherwise() {
        let a = sample();
        assert!(a.without(&a).is_empty());
        let mut b = sample();
        b.tokens.insert([1; 32], b"changed".to_vec());
        b.audit.pop();
        let rest = a.without(&b);
        assert_eq!(rest.tokens.len(), 1);
        assert_eq!(rest.audit.len(), 1);
        assert_eq!(rest.rows(Table::Grants), 0);
        // Audit rows are counted: a duplicate is one more row.
        let mut twice = sample();
        twice.audit.push(twice.audit[0].clone());
        assert_eq!(twice.without(&a).audit.len(), 1);
    }
}
