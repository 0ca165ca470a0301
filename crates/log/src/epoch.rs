//! The leader epoch cache: for each partition leader epoch, the first offset
//! written in it, persisted as Kafka's `leader-epoch-checkpoint`. Replication
//! and OffsetForLeaderEpoch use it to find where two logs diverge.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{LogError, Result};

/// File name inside the partition directory.
pub const FILE_NAME: &str = "leader-epoch-checkpoint";

/// One epoch and the first offset its leader wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Epochs in increasing order with increasing start offsets.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`. A file that cannot be parsed is
    /// reported as an error so the caller can rebuild the cache from the log.
    pub fn load(dir: &Path) -> Result<LeaderEpochCache> {
        let path = dir.join(FILE_NAME);
        let mut entries = Vec::new();
        if let Some(lines) = checkpoint::read(&path)? {
            for line in lines {
                let mut parts = line.split(' ');
                let parsed = match (parts.next(), parts.next(), parts.next()) {
                    (Some(e), Some(o), None) => e.parse().ok().zip(o.parse().ok()),
                    _ => None,
                };
                let Some((epoch, start_offset)) = parsed else {
                    return Err(LogError::CorruptFile {
                        path,
                        reason: format!("bad entry '{line}'"),
                    });
                };
                entries.push(EpochEntry {
                    epoch,
                    start_offset,
                });
            }
        }
        let ordered = entries
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
        if !ordered {
            return Err(LogError::CorruptFile {
                path,
                reason: "entries are not in increasing order".into(),
            });
        }
        Ok(LeaderEpochCache { path, entries })
    }

    /// An empty cache for `dir` (used to rebuild after a corrupt file).
    pub fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            path: dir.join(FILE_NAME),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the
    /// latest epoch. Returns whether the cache changed (and must be written).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|l| epoch <= l) {
            return false;
        }
        // A new epoch must not start before an existing one; drop any that do
        // (they belong to a log suffix that is gone).
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Forgets epochs that start at or after `end_offset` (log truncated).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Forgets epochs wholly before `start_offset`; the epoch that contains
    /// it now starts there (log start offset advanced).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let Some(last_before) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return false;
        };
        let changed = last_before > 0 || self.entries[last_before].start_offset != start_offset;
        self.entries.drain(..last_before);
        self.entries[0].start_offset = start_offset;
        changed
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the offset
    /// where it ends (the next epoch's start, or `log_end_offset` for the
    /// latest).
    ///
    /// Kafka's rules: an undefined (-1) or unknown-and-newer epoch gives
    /// (-1, -1); the latest epoch ends at the log end offset; an epoch older
    /// than every entry gives itself and the first entry's start offset;
    /// otherwise the largest epoch <= `requested` and the start offset of
    /// the next one.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested < 0 {
            return (-1, -1);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().position(|e| e.epoch > requested) else {
            return (-1, -1);
        };
        match higher.checked_sub(1) {
            None => (requested, self.entries[higher].start_offset),
            Some(floor) => (self.entries[floor].epoch, self.entries[higher].start_offset),
        }
    }

    /// The epoch of the leader that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Writes the checkpoint file (atomically).
    pub fn write(&self) -> Result<()> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        checkpoint::write(&self.path, &lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_truncate_and_end_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::empty(dir.path());
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5));
        assert!(c.assign(2, 10));
        assert!(c.assign(5, 20));
        assert_eq!(c.end_offset_for(0, 30), (0, 10));
        assert_eq!(c.end_offset_for(1, 30), (0, 10));
        assert_eq!(c.end_offset_for(4, 30), (2, 20));
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(9, 30), (-1, -1), "newer than any epoch");
        assert_eq!(c.end_offset_for(-1, 30), (-1, -1));
        assert_eq!(c.epoch_for_offset(15), Some(2));
        c.write().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n2 10\n5 20\n");
        assert!(c.truncate_from_end(20));
        assert_eq!(c.latest_epoch(), Some(2));
        assert!(c.truncate_from_start(12));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 2,
                start_offset: 12
            }]
        );
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries().len(), 3);
    }

    #[test]
    fn corrupt_checkpoint_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "0\n2\n0 0\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).is_err());
        std::fs::write(dir.path().join(FILE_NAME), "0\n1\nx y\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).is_err());
    }
}
