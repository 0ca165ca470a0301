//! The transaction coordinator as a sans-IO state machine.
//!
//! [`TransactionCoordinator`] holds the transactional ids of the
//! `__transaction_state` partitions this node leads. Its inputs are the
//! transaction APIs' requests (InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions,
//! ListTransactions), the records of a partition being loaded, the news that
//! a transaction's markers are written, and `now` in milliseconds; it never
//! reads a clock, a socket or a file. Its outputs are:
//! - the answers, as return values;
//! - records appended through the [`TxnLog`] the caller passes in. The
//!   append is synchronous (the log is local), and the state changes only
//!   once it succeeded: a failed append leaves everything as it was;
//! - [`Output::WriteMarkers`]: a prepared transaction whose COMMIT or ABORT
//!   markers the driver must write to the transaction's partitions, then
//!   report with [`TransactionCoordinator::markers_written`];
//! - [`TransactionCoordinator::next_deadline`], when
//!   [`TransactionCoordinator::tick`] is due (the scans for timed-out
//!   transactions and expired transactional ids, retries of completions).
//!
//! The states and transitions are Kafka's (`TransactionMetadata.scala`):
//!
//! ```text
//!                 AddPartitions/AddOffsets               EndTxn(commit)
//!   Empty ------------------------------> Ongoing ------------------------> PrepareCommit
//!     ^  InitProducerId (epoch bump)        |  |   EndTxn(abort), timeout,        |
//!     |                                     |  |   InitProducerId (fence)         | markers written
//!     |                                     |  +------------------> PrepareAbort  v
//!     |                                     |                         |       CompleteCommit
//!     |             AddPartitions           |          markers written|           |
//!     +---- CompleteAbort <----------------------------------------- +           |
//!     +---- CompleteCommit, CompleteAbort: InitProducerId, AddPartitions ---------+
//!   Expiration: Empty, CompleteCommit, CompleteAbort -> (tombstone, removed)
//! ```
//!
//! [`legal_transition`] is the table of legal moves (Kafka's
//! `validPreviousStates`); every stored change is checked against it.
//!
//! How this departs from Kafka 3.x/4.0 (coordinator in `transaction.version`
//! 1 mode, which writes value version 0):
//! - KIP-890's transaction version 2 (an epoch bump at every EndTxn) is not
//!   implemented: every transaction is a version-1 one.
//! - Kafka's `pendingState` exists because its appends are asynchronous.
//!   Here appends are synchronous, so the only long-lived pending state is
//!   the one of a prepared transaction whose markers are being written
//!   (Kafka's pending `CompleteCommit`/`CompleteAbort`): a transaction in
//!   `PrepareCommit` or `PrepareAbort` is always "pending" while this node
//!   serves it. Hence EndTxn in a Prepare state answers
//!   CONCURRENT_TRANSACTIONS whatever the decision, as Kafka does at run
//!   time (its INVALID_TXN_STATE branch for the opposite decision is only
//!   reached without a pending state).
//! - A failed fence append (InitProducerId or a timeout aborting an ongoing
//!   transaction) leaves the epoch as it was. Kafka leaves the bumped epoch
//!   in memory and remembers not to bump again (`hasFailedEpochFence`);
//!   both end with the same epoch after the retry, but here the memory
//!   never differs from the log.
//! - A failed append of a new transactional id's first record forgets the
//!   id (its producer id is wasted); Kafka keeps the id in its cache with
//!   epoch -1.
//! - A completion (Complete* record) whose append fails is retried by
//!   [`TransactionCoordinator::tick`] every [`COMPLETION_RETRY_BACKOFF_MS`]
//!   while this node serves the partition; Kafka retries only after
//!   COORDINATOR_NOT_AVAILABLE and otherwise leaves it to the next load.
//! - A prepared transaction without partitions has no markers to write; it
//!   completes at the next tick (Kafka completes it at once).
//! - InitProducerId with an exhausted epoch and an expected epoch that is
//!   not the current one: the retry rule (expected = last epoch) or
//!   PRODUCER_FENCED, where Kafka throws (UNKNOWN_SERVER_ERROR).
//! - Fencing a producer whose epoch is already `i16::MAX` (only a foreign
//!   log can hold that) aborts without a bump; Kafka throws.
//! - Records that do not decode, of a foreign key version, of an id hashed
//!   to another partition, in the states Kafka never writes (`Dead`,
//!   `PrepareEpochFence`), or with a negative producer id or epoch are
//!   skipped with a warning while loading (the previous record of the id
//!   stands); Kafka's loader stops at the first record it cannot read.
//! - The last epoch and the previous producer id (KIP-360's retry rules) are
//!   kept in memory only, as in Kafka with value version 0: a retried
//!   InitProducerId that spans a coordinator move may be fenced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info, warn};

pub use super::records::TxnState;
use super::records::{self, TxnLogValue, TxnRecord, STRING_BYTES_MAX};
use crate::group::state::coordinator_error;

/// `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// How long after a failed append of a completion (Complete* record) it is
/// tried again.
pub const COMPLETION_RETRY_BACKOFF_MS: i64 = 100;
/// The topic of the partitions AddOffsetsToTxn adds.
const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// (topic, partition).
pub type PartitionKey = (String, i32);

/// The coordinator's settings (Kafka's `transaction.*` configs).
#[derive(Debug, Clone)]
pub struct TxnCoordinatorConfig {
    /// `transaction.state.log.num.partitions`.
    pub num_partitions: i32,
    /// `transaction.max.timeout.ms`: the longest timeout a producer may ask
    /// for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long an idle transactional id
    /// (no transaction open) is kept.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how
    /// often timed-out transactions are looked for.
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how
    /// often expired transactional ids are looked for.
    pub remove_expired_interval_ms: i64,
}

impl Default for TxnCoordinatorConfig {
    fn default() -> Self {
        TxnCoordinatorConfig {
            num_partitions: 50,
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

/// Stores records in `__transaction_state`.
pub trait TxnLog {
    /// Appends `records` (key, value or tombstone) to `partition` and
    /// returns once they are stored (replicated as the topic requires), or
    /// the append's error, which the coordinator maps to the error its
    /// callers see as Kafka does.
    fn append(
        &mut self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError>;
}

/// Hands out producer ids.
pub trait ProducerIds {
    /// The next unused producer id. When the driver's block of ids from the
    /// controller is used up and the next one has not arrived, it answers
    /// COORDINATOR_LOAD_IN_PROGRESS (retriable), as Kafka's producer id
    /// manager does; the coordinator passes any error to its caller.
    fn next_producer_id(&mut self) -> Result<i64, ResponseError>;
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write the transaction's COMMIT (`commit`) or ABORT markers, stamped
    /// with the producer's id and epoch and the coordinator epoch, to every
    /// partition listed (WriteTxnMarkers to their leaders), then call
    /// [`TransactionCoordinator::markers_written`] with the same ids. A
    /// partition whose topic is gone counts as written.
    WriteMarkers {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        /// (topic, partition), sorted.
        partitions: Vec<(String, i32)>,
    },
}

/// A transactional id as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 when no transaction is open.
    pub start_timestamp_ms: i64,
    /// The transaction's partitions by topic, both sorted.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// A transactional id as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// The answer to ListTransactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnList {
    /// State filters that name no state; they match nothing.
    pub unknown_state_filters: Vec<String>,
    /// Sorted by transactional id.
    pub transactions: Vec<TxnListing>,
}

/// Whether `from -> to` is a legal transition: Kafka's
/// `TransactionState.validPreviousStates`. `Dead` stands for the removal
/// of an expired id.
pub fn legal_transition(from: TxnState, to: TxnState) -> bool {
    use TxnState::*;
    let previous: &[TxnState] = match to {
        Empty => &[Empty, CompleteCommit, CompleteAbort],
        Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
        PrepareCommit => &[Ongoing],
        PrepareAbort => &[Ongoing, PrepareEpochFence],
        CompleteCommit => &[PrepareCommit],
        CompleteAbort => &[PrepareAbort],
        Dead => &[Empty, CompleteAbort, CompleteCommit],
        PrepareEpochFence => &[Ongoing],
    };
    previous.contains(&from)
}

/// Kafka's `isEpochExhausted`: the last epoch is kept for fencing, so a
/// producer never gets `i16::MAX`.
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

fn is_prepare(state: TxnState) -> bool {
    matches!(state, TxnState::PrepareCommit | TxnState::PrepareAbort)
}

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Txn {
    id: String,
    producer_id: i64,
    /// The producer id before the last InitProducerId (KIP-360: a retry
    /// after a producer id rotation). Not stored at value version 0.
    previous_producer_id: i64,
    producer_epoch: i16,
    /// The epoch before the last InitProducerId with an expected epoch
    /// (KIP-360: a retry of a successful bump). Not stored.
    last_producer_epoch: i16,
    timeout_ms: i32,
    state: TxnState,
    partitions: BTreeSet<(String, i32)>,
    start_timestamp_ms: i64,
    last_update_timestamp_ms: i64,
    /// In a Prepare state once the markers are written (or there are none)
    /// but the completion is not stored yet: when to try again.
    completion_retry_at: Option<i64>,
}

impl Txn {
    /// A transactional id seen for the first time, before its first
    /// InitProducerId is stored.
    fn new(id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Txn {
        Txn {
            id: id.to_string(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            last_update_timestamp_ms: now,
            completion_retry_at: None,
        }
    }

    fn from_stored(id: String, v: TxnLogValue) -> Txn {
        Txn {
            id,
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.timeout_ms,
            state: v.state,
            // Kafka's reader ignores the partitions of an Empty record.
            partitions: if v.state == TxnState::Empty {
                BTreeSet::new()
            } else {
                v.partitions
            },
            start_timestamp_ms: v.start_timestamp_ms,
            last_update_timestamp_ms: v.last_update_timestamp_ms,
            completion_retry_at: None,
        }
    }

    fn stored(&self) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_timestamp_ms: self.last_update_timestamp_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            client_transaction_version: 0,
        }
    }

    /// This id after an InitProducerId: `Empty`, with the given producer
    /// and epochs and the new timeout.
    fn initialized(
        &self,
        producer_id: i64,
        epoch: i16,
        last_epoch: i16,
        timeout_ms: i32,
        now: i64,
    ) -> Txn {
        Txn {
            previous_producer_id: self.producer_id,
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            ..Txn::new(&self.id, producer_id, timeout_ms, now)
        }
    }

    /// Kafka's `prepareIncrementProducerEpoch`: the epoch to hand out and
    /// the last epoch to remember, given the epoch the producer expects.
    /// Never called with an exhausted epoch that would be bumped.
    fn next_epochs(&self, expected_epoch: Option<i16>) -> Result<(i16, i16), ResponseError> {
        match expected_epoch {
            // A new producer: bump, forget the last epoch.
            None => Ok((self.producer_epoch + 1, NO_PRODUCER_EPOCH)),
            // The producer goes on after an error and nobody else
            // initialized in between (or the id is new): bump, remember.
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                Ok((self.producer_epoch + 1, self.producer_epoch))
            }
            // A retry of a bump that succeeded: the same answer again.
            Some(e) if e == self.last_producer_epoch => {
                Ok((self.producer_epoch, self.last_producer_epoch))
            }
            Some(e) => {
                info!(
                    transactional_id = %self.id,
                    expected = e,
                    current = self.producer_epoch,
                    last = self.last_producer_epoch,
                    "InitProducerId with an expected epoch that is neither the current nor the last one"
                );
                Err(ResponseError::ProducerFenced)
            }
        }
    }

    fn partition_list(&self) -> Vec<(String, i32)> {
        self.partitions.iter().cloned().collect()
    }
}

/// Whether this node coordinates a partition, and whether it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionStatus {
    Loading,
    /// Loaded at this coordinator epoch (the partition's leader epoch).
    Active {
        coordinator_epoch: i32,
    },
}

/// The transaction coordinator of one node.
#[derive(Debug)]
pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    partitions: HashMap<i32, PartitionStatus>,
    /// The transactional ids of the loaded partitions (none of a loading
    /// one), sorted so that scans are deterministic.
    txns: BTreeMap<String, Txn>,
    next_abort_scan_ms: i64,
    next_expiration_scan_ms: i64,
}

impl TransactionCoordinator {
    /// A coordinator of no partition. Its first [`Self::tick`] runs both
    /// scans, then every configured interval.
    pub fn new(config: TxnCoordinatorConfig) -> TransactionCoordinator {
        assert!(config.num_partitions > 0, "{config:?}");
        TransactionCoordinator {
            config,
            partitions: HashMap::new(),
            txns: BTreeMap::new(),
            // Due at once for any clock counting from the Unix epoch, yet
            // far from overflowing `deadline - now`.
            next_abort_scan_ms: 0,
            next_expiration_scan_ms: 0,
        }
    }

    pub fn config(&self) -> &TxnCoordinatorConfig {
        &self.config
    }

    /// The `__transaction_state` partition of a transactional id.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        records::partition_for(transactional_id, self.config.num_partitions)
    }

    /// Whether this node serves `transactional_id`: NOT_COORDINATOR when it
    /// does not lead the id's partition, COORDINATOR_LOAD_IN_PROGRESS while
    /// the partition loads.
    pub fn check_coordinator(&self, transactional_id: &str) -> Result<(), ResponseError> {
        self.coordinator_epoch(transactional_id).map(|_| ())
    }

    fn coordinator_epoch(&self, transactional_id: &str) -> Result<i32, ResponseError> {
        match self.partitions.get(&self.partition_for(transactional_id)) {
            Some(PartitionStatus::Active { coordinator_epoch }) => Ok(*coordinator_epoch),
            Some(PartitionStatus::Loading) => Err(ResponseError::CoordinatorLoadInProgress),
            None => Err(ResponseError::NotCoordinator),
        }
    }

    /// The partitions this node coordinates (loaded or loading), sorted.
    pub fn owned_partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.partitions.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Whether a partition is being loaded.
    pub fn loading(&self) -> bool {
        self.partitions
            .values()
            .any(|s| *s == PartitionStatus::Loading)
    }

    // ---- Loading -----------------------------------------------------------

    /// Marks a partition as loading (this node became its leader): its ids
    /// answer COORDINATOR_LOAD_IN_PROGRESS until [`Self::load_partition`].
    /// A partition already loaded is forgotten first (a new leader epoch).
    pub fn begin_load(&mut self, partition: i32) {
        self.forget_partition(partition);
        self.partitions.insert(partition, PartitionStatus::Loading);
    }

    /// Installs a partition's transactional ids from its records (key,
    /// value or tombstone, in log order) and starts serving it at
    /// `coordinator_epoch` (the partition's leader epoch). Transactions
    /// found prepared get their markers written again (the previous
    /// coordinator may have died before it finished); ongoing ones keep
    /// their start time, so their timeout runs on.
    ///
    /// Ignored (with a warning) unless [`Self::begin_load`] marked the
    /// partition and it was not unloaded since.
    #[must_use]
    pub fn load_partition(
        &mut self,
        partition: i32,
        coordinator_epoch: i32,
        records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
        now: i64,
    ) -> Vec<Output> {
        if self.partitions.get(&partition) != Some(&PartitionStatus::Loading) {
            warn!(
                partition,
                coordinator_epoch,
                "not loading this __transaction_state partition; ignoring its records"
            );
            return Vec::new();
        }
        let mut loaded: BTreeMap<String, TxnLogValue> = BTreeMap::new();
        let mut skipped = 0usize;
        for (key, value) in records {
            match records::decode(&key, value.as_deref()) {
                Ok(TxnRecord::Txn {
                    transactional_id,
                    value,
                }) => {
                    if self.partition_for(&transactional_id) != partition {
                        skipped += 1;
                        warn!(partition, %transactional_id, "skipping a record of a transactional id of another partition");
                        continue;
                    }
                    match value {
                        None => {
                            loaded.remove(&transactional_id);
                        }
                        Some(v)
                            if matches!(v.state, TxnState::Dead | TxnState::PrepareEpochFence) =>
                        {
                            skipped += 1;
                            warn!(partition, %transactional_id, state = v.state.name(), "skipping a record in a state that is never stored");
                        }
                        Some(v) if v.producer_id < 0 || v.producer_epoch < 0 => {
                            // Kafka stores an id only once it has a
                            // producer and an epoch; these bytes would
                            // break the epoch rules later.
                            skipped += 1;
                            warn!(
                                partition,
                                %transactional_id,
                                producer_id = v.producer_id,
                                producer_epoch = v.producer_epoch,
                                "skipping a record without a valid producer id and epoch"
                            );
                        }
                        Some(v) => {
                            loaded.insert(transactional_id, v);
                        }
                    }
                }
                Ok(TxnRecord::Other { key_version }) => {
                    skipped += 1;
                    warn!(
                        partition,
                        key_version, "skipping a record of an unknown key version"
                    );
                }
                Err(e) => {
                    skipped += 1;
                    warn!(
                        partition,
                        "skipping an unreadable __transaction_state record: {e}"
                    );
                }
            }
        }
        self.partitions
            .insert(partition, PartitionStatus::Active { coordinator_epoch });
        let count = loaded.len();
        let mut out = Vec::new();
        for (id, v) in loaded {
            let txn = Txn::from_stored(id.clone(), v);
            let prepared = is_prepare(txn.state);
            self.txns.insert(id.clone(), txn);
            if prepared {
                info!(partition, transactional_id = %id, "writing the markers of a transaction found prepared");
                self.start_markers(&id, coordinator_epoch, now, &mut out);
            }
        }
        if count > 0 || skipped > 0 {
            info!(
                partition,
                coordinator_epoch,
                transactional_ids = count,
                skipped,
                "loaded __transaction_state partition"
            );
        } else {
            debug!(
                partition,
                coordinator_epoch, "loaded __transaction_state partition (empty)"
            );
        }
        out
    }

    /// Stops serving a partition (its leadership moved away): its ids are
    /// dropped. Markers being written for them may go on; their
    /// [`Self::markers_written`] is then ignored.
    pub fn unload_partition(&mut self, partition: i32) {
        self.forget_partition(partition);
        self.partitions.remove(&partition);
    }

    fn forget_partition(&mut self, partition: i32) {
        let n = self.config.num_partitions;
        self.txns
            .retain(|id, _| records::partition_for(id, n) != partition);
    }

    // ---- Storing -----------------------------------------------------------

    /// Appends `new`'s record and, once stored, makes it the id's state.
    /// Checks the transition against Kafka's rules first: a bad one is a
    /// bug here, not bad input.
    fn store(&mut self, new: Txn, log: &mut dyn TxnLog) -> Result<(), ResponseError> {
        let (from, old_pid, old_epoch) = match self.txns.get(&new.id) {
            Some(old) => (old.state, old.producer_id, old.producer_epoch),
            None => (TxnState::Empty, new.producer_id, NO_PRODUCER_EPOCH),
        };
        assert!(
            legal_transition(from, new.state),
            "transactional id {}: illegal transition {from:?} -> {:?}",
            new.id,
            new.state
        );
        assert!(
            if new.producer_id == old_pid {
                new.producer_epoch == old_epoch
                    || (old_epoch < i16::MAX && new.producer_epoch == old_epoch + 1)
            } else {
                new.producer_epoch == 0
            },
            "transactional id {}: producer {old_pid} epoch {old_epoch} -> producer {} epoch {}",
            new.id,
            new.producer_id,
            new.producer_epoch
        );
        assert!(new.producer_id >= 0 && new.producer_epoch >= 0, "{new:?}");
        let partition = self.partition_for(&new.id);
        let record = (records::key(&new.id), Some(records::value(&new.stored())));
        if let Err(e) = log.append(partition, vec![record]) {
            let mapped = coordinator_error(e);
            info!(
                transactional_id = %new.id,
                state = new.state.name(),
                "storing the transaction state failed: {e:?} (answered {mapped:?})"
            );
            return Err(mapped);
        }
        debug!(
            transactional_id = %new.id,
            from = from.name(),
            to = new.state.name(),
            producer_id = new.producer_id,
            producer_epoch = new.producer_epoch,
            "transaction state"
        );
        self.txns.insert(new.id.clone(), new);
        Ok(())
    }

    /// After a prepare is stored: the markers to write, or, without
    /// partitions, a completion at the next tick.
    fn start_markers(&mut self, id: &str, coordinator_epoch: i32, now: i64, out: &mut Vec<Output>) {
        let txn = self.txns.get_mut(id).expect("a prepared transaction");
        assert!(is_prepare(txn.state), "{txn:?}");
        if txn.partitions.is_empty() {
            txn.completion_retry_at = Some(now);
            return;
        }
        txn.completion_retry_at = None;
        out.push(Output::WriteMarkers {
            transactional_id: txn.id.clone(),
            producer_id: txn.producer_id,
            producer_epoch: txn.producer_epoch,
            coordinator_epoch,
            commit: txn.state == TxnState::PrepareCommit,
            partitions: txn.partition_list(),
        });
    }

    /// Stores the completion of a prepared transaction whose markers are
    /// written; on failure, schedules a retry.
    fn complete(&mut self, id: &str, now: i64, log: &mut dyn TxnLog) {
        let txn = self.txns.get(id).expect("a prepared transaction");
        assert!(is_prepare(txn.state), "{txn:?}");
        let mut new = txn.clone();
        new.state = if txn.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        new.partitions.clear();
        new.last_update_timestamp_ms = now;
        new.completion_retry_at = None;
        if let Err(e) = self.store(new, log) {
            warn!(transactional_id = %id, "completing the transaction failed ({e:?}); retrying in {COMPLETION_RETRY_BACKOFF_MS} ms");
            if let Some(txn) = self.txns.get_mut(id) {
                txn.completion_retry_at = Some(now + COMPLETION_RETRY_BACKOFF_MS);
            }
        }
    }

    /// Aborts an ongoing transaction with a bumped epoch, which fences its
    /// producer (Kafka's `prepareFenceProducerEpoch` followed by an abort
    /// that is not from the client): InitProducerId of a new producer, or a
    /// timeout.
    fn fence_and_abort(
        &mut self,
        id: &str,
        coordinator_epoch: i32,
        now: i64,
        log: &mut dyn TxnLog,
        out: &mut Vec<Output>,
    ) -> Result<(), ResponseError> {
        let txn = self.txns.get(id).expect("an ongoing transaction");
        assert_eq!(txn.state, TxnState::Ongoing, "{txn:?}");
        let mut new = txn.clone();
        if txn.producer_epoch == i16::MAX {
            warn!(transactional_id = %id, "the producer epoch is already {}; aborting without a bump", i16::MAX);
        } else {
            new.producer_epoch += 1;
        }
        new.last_producer_epoch = NO_PRODUCER_EPOCH;
        new.state = TxnState::PrepareAbort;
        new.last_update_timestamp_ms = now;
        self.store(new, log)?;
        self.start_markers(id, coordinator_epoch, now, out);
        Ok(())
    }

    // ---- InitProducerId ------------------------------------------------------

    /// InitProducerId with a transactional id (Kafka's
    /// `handleInitProducerId`): the producer id and epoch the producer is to
    /// use. `expected` is the producer's current (id, epoch) from
    /// InitProducerId v3+ (KIP-360), `None` for a new producer.
    ///
    /// - INVALID_REQUEST for an empty id (or one too long to store),
    ///   INVALID_TRANSACTION_TIMEOUT for a timeout <= 0 or above
    ///   `transaction.max.timeout.ms`, then NOT_COORDINATOR /
    ///   COORDINATOR_LOAD_IN_PROGRESS;
    /// - a new id gets a new producer id at epoch 0;
    /// - an idle id (Empty, CompleteCommit, CompleteAbort) gets its epoch
    ///   bumped, or a new producer id at epoch 0 when the epoch is
    ///   exhausted;
    /// - an ongoing transaction is aborted with a bumped epoch, which fences
    ///   the old producer; the answer is CONCURRENT_TRANSACTIONS, and the
    ///   markers to write go to `out`: the producer retries, and gets the
    ///   next epoch once the abort completes;
    /// - CONCURRENT_TRANSACTIONS while a transaction is being completed;
    /// - PRODUCER_FENCED when `expected` is neither the current producer, a
    ///   retry of the last bump, nor a retry after a producer id rotation.
    #[allow(clippy::too_many_arguments)]
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        transaction_timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
        log: &mut dyn TxnLog,
        ids: &mut dyn ProducerIds,
        out: &mut Vec<Output>,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() || transactional_id.len() > STRING_BYTES_MAX {
            return Err(ResponseError::InvalidRequest);
        }
        if transaction_timeout_ms <= 0 || transaction_timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let coordinator_epoch = self.coordinator_epoch(transactional_id)?;
        let current = match self.txns.get(transactional_id) {
            Some(t) => t.clone(),
            None => Txn::new(
                transactional_id,
                ids.next_producer_id()?,
                transaction_timeout_ms,
                now,
            ),
        };
        if is_prepare(current.state) {
            // The markers are being written: let the producer retry.
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some((expected_pid, expected_epoch)) = expected {
            // KIP-360: the producer that asks must be the current one, or
            // the id must be new (epoch -1), or it retries after its epoch
            // ran out and a new producer id was stored.
            let valid = current.producer_epoch == NO_PRODUCER_EPOCH
                || expected_pid == current.producer_id
                || (expected_pid == current.previous_producer_id
                    && epoch_exhausted(expected_epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match current.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let new = if epoch_exhausted(current.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == current.producer_epoch)
                {
                    let producer_id = ids.next_producer_id()?;
                    info!(
                        transactional_id,
                        old = current.producer_id,
                        new = producer_id,
                        "producer epoch exhausted; a new producer id"
                    );
                    let last = if expected.is_some() {
                        current.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                    current.initialized(producer_id, 0, last, transaction_timeout_ms, now)
                } else {
                    let (epoch, last) = current.next_epochs(expected.map(|(_, e)| e))?;
                    current.initialized(
                        current.producer_id,
                        epoch,
                        last,
                        transaction_timeout_ms,
                        now,
                    )
                };
                let answer = (new.producer_id, new.producer_epoch);
                self.store(new, log)?;
                info!(
                    transactional_id,
                    producer_id = answer.0,
                    producer_epoch = answer.1,
                    "initialized transactional id"
                );
                Ok(answer)
            }
            TxnState::Ongoing => {
                // The epoch bumped here is never handed out: the producer
                // retries after the abort and gets the next one (a new
                // producer id if this bump exhausted the epochs).
                info!(
                    transactional_id,
                    "InitProducerId during a transaction: aborting it and fencing its producer"
                );
                self.fence_and_abort(transactional_id, coordinator_epoch, now, log, out)?;
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::Dead
            | TxnState::PrepareEpochFence => {
                unreachable!(
                    "{current:?}: prepared states are handled above, the others never held"
                )
            }
        }
    }

    // ---- AddPartitionsToTxn, AddOffsetsToTxn -------------------------------

    /// AddPartitionsToTxn (Kafka's `handleAddPartitionsToTransaction`):
    /// adds partitions to the producer's transaction, starting one if none
    /// is open.
    ///
    /// INVALID_PRODUCER_ID_MAPPING for an unknown id or another producer
    /// id, PRODUCER_FENCED for another epoch (the handler answers
    /// INVALID_PRODUCER_EPOCH to requests older than version 2, as Kafka),
    /// CONCURRENT_TRANSACTIONS while the previous transaction completes.
    /// Partitions all already in the ongoing transaction need no write.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        now: i64,
        log: &mut dyn TxnLog,
    ) -> Result<(), ResponseError> {
        if transactional_id.is_empty() || partitions.iter().any(|(t, _)| t.len() > STRING_BYTES_MAX)
        {
            return Err(ResponseError::InvalidRequest);
        }
        let txn = self.producer_txn(transactional_id, producer_id, producer_epoch)?;
        if is_prepare(txn.state) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if txn.state == TxnState::Ongoing && partitions.iter().all(|p| txn.partitions.contains(p)) {
            return Ok(());
        }
        let mut new = txn.clone();
        if txn.state != TxnState::Ongoing {
            new.start_timestamp_ms = now;
        }
        new.state = TxnState::Ongoing;
        new.partitions.extend(partitions);
        new.last_update_timestamp_ms = now;
        self.store(new, log)
    }

    /// AddOffsetsToTxn: [`Self::add_partitions`] of the group's
    /// `__consumer_offsets` partition, which the caller computes.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
        now: i64,
        log: &mut dyn TxnLog,
    ) -> Result<(), ResponseError> {
        self.add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            vec![(CONSUMER_OFFSETS_TOPIC.to_string(), offsets_partition)],
            now,
            log,
        )
    }

    /// AddPartitionsToTxn v4+ with `verify_only` (KIP-890 part 1, sent by a
    /// partition leader before it accepts a transactional produce): whether
    /// each partition is in the producer's transaction, NONE or
    /// TRANSACTION_ABORTABLE; nothing is written. The errors of
    /// [`Self::add_partitions`] apply to the whole request.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<(PartitionKey, Option<ResponseError>)>, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let txn = self.producer_txn(transactional_id, producer_id, producer_epoch)?;
        if is_prepare(txn.state) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .map(|p| {
                let error =
                    (!txn.partitions.contains(p)).then_some(ResponseError::TransactionAbortable);
                (p.clone(), error)
            })
            .collect())
    }

    /// The id's state if this node serves it and the producer is its
    /// current one: the checks AddPartitionsToTxn and EndTxn share.
    fn producer_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&Txn, ResponseError> {
        self.coordinator_epoch(transactional_id)?;
        let txn = self
            .txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(txn)
    }

    // ---- EndTxn ------------------------------------------------------------

    /// EndTxn (Kafka's `handleEndTransaction` from a client, transaction
    /// version 1): stores PrepareCommit or PrepareAbort and puts the
    /// markers to write in `out`. The answer does not wait for the markers.
    ///
    /// - INVALID_REQUEST for an empty id, then NOT_COORDINATOR /
    ///   COORDINATOR_LOAD_IN_PROGRESS;
    /// - INVALID_PRODUCER_ID_MAPPING for an unknown id or another producer
    ///   id, PRODUCER_FENCED for another epoch;
    /// - CONCURRENT_TRANSACTIONS while the markers are being written;
    /// - a retry after completion with the same decision is answered NONE,
    ///   the other decision (or no transaction, Empty) INVALID_TXN_STATE.
    #[allow(clippy::too_many_arguments)]
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now: i64,
        log: &mut dyn TxnLog,
        out: &mut Vec<Output>,
    ) -> Result<(), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let coordinator_epoch = self.coordinator_epoch(transactional_id)?;
        let txn = self.producer_txn(transactional_id, producer_id, producer_epoch)?;
        let invalid = || {
            debug!(
                transactional_id,
                state = txn.state.name(),
                commit,
                "EndTxn in a state that does not allow it"
            );
            Err(ResponseError::InvalidTxnState)
        };
        match txn.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                let mut new = txn.clone();
                new.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                new.last_update_timestamp_ms = now;
                self.store(new, log)?;
                self.start_markers(transactional_id, coordinator_epoch, now, out);
                Ok(())
            }
            TxnState::CompleteCommit if commit => Ok(()),
            TxnState::CompleteAbort if !commit => Ok(()),
            TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Empty => invalid(),
            TxnState::Dead | TxnState::PrepareEpochFence => {
                unreachable!("{txn:?}: never held")
            }
        }
    }

    /// The driver wrote every marker of an [`Output::WriteMarkers`]: the
    /// transaction completes (CompleteCommit or CompleteAbort is stored, its
    /// partitions cleared). Stale calls are ignored: the partition was
    /// unloaded or reloaded at another coordinator epoch, or the id moved
    /// on. When the append fails, [`Self::tick`] tries again.
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        now: i64,
        log: &mut dyn TxnLog,
    ) {
        let current = self.coordinator_epoch(transactional_id) == Ok(coordinator_epoch)
            && self.txns.get(transactional_id).is_some_and(|t| {
                is_prepare(t.state)
                    && t.producer_id == producer_id
                    && t.producer_epoch == producer_epoch
            });
        if !current {
            debug!(
                transactional_id,
                producer_id,
                producer_epoch,
                coordinator_epoch,
                "ignoring markers written for a transaction that moved on"
            );
            return;
        }
        self.complete(transactional_id, now, log);
    }

    // ---- Timers ------------------------------------------------------------

    /// When [`Self::tick`] is due next.
    pub fn next_deadline(&self) -> Option<i64> {
        let retries = self.txns.values().filter_map(|t| t.completion_retry_at);
        retries
            .chain([self.next_abort_scan_ms, self.next_expiration_scan_ms])
            .min()
    }

    /// Runs what is due at `now`: completions to retry; every
    /// `abort_timed_out_interval_ms`, the abort of transactions open longer
    /// than their timeout, with a bumped epoch that fences their producer
    /// (the markers to write are returned); every
    /// `remove_expired_interval_ms`, the removal (a tombstone) of
    /// transactional ids idle longer than `transactional.id.expiration.ms`.
    #[must_use]
    pub fn tick(&mut self, now: i64, log: &mut dyn TxnLog) -> Vec<Output> {
        let mut out = Vec::new();
        let due: Vec<String> = self
            .txns
            .values()
            .filter(|t| t.completion_retry_at.is_some_and(|at| at <= now))
            .map(|t| t.id.clone())
            .collect();
        for id in due {
            self.complete(&id, now, log);
        }
        if now >= self.next_abort_scan_ms {
            self.next_abort_scan_ms =
                now.saturating_add(self.config.abort_timed_out_interval_ms.max(1));
            self.abort_timed_out(now, log, &mut out);
        }
        if now >= self.next_expiration_scan_ms {
            self.next_expiration_scan_ms =
                now.saturating_add(self.config.remove_expired_interval_ms.max(1));
            self.remove_expired(now, log);
        }
        out
    }

    /// Kafka's `abortTimedOutTransactions`: an ongoing transaction whose
    /// start plus timeout is before `now`.
    fn abort_timed_out(&mut self, now: i64, log: &mut dyn TxnLog, out: &mut Vec<Output>) {
        let timed_out: Vec<String> = self
            .txns
            .values()
            .filter(|t| {
                t.state == TxnState::Ongoing
                    && t.start_timestamp_ms.saturating_add(i64::from(t.timeout_ms)) < now
            })
            .map(|t| t.id.clone())
            .collect();
        for id in timed_out {
            let Ok(coordinator_epoch) = self.coordinator_epoch(&id) else {
                continue;
            };
            info!(transactional_id = %id, "transaction timed out; aborting it and fencing its producer");
            if let Err(e) = self.fence_and_abort(&id, coordinator_epoch, now, log, out) {
                warn!(transactional_id = %id, "aborting a timed-out transaction failed ({e:?}); the next scan retries");
            }
        }
    }

    /// Kafka's `removeExpiredTransactionalIds`: ids with no transaction
    /// (Empty, CompleteCommit, CompleteAbort) not updated for
    /// `transactional.id.expiration.ms` get a tombstone, one append per
    /// partition, and are forgotten once it is stored.
    fn remove_expired(&mut self, now: i64, log: &mut dyn TxnLog) {
        let horizon = now.saturating_sub(self.config.transactional_id_expiration_ms);
        let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for t in self.txns.values() {
            if legal_transition(t.state, TxnState::Dead) && t.last_update_timestamp_ms <= horizon {
                by_partition
                    .entry(self.partition_for(&t.id))
                    .or_default()
                    .push(t.id.clone());
            }
        }
        for (partition, ids) in by_partition {
            let tombstones = ids.iter().map(|id| (records::key(id), None)).collect();
            if let Err(e) = log.append(partition, tombstones) {
                warn!(
                    partition,
                    ids = ids.len(),
                    "expiring transactional ids failed: {e:?}; the next scan retries"
                );
                continue;
            }
            for id in &ids {
                self.txns.remove(id);
            }
            info!(partition, ?ids, "expired transactional ids");
        }
    }

    // ---- DescribeTransactions, ListTransactions ----------------------------

    /// DescribeTransactions: each id's state, or its error
    /// (INVALID_REQUEST for an empty id, NOT_COORDINATOR,
    /// COORDINATOR_LOAD_IN_PROGRESS, TRANSACTIONAL_ID_NOT_FOUND), in the
    /// order asked.
    pub fn describe(
        &self,
        transactional_ids: &[String],
    ) -> Vec<(String, Result<TxnDescription, ResponseError>)> {
        transactional_ids
            .iter()
            .map(|id| (id.clone(), self.describe_one(id)))
            .collect()
    }

    fn describe_one(&self, id: &str) -> Result<TxnDescription, ResponseError> {
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        self.coordinator_epoch(id)?;
        let t = self
            .txns
            .get(id)
            .ok_or(ResponseError::TransactionalIdNotFound)?;
        Ok(TxnDescription {
            state: t.state,
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.timeout_ms,
            start_timestamp_ms: t.start_timestamp_ms,
            topics: records::group_by_topic(&t.partitions)
                .into_iter()
                .map(|(topic, ids)| (topic.to_string(), ids))
                .collect(),
        })
    }

    /// ListTransactions v0-1 (Kafka's `listTransactionStates`): the ids in
    /// one of `state_filters` (by Kafka's names, case-sensitive; unknown
    /// names are reported and match nothing), of one of
    /// `producer_id_filters`, and (v1, KIP-994) open for longer than
    /// `duration_filter_ms` when that is >= 0. Empty filters match all.
    /// COORDINATOR_LOAD_IN_PROGRESS while any partition loads.
    pub fn list(
        &self,
        state_filters: &[String],
        producer_id_filters: &[i64],
        duration_filter_ms: i64,
        now: i64,
    ) -> Result<TxnList, ResponseError> {
        if self.loading() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let mut states = BTreeSet::new();
        let mut unknown_state_filters = Vec::new();
        for name in state_filters {
            match TxnState::from_name(name) {
                Some(s) => {
                    states.insert(s);
                }
                None => unknown_state_filters.push(name.clone()),
            }
        }
        let transactions = self
            .txns
            .values()
            .filter(|t| {
                (producer_id_filters.is_empty() || producer_id_filters.contains(&t.producer_id))
                    && (state_filters.is_empty() || states.contains(&t.state))
                    && (duration_filter_ms < 0
                        || now.saturating_sub(t.start_timestamp_ms) > duration_filter_ms)
            })
            .map(|t| TxnListing {
                transactional_id: t.id.clone(),
                producer_id: t.producer_id,
                state: t.state,
            })
            .collect();
        Ok(TxnList {
            unknown_state_filters,
            transactions,
        })
    }

    /// Every served transactional id's state as its last record stores it
    /// (for tests and debugging: a reload of the log must give the same).
    pub fn snapshot(&self) -> BTreeMap<String, TxnLogValue> {
        self.txns
            .iter()
            .map(|(id, t)| (id.clone(), t.stored()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of legal moves, written out (Kafka's
    /// `validPreviousStates`), so a change to either shows.
    #[test]
    fn transition_table() {
        use TxnState::*;
        #[rustfmt::skip]
        let legal = [
            (Empty, Empty), (CompleteCommit, Empty), (CompleteAbort, Empty),
            (Empty, Ongoing), (Ongoing, Ongoing), (CompleteCommit, Ongoing), (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort), (PrepareEpochFence, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead), (CompleteCommit, Dead), (CompleteAbort, Dead),
            (Ongoing, PrepareEpochFence),
        ];
        for from in TxnState::ALL {
            for to in TxnState::ALL {
                assert_eq!(
                    legal_transition(from, to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn append_errors_map_as_kafka() {
        use ResponseError::*;
        for (append, answer) in [
            (NotEnoughReplicas, CoordinatorNotAvailable),
            (RequestTimedOut, CoordinatorNotAvailable),
            (NotLeaderOrFollower, NotCoordinator),
            (KafkaStorageError, NotCoordinator),
            (RecordListTooLarge, UnknownServerError),
            (CorruptMessage, CorruptMessage),
        ] {
            assert_eq!(coordinator_error(append), answer, "{append:?}");
        }
    }
}
