//! The sparse `.index` (relative offset -> file position) and `.timeindex`
//! (timestamp -> relative offset) files of a segment.
//!
//! Entries live in memory, which is what lookups use. New entries reach the
//! file in one positional write when the segment is flushed, rolled, closed
//! or truncated: an index past the recovery point is rebuilt from the `.log`
//! file after a crash anyway, so writing each 8-byte entry as it is made
//! would only cost a system call per indexed batch. The file is always
//! exactly as long as its persisted entries (Kafka preallocates and
//! memory-maps, then trims on close; a trimmed file is what Kafka leaves
//! after a clean shutdown and what it opens). An index that fails its sanity
//! check is rebuilt from the `.log` file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

/// One fixed-size index entry.
pub trait IndexEntry: Copy + std::fmt::Debug + PartialEq {
    const BYTES: usize;
    fn decode(b: &[u8]) -> Self;
    fn encode(&self) -> Vec<u8>;
    fn relative_offset(&self) -> u32;
}

/// `.index` entry: offset relative to the segment base, and byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetPosition {
    const BYTES: usize = 8;
    fn decode(b: &[u8]) -> Self {
        OffsetPosition {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn encode(&self) -> Vec<u8> {
        let mut v = self.relative_offset.to_be_bytes().to_vec();
        v.extend_from_slice(&self.position.to_be_bytes());
        v
    }
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// `.timeindex` entry: a timestamp and the relative offset of the batch that
/// first reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimestampOffset {
    const BYTES: usize = 12;
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn encode(&self) -> Vec<u8> {
        let mut v = self.timestamp.to_be_bytes().to_vec();
        v.extend_from_slice(&self.relative_offset.to_be_bytes());
        v
    }
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// An index file and its entries.
#[derive(Debug)]
pub struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    file: File,
    entries: Vec<E>,
    /// How many of `entries` are in the file.
    persisted: usize,
    entries_max: usize,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Creates (or empties) the index file at `path`.
    pub fn create(path: &Path, entries_max: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(LogError::io(path))?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            entries: Vec::new(),
            persisted: 0,
            entries_max,
        })
    }

    /// Opens an existing index file (or creates an empty one). Returns `None`
    /// for the entries if the file is unusable (bad length, entries out of
    /// order); the caller rebuilds it.
    pub fn open(path: &Path, entries_max: usize) -> Result<(Self, bool)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LogError::io(path))?;
        let len = file.metadata().map_err(LogError::io(path))?.len() as usize;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file,
            entries: Vec::new(),
            persisted: 0,
            entries_max,
        };
        if len % E::BYTES != 0 || len / E::BYTES > entries_max.max(1) * 2 {
            return Ok((index, false));
        }
        let mut bytes = vec![0u8; len];
        index
            .file
            .read_exact_at(&mut bytes, 0)
            .map_err(LogError::io(path))?;
        index.entries = bytes.chunks_exact(E::BYTES).map(E::decode).collect();
        index.persisted = index.entries.len();
        Ok((index, true))
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }
    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry; it reaches the file at the next [`Self::persist`].
    pub fn push(&mut self, entry: E) -> Result<()> {
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the entries not yet in the file, in one write.
    pub fn persist(&mut self) -> Result<()> {
        if self.persisted == self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((self.entries.len() - self.persisted) * E::BYTES);
        for e in &self.entries[self.persisted..] {
            bytes.extend_from_slice(&e.encode());
        }
        self.file
            .write_all_at(&bytes, (self.persisted * E::BYTES) as u64)
            .map_err(LogError::io(&self.path))?;
        self.persisted = self.entries.len();
        Ok(())
    }

    /// Keeps the first `n` entries, in memory and in the file.
    pub fn truncate_entries(&mut self, n: usize) -> Result<()> {
        if n < self.entries.len() {
            self.entries.truncate(n);
        }
        self.persisted = self.persisted.min(self.entries.len());
        self.file
            .set_len((self.persisted * E::BYTES) as u64)
            .map_err(LogError::io(&self.path))?;
        self.persist()
    }

    /// Persists pending entries and fsyncs the file.
    pub fn sync(&mut self) -> Result<()> {
        self.persist()?;
        self.file.sync_all().map_err(LogError::io(&self.path))
    }
}

/// The offset index of a segment.
pub type OffsetIndex = IndexFile<OffsetPosition>;
/// The time index of a segment.
pub type TimeIndex = IndexFile<TimestampOffset>;

impl OffsetIndex {
    /// The entry with the largest offset <= `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetPosition> {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Kafka's sanity rules plus order: offsets and positions strictly
    /// increasing, every position inside the log file.
    pub fn is_sane(&self, log_size: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && self
                .entries
                .last()
                .is_none_or(|e| u64::from(e.position) < log_size)
    }
}

impl TimeIndex {
    /// The entry with the largest timestamp <= `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> Option<TimestampOffset> {
        let i = self.entries.partition_point(|e| e.timestamp <= timestamp);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Appends only if `timestamp` is newer than the last entry (Kafka's
    /// `TimeIndex.maybeAppend`).
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) -> Result<()> {
        // An empty time index behaves as if its last entry were
        // (NO_TIMESTAMP, base), so batches without timestamps add nothing.
        if timestamp
            <= self
                .last()
                .map_or(crate::batch::NO_TIMESTAMP, |l| l.timestamp)
        {
            return Ok(());
        }
        self.push(TimestampOffset {
            timestamp,
            relative_offset,
        })
    }

    pub fn is_sane(&self, next_relative_offset: u32) -> bool {
        self.entries.windows(2).all(|w| {
            w[0].timestamp < w[1].timestamp && w[0].relative_offset <= w[1].relative_offset
        }) && self
            .entries
            .last()
            .is_none_or(|e| e.relative_offset < next_relative_offset.max(1))
    }
}
