//! A node's storage: the metadata log, the `quorum-state` file and the
//! snapshot files, kept in memory and misbehaving on purpose like a real
//! disk under a crash (after Kafka's `MockLog`): appended batches are
//! volatile until a `Flush` covers them, and a crash keeps only a random
//! prefix of the volatile tail (a torn write leaves a partial batch, which
//! recovery cuts off, so only whole batches survive).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use riffle_raft::batch;
use riffle_raft::{ElectionState, LogState, OffsetAndEpoch, ReadRecords};

use crate::rng::SimRng;
use crate::state::SnapshotData;

/// One committed-or-not record as the invariants compare it: the epoch
/// of the leader that wrote it and its value (None for a control record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i32,
    pub value: Option<Bytes>,
}

/// One stored batch with its decoded records.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub base: i64,
    /// Offset of the last record (inclusive).
    pub last: i64,
    pub epoch: i32,
    pub bytes: Bytes,
    pub entries: Vec<Entry>,
}

/// The log: whole batches from the one holding `start_offset` on.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub start_offset: i64,
    pub batches: Vec<StoredBatch>,
    /// Exclusive end of the part on stable storage.
    pub flushed_end: i64,
}

impl Log {
    pub fn end_offset(&self) -> i64 {
        self.batches
            .last()
            .map_or(self.start_offset, |b| b.last + 1)
    }

    /// Index of the batch holding `offset`.
    fn batch_index(&self, offset: i64) -> Option<usize> {
        let i = self.batches.partition_point(|b| b.last < offset);
        self.batches.get(i).filter(|b| b.base <= offset).map(|_| i)
    }

    /// The record at `offset` if the log holds it (at or after its start).
    pub fn entry(&self, offset: i64) -> Option<&Entry> {
        if offset < self.start_offset {
            return None;
        }
        let b = &self.batches[self.batch_index(offset)?];
        b.entries.get((offset - b.base) as usize)
    }

    /// Appends whole batches at the end. Checks what a real log checks
    /// (CRC, contiguity, epochs never going back) and decodes the records.
    pub fn append(&mut self, bytes: &Bytes) -> Result<Vec<(i64, Entry)>, String> {
        let headers = batch::headers(bytes).map_err(|e| format!("Append of bad batches: {e}"))?;
        if headers.is_empty() {
            return Err("Append of no batches".into());
        }
        let mut at = 0usize;
        let mut added = Vec::new();
        for h in headers {
            let size = h.size_bytes();
            let slice = bytes.slice(at..at + size);
            at += size;
            let end = self.end_offset();
            if h.base_offset != end {
                return Err(format!(
                    "Append of a batch at offset {} but the log ends at {end}",
                    h.base_offset
                ));
            }
            if let Some(prev) = self.batches.last() {
                if h.partition_leader_epoch < prev.epoch {
                    return Err(format!(
                        "Append of a batch of epoch {} at offset {} after a batch of epoch {}",
                        h.partition_leader_epoch, h.base_offset, prev.epoch
                    ));
                }
            }
            let mut cursor = slice.clone();
            let set = RecordBatchDecoder::decode(&mut cursor)
                .map_err(|e| format!("batch at offset {} does not decode: {e}", h.base_offset))?;
            if set.records.len() != (h.last_offset_delta as usize + 1) {
                return Err(format!(
                    "batch at offset {} has {} records but a last offset delta of {}",
                    h.base_offset,
                    set.records.len(),
                    h.last_offset_delta
                ));
            }
            let mut entries = Vec::with_capacity(set.records.len());
            for (i, r) in set.records.iter().enumerate() {
                if r.offset != h.base_offset + i as i64 {
                    return Err(format!(
                        "record {i} of the batch at {} has offset {}",
                        h.base_offset, r.offset
                    ));
                }
                let entry = Entry {
                    epoch: h.partition_leader_epoch,
                    value: if r.control { None } else { r.value.clone() },
                };
                added.push((r.offset, entry.clone()));
                entries.push(entry);
            }
            self.batches.push(StoredBatch {
                base: h.base_offset,
                last: h.last_offset(),
                epoch: h.partition_leader_epoch,
                bytes: slice,
                entries,
            });
        }
        Ok(added)
    }

    /// Removes every record at or after `end`, which must be a batch
    /// boundary: a real log truncates whole batches.
    pub fn truncate(&mut self, end: i64) -> Result<(), String> {
        if end < self.start_offset {
            return Err(format!(
                "Truncate to {end}, below the log start offset {}",
                self.start_offset
            ));
        }
        if let Some(i) = self.batch_index(end) {
            let b = &self.batches[i];
            if b.base != end {
                return Err(format!(
                    "Truncate to {end}, inside the batch {}..={}",
                    b.base, b.last
                ));
            }
        }
        self.batches.retain(|b| b.base < end);
        self.flushed_end = self.flushed_end.min(self.end_offset());
        Ok(())
    }

    pub fn flush(&mut self, end: i64) -> Result<(), String> {
        let log_end = self.end_offset();
        if end > log_end {
            return Err(format!("Flush to {end}, past the log end {log_end}"));
        }
        if end > self.start_offset
            && self.batch_index(end - 1).map(|i| self.batches[i].last) != Some(end - 1)
        {
            return Err(format!("Flush to {end}, inside a batch"));
        }
        self.flushed_end = self.flushed_end.max(end);
        Ok(())
    }

    /// Advances the start offset (the snapshot covers what is before).
    pub fn delete_before(&mut self, offset: i64) -> Result<(), String> {
        if offset < self.start_offset {
            return Err(format!(
                "DeleteBefore {offset}, below the log start offset {}",
                self.start_offset
            ));
        }
        if offset > self.end_offset() {
            return Err(format!(
                "DeleteBefore {offset}, past the log end {}",
                self.end_offset()
            ));
        }
        self.start_offset = offset;
        self.batches.retain(|b| b.last >= offset);
        Ok(())
    }

    /// Replaces the log by an empty one at `offset` (a snapshot install).
    pub fn reset(&mut self, offset: i64) {
        self.batches.clear();
        self.start_offset = offset;
        self.flushed_end = offset;
    }

    /// Whole batches from the one holding `read.from`, ending at or before
    /// `read.end`, at most `read.max_bytes` of them but at least one.
    pub fn read(&self, read: &ReadRecords) -> Result<Bytes, String> {
        let Some(first) = self
            .batch_index(read.from)
            .filter(|_| read.from >= self.start_offset)
        else {
            return Err(format!(
                "read from {} outside the log {}..{}",
                read.from,
                self.start_offset,
                self.end_offset()
            ));
        };
        if read.end > self.flushed_end {
            return Err(format!(
                "read up to {} past the flushed end {}",
                read.end, self.flushed_end
            ));
        }
        let mut out = Vec::new();
        let mut size = 0usize;
        for b in &self.batches[first..] {
            if b.base >= read.end {
                break;
            }
            if b.last >= read.end {
                return Err(format!(
                    "read ending at {} inside the batch {}..={}",
                    read.end, b.base, b.last
                ));
            }
            if !out.is_empty() && size + b.bytes.len() > read.max_bytes {
                break;
            }
            size += b.bytes.len();
            out.push(b.bytes.clone());
        }
        Ok(Bytes::from(out.concat()))
    }

    /// What survives a crash: the flushed prefix plus a random prefix of
    /// the batches written after it.
    pub fn crash(&mut self, rng: &mut SimRng, torn: bool) {
        let volatile = self
            .batches
            .iter()
            .filter(|b| b.last >= self.flushed_end)
            .count();
        let keep = if torn {
            rng.below(volatile as u64 + 1) as usize
        } else {
            0
        };
        let durable = self.batches.len() - volatile;
        self.batches.truncate(durable + keep);
        self.flushed_end = self.end_offset();
    }

    /// `(epoch, start offset)` of every epoch in the log, as the core
    /// keeps them.
    pub fn epochs(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = Vec::new();
        for b in &self.batches {
            if out.last().is_none_or(|e| e.0 < b.epoch) {
                out.push((b.epoch, b.base.max(self.start_offset)));
            }
        }
        out
    }
}

/// A snapshot file: the committed records below its end offset.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub id: OffsetAndEpoch,
    pub bytes: Bytes,
    /// What it holds, decoded (checked when written).
    pub data: SnapshotData,
}

/// Everything a node keeps across a crash, plus what it loses.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// `quorum-state`: written and fsynced by `PersistElectionState`.
    pub election: Option<ElectionState>,
    pub log: Log,
    /// Complete snapshot files by end offset (durable).
    pub snapshots: BTreeMap<i64, SnapshotFile>,
    /// A snapshot being downloaded (lost in a crash, as Kafka deletes
    /// partial snapshot files at start-up).
    pub partial: Option<(OffsetAndEpoch, Vec<u8>)>,
}

impl Disk {
    pub fn latest_snapshot(&self) -> Option<&SnapshotFile> {
        self.snapshots.values().next_back()
    }

    /// The log state the driver hands the core on start.
    pub fn log_state(&self) -> LogState {
        LogState {
            start_offset: self.log.start_offset,
            end_offset: self.log.end_offset(),
            epochs: self.log.epochs(),
            latest_snapshot: self.latest_snapshot().map(|s| s.id),
        }
    }

    /// What riffle-raft's storage does when it opens the log
    /// (`FileRaftLog::reconcile_with_snapshot`, after Kafka's
    /// `truncateToLatestSnapshot`): a snapshot ahead of the log (past its
    /// end, or of a newer epoch) means a crash interrupted its
    /// installation, which is finished now; a log that starts before the
    /// newest snapshot had its `DeleteBefore` interrupted, which is done
    /// now; older snapshots go. Returns what it did, if anything.
    pub fn recover(&mut self) -> Option<String> {
        let snap = self.latest_snapshot()?.id;
        let start = self.log.start_offset;
        let end = self.log.end_offset();
        let log_epoch = self.log.batches.last().map_or(0, |b| b.epoch);
        let already_replaced = start == snap.offset && end == snap.offset;
        let done = if !already_replaced && (snap.offset > end || snap.epoch > log_epoch) {
            self.log.reset(snap.offset);
            Some(format!(
                "snapshot {snap:?} is ahead of the log {start}..{end} (epoch {log_epoch}): log replaced"
            ))
        } else if start < snap.offset {
            self.log.start_offset = snap.offset;
            self.log.batches.retain(|b| b.last >= snap.offset);
            Some(format!(
                "log start moved from {start} up to snapshot {snap:?}"
            ))
        } else {
            None
        };
        self.snapshots.retain(|o, _| *o >= snap.offset);
        done
    }

    pub fn crash(&mut self, rng: &mut SimRng, torn: bool) {
        self.log.crash(rng, torn);
        self.partial = None;
    }

    /// Whether stable storage holds `want` at `offset`: in the flushed
    /// log, or else in the latest snapshot (its tail, or its digest, which
    /// `digest_at` gives for the committed prefix of that length).
    pub fn durably_holds(
        &self,
        offset: i64,
        want: &Entry,
        digest_at: impl Fn(i64) -> Option<u64>,
    ) -> bool {
        if offset < self.log.flushed_end {
            if let Some(e) = self.log.entry(offset) {
                return e == want;
            }
        }
        self.snapshot_holds(offset, want, digest_at)
    }

    /// Whether the latest snapshot holds `want` at `offset`.
    pub fn snapshot_holds(
        &self,
        offset: i64,
        want: &Entry,
        digest_at: impl Fn(i64) -> Option<u64>,
    ) -> bool {
        let Some(snapshot) = self.latest_snapshot() else {
            return false;
        };
        if offset >= snapshot.id.offset {
            return false;
        }
        match snapshot.data.entry(offset) {
            Some(e) => e == want,
            None => digest_at(snapshot.id.offset) == Some(snapshot.data.digest),
        }
    }
}
