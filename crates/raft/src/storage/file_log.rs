//! [`FileRaftLog`]: the quorum's replicated log, `__cluster_metadata-0`,
//! over `riffle_log::Log` (Kafka's `KafkaMetadataLog`), with its snapshots.
//!
//! The log keeps the offsets and partition leader epochs the core assigned
//! (follower-style appends), so every replica's log is byte for byte the
//! leader's, and its leader-epoch cache (`leader-epoch-checkpoint`) is the
//! core's `LogState::epochs`. Retention never applies: the log shrinks
//! only from the front, below a snapshot (`delete_before`), or when a
//! downloaded snapshot replaces it (`install_snapshot`).
//!
//! Invariants, checked when the log opens:
//! - a log that does not start at 0 has a snapshot at or after its start;
//! - the newest snapshot is not past the log end (Kafka's
//!   `truncateToLatestSnapshot`: if it is, or the snapshot's epoch is newer
//!   than the log's, the log was being replaced when the node stopped, and
//!   the replacement is finished now);
//! - the log starts at the newest snapshot (the core's `DeleteBefore`
//!   follows every snapshot, so a crash in between is finished here), and
//!   older snapshots are deleted.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use riffle_log::{LoadState, Log, LogConfig, LogError};
use tracing::{info, warn};

use super::records::decode_batch;
use super::snapshot::{self, SnapshotDownload, SnapshotWriter};
use super::{now_ms, partition_dir, refused, Result, StorageError};
use crate::batch;
use crate::types::{LogState, OffsetAndEpoch};

/// How the log is laid out on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRaftLogOptions {
    /// `metadata.log.segment.bytes`; Riffle's metadata log uses 8 MiB.
    pub segment_bytes: u64,
}

impl Default for FileRaftLogOptions {
    fn default() -> Self {
        FileRaftLogOptions {
            segment_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Committed records decoded for the state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommittedRecords {
    /// Data records at or after the requested offset: (offset, value).
    pub records: Vec<(i64, Bytes)>,
    /// Offsets of the control records read (LeaderChange and the like),
    /// which the state machine skips.
    pub control_offsets: Vec<i64>,
    /// The offset after the last batch read: where the next read starts.
    /// Equal to the requested offset when nothing was read.
    pub next_offset: i64,
}

/// The metadata partition's log and snapshots in
/// `<metadata.log.dir>/__cluster_metadata-0`.
#[derive(Debug)]
pub struct FileRaftLog {
    dir: PathBuf,
    log: Log,
    latest_snapshot: Option<(OffsetAndEpoch, u64)>,
    download: Option<SnapshotDownload>,
}

fn log_config(options: &FileRaftLogOptions) -> LogConfig {
    let mut config = LogConfig::default();
    config.retention_ms = -1;
    config.retention_bytes = -1;
    config.segment_bytes = options.segment_bytes;
    config
}

impl FileRaftLog {
    /// Opens (or creates) the log in `metadata_log_dir`'s
    /// `__cluster_metadata-0`, with the default options.
    pub fn open(metadata_log_dir: &Path) -> Result<FileRaftLog> {
        FileRaftLog::open_with(metadata_log_dir, &FileRaftLogOptions::default())
    }

    /// Opens the log: recovers the segments (every batch is re-checked and
    /// a torn tail cut off), removes partial and deleted snapshot files,
    /// and restores the invariants in the module docs.
    pub fn open_with(metadata_log_dir: &Path, options: &FileRaftLogOptions) -> Result<FileRaftLog> {
        let dir = partition_dir(metadata_log_dir);
        let now = now_ms();
        // The metadata log is small and the cluster's source of truth:
        // every open re-validates it, as Kafka's does.
        let log =
            Log::open(&dir, log_config(options), LoadState::unclean(now)).map_err(|source| {
                StorageError::Log {
                    path: dir.clone(),
                    source,
                }
            })?;
        snapshot::remove_leftovers(&dir)?;
        let latest_snapshot = snapshot::latest_snapshot(&dir)?;
        let mut this = FileRaftLog {
            dir,
            log,
            latest_snapshot,
            download: None,
        };
        this.reconcile_with_snapshot(now)?;
        Ok(this)
    }

    fn reconcile_with_snapshot(&mut self, now: i64) -> Result<()> {
        let start = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        let Some((snap, _)) = self.latest_snapshot else {
            if start > 0 {
                return Err(StorageError::Inconsistent {
                    path: self.dir.clone(),
                    reason: format!("the log starts at {start} but there is no snapshot"),
                });
            }
            return Ok(());
        };
        let log_epoch = self.log.leader_epochs().latest_epoch().unwrap_or(0);
        let already_replaced = start == snap.offset && end == snap.offset;
        if !already_replaced && (snap.offset > end || snap.epoch > log_epoch) {
            warn!(
                dir = %self.dir.display(),
                snapshot = ?snap,
                log_start_offset = start,
                log_end_offset = end,
                log_epoch,
                "the newest snapshot is ahead of the log; replacing the log by it"
            );
            self.log_call(|log| log.truncate_fully_and_start_at(snap.offset, now))?;
        } else if start > snap.offset {
            return Err(StorageError::Inconsistent {
                path: self.dir.clone(),
                reason: format!(
                    "the log starts at {start}, after the newest snapshot {snap:?}: records in between are lost"
                ),
            });
        } else if start < snap.offset {
            info!(
                dir = %self.dir.display(),
                snapshot = ?snap,
                log_start_offset = start,
                "moving the log start up to the newest snapshot"
            );
            self.log_call(|log| log.advance_log_start_offset(snap.offset, now).map(|_| ()))?;
        }
        snapshot::delete_all_but(&self.dir, snap)?;
        Ok(())
    }

    fn log_call<T>(&mut self, f: impl FnOnce(&mut Log) -> Result<T, LogError>) -> Result<T> {
        f(&mut self.log).map_err(|e| self.log_error(e))
    }

    fn log_error(&self, e: LogError) -> StorageError {
        match e {
            LogError::OffsetOutOfRange {
                requested,
                log_start_offset,
                log_end_offset,
            } => StorageError::OffsetOutOfRange {
                path: self.dir.clone(),
                offset: requested,
                start_offset: log_start_offset,
                end_offset: log_end_offset,
            },
            source => StorageError::Log {
                path: self.dir.clone(),
                source,
            },
        }
    }

    /// The `__cluster_metadata-0` directory (where snapshots are written).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// What the core starts from: offsets, epochs and the newest snapshot.
    pub fn state(&self) -> LogState {
        LogState {
            start_offset: self.log.log_start_offset(),
            end_offset: self.log.log_end_offset(),
            epochs: self
                .log
                .leader_epochs()
                .entries()
                .iter()
                .map(|e| (e.epoch, e.start_offset))
                .collect(),
            latest_snapshot: self.latest_snapshot.map(|s| s.0),
        }
    }

    /// The newest snapshot and its size in bytes.
    pub fn latest_snapshot(&self) -> Option<(OffsetAndEpoch, u64)> {
        self.latest_snapshot
    }

    /// The newest snapshot's size in bytes, 0 when there is none.
    pub fn latest_snapshot_size(&self) -> u64 {
        self.latest_snapshot.map_or(0, |s| s.1)
    }

    /// Appends whole batches whose offsets and partition leader epochs are
    /// assigned. They must start at the log end offset, follow each other
    /// without gaps, and not go back in epoch. The leader-epoch cache
    /// learns each new epoch. Not durable until [`FileRaftLog::flush`].
    pub fn append(&mut self, batches: &[u8]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let headers =
            batch::headers(batches).map_err(|e| refused(&self.dir, format!("append: {e}")))?;
        let mut expected = self.log.log_end_offset();
        let mut epoch = self.log.leader_epochs().latest_epoch().unwrap_or(-1);
        for h in &headers {
            if h.base_offset != expected {
                return Err(refused(
                    &self.dir,
                    format!(
                        "append of a batch at offset {} where the log continues at {expected}",
                        h.base_offset
                    ),
                ));
            }
            if h.partition_leader_epoch < epoch {
                return Err(refused(
                    &self.dir,
                    format!(
                        "append of a batch of epoch {} at offset {} after epoch {epoch}",
                        h.partition_leader_epoch, h.base_offset
                    ),
                ));
            }
            expected = h.next_offset();
            epoch = h.partition_leader_epoch;
        }
        // A segment must hold what one append writes: split large appends.
        let limit = self.log.config().segment_bytes as usize;
        let sizes: Vec<usize> = headers.iter().map(|h| h.size_bytes()).collect();
        let now = now_ms();
        let (mut from, mut i) = (0, 0);
        while i < sizes.len() {
            let mut to = from;
            while i < sizes.len() && (to == from || to - from + sizes[i] <= limit) {
                to += sizes[i];
                i += 1;
            }
            let chunk = &batches[from..to];
            self.log_call(|log| log.append_as_follower(chunk, now).map(|_| ()))?;
            from = to;
        }
        debug_assert_eq!(self.log.log_end_offset(), expected);
        Ok(())
    }

    /// Removes every record at or after `end_offset` (whole batches: the
    /// core truncates at batch boundaries). Truncating below the log start
    /// is refused: records below it are only in the snapshot.
    pub fn truncate(&mut self, end_offset: i64) -> Result<()> {
        let start = self.log.log_start_offset();
        if end_offset < start {
            return Err(refused(
                &self.dir,
                format!("truncate to {end_offset}, below the log start {start}"),
            ));
        }
        let now = now_ms();
        self.log_call(|log| log.truncate_to(end_offset, now).map(|_| ()))
    }

    /// Makes every record below `end_offset` durable (fsync).
    pub fn flush(&mut self, end_offset: i64) -> Result<()> {
        let end = self.log.log_end_offset();
        if end_offset > end {
            return Err(refused(
                &self.dir,
                format!("flush to {end_offset}, past the log end {end}"),
            ));
        }
        let now = now_ms();
        self.log_call(|log| log.flush(now))
    }

    /// Whole batches starting with the one that holds `from`, each ending
    /// below `end`: as many as fit in `max_bytes`, but at least one (if one
    /// ends below `end`). Empty when `from` is at or past `end` or the log
    /// end. `from` below the log start or past its end is
    /// [`StorageError::OffsetOutOfRange`].
    pub fn read(&self, from: i64, end: i64, max_bytes: usize) -> Result<Bytes> {
        let mut out = Vec::new();
        let mut next = from;
        // `Log::read` stops at a segment's end; go on into the next ones.
        loop {
            let room = max_bytes.saturating_sub(out.len());
            let first = out.is_empty();
            if !first && room == 0 {
                break;
            }
            let slice = self
                .log
                .read(next, room as u64, end, first)
                .map_err(|e| self.log_error(e))?;
            let Some(slice) = slice else { break };
            let bytes = slice.read_to_vec().map_err(super::io_error(&self.dir))?;
            if first {
                out = bytes;
            } else {
                out.extend_from_slice(&bytes);
            }
            next = slice.last_offset + 1;
            if next >= end.min(self.log.log_end_offset()) {
                break;
            }
        }
        Ok(Bytes::from(out))
    }

    /// The records of [`FileRaftLog::read`] decoded for the state machine:
    /// data records at or after `from`, and which offsets were control
    /// records.
    pub fn read_committed(
        &self,
        from: i64,
        end: i64,
        max_bytes: usize,
    ) -> Result<CommittedRecords> {
        let bytes = self.read(from, end, max_bytes)?;
        let mut out = CommittedRecords {
            next_offset: from,
            ..CommittedRecords::default()
        };
        for item in riffle_log::batch::BatchIter::new(&bytes) {
            let (_, header, batch) = item.map_err(|e| {
                super::corrupt(&self.dir, format!("batch at or after offset {from}: {e}"))
            })?;
            let records = decode_batch(&header, batch).map_err(|e| super::corrupt(&self.dir, e))?;
            for record in records {
                if record.offset < from {
                    continue;
                }
                if record.control_type.is_some() {
                    out.control_offsets.push(record.offset);
                } else {
                    let value = record.value.ok_or_else(|| {
                        super::corrupt(
                            &self.dir,
                            format!("the record at offset {} has no value", record.offset),
                        )
                    })?;
                    out.records.push((record.offset, value));
                }
            }
            out.next_offset = header.next_offset();
        }
        Ok(out)
    }

    /// Moves the log start up to `offset`, which a snapshot covers, and
    /// deletes the segments wholly below it and every older snapshot.
    pub fn delete_before(&mut self, offset: i64) -> Result<()> {
        // The state machine wrote the snapshot behind our back.
        self.latest_snapshot = snapshot::latest_snapshot(&self.dir)?;
        let covered = self
            .latest_snapshot
            .is_some_and(|(s, _)| s.offset >= offset);
        if !covered {
            return Err(refused(
                &self.dir,
                format!(
                    "delete before {offset}, but the newest snapshot is {:?}",
                    self.latest_snapshot
                ),
            ));
        }
        let now = now_ms();
        self.log_call(|log| log.advance_log_start_offset(offset, now).map(|_| ()))?;
        if let Some((newest, _)) = self.latest_snapshot {
            snapshot::delete_all_but(&self.dir, newest)?;
        }
        Ok(())
    }

    /// Writes a chunk of snapshot `id`, downloaded from the leader, at
    /// `position`. Position 0 starts (or restarts) the download; another
    /// position must continue the download of `id` where it stopped.
    pub fn write_snapshot_chunk(
        &mut self,
        id: OffsetAndEpoch,
        position: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let continuing = self.download.as_ref().is_some_and(|d| d.id() == id);
        if position == 0 || !continuing {
            if position != 0 {
                return Err(refused(
                    &self.dir,
                    format!("chunk of snapshot {id:?} at {position}, but no download of it is under way"),
                ));
            }
            self.download = None;
            self.download = Some(SnapshotDownload::create(&self.dir, id)?);
        }
        let download = self.download.as_mut().expect("a download was just set up");
        download.write_chunk(position, bytes)
    }

    /// The download of `id` is complete: check it and make it durable,
    /// then replace the log by an empty one at `id.offset` (no epochs:
    /// the snapshot's epoch stands for them) and delete other snapshots.
    /// A crash after the snapshot is durable is finished on open.
    pub fn install_snapshot(&mut self, id: OffsetAndEpoch) -> Result<()> {
        let size = match self.download.take() {
            Some(d) if d.id() == id => d.finish()?,
            _ => {
                // Installing again what is installed changes nothing; any
                // other install without its download would throw the log
                // away for a snapshot we do not have.
                let installed = self.latest_snapshot.is_some_and(|(s, _)| s == id)
                    && self.log.log_start_offset() == id.offset
                    && self.log.log_end_offset() == id.offset;
                if installed {
                    return Ok(());
                }
                return Err(refused(
                    &self.dir,
                    format!("install of snapshot {id:?}, whose download is not under way"),
                ));
            }
        };
        let now = now_ms();
        self.log_call(|log| log.truncate_fully_and_start_at(id.offset, now))?;
        self.latest_snapshot = Some((id, size));
        snapshot::delete_all_but(&self.dir, id)?;
        info!(dir = %self.dir.display(), snapshot = ?id, size, "installed a snapshot from the leader");
        Ok(())
    }

    /// Up to `max_bytes` of snapshot `id` from `position`, and the
    /// snapshot's size, for a FetchSnapshot response.
    pub fn read_snapshot_chunk(
        &self,
        id: OffsetAndEpoch,
        position: u64,
        max_bytes: usize,
    ) -> Result<(Bytes, u64)> {
        let size = snapshot::size(&self.dir, id)?;
        let bytes = snapshot::read_chunk(&self.dir, id, position, max_bytes)?;
        Ok((bytes, size))
    }

    /// Starts a snapshot of the local state machine at `id` in this log's
    /// directory. Once it is finished, the core's `snapshot_created` and
    /// then [`FileRaftLog::delete_before`] make it the log's snapshot.
    pub fn create_snapshot(
        &self,
        id: OffsetAndEpoch,
        last_contained_log_timestamp: i64,
        now_ms: i64,
    ) -> Result<SnapshotWriter> {
        if id.offset > self.log.log_end_offset() {
            return Err(refused(
                &self.dir,
                format!(
                    "snapshot {id:?} past the log end {}",
                    self.log.log_end_offset()
                ),
            ));
        }
        SnapshotWriter::create(&self.dir, id, last_contained_log_timestamp, now_ms)
    }

    /// Flushes and closes the log. An unfinished download is discarded.
    pub fn close(self) -> Result<()> {
        let FileRaftLog { dir, log, .. } = self;
        log.close(now_ms())
            .map_err(|source| StorageError::Log { path: dir, source })
    }
}
