//! Per-partition producer state: what idempotent and transactional
//! producers have written, so that retries are recognised as duplicates,
//! gaps and zombies are refused, and ongoing transactions bound the last
//! stable offset. This is Kafka's `ProducerStateManager`,
//! `ProducerAppendInfo` and `ProducerStateEntry`, without any I/O: the
//! [`Log`](crate::log::Log) feeds it batch headers and persists snapshots
//! ([`crate::producer_snapshot`]) and aborted transactions
//! ([`crate::txn_index`]).
//!
//! For each producer id the table keeps its epoch, the metadata of its last
//! [`BATCHES_RETAINED`] batches, the epoch of the transaction coordinator
//! that last wrote a marker for it, the first offset of its ongoing
//! transaction, and the timestamp of its last write.
//!
//! An append is checked in two steps, as Kafka does: a [`ProducerAppend`]
//! collects the updated entries of every batch of one append, refusing the
//! first batch that breaks a rule, and only after the log has written the
//! bytes does [`ProducerStateTable::apply`] make them current. A refused
//! append therefore changes nothing.
//!
//! Rules by origin (Kafka's `AppendOrigin`):
//! - client: duplicate detection (by the caller, [`ProducerStateTable::find_duplicate`]),
//!   epoch and sequence checks;
//! - coordinator (markers, transactional offset commits): epoch and
//!   coordinator epoch checks, no sequences;
//! - replication (followers and recovery): nothing is refused, the state is
//!   only brought up to date with what the leader wrote.
//!
//! Departures from Kafka: no transaction verification (KIP-890): a
//! transactional batch from a producer without an ongoing transaction starts
//! one, as Kafka did before 3.6. A follower or recovery replaying a
//! non-transactional batch inside an ongoing transaction logs a warning
//! instead of failing, so a log Kafka would refuse to load still opens.

use std::collections::{BTreeMap, VecDeque};

use tracing::warn;

use crate::batch::BatchHeader;
use crate::error::LogError;

/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Kafka's `RecordBatch.NO_SEQUENCE`.
pub const NO_SEQUENCE: i32 = -1;
/// How many recent batches of each producer are remembered for duplicate
/// detection (Kafka's `NUM_BATCHES_TO_RETAIN`, matching the producer's
/// `max.in.flight.requests.per.connection` limit of 5).
pub const BATCHES_RETAINED: usize = 5;

/// `seq + by`, wrapping from `i32::MAX` to 0 as Kafka's sequences do.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    let next = i64::from(seq) + i64::from(by);
    if next > i64::from(i32::MAX) {
        (next - i64::from(i32::MAX) - 1) as i32
    } else {
        next as i32
    }
}

/// `seq - by`, wrapping below 0 to `i32::MAX` (the inverse of
/// [`increment_sequence`]).
pub fn decrement_sequence(seq: i32, by: i32) -> i32 {
    if seq < by {
        (i64::from(i32::MAX) - (i64::from(by) - i64::from(seq)) + 1) as i32
    } else {
        seq - by
    }
}

/// Whether `next` directly follows `last`.
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The last sequence of a batch (`NO_SEQUENCE` when it has none).
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    if base_sequence == NO_SEQUENCE {
        NO_SEQUENCE
    } else {
        increment_sequence(base_sequence, last_offset_delta)
    }
}

/// What is remembered of one written batch (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_seq: i32,
    pub last_offset: i64,
    /// Last offset minus first offset (equal to last minus first sequence).
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }
    pub fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// The state of one producer id on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_RETAINED`], all of `epoch`.
    pub batches: VecDeque<BatchMetadata>,
    pub coordinator_epoch: i32,
    pub last_timestamp: i64,
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    pub fn empty(producer_id: i64) -> ProducerEntry {
        ProducerEntry {
            producer_id,
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            last_timestamp: -1,
            current_txn_first_offset: None,
        }
    }
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }
    /// Last offset of the last data batch, or -1.
    pub fn last_data_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.batches.back().map_or(0, |b| b.offset_delta)
    }

    /// A new epoch forgets the batches of the old one.
    fn maybe_update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        if self.batches.len() == BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }

    /// The remembered batch with exactly this epoch and sequence range.
    pub fn find_duplicate(
        &self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq() == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

/// Who is appending, which decides what is checked (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Coordinator,
    Replication,
}

/// A transaction marker's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerInfo {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The producer-relevant facts of one batch (with its offsets assigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
    pub control: bool,
    /// For a control batch: its transaction marker, or `None` when it has
    /// no records (emptied by compaction) or is not a transaction marker.
    pub marker: Option<MarkerInfo>,
}

impl ProducerBatch {
    pub fn from_header(h: &BatchHeader, marker: Option<MarkerInfo>) -> ProducerBatch {
        ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
            transactional: h.is_transactional(),
            control: h.is_control(),
            marker,
        }
    }
    pub fn last_sequence(&self) -> i32 {
        last_sequence(
            self.base_sequence,
            (self.last_offset - self.base_offset) as i32,
        )
    }
}

/// A transaction ended by a marker (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// The changes one append makes, checked but not yet applied.
#[derive(Debug)]
pub struct ProducerAppend {
    origin: Origin,
    updated: BTreeMap<i64, ProducerEntry>,
    /// (first offset, producer id) of transactions this append starts.
    started: Vec<(i64, i64)>,
    completed: Vec<CompletedTxn>,
}

impl ProducerAppend {
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty()
    }

    /// Checks one batch against the producer's state as updated by the
    /// earlier batches of this append, and records its effect.
    pub fn append(
        &mut self,
        table: &ProducerStateTable,
        batch: &ProducerBatch,
    ) -> Result<(), LogError> {
        debug_assert!(batch.producer_id >= 0);
        let current = table.producers.get(&batch.producer_id);
        let entry = self.updated.entry(batch.producer_id).or_insert_with(|| {
            current
                .cloned()
                .unwrap_or_else(|| ProducerEntry::empty(batch.producer_id))
        });
        let origin = self.origin;
        if batch.control {
            let Some(marker) = batch.marker else {
                // An emptied control batch: its transaction was compacted
                // away, so it has nothing left to end.
                return Ok(());
            };
            check_epoch(entry, batch, origin)?;
            if entry.coordinator_epoch > marker.coordinator_epoch {
                let msg = format!(
                    "marker for producer {} at offset {} has coordinator epoch {}, older than {}",
                    batch.producer_id,
                    batch.base_offset,
                    marker.coordinator_epoch,
                    entry.coordinator_epoch
                );
                if origin == Origin::Replication {
                    tracing::info!("{msg}");
                } else {
                    return Err(LogError::TransactionCoordinatorFenced(msg));
                }
            }
            // A marker for a producer with no ongoing transaction is
            // written but completes nothing (it cannot move the LSO).
            if let Some(first_offset) = entry.current_txn_first_offset {
                self.completed.push(CompletedTxn {
                    producer_id: batch.producer_id,
                    first_offset,
                    last_offset: batch.base_offset,
                    aborted: !marker.commit,
                });
            }
            entry.maybe_update_epoch(batch.epoch);
            entry.coordinator_epoch = marker.coordinator_epoch;
            entry.current_txn_first_offset = None;
            entry.last_timestamp = batch.max_timestamp;
            return Ok(());
        }

        check_epoch(entry, batch, origin)?;
        if origin == Origin::Client {
            let current_epoch = current.map_or(NO_PRODUCER_EPOCH, |c| c.epoch);
            check_sequence(entry, current_epoch, batch)?;
        }
        let offset_delta = (batch.last_offset - batch.base_offset) as i32;
        entry.add_batch(
            batch.epoch,
            BatchMetadata {
                last_seq: batch.last_sequence(),
                last_offset: batch.last_offset,
                offset_delta,
                timestamp: batch.max_timestamp,
            },
        );
        match (entry.current_txn_first_offset, batch.transactional) {
            (Some(first), false) => {
                let msg = format!(
                    "non-transactional batch from producer {} at offset {} while its transaction from offset {first} is ongoing",
                    batch.producer_id, batch.base_offset
                );
                if origin == Origin::Replication {
                    warn!("{msg}");
                } else {
                    return Err(LogError::InvalidTxnState(msg));
                }
            }
            (None, true) => {
                entry.current_txn_first_offset = Some(batch.base_offset);
                self.started.push((batch.base_offset, batch.producer_id));
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_epoch(
    entry: &ProducerEntry,
    batch: &ProducerBatch,
    origin: Origin,
) -> Result<(), LogError> {
    if batch.epoch < entry.epoch {
        let msg = format!(
            "producer {} at offset {} has epoch {}, older than its current epoch {}",
            batch.producer_id, batch.base_offset, batch.epoch, entry.epoch
        );
        if origin == Origin::Replication {
            warn!("{msg}");
        } else {
            return Err(LogError::InvalidProducerEpoch(msg));
        }
    }
    Ok(())
}

/// Kafka's `checkSequence`: a new epoch must start at sequence 0 (unless
/// the producer had no epoch), and within an epoch each batch must follow
/// the last one. A producer this partition does not know (never seen, or
/// expired, or its data deleted) may start at any sequence.
fn check_sequence(
    entry: &ProducerEntry,
    current_epoch: i16,
    batch: &ProducerBatch,
) -> Result<(), LogError> {
    let first_seq = batch.base_sequence;
    if batch.epoch != entry.epoch {
        if first_seq != 0 && entry.epoch != NO_PRODUCER_EPOCH {
            return Err(LogError::OutOfOrderSequence(format!(
                "producer {} starts epoch {} at sequence {first_seq}, not 0 (its epoch was {})",
                batch.producer_id, batch.epoch, entry.epoch
            )));
        }
        return Ok(());
    }
    let last_seq = entry.last_seq();
    if current_epoch == NO_PRODUCER_EPOCH || in_sequence(last_seq, first_seq) {
        return Ok(());
    }
    Err(LogError::OutOfOrderSequence(format!(
        "producer {} epoch {} sent sequence {first_seq} at offset {}, expected {}",
        batch.producer_id,
        batch.epoch,
        batch.base_offset,
        increment_sequence(last_seq, 1)
    )))
}

/// The producers of one partition and its transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: BTreeMap<i64, ProducerEntry>,
    /// Ongoing transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Transactions whose marker may still be above the high watermark:
    /// first offset -> marker offset. They hold the LSO back until the
    /// high watermark passes their marker (Kafka's `unreplicatedTxns`).
    unreplicated: BTreeMap<i64, i64>,
}

impl ProducerStateTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn begin(&self, origin: Origin) -> ProducerAppend {
        ProducerAppend {
            origin,
            updated: BTreeMap::new(),
            started: Vec::new(),
            completed: Vec::new(),
        }
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    pub fn entries(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The already-written batch a client batch repeats, if any: same
    /// epoch and the same sequence range as one of the last batches.
    pub fn find_duplicate(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        self.producers.get(&batch.producer_id)?.find_duplicate(
            batch.epoch,
            batch.base_sequence,
            batch.last_sequence(),
        )
    }

    /// Makes a checked append current, after its bytes were written.
    /// Returns the transactions it ended; the caller records each (the
    /// aborted ones in the transaction index, with
    /// [`Self::last_stable_offset_after`]) and then calls [`Self::complete`].
    pub fn apply(&mut self, append: ProducerAppend) -> Vec<CompletedTxn> {
        for (producer_id, entry) in append.updated {
            self.producers.insert(producer_id, entry);
        }
        for (first_offset, producer_id) in append.started {
            let previous = self.ongoing.insert(first_offset, producer_id);
            assert!(
                previous.is_none(),
                "two transactions start at offset {first_offset}"
            );
        }
        append.completed
    }

    /// The LSO recorded with an aborted transaction in the index: the first
    /// offset of the earliest other ongoing transaction, else the offset
    /// after the marker.
    pub fn last_stable_offset_after(&self, txn: &CompletedTxn) -> i64 {
        self.ongoing
            .iter()
            .find(|(_, pid)| **pid != txn.producer_id)
            .map_or(txn.last_offset + 1, |(first, _)| *first)
    }

    /// Moves a transaction from ongoing to completed-but-maybe-unreplicated.
    pub fn complete(&mut self, txn: &CompletedTxn) {
        let removed = self.ongoing.remove(&txn.first_offset);
        assert_eq!(
            removed,
            Some(txn.producer_id),
            "completed transaction {txn:?} was not ongoing"
        );
        self.unreplicated.insert(txn.first_offset, txn.last_offset);
    }

    /// The first offset of the earliest ongoing transaction.
    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The first offset that is undecided or decided by a marker at or
    /// above `high_watermark`.
    pub fn first_unstable_offset(&self, high_watermark: i64) -> Option<i64> {
        let unreplicated = self
            .unreplicated
            .iter()
            .find(|(_, marker)| **marker >= high_watermark)
            .map(|(first, _)| *first);
        match (self.first_undecided_offset(), unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets completed transactions whose marker is below `offset` (the
    /// high watermark or the log start offset).
    pub fn remove_unreplicated_below(&mut self, offset: i64) {
        self.unreplicated.retain(|_, marker| *marker >= offset);
    }

    /// Drops producers without an ongoing transaction whose last write is
    /// at least `expiration_ms` old (`producer.id.expiration.ms`).
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Adds an entry read from a snapshot.
    pub fn load_entry(&mut self, entry: ProducerEntry) {
        if let Some(first) = entry.current_txn_first_offset {
            self.ongoing.insert(first, entry.producer_id);
        }
        self.producers.insert(entry.producer_id, entry);
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Checks the table's internal consistency; a failure is a bug.
    pub fn assert_consistent(&self) {
        for (first, pid) in &self.ongoing {
            let entry = self
                .producers
                .get(pid)
                .unwrap_or_else(|| panic!("ongoing transaction of unknown producer {pid}"));
            assert_eq!(entry.current_txn_first_offset, Some(*first));
        }
        let with_txn = self
            .producers
            .values()
            .filter(|e| e.current_txn_first_offset.is_some())
            .count();
        assert_eq!(with_txn, self.ongoing.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pid: i64, epoch: i16, seq: i32, offset: i64, count: i64, txn: bool) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            base_sequence: seq,
            base_offset: offset,
            last_offset: offset + count - 1,
            max_timestamp: 100 + offset,
            transactional: txn,
            control: false,
            marker: None,
        }
    }

    fn marker(
        pid: i64,
        epoch: i16,
        offset: i64,
        commit: bool,
        coordinator_epoch: i32,
    ) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            base_sequence: NO_SEQUENCE,
            base_offset: offset,
            last_offset: offset,
            max_timestamp: 100 + offset,
            transactional: true,
            control: true,
            marker: Some(MarkerInfo {
                commit,
                coordinator_epoch,
            }),
        }
    }

    fn apply(
        t: &mut ProducerStateTable,
        origin: Origin,
        b: ProducerBatch,
    ) -> Result<Vec<CompletedTxn>, LogError> {
        let mut a = t.begin(origin);
        a.append(t, &b)?;
        let done = t.apply(a);
        for c in &done {
            t.complete(c);
        }
        t.assert_consistent();
        Ok(done)
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(0, 1), i32::MAX);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(last_sequence(NO_SEQUENCE, 4), NO_SEQUENCE);
        assert!(in_sequence(i32::MAX, 0));
        let mut t = ProducerStateTable::new();
        apply(
            &mut t,
            Origin::Client,
            data(1, 0, i32::MAX - 1, 0, 2, false),
        )
        .unwrap();
        apply(&mut t, Origin::Client, data(1, 0, 0, 2, 1, false)).unwrap();
        let b = t.entry(1).unwrap().batches[0];
        assert_eq!((b.first_seq(), b.last_seq), (i32::MAX - 1, i32::MAX));
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut t = ProducerStateTable::new();
        for i in 0..7 {
            apply(
                &mut t,
                Origin::Client,
                data(1, 0, i, i64::from(i), 1, false),
            )
            .unwrap();
        }
        let e = t.entry(1).unwrap();
        assert_eq!(e.batches.len(), BATCHES_RETAINED);
        assert!(t.find_duplicate(&data(1, 0, 1, 99, 1, false)).is_none());
        assert_eq!(
            t.find_duplicate(&data(1, 0, 2, 99, 1, false))
                .map(|b| b.last_offset),
            Some(2)
        );
    }

    #[test]
    fn coordinator_appends_skip_sequence_checks_but_not_epochs() {
        let mut t = ProducerStateTable::new();
        apply(
            &mut t,
            Origin::Coordinator,
            data(1, 3, NO_SEQUENCE, 0, 1, true),
        )
        .unwrap();
        apply(
            &mut t,
            Origin::Coordinator,
            data(1, 3, NO_SEQUENCE, 1, 1, true),
        )
        .unwrap();
        assert_eq!(t.first_undecided_offset(), Some(0));
        let err = apply(
            &mut t,
            Origin::Coordinator,
            data(1, 2, NO_SEQUENCE, 2, 1, true),
        )
        .unwrap_err();
        assert!(matches!(err, LogError::InvalidProducerEpoch(_)));
    }

    #[test]
    fn replication_never_refuses() {
        let mut t = ProducerStateTable::new();
        apply(&mut t, Origin::Replication, data(1, 3, 0, 0, 1, true)).unwrap();
        apply(&mut t, Origin::Replication, data(1, 2, 9, 1, 1, false)).unwrap();
        apply(&mut t, Origin::Replication, marker(1, 1, 2, false, 5)).unwrap();
        apply(&mut t, Origin::Replication, marker(1, 1, 3, false, 1)).unwrap();
        assert_eq!(t.first_undecided_offset(), None);
    }

    #[test]
    fn lso_recorded_with_an_abort_is_the_next_other_ongoing_transaction() {
        let mut t = ProducerStateTable::new();
        apply(&mut t, Origin::Client, data(1, 0, 0, 0, 1, true)).unwrap();
        apply(&mut t, Origin::Client, data(2, 0, 0, 1, 1, true)).unwrap();
        let mut a = t.begin(Origin::Coordinator);
        a.append(&t, &marker(1, 0, 2, false, 0)).unwrap();
        let done = t.apply(a);
        assert_eq!(done.len(), 1);
        assert_eq!(t.last_stable_offset_after(&done[0]), 1);
        t.complete(&done[0]);
        assert_eq!(t.first_undecided_offset(), Some(1));
        // The marker at 2 holds the LSO at 0 until the high watermark passes it.
        assert_eq!(t.first_unstable_offset(2), Some(0));
        assert_eq!(t.first_unstable_offset(3), Some(1));
        t.remove_unreplicated_below(3);
        assert_eq!(t.first_unstable_offset(0), Some(1));
    }

    #[test]
    fn expiry_keeps_producers_with_ongoing_transactions() {
        let mut t = ProducerStateTable::new();
        apply(&mut t, Origin::Client, data(1, 0, 0, 0, 1, true)).unwrap();
        apply(&mut t, Origin::Client, data(2, 0, 0, 1, 1, false)).unwrap();
        // Last timestamps are 100 and 101.
        assert_eq!(t.remove_expired(110, 10), 0);
        assert_eq!(t.remove_expired(111, 10), 1);
        assert!(t.entry(1).is_some() && t.entry(2).is_none());
    }
}
