//! The transaction index (`<base offset>.txnindex`): the aborted
//! transactions whose ABORT marker lies in a segment, in Kafka's
//! `TransactionIndex` format, so a `read_committed` fetch can be told which
//! records to skip without scanning the log.
//!
//! Each entry is 34 bytes, big-endian (Kafka's `AbortedTxn`):
//!
//! ```text
//!  0 version int16 (0)     2 producerId int64      10 firstOffset int64
//! 18 lastOffset int64 (the marker's offset)        26 lastStableOffset int64
//! ```
//!
//! Entries are appended in marker order, so their last offsets increase.
//! The file is created at the first abort, so most segments have none.
//! Riffle also keeps the entries in memory (aborts are rare), so fetches do
//! not read the file; Kafka reads it on every fetch.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::{LogError, Result};

/// Size of one entry on disk.
pub const ENTRY_BYTES: usize = 34;
/// The only entry version Kafka writes.
pub const ENTRY_VERSION: i16 = 0;

/// An aborted transaction: the producer, the offsets of its first record
/// and of its ABORT marker, and the last stable offset when it was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The entry in Kafka's on-disk format.
    pub fn to_bytes(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    /// Parses one entry; `None` if it is short or of another version.
    pub fn from_bytes(b: &[u8]) -> Option<AbortedTxn> {
        let b: &[u8; ENTRY_BYTES] = b.get(..ENTRY_BYTES)?.try_into().ok()?;
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        if i16::from_be_bytes([b[0], b[1]]) != ENTRY_VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// One segment's transaction index.
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    /// Opened at the first append or when the file exists.
    file: Option<File>,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// An empty index at `path`, removing any file there.
    pub fn create(path: &Path) -> Result<TxnIndex> {
        remove_if_exists(path)?;
        Ok(TxnIndex {
            path: path.to_path_buf(),
            file: None,
            entries: Vec::new(),
        })
    }

    /// Reads the index at `path` (absent means empty). Returns whether it
    /// was whole: a torn last entry, an unknown version or decreasing last
    /// offsets cut the index at that entry and report `false`, so the log
    /// rebuilds the rest from the segment.
    pub fn open(path: &Path) -> Result<(TxnIndex, bool)> {
        let mut index = TxnIndex {
            path: path.to_path_buf(),
            file: None,
            entries: Vec::new(),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((index, true)),
            Err(e) => return Err(LogError::io(path)(e)),
        };
        let mut whole = bytes.len() % ENTRY_BYTES == 0;
        for chunk in bytes.chunks(ENTRY_BYTES) {
            let entry = AbortedTxn::from_bytes(chunk);
            let ordered = match (entry, index.entries.last()) {
                (Some(e), Some(last)) => e.last_offset > last.last_offset,
                (Some(_), None) => true,
                (None, _) => false,
            };
            match entry {
                Some(e) if ordered => index.entries.push(e),
                _ => {
                    whole = false;
                    break;
                }
            }
        }
        index.file = Some(open_rw(path)?);
        if !whole {
            warn!(
                index = %path.display(),
                kept_entries = index.entries.len(),
                "transaction index is torn or invalid; cutting it at the first bad entry"
            );
            index.rewrite()?;
        }
        Ok((index, whole))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Appends an entry; its last offset must exceed every earlier one.
    pub fn append(&mut self, txn: AbortedTxn) -> Result<()> {
        if let Some(last) = self.entries.last() {
            assert!(
                txn.last_offset > last.last_offset,
                "aborted transaction {txn:?} does not follow {last:?} in {}",
                self.path.display()
            );
        }
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path)?);
        }
        let file = self.file.as_ref().expect("opened above");
        let at = (self.entries.len() * ENTRY_BYTES) as u64;
        file.write_all_at(&txn.to_bytes(), at)
            .map_err(LogError::io(&self.path))?;
        self.entries.push(txn);
        Ok(())
    }

    /// Adds an entry found again by replaying the log, unless the index
    /// already holds one for the same marker (which keeps its original
    /// last stable offset). Entries stay ordered by marker offset.
    pub fn insert_if_missing(&mut self, txn: AbortedTxn) -> Result<()> {
        match self
            .entries
            .binary_search_by_key(&txn.last_offset, |e| e.last_offset)
        {
            Ok(_) => Ok(()),
            Err(at) if at == self.entries.len() => self.append(txn),
            Err(at) => {
                self.entries.insert(at, txn);
                self.rewrite()
            }
        }
    }

    /// Removes the entries whose marker is at or after `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        if let Some(file) = &self.file {
            file.set_len((keep * ENTRY_BYTES) as u64)
                .map_err(LogError::io(&self.path))?;
        }
        Ok(())
    }

    /// Replaces the whole index by `entries` (used by compaction).
    pub fn replace(&mut self, entries: Vec<AbortedTxn>) -> Result<()> {
        self.entries = entries;
        self.rewrite()
    }

    fn rewrite(&mut self) -> Result<()> {
        if self.entries.is_empty() && self.file.is_none() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            bytes.extend_from_slice(&e.to_bytes());
        }
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path)?);
        }
        let file = self.file.as_ref().expect("opened above");
        file.set_len(0).map_err(LogError::io(&self.path))?;
        file.write_all_at(&bytes, 0)
            .map_err(LogError::io(&self.path))
    }

    /// Collects the entries that overlap `[start_offset, upper_offset)`
    /// into `out`. Returns `true` when an entry's last stable offset reaches
    /// `upper_offset`: every transaction aborted later started at or after
    /// that LSO, so later segments cannot overlap and the search can stop
    /// (Kafka's `collectAbortedTxns`).
    pub fn collect(&self, start_offset: i64, upper_offset: i64, out: &mut Vec<AbortedTxn>) -> bool {
        for e in &self.entries {
            if e.last_offset >= start_offset && e.first_offset < upper_offset {
                out.push(*e);
            }
            if e.last_stable_offset >= upper_offset {
                return true;
            }
        }
        false
    }

    pub fn sync(&self) -> Result<()> {
        if let Some(file) = &self.file {
            file.sync_data().map_err(LogError::io(&self.path))?;
        }
        Ok(())
    }

    pub fn delete(self) -> Result<()> {
        drop(self.file);
        remove_if_exists(&self.path)
    }
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(LogError::io(path))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: 7,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::create(&path).unwrap();
        assert!(!path.exists(), "created lazily");
        index.append(txn(0, 3)).unwrap();
        index.append(txn(4, 9)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
        let (reopened, whole) = TxnIndex::open(&path).unwrap();
        assert!(whole);
        assert_eq!(reopened.entries(), &[txn(0, 3), txn(4, 9)]);
    }

    #[test]
    fn a_torn_entry_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txnindex");
        let mut bytes = txn(0, 3).to_bytes().to_vec();
        bytes.extend_from_slice(&txn(4, 9).to_bytes()[..20]);
        std::fs::write(&path, &bytes).unwrap();
        let (index, whole) = TxnIndex::open(&path).unwrap();
        assert!(!whole);
        assert_eq!(index.entries(), &[txn(0, 3)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
    }

    #[test]
    fn truncation_and_collection() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::create(&dir.path().join("y.txnindex")).unwrap();
        for (f, l) in [(0, 3), (2, 5), (8, 10)] {
            index.append(txn(f, l)).unwrap();
        }
        let mut out = Vec::new();
        assert!(!index.collect(4, 12, &mut out));
        assert_eq!(out, vec![txn(2, 5), txn(8, 10)]);
        out.clear();
        assert!(
            index.collect(0, 6, &mut out),
            "LSO 6 of the second entry ends the search"
        );
        assert_eq!(out, vec![txn(0, 3), txn(2, 5)]);
        index.truncate_to(5).unwrap();
        assert_eq!(index.entries(), &[txn(0, 3)]);
    }
}
