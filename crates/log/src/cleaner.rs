//! Log compaction (`cleanup.policy=compact`): keep the latest record of each
//! key, drop tombstones once `delete.retention.ms` has passed, keep offsets.
//!
//! One pass, as Kafka's `LogCleaner` does it:
//! 1. The cleanable range is the prefix of non-active segments that lie
//!    wholly below the caller's bound (the high watermark) and are older than
//!    `min.compaction.lag.ms`. Its part after the cleaner's checkpoint
//!    (`first_dirty_offset`) is dirty.
//! 2. An offset map (key -> latest offset) is built over the dirty part,
//!    bounded by [`DEDUPE_BYTES_MAX`] of keys; the pass stops at the last
//!    segment that fit.
//! 3. Each group of consecutive segments (together at most `segment.bytes`)
//!    is rewritten: a record survives if no later offset holds its key.
//!    Batches whose records all survive are copied byte for byte; others are
//!    rebuilt with the same base offset, `lastOffsetDelta`, producer fields
//!    and codec, so offsets and sequence numbers are unchanged (as Kafka's
//!    `MemoryRecords.filterTo` does for v2). Batches with no survivor go.
//! 4. The new segment is written as `<base>.log.cleaned`, fsynced, renamed to
//!    `<base>.log.swap`, the old files deleted, and the swap renamed into
//!    place; `Log::open` finishes a swap interrupted by a crash.
//!
//! Tombstones: a tombstone is removed only from a segment that a previous
//! pass already cleaned and whose largest timestamp is more than
//! `delete.retention.ms` old, so it stays visible for at least that long
//! after it was first compacted (the intent of Kafka's legacy delete horizon).
//!
//! Transactions, as in Kafka's `LogCleaner`:
//! - the caller's bound is lowered to the last stable offset, so no open
//!   transaction (and no transaction whose marker is above the high
//!   watermark) is ever cleaned;
//! - records of aborted transactions (found with the transaction indexes)
//!   are removed whatever their keys, and never enter the offset map;
//! - committed transactional records are compacted by key like any other;
//! - to keep producer state recoverable from the log, the batch holding each
//!   known producer's last data offset is kept, emptied of its records if
//!   none survive (Kafka's `RETAIN_EMPTY`: a 61-byte header with no records);
//! - the cleaned segment's `.txnindex` keeps the entries of the segments it
//!   replaces (harmless once the aborted records are gone, and what a
//!   consumer still needs for any retained empty batch).
//!
//! Departure from Kafka: control batches (COMMIT/ABORT markers) are always
//! kept; Kafka removes a marker once no batch of its transaction remains and
//! `delete.retention.ms` has passed since a delete horizon was stamped on it.

use std::collections::HashMap;
use std::fs;
use std::io::Write;

use tracing::info;

use crate::batch::{self, pos, BatchHeader, TimestampType, HEADER_BYTES, LOG_OVERHEAD};
use std::collections::{HashSet, VecDeque};

use crate::checkpoint;
use crate::compression::{self, Compression};
use crate::error::{LogError, Result};
use crate::log::Log;
use crate::marker;
use crate::records::RecordIter;
use crate::segment::{file_name, Segment};
use crate::txn_index::AbortedTxn;

/// The most key bytes one pass keeps in its offset map (Kafka's
/// `log.cleaner.dedupe.buffer.size` default).
pub const DEDUPE_BYTES_MAX: usize = 128 << 20;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
}

impl Log {
    /// Non-active segments, as a prefix, that a pass may clean: below
    /// `upper_bound` (the high watermark) and the last stable offset.
    fn cleanable_bases(&self, now_ms: i64, upper_bound: i64) -> Vec<i64> {
        let upper_bound = self.last_stable_offset(upper_bound);
        let active = *self.segments.keys().next_back().expect("active segment");
        let mut out = Vec::new();
        for (base, segment) in &self.segments {
            // As in Kafka, the lag applies only when it is set (> 0), so
            // records stamped ahead of the broker's clock are still cleaned.
            let too_young = self.config.min_compaction_lag_ms > 0
                && now_ms - segment.largest_timestamp() < self.config.min_compaction_lag_ms;
            if *base == active || segment.next_offset() > upper_bound || too_young {
                break;
            }
            out.push(*base);
        }
        out
    }

    /// Dirty bytes over cleanable bytes: the cleaner runs a log whose ratio
    /// reaches `min.cleanable.dirty.ratio`.
    pub fn cleanable_dirty_ratio(&self, now_ms: i64, upper_bound: i64) -> f64 {
        let mut total = 0u64;
        let mut dirty = 0u64;
        for base in self.cleanable_bases(now_ms, upper_bound) {
            let s = &self.segments[&base];
            total += s.size();
            if s.next_offset() > self.first_dirty_offset {
                dirty += s.size();
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// Compacts if the topic is compacted and its dirty ratio has reached
    /// `min.cleanable.dirty.ratio`.
    pub fn maybe_compact(&mut self, now_ms: i64, upper_bound: i64) -> Result<Option<CleanStats>> {
        let ratio = self.cleanable_dirty_ratio(now_ms, upper_bound);
        if !self.config.cleanup_policy_compact
            || ratio == 0.0
            || ratio < self.config.min_cleanable_dirty_ratio
        {
            return Ok(None);
        }
        self.compact(now_ms, upper_bound).map(Some)
    }

    /// Runs one compaction pass over the segments below `upper_bound`.
    pub fn compact(&mut self, now_ms: i64, upper_bound: i64) -> Result<CleanStats> {
        let mut stats = CleanStats::default();
        let cleanable = self.cleanable_bases(now_ms, upper_bound);
        let previous_dirty = self.first_dirty_offset;

        // Offset map over the dirty part, bounded by DEDUPE_BYTES_MAX.
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut key_bytes = 0usize;
        let mut end_base_index = 0;
        for (i, base) in cleanable.iter().enumerate() {
            let segment = &self.segments[base];
            if segment.next_offset() <= previous_dirty {
                end_base_index = i + 1;
                continue;
            }
            if key_bytes > DEDUPE_BYTES_MAX && end_base_index > 0 {
                break;
            }
            let aborted = self.aborted_transactions(*base, segment.next_offset())?;
            let mut tracker = TxnTracker::new(aborted);
            for_each_record(segment, &mut tracker, |offset, key, _| {
                if let Some(key) = key {
                    if let Some(o) = latest.get_mut(key) {
                        *o = offset;
                    } else {
                        key_bytes += key.len();
                        latest.insert(key.to_vec(), offset);
                    }
                }
            })?;
            end_base_index = i + 1;
        }
        let to_clean = &cleanable[..end_base_index];
        let Some(&last_base) = to_clean.last() else {
            return Ok(stats);
        };
        if self.segments[&last_base].next_offset() <= previous_dirty {
            return Ok(stats);
        }
        let clean_end = self.segments[&last_base].next_offset();
        let tombstone_horizon = now_ms.saturating_sub(self.config.delete_retention_ms);
        // The batch holding each producer's last data offset stays, so the
        // producer's epoch and sequence survive a rebuild from the log.
        let last_data_offsets: HashSet<i64> = self
            .producers
            .entries()
            .map(|e| e.last_data_offset())
            .filter(|o| *o >= 0)
            .collect();
        let mut tracker = TxnTracker::new(self.aborted_transactions(to_clean[0], clean_end)?);

        for group in self.group_segments(to_clean) {
            let group_base = group[0];
            let cleaned_path = self
                .dir
                .join(format!("{}.cleaned", file_name(group_base, "log")));
            let swap_path = self
                .dir
                .join(format!("{}.swap", file_name(group_base, "log")));
            let mut out = fs::File::create(&cleaned_path).map_err(LogError::io(&cleaned_path))?;
            let mut written = 0u64;
            let mut txn_entries: Vec<AbortedTxn> = Vec::new();
            for base in &group {
                let segment = &self.segments[base];
                txn_entries.extend_from_slice(segment.txn_index().entries());
                stats.segments_read += 1;
                stats.bytes_read += segment.size();
                let drop_tombstones = segment.next_offset() <= previous_dirty
                    && segment.largest_timestamp() < tombstone_horizon;
                let mut position = 0;
                while position < segment.size() {
                    let header = segment.header_at(position)?;
                    let bytes = segment.batch_at(position, &header)?;
                    position += header.size_bytes() as u64;
                    let batch_marker = if header.is_control() {
                        marker::marker_of(&bytes, &header)
                    } else {
                        None
                    };
                    let rules = BatchRules {
                        drop_tombstones,
                        aborted: tracker.on_batch(&header, batch_marker),
                        retain_empty: header.has_producer_id()
                            && last_data_offsets.contains(&header.last_offset()),
                    };
                    let filtered = filter_batch(&bytes, &header, &latest, rules, &mut stats)
                        .map_err(|e| LogError::CorruptFile {
                            path: segment.log_path().to_path_buf(),
                            reason: e.to_string(),
                        })?;
                    let kept: &[u8] = match &filtered {
                        Filtered::Unchanged => &bytes,
                        Filtered::Rebuilt(b) => b,
                        Filtered::Empty => continue,
                    };
                    out.write_all(kept).map_err(LogError::io(&cleaned_path))?;
                    written += kept.len() as u64;
                }
            }
            out.sync_all().map_err(LogError::io(&cleaned_path))?;
            drop(out);
            fs::rename(&cleaned_path, &swap_path).map_err(LogError::io(&cleaned_path))?;
            checkpoint::sync_dir(&self.dir)?;
            for base in &group {
                if let Some(old) = self.segments.remove(base) {
                    old.delete()?;
                }
            }
            fs::rename(&swap_path, Segment::path_for(&self.dir, group_base, "log"))
                .map_err(LogError::io(&swap_path))?;
            checkpoint::sync_dir(&self.dir)?;
            let (mut segment, _) = Segment::open(&self.dir, group_base, &self.config, now_ms)?;
            segment.recover(None)?;
            // A crash before this line loses the cleaned segment's entries;
            // its aborted records are gone already, so reads stay correct.
            segment.txn_index_mut().replace(txn_entries)?;
            segment.flush()?;
            self.segments.insert(group_base, segment);
            stats.segments_written += 1;
            stats.bytes_written += written;
        }
        self.first_dirty_offset = clean_end;
        info!(
            dir = %self.dir.display(),
            segments = stats.segments_read,
            bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written,
            records_removed = stats.records_removed,
            "compacted log up to offset {clean_end}"
        );
        Ok(stats)
    }

    /// Consecutive segments whose sizes add up to at most `segment.bytes`
    /// and whose offsets fit one segment's relative range.
    fn group_segments(&self, bases: &[i64]) -> Vec<Vec<i64>> {
        let mut groups: Vec<Vec<i64>> = Vec::new();
        let mut size = 0u64;
        for base in bases {
            let s = &self.segments[base];
            let fits = groups.last().is_some_and(|g| {
                size + s.size() <= self.config.segment_bytes
                    && s.next_offset() - g[0] <= i64::from(i32::MAX)
            });
            if fits {
                size += s.size();
                groups.last_mut().expect("checked").push(*base);
            } else {
                size = s.size();
                groups.push(vec![*base]);
            }
        }
        groups
    }
}

/// Which batches belong to aborted transactions, walking batches in offset
/// order (Kafka's `CleanedTransactionMetadata`): an aborted transaction is
/// entered at its first offset and left at its producer's ABORT marker.
#[derive(Debug)]
struct TxnTracker {
    /// Aborted transactions not yet reached, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producers inside an aborted transaction at the current batch.
    aborting: HashSet<i64>,
}

impl TxnTracker {
    fn new(mut aborted: Vec<AbortedTxn>) -> TxnTracker {
        aborted.sort_by_key(|t| t.first_offset);
        TxnTracker {
            pending: aborted.into(),
            aborting: HashSet::new(),
        }
    }

    /// Whether the batch is data of an aborted transaction.
    fn on_batch(
        &mut self,
        header: &BatchHeader,
        marker: Option<crate::producer::MarkerInfo>,
    ) -> bool {
        while self
            .pending
            .front()
            .is_some_and(|t| t.first_offset <= header.last_offset())
        {
            let t = self.pending.pop_front().expect("checked");
            self.aborting.insert(t.producer_id);
        }
        if header.is_control() {
            if marker.is_some_and(|m| !m.commit) {
                self.aborting.remove(&header.producer_id);
            }
            false
        } else {
            header.is_transactional() && self.aborting.contains(&header.producer_id)
        }
    }
}

/// Calls `f(offset, key, is_tombstone)` for every record of a segment's
/// data batches, except those of aborted transactions, which must not
/// supersede (and so erase) older records. Control batches are skipped.
fn for_each_record(
    segment: &Segment,
    tracker: &mut TxnTracker,
    mut f: impl FnMut(i64, Option<&[u8]>, bool),
) -> Result<()> {
    let mut position = 0;
    while position < segment.size() {
        let header = segment.header_at(position)?;
        let marker = if header.is_control() {
            marker::marker_of(&segment.batch_at(position, &header)?, &header)
        } else {
            None
        };
        let aborted = tracker.on_batch(&header, marker);
        if !header.is_control() && !aborted {
            let bytes = segment.batch_at(position, &header)?;
            let corrupt = |e: crate::error::BatchError| LogError::CorruptFile {
                path: segment.log_path().to_path_buf(),
                reason: e.to_string(),
            };
            let records = records_section(&bytes, &header).map_err(corrupt)?;
            for record in RecordIter::new(&records, header.record_count).map_err(corrupt)? {
                let r = record.map_err(corrupt)?;
                f(
                    header.base_offset.saturating_add(i64::from(r.offset_delta)),
                    r.key,
                    r.value.is_none(),
                );
            }
        }
        position += header.size_bytes() as u64;
    }
    Ok(())
}

fn records_section(
    batch: &[u8],
    header: &BatchHeader,
) -> Result<Vec<u8>, crate::error::BatchError> {
    let codec = header.compression()?;
    let section = &batch[HEADER_BYTES..];
    compression::decompress(codec, section, compression::decompressed_bytes_max(1 << 20))
}

enum Filtered {
    Unchanged,
    Rebuilt(Vec<u8>),
    Empty,
}

/// What the cleaner decided about one batch before looking at its records.
#[derive(Debug, Clone, Copy)]
struct BatchRules {
    drop_tombstones: bool,
    /// Data of an aborted transaction: every record goes.
    aborted: bool,
    /// Its producer's last batch: kept, even with no records left.
    retain_empty: bool,
}

fn filter_batch(
    bytes: &[u8],
    header: &BatchHeader,
    latest: &HashMap<Vec<u8>, i64>,
    rules: BatchRules,
    stats: &mut CleanStats,
) -> Result<Filtered, crate::error::BatchError> {
    if header.is_control() {
        return Ok(Filtered::Unchanged);
    }
    if rules.aborted {
        if header.record_count == 0 && rules.retain_empty {
            return Ok(Filtered::Unchanged);
        }
        stats.records_removed += header.record_count.max(0) as u64;
        return Ok(if rules.retain_empty {
            Filtered::Rebuilt(empty_batch(bytes, header))
        } else {
            Filtered::Empty
        });
    }
    let drop_tombstones = rules.drop_tombstones;
    let records = records_section(bytes, header)?;
    let mut kept = Vec::with_capacity(records.len());
    let mut kept_count = 0i32;
    let mut max_timestamp = -1i64;
    let mut removed_any = false;
    for record in RecordIter::new(&records, header.record_count)? {
        let r = record?;
        let offset = header.base_offset.saturating_add(i64::from(r.offset_delta));
        let superseded = match r.key {
            None => true,
            Some(k) => latest.get(k).is_some_and(|&newest| newest > offset),
        };
        let expired_tombstone = r.value.is_none() && drop_tombstones;
        if superseded || expired_tombstone {
            removed_any = true;
            stats.records_removed += 1;
            if !superseded {
                stats.tombstones_removed += 1;
            }
            continue;
        }
        kept.extend_from_slice(r.bytes);
        kept_count += 1;
        max_timestamp = max_timestamp.max(header.base_timestamp.saturating_add(r.timestamp_delta));
    }
    if !removed_any {
        return Ok(Filtered::Unchanged);
    }
    if kept_count == 0 {
        return Ok(if rules.retain_empty {
            Filtered::Rebuilt(empty_batch(bytes, header))
        } else {
            Filtered::Empty
        });
    }
    let codec = header.compression()?;
    let section = if codec == Compression::None {
        kept
    } else {
        compression::compress(codec, &kept)?
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + section.len());
    out.extend_from_slice(&bytes[..HEADER_BYTES]);
    out.extend_from_slice(&section);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[pos::LENGTH..pos::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    out[pos::RECORD_COUNT..pos::RECORD_COUNT + 4].copy_from_slice(&kept_count.to_be_bytes());
    if header.timestamp_type() == TimestampType::CreateTime {
        out[pos::MAX_TIMESTAMP..pos::MAX_TIMESTAMP + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
    }
    let crc = batch::compute_crc(&out);
    out[pos::CRC..pos::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::check_batch(&out).is_ok());
    Ok(Filtered::Rebuilt(out))
}

/// The batch's header with no records (Kafka's
/// `DefaultRecordBatch.writeEmptyHeader`): same offsets, producer fields and
/// flags, no compression, both timestamps the batch's max timestamp.
fn empty_batch(bytes: &[u8], header: &BatchHeader) -> Vec<u8> {
    let mut out = bytes[..HEADER_BYTES].to_vec();
    let length = (HEADER_BYTES - LOG_OVERHEAD) as i32;
    out[pos::LENGTH..pos::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = header.attributes & !0x07;
    out[pos::ATTRIBUTES..pos::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[pos::BASE_TIMESTAMP..pos::BASE_TIMESTAMP + 8]
        .copy_from_slice(&header.max_timestamp.to_be_bytes());
    out[pos::RECORD_COUNT..pos::RECORD_COUNT + 4].copy_from_slice(&0i32.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[pos::CRC..pos::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::check_batch(&out).is_ok());
    out
}
