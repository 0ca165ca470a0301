//! A partition's log: its segments in offset order, the log start and end
//! offsets, the recovery point, the leader epoch cache, and the producer
//! state (whose rules live in [`crate::producer`] and whose use by the log
//! is in `log_producers.rs`).
//!
//! All mutation goes through `&mut Log` (one writer); reads take `&Log` and
//! return [`FileSlice`]s of immutable bytes, so the broker can keep the log
//! behind a read-write lock and serve fetches while nothing is appended.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::batch::{self, BatchHeader, BatchIter, TimestampType, ValidatedBatches};
use crate::checkpoint;
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{BatchError, LogError, Result};
use crate::log_producers::ProducerCheck;
use crate::producer::{Origin, ProducerStateTable};
use crate::producer_snapshot;
use crate::segment::{FileSlice, Segment};

/// What the log directory knows about a log when it opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadState {
    /// Offset below which everything was fsynced (`recovery-point-offset-checkpoint`).
    pub recovery_point: i64,
    /// `log-start-offset-checkpoint`, or 0.
    pub log_start_offset: i64,
    /// Whether the clean-shutdown marker was present.
    pub had_clean_shutdown: bool,
    pub now_ms: i64,
}

impl LoadState {
    /// A log that has never been opened, or was shut down uncleanly with no
    /// checkpoint: everything is re-validated.
    pub fn unclean(now_ms: i64) -> LoadState {
        LoadState {
            recovery_point: 0,
            log_start_offset: 0,
            had_clean_shutdown: false,
            now_ms,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// Last offset of the batch with the max timestamp.
    pub offset_of_max_timestamp: i64,
    /// The append time written into LogAppendTime batches, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    pub record_count: i64,
    pub size_bytes: u64,
    /// The append repeated a batch the producer had already written: nothing
    /// was written, and the offsets (and timestamps) are the original
    /// batch's (Kafka answers a retried produce with them).
    pub duplicate: bool,
}

/// A timestamp and the offset of the record that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<i64, Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    pub(crate) next_offset: i64,
    pub(crate) epochs: LeaderEpochCache,
    pub(crate) unflushed_messages: i64,
    pub(crate) last_flush_ms: i64,
    /// First offset the cleaner has not compacted yet.
    pub(crate) first_dirty_offset: i64,
    /// Idempotent and transactional producers, as of the log end offset.
    pub(crate) producers: ProducerStateTable,
    /// Offsets of the producer state snapshot files in `dir`.
    pub(crate) snapshots: BTreeSet<i64>,
}

fn base_offset_of(name: &str, extension: &str) -> Option<i64> {
    let stem = name.strip_suffix(extension)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Offsets are far below this; refusing larger names keeps base plus a
    // 32-bit relative offset from overflowing.
    stem.parse().ok().filter(|b: &i64| *b <= i64::MAX / 2)
}

impl Log {
    /// Opens (or creates) the log in `dir`, completing an interrupted
    /// compaction swap and recovering segments that may hold unflushed data.
    pub fn open(dir: &Path, config: LogConfig, state: LoadState) -> Result<Log> {
        fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        let mut bases = Vec::new();
        let mut swaps = Vec::new();
        let mut indexes = Vec::new();
        for entry in fs::read_dir(dir).map_err(LogError::io(dir))? {
            let entry = entry.map_err(LogError::io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(".cleaned") || name.ends_with(".deleted") || name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(LogError::io(&path))?;
            } else if let Some(base) = base_offset_of(&name, ".log.swap") {
                swaps.push(base);
            } else if let Some(base) = base_offset_of(&name, ".log") {
                bases.push(base);
            } else if let Some(base) = base_offset_of(&name, ".index")
                .or_else(|| base_offset_of(&name, ".timeindex"))
                .or_else(|| base_offset_of(&name, ".txnindex"))
            {
                indexes.push((base, path));
            }
        }
        let mut force_recover = Vec::new();
        swaps.sort_unstable();
        for base in swaps {
            Self::complete_swap(dir, base, &mut bases)?;
            force_recover.push(base);
        }
        bases.sort_unstable();
        bases.dedup();
        for (base, path) in indexes {
            if bases.binary_search(&base).is_err() {
                fs::remove_file(&path).map_err(LogError::io(&path))?;
            }
        }

        let (mut epochs, rebuild_epochs) = match LeaderEpochCache::load(dir) {
            Ok(c) => (c, false),
            Err(e) => {
                warn!(dir = %dir.display(), "rebuilding the leader epoch cache from the log: {e}");
                (LeaderEpochCache::empty(dir), true)
            }
        };
        let recover_from = if state.had_clean_shutdown {
            i64::MAX
        } else {
            state.recovery_point
        };
        let mut segments = BTreeMap::new();
        let mut recovered_any = false;
        let mut expected_next = i64::MIN;
        let mut iter = bases.into_iter();
        while let Some(base) = iter.next() {
            let (mut segment, mut needs_recovery) =
                Segment::open(dir, base, &config, state.now_ms)?;
            needs_recovery |= segment.next_offset() > recover_from
                || base >= recover_from
                || force_recover.contains(&base);
            if base < expected_next {
                return Err(LogError::CorruptFile {
                    path: segment.log_path().to_path_buf(),
                    reason: format!(
                        "segment overlaps the previous one, which ends at {expected_next}"
                    ),
                });
            }
            let mut truncated = 0;
            if needs_recovery {
                truncated = segment.recover(Some(&mut epochs))?;
                recovered_any = true;
            }
            expected_next = segment.next_offset();
            segments.insert(base, segment);
            if truncated > 0 {
                for later in iter.by_ref() {
                    warn!(dir = %dir.display(), base_offset = later, "deleting a segment that follows a torn batch");
                    for ext in ["log", "index", "timeindex", "txnindex"] {
                        let p = Segment::path_for(dir, later, ext);
                        let _ = fs::remove_file(&p);
                    }
                }
            }
        }
        if segments.is_empty() {
            let base = state.log_start_offset.max(0);
            segments.insert(base, Segment::create(dir, base, &config, state.now_ms)?);
        }
        let first_base = *segments.keys().next().unwrap_or(&0);
        let next_offset = segments
            .values()
            .next_back()
            .map_or(first_base, Segment::next_offset);
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: state.log_start_offset.max(first_base),
            recovery_point: 0,
            next_offset,
            epochs,
            unflushed_messages: 0,
            last_flush_ms: state.now_ms,
            first_dirty_offset: 0,
            producers: ProducerStateTable::new(),
            snapshots: producer_snapshot::list(dir)?,
        };
        if log.log_start_offset > log.next_offset {
            warn!(
                dir = %dir.display(),
                log_start_offset = log.log_start_offset,
                log_end_offset = log.next_offset,
                "log start offset is past the recovered end; starting the log at it"
            );
            log.truncate_fully_and_start_at(log.log_start_offset, state.now_ms)?;
        }
        if rebuild_epochs {
            log.rebuild_epochs()?;
        }
        let mut changed = log.epochs.truncate_from_end(log.next_offset);
        changed |= log.epochs.truncate_from_start(log.log_start_offset);
        if changed || rebuild_epochs {
            log.epochs.write()?;
        }
        if recovered_any {
            // Recovered bytes were re-validated; make them durable so the
            // recovery point can move past them.
            for segment in log.segments.values_mut() {
                segment.flush()?;
            }
            checkpoint::sync_dir(dir)?;
            log.recovery_point = log.next_offset;
        } else if state.had_clean_shutdown {
            log.recovery_point = log.next_offset;
        } else {
            log.recovery_point = state
                .recovery_point
                .clamp(log.log_start_offset, log.next_offset);
        }
        log.load_producer_state(state.had_clean_shutdown)?;
        Ok(log)
    }

    /// Finishes a compaction that crashed after its `.swap` file was in
    /// place: the old segments it replaces are deleted and it is renamed.
    fn complete_swap(dir: &Path, base: i64, bases: &mut Vec<i64>) -> Result<()> {
        let swap = dir.join(format!("{}.swap", crate::segment::file_name(base, "log")));
        let bytes = fs::read(&swap).map_err(LogError::io(&swap))?;
        let mut end = base;
        for batch in BatchIter::new(&bytes) {
            match batch {
                Ok((_, h, _)) => end = h.next_offset(),
                Err(_) => break,
            }
        }
        let replaced: Vec<i64> = bases
            .iter()
            .copied()
            .filter(|b| *b >= base && *b < end.max(base + 1))
            .collect();
        for old in &replaced {
            for ext in ["log", "index", "timeindex", "txnindex"] {
                let p = Segment::path_for(dir, *old, ext);
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io(p)(e)),
                }
            }
        }
        bases.retain(|b| !replaced.contains(b));
        fs::rename(&swap, Segment::path_for(dir, base, "log")).map_err(LogError::io(&swap))?;
        checkpoint::sync_dir(dir)?;
        bases.push(base);
        info!(dir = %dir.display(), base_offset = base, "completed an interrupted compaction swap");
        Ok(())
    }

    fn rebuild_epochs(&mut self) -> Result<()> {
        self.epochs.clear();
        for segment in self.segments.values() {
            let mut position = 0;
            while position < segment.size() {
                let h = segment.header_at(position)?;
                self.epochs.assign(h.partition_leader_epoch, h.base_offset);
                position += h.size_bytes() as u64;
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Applies a new topic config; it governs appends and segments from now on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The offset the next record will get (LEO).
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }
    /// OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.next_offset)
    }
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Appends validated batches from a producing client as the partition
    /// leader: checks each idempotent or transactional batch against its
    /// producer's state (a retried batch is answered with its original
    /// offsets and `duplicate` set, and nothing is written; a sequence gap,
    /// an old epoch, or a non-transactional write inside a transaction is
    /// refused), assigns offsets from the log end offset and `leader_epoch`
    /// in place, stamps LogAppendTime if the topic uses it, and writes them.
    pub fn append_as_leader(
        &mut self,
        batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        for span in &batches.batches {
            let h = &span.header;
            // Kafka's LogValidator: a client's idempotent batch must carry
            // a sequence number.
            if h.has_producer_id() && h.base_sequence < 0 {
                return Err(BatchError::InvalidRecord(format!(
                    "invalid sequence number {} in a batch of producer {}",
                    h.base_sequence, h.producer_id
                ))
                .into());
            }
        }
        self.append_validated(batches, leader_epoch, now_ms, Origin::Client)
    }

    /// Appends validated batches written by a coordinator of this broker
    /// (the group coordinator's transactional offset commits): as
    /// [`Self::append_as_leader`], but sequences are neither required nor
    /// checked (Kafka's `AppendOrigin.COORDINATOR`). Producer epochs are
    /// still checked, and a transactional batch starts or continues its
    /// producer's transaction.
    pub fn append_as_coordinator(
        &mut self,
        batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_validated(batches, leader_epoch, now_ms, Origin::Coordinator)
    }

    fn append_validated(
        &mut self,
        mut batches: ValidatedBatches,
        leader_epoch: i32,
        now_ms: i64,
        origin: Origin,
    ) -> Result<AppendInfo> {
        let append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let mut offset = self.next_offset;
        let mut headers = Vec::with_capacity(batches.batches.len());
        for span in &batches.batches {
            let size = span.header.size_bytes();
            let bytes = &mut batches.buf[span.position..span.position + size];
            batch::set_offset_and_epoch(bytes, offset, leader_epoch);
            if append_time {
                batch::set_log_append_time(bytes, now_ms);
            }
            let header = BatchHeader::parse(bytes).expect("validated batch has a header");
            debug_assert_eq!(batch::compute_crc(bytes), header.crc);
            offset = header.next_offset();
            headers.push((span.position, header));
        }
        let producer_append = match self.check_producers(&batches.buf, &headers, origin)? {
            ProducerCheck::Duplicate(info) => return Ok(info),
            ProducerCheck::Append(a) => a,
        };
        let mut info = self.append_checked(&batches.buf, &headers, now_ms)?;
        self.apply_producer_append(producer_append)?;
        if append_time {
            info.log_append_time_ms = now_ms;
        }
        Ok(info)
    }

    /// Appends batches that already carry offsets (a follower copying its
    /// leader, or the Raft log). Framing and CRC are checked; offsets must
    /// continue the log. An empty buffer appends nothing and returns `None`.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Option<AppendInfo>> {
        if records.len() as u64 > self.config.segment_bytes {
            return Err(BatchError::RecordListTooLarge {
                size_bytes: records.len(),
                max_bytes: self.config.segment_bytes as usize,
            }
            .into());
        }
        let mut headers = Vec::new();
        let mut expected = self.next_offset;
        for item in BatchIter::new(records) {
            let (position, header, _) = item?;
            if header.base_offset < expected {
                return Err(LogError::NonMonotonicAppend {
                    expected,
                    got: header.base_offset,
                });
            }
            expected = header.next_offset();
            headers.push((position, header));
        }
        if headers.is_empty() {
            return Ok(None);
        }
        let producer_append = match self.check_producers(records, &headers, Origin::Replication)? {
            ProducerCheck::Append(a) => a,
            ProducerCheck::Duplicate(_) => unreachable!("replication does not look for duplicates"),
        };
        let info = self.append_checked(records, &headers, now_ms)?;
        self.apply_producer_append(producer_append)?;
        Ok(Some(info))
    }

    pub(crate) fn append_checked(
        &mut self,
        bytes: &[u8],
        headers: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let first = headers[0].1;
        let last = headers[headers.len() - 1].1;
        let mut max_timestamp = -1;
        let mut offset_of_max_timestamp = first.base_offset;
        let mut record_count = 0i64;
        for (_, h) in headers {
            if h.max_timestamp > max_timestamp {
                max_timestamp = h.max_timestamp;
                offset_of_max_timestamp = h.last_offset();
            }
            record_count += i64::from(h.record_count);
        }
        if self.active().should_roll(
            &self.config,
            bytes.len() as u64,
            max_timestamp,
            last.last_offset(),
            now_ms,
        ) {
            self.roll(now_ms)?;
        }
        let mut epochs_changed = false;
        for (_, h) in headers {
            epochs_changed |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        self.active_mut().append(bytes, headers)?;
        self.next_offset = last.next_offset();
        if epochs_changed {
            self.epochs.write()?;
        }
        self.unflushed_messages += record_count;
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush(now_ms)?;
        }
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset(),
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
            record_count,
            size_bytes: bytes.len() as u64,
            duplicate: false,
        })
    }

    /// Starts a new active segment at the log end offset. The old one gets
    /// its final time-index entry and is fsynced, so the recovery point moves
    /// to the new segment's base. A no-op when the active segment is empty.
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        if self.active().is_empty() {
            return Ok(());
        }
        let base = self.next_offset;
        {
            let active = self.active_mut();
            active.seal_time_index()?;
            active.flush()?;
        }
        let segment = Segment::create(&self.dir, base, &self.config, now_ms)?;
        self.segments.insert(base, segment);
        checkpoint::sync_dir(&self.dir)?;
        self.recovery_point = self.recovery_point.max(base);
        self.unflushed_messages = 0;
        // Everything below `base` is durable now, so a snapshot there is a
        // safe place for recovery to start replaying from.
        self.take_producer_snapshot(base)?;
        self.delete_old_producer_snapshots()
    }

    /// Reads whole batches starting with the one that holds `offset`: up to
    /// `max_bytes` (at least one batch when `min_one`, KIP-74), each ending
    /// below `upper_bound` (the high watermark or last stable offset).
    /// `None` when there is nothing to return yet.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        upper_bound: i64,
        min_one: bool,
    ) -> Result<Option<FileSlice>> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.next_offset,
            });
        }
        let upper = upper_bound.min(self.next_offset);
        if offset >= upper {
            return Ok(None);
        }
        let start_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for segment in self.segments.range(start_base..).map(|(_, s)| s) {
            if let Some(slice) = segment.read(offset, max_bytes, upper, min_one)? {
                return Ok((slice.len > 0).then_some(slice));
            }
        }
        Ok(None)
    }

    /// ListOffsets by timestamp: the first record at or after the log start
    /// offset with a timestamp >= `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampAndOffset>> {
        for segment in self.segments.values() {
            if segment.max_timestamp() < timestamp || segment.next_offset() <= self.log_start_offset
            {
                continue;
            }
            if let Some((ts, offset)) =
                segment.find_offset_by_timestamp(timestamp, self.log_start_offset)?
            {
                return Ok(Some(TimestampAndOffset {
                    timestamp: ts,
                    offset,
                }));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the largest timestamp in the log
    /// and the offset of the first record that carries it.
    pub fn max_timestamp(&self) -> Result<Option<TimestampAndOffset>> {
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp() >= 0
                && best.is_none_or(|b| segment.max_timestamp() > b.max_timestamp())
            {
                best = Some(segment);
            }
        }
        let Some(segment) = best else { return Ok(None) };
        let ts = segment.max_timestamp();
        let Some((position, header)) =
            segment.translate_offset(segment.offset_of_max_timestamp())?
        else {
            return Ok(None);
        };
        let offset = segment
            .record_timestamps(position, &header)?
            .into_iter()
            .find(|(_, t)| *t == ts)
            .map_or(header.last_offset(), |(o, _)| o);
        Ok(Some(TimestampAndOffset {
            timestamp: ts,
            offset,
        }))
    }

    /// Applies `retention.ms` and `retention.bytes` (when `cleanup.policy`
    /// has `delete`) and drops segments wholly below the log start offset.
    /// Only segments whose records all lie below `high_watermark` go.
    /// Returns the number of segments deleted.
    pub fn delete_old_segments(&mut self, now_ms: i64, high_watermark: i64) -> Result<usize> {
        self.on_high_watermark_updated(high_watermark);
        let lso = self.log_start_offset;
        let mut deleted = self.delete_segments_while(high_watermark, now_ms, |_, next| {
            next.is_some_and(|n| n <= lso)
        })?;
        if self.config.cleanup_policy_delete {
            if self.config.retention_ms >= 0 {
                let retention_ms = self.config.retention_ms;
                deleted += self.delete_segments_while(high_watermark, now_ms, |s, _| {
                    now_ms - s.largest_timestamp() > retention_ms
                })?;
            }
            if self.config.retention_bytes >= 0 {
                let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
                deleted += self.delete_segments_while(high_watermark, now_ms, |s, _| {
                    if excess - s.size() as i64 >= 0 {
                        excess -= s.size() as i64;
                        true
                    } else {
                        false
                    }
                })?;
            }
        }
        Ok(deleted)
    }

    fn delete_segments_while(
        &mut self,
        high_watermark: i64,
        now_ms: i64,
        mut predicate: impl FnMut(&Segment, Option<i64>) -> bool,
    ) -> Result<usize> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut doomed = Vec::new();
        for (i, base) in bases.iter().enumerate() {
            let segment = &self.segments[base];
            let next = bases.get(i + 1).copied();
            let upper = next.unwrap_or(self.next_offset);
            let last_and_empty = next.is_none() && segment.is_empty();
            if high_watermark >= upper && !last_and_empty && predicate(segment, next) {
                doomed.push(*base);
            } else {
                break;
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        if doomed.len() == bases.len() {
            self.roll(now_ms)?;
        }
        for base in &doomed {
            if let Some(segment) = self.segments.remove(base) {
                info!(segment = %segment.log_path().display(), "deleting segment");
                segment.delete()?;
            }
        }
        let first = *self
            .segments
            .keys()
            .next()
            .expect("roll left an active segment");
        self.log_start_offset = self.log_start_offset.max(first);
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.write()?;
        }
        self.on_log_start_offset_moved()?;
        Ok(doomed.len())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (which the
    /// caller has checked against the high watermark) and deletes segments
    /// that fall wholly below it. Returns whether it moved.
    pub fn advance_log_start_offset(&mut self, offset: i64, now_ms: i64) -> Result<bool> {
        if offset > self.next_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.next_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.log_start_offset = offset;
        if self.epochs.truncate_from_start(offset) {
            self.epochs.write()?;
        }
        self.delete_segments_while(offset, now_ms, |_, next| next.is_some_and(|n| n <= offset))?;
        self.on_log_start_offset_moved()?;
        Ok(true)
    }

    /// Removes everything at and after `offset` (whole batches: a batch that
    /// holds `offset` goes entirely). Returns whether anything was removed.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<bool> {
        if offset >= self.next_offset {
            return Ok(false);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset, now_ms)?;
            return Ok(true);
        }
        let doomed: Vec<i64> = self.segments.range(offset..).map(|(b, _)| *b).collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete()?;
            }
        }
        if self.segments.is_empty() {
            self.segments.insert(
                offset,
                Segment::create(&self.dir, offset, &self.config, now_ms)?,
            );
        } else {
            self.active_mut().truncate_to(offset)?;
        }
        self.next_offset = self.active().next_offset();
        self.recovery_point = self.recovery_point.min(self.next_offset);
        self.first_dirty_offset = self.first_dirty_offset.min(self.next_offset);
        if self.epochs.truncate_from_end(self.next_offset) {
            self.epochs.write()?;
        }
        self.reload_producer_state(i64::MAX)?;
        Ok(true)
    }

    /// Deletes every segment and restarts the log empty at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        for (_, segment) in std::mem::take(&mut self.segments) {
            segment.delete()?;
        }
        self.segments.insert(
            offset,
            Segment::create(&self.dir, offset, &self.config, now_ms)?,
        );
        self.log_start_offset = offset;
        self.next_offset = offset;
        self.recovery_point = offset;
        self.first_dirty_offset = offset;
        self.producers.clear();
        for snapshot in std::mem::take(&mut self.snapshots) {
            producer_snapshot::delete(&self.dir, snapshot)?;
        }
        self.epochs.clear();
        self.epochs.write()
    }

    /// fsyncs every segment that may hold data past the recovery point and
    /// moves the recovery point to the log end offset.
    pub fn flush(&mut self, now_ms: i64) -> Result<()> {
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for (_, segment) in self.segments.range_mut(from..) {
            segment.flush()?;
        }
        self.recovery_point = self.next_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// Applies `flush.ms`; call it periodically. Returns whether it flushed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool> {
        let due = self.unflushed_messages > 0
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms;
        if due {
            self.flush(now_ms)?;
        }
        Ok(due)
    }

    /// Seals the active segment's time index and flushes everything, as
    /// before a clean shutdown.
    pub fn close(mut self, now_ms: i64) -> Result<()> {
        self.active_mut().seal_time_index()?;
        self.flush(now_ms)?;
        self.take_producer_snapshot(self.next_offset)?;
        self.epochs.write()
    }
}
