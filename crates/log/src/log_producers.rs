//! The log's side of idempotent and transactional producers: checking
//! appends against the producer table, writing transaction markers and the
//! transaction index, the last stable offset, snapshots of the table, and
//! rebuilding it when a log opens or is truncated.
//!
//! Snapshots (`<offset>.snapshot`, [`crate::producer_snapshot`]) are taken
//! when a segment rolls (at the new segment's base) and when the log
//! closes (at the log end offset), both right after everything below that
//! offset was fsynced. So a snapshot at `s` never describes bytes that a
//! crash could take back, and recovery can start replaying at `s`. The
//! snapshots at the bases of the last two segments and anything newer are
//! kept; older ones, those below the log start offset, and those above the
//! end after a truncation are deleted.
//!
//! Rebuilding (open, truncation): load the newest readable snapshot at or
//! below the log end (a corrupt one is deleted with a warning and the next
//! older one tried; with none, start empty at the log start offset), then
//! replay every batch from there to the end as a follower would. An ABORT
//! marker found by the replay whose entry is missing from its segment's
//! transaction index (cut by recovery, or lost in a crash) is added back.
//! As in Kafka, a log that shut down cleanly and has no snapshot at all
//! (written before Riffle had transactions) is not replayed: it starts with
//! an empty table and a snapshot at its end.
//!
//! Departures from Kafka: producers read from a snapshot are not filtered
//! by `producer.id.expiration.ms` (the log does not know it; the broker's
//! periodic [`Log::remove_expired_producers`] drops them); snapshots at the
//! log start offset are kept rather than deleted, so a restart after
//! retention still knows the producers whose data was deleted.

use std::sync::Arc;

use tracing::{info, warn};

use crate::batch::{self, BatchHeader, TimestampType};
use crate::error::{LogError, Result};
use crate::log::{AppendInfo, Log};
use crate::marker::{self, TxnMarker};
use crate::producer::{Origin, ProducerAppend, ProducerBatch, NO_SEQUENCE};
use crate::producer_snapshot;
use crate::segment::{FileBatches, ScanStop};
use crate::txn_index::AbortedTxn;

/// One producer's state on this partition, as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Last sequence written (-1 if none in the current epoch).
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the ongoing transaction, -1 when none.
    pub current_txn_start_offset: i64,
}

/// The outcome of checking an append against the producer table.
pub(crate) enum ProducerCheck {
    /// A client retried a batch that is already in the log.
    Duplicate(AppendInfo),
    /// The append may go ahead; apply this after writing it.
    Append(ProducerAppend),
}

impl Log {
    /// Checks every batch that has a producer id (offsets already assigned)
    /// against the producer table, without changing it. `batches` are
    /// (position in `bytes`, header).
    pub(crate) fn check_producers(
        &self,
        bytes: &[u8],
        batches: &[(usize, BatchHeader)],
        origin: Origin,
    ) -> Result<ProducerCheck> {
        let mut append = self.producers.begin(origin);
        for (position, header) in batches {
            if !header.has_producer_id() {
                continue;
            }
            let marker = if header.is_control() {
                let end = (*position + header.size_bytes()).min(bytes.len());
                marker::marker_of(&bytes[*position..end], header)
            } else {
                None
            };
            let batch = ProducerBatch::from_header(header, marker);
            if origin == Origin::Client {
                // Kafka answers the whole request as the duplicate; produce
                // v3+ carries a single batch per partition.
                if let Some(dup) = self.producers.find_duplicate(&batch) {
                    return Ok(ProducerCheck::Duplicate(AppendInfo {
                        first_offset: dup.first_offset(),
                        last_offset: dup.last_offset,
                        max_timestamp: dup.timestamp,
                        offset_of_max_timestamp: dup.last_offset,
                        // Kafka reports the original batch's timestamp as
                        // the append time of a duplicate.
                        log_append_time_ms: dup.timestamp,
                        log_start_offset: self.log_start_offset,
                        record_count: 0,
                        size_bytes: 0,
                        duplicate: true,
                    }));
                }
            }
            append.append(&self.producers, &batch)?;
        }
        Ok(ProducerCheck::Append(append))
    }

    /// Applies a checked append whose batches were just written to the
    /// active segment: aborted transactions go to its transaction index.
    pub(crate) fn apply_producer_append(&mut self, append: ProducerAppend) -> Result<()> {
        if append.is_empty() {
            return Ok(());
        }
        for txn in self.producers.apply(append) {
            if txn.aborted {
                let entry = AbortedTxn {
                    producer_id: txn.producer_id,
                    first_offset: txn.first_offset,
                    last_offset: txn.last_offset,
                    last_stable_offset: self.producers.last_stable_offset_after(&txn),
                };
                let active = self
                    .segments
                    .values_mut()
                    .next_back()
                    .expect("a log always has an active segment");
                debug_assert!(active.base_offset() <= txn.last_offset);
                active.txn_index_mut().append(entry)?;
            }
            self.producers.complete(&txn);
        }
        Ok(())
    }

    /// Writes a COMMIT or ABORT marker for a producer (WriteTxnMarkers) as
    /// one control batch at the log end offset, and ends the producer's
    /// transaction; an abort is recorded in the transaction index. Refused
    /// when the producer epoch is older than the partition knows
    /// ([`LogError::InvalidProducerEpoch`]) or the coordinator epoch older
    /// than the last marker's ([`LogError::TransactionCoordinatorFenced`]).
    /// A marker for a producer without an ongoing transaction is written
    /// and completes nothing, as in Kafka.
    pub fn append_txn_marker(
        &mut self,
        marker: &TxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if marker.producer_id < 0 {
            return Err(crate::error::BatchError::InvalidRecord(format!(
                "a transaction marker needs a producer id, not {}",
                marker.producer_id
            ))
            .into());
        }
        let mut bytes = marker::encode_marker_batch(marker, self.next_offset, leader_epoch, now_ms);
        let append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        if append_time {
            batch::set_log_append_time(&mut bytes, now_ms);
        }
        let header = batch::check_batch(&bytes).expect("an encoded marker is a valid batch");
        debug_assert_eq!(header.base_sequence, NO_SEQUENCE);
        let headers = [(0usize, header)];
        let append = match self.check_producers(&bytes, &headers, Origin::Coordinator)? {
            ProducerCheck::Append(a) => a,
            ProducerCheck::Duplicate(_) => unreachable!("markers are not checked for duplicates"),
        };
        let mut info = self.append_checked(&bytes, &headers, now_ms)?;
        self.apply_producer_append(append)?;
        if append_time {
            info.log_append_time_ms = now_ms;
        }
        Ok(info)
    }

    /// The first offset of the earliest ongoing transaction (never below
    /// the log start offset), or `None` when no transaction is open.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .first_undecided_offset()
            .map(|o| o.max(self.log_start_offset))
    }

    /// The last stable offset for `high_watermark`: the high watermark, held
    /// back to the first offset of the earliest transaction that is still
    /// open or whose marker is not yet below the high watermark (Kafka's
    /// `firstUnstableOffset`, which also waits for the marker to replicate).
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        match self.producers.first_unstable_offset(high_watermark) {
            Some(o) => o.max(self.log_start_offset).min(high_watermark),
            None => high_watermark,
        }
    }

    /// Tells the log its high watermark moved, so it forgets transactions
    /// whose markers are now replicated. Only memory depends on calling it:
    /// [`Self::last_stable_offset`] takes the high watermark anyway. Also
    /// done by [`Self::delete_old_segments`].
    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.producers.remove_unreplicated_below(high_watermark);
    }

    /// The aborted transactions that overlap `[start_offset, upper_offset)`
    /// (last offset >= start and first offset < upper), in marker order,
    /// for a `read_committed` fetch. Read from the transaction indexes of the
    /// segment holding `start_offset` and the ones after it, stopping where
    /// an entry's last stable offset shows no later abort can overlap.
    pub fn aborted_transactions(
        &self,
        start_offset: i64,
        upper_offset: i64,
    ) -> Result<Vec<AbortedTxn>> {
        let mut out = Vec::new();
        let from = self
            .segments
            .range(..=start_offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for (_, segment) in self.segments.range(from..) {
            if segment
                .txn_index()
                .collect(start_offset, upper_offset, &mut out)
            {
                break;
            }
        }
        Ok(out)
    }

    /// Every producer the partition knows (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerView> {
        self.producers
            .entries()
            .map(|e| ProducerView {
                producer_id: e.producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect()
    }

    /// Forgets producers without an ongoing transaction whose last write is
    /// `expiration_ms` (`producer.id.expiration.ms`) or more before
    /// `now_ms`. A forgotten producer is accepted again at any sequence.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) {
        let removed = self.producers.remove_expired(now_ms, expiration_ms);
        if removed > 0 {
            info!(dir = %self.dir.display(), removed, "expired idle producer ids");
        }
    }

    pub(crate) fn take_producer_snapshot(&mut self, offset: i64) -> Result<()> {
        let bytes = producer_snapshot::encode(self.producers.entries());
        producer_snapshot::write(&self.dir, offset, &bytes)?;
        self.snapshots.insert(offset);
        Ok(())
    }

    /// Keeps the snapshots at the last two segments' bases and newer.
    pub(crate) fn delete_old_producer_snapshots(&mut self) -> Result<()> {
        let Some(&keep_from) = self.segments.keys().nth_back(1) else {
            return Ok(());
        };
        self.delete_producer_snapshots_below(keep_from.min(self.recovery_point))
    }

    fn delete_producer_snapshots_below(&mut self, offset: i64) -> Result<()> {
        let doomed: Vec<i64> = self.snapshots.range(..offset).copied().collect();
        for s in doomed {
            producer_snapshot::delete(&self.dir, s)?;
            self.snapshots.remove(&s);
        }
        Ok(())
    }

    /// After retention or DeleteRecords moved the log start offset.
    pub(crate) fn on_log_start_offset_moved(&mut self) -> Result<()> {
        self.producers
            .remove_unreplicated_below(self.log_start_offset);
        self.delete_producer_snapshots_below(self.log_start_offset)
    }

    /// Builds the producer table when the log opens.
    pub(crate) fn load_producer_state(&mut self, had_clean_shutdown: bool) -> Result<()> {
        if self.snapshots.is_empty() && had_clean_shutdown {
            self.producers.clear();
            return self.take_producer_snapshot(self.next_offset);
        }
        let damaged = self
            .segments
            .values()
            .filter(|s| s.txn_index_damaged())
            .map(|s| s.base_offset())
            .min()
            .unwrap_or(i64::MAX);
        self.reload_producer_state(damaged)?;
        for segment in self.segments.values_mut() {
            segment.clear_txn_index_damaged();
        }
        Ok(())
    }

    /// Rebuilds the producer table from the newest usable snapshot at or
    /// below `min(log end, rebuild_from)` and the batches after it.
    pub(crate) fn reload_producer_state(&mut self, rebuild_from: i64) -> Result<()> {
        self.producers.clear();
        let stale: Vec<i64> = self
            .snapshots
            .iter()
            .copied()
            .filter(|s| *s > self.next_offset || *s < self.log_start_offset)
            .collect();
        for s in stale {
            producer_snapshot::delete(&self.dir, s)?;
            self.snapshots.remove(&s);
        }
        let bound = self.next_offset.min(rebuild_from);
        let mut start = self.log_start_offset;
        let candidates: Vec<i64> = self.snapshots.range(..=bound).rev().copied().collect();
        for s in candidates {
            let path = producer_snapshot::path_for(&self.dir, s);
            let decoded = match std::fs::read(&path) {
                Ok(bytes) => producer_snapshot::decode(&bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err("the file is missing".to_string())
                }
                Err(e) => return Err(LogError::io(&path)(e)),
            };
            match decoded {
                Ok(entries) => {
                    for entry in entries {
                        self.producers.load_entry(entry);
                    }
                    start = s;
                    break;
                }
                Err(reason) => {
                    warn!(snapshot = %path.display(), "deleting an unreadable producer state snapshot: {reason}");
                    producer_snapshot::delete(&self.dir, s)?;
                    self.snapshots.remove(&s);
                }
            }
        }
        if start < self.next_offset {
            self.replay_producers(start)?;
            if self.recovery_point >= self.next_offset {
                self.take_producer_snapshot(self.next_offset)?;
            }
        }
        self.producers.assert_consistent();
        Ok(())
    }

    /// Applies every batch from `start` to the log end to the producer
    /// table as a follower would, restoring missing transaction index
    /// entries on the way.
    fn replay_producers(&mut self, start: i64) -> Result<()> {
        let from = self
            .segments
            .range(..=start)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        let bases: Vec<i64> = self.segments.range(from..).map(|(b, _)| *b).collect();
        for base in bases {
            let segment = &self.segments[&base];
            let position = if start > base {
                match segment.translate_offset(start)? {
                    Some((p, _)) => p,
                    None => continue,
                }
            } else {
                0
            };
            let file = Arc::clone(segment.file());
            let size = segment.size();
            let log_path = segment.log_path().to_path_buf();
            let mut aborted = Vec::new();
            let mut scan = FileBatches::starting_at(&file, position, size);
            while let Some(item) = scan.next_batch() {
                let (_, header, bytes) = match item {
                    Ok(b) => b,
                    Err(ScanStop::Io(e)) => return Err(LogError::io(&log_path)(e)),
                    Err(ScanStop::Invalid { position, reason }) => {
                        warn!(segment = %log_path.display(), position, "producer state replay stops at an invalid batch: {reason}");
                        break;
                    }
                };
                if !header.has_producer_id() || header.last_offset() < start {
                    continue;
                }
                let marker = if header.is_control() {
                    marker::marker_of(bytes, &header)
                } else {
                    None
                };
                let batch = ProducerBatch::from_header(&header, marker);
                let mut append = self.producers.begin(Origin::Replication);
                append.append(&self.producers, &batch)?;
                for txn in self.producers.apply(append) {
                    if txn.aborted {
                        aborted.push(AbortedTxn {
                            producer_id: txn.producer_id,
                            first_offset: txn.first_offset,
                            last_offset: txn.last_offset,
                            last_stable_offset: self.producers.last_stable_offset_after(&txn),
                        });
                    }
                    self.producers.complete(&txn);
                }
            }
            let segment = self.segments.get_mut(&base).expect("listed above");
            for txn in aborted {
                segment.txn_index_mut().insert_if_missing(txn)?;
            }
        }
        Ok(())
    }
}
