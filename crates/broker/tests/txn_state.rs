//! Scenario and property tests of the transaction coordinator
//! (`riffle_broker::txn::state`) through its public API.
//!
//! The rules are Apache Kafka's (`TransactionCoordinator.scala`,
//! `TransactionMetadata.scala`, `TransactionStateManager.scala`); each test
//! names the rule it checks. The coordinator is sans-IO, so the harness
//! below plays the driver: it owns the clock, keeps the markers the
//! coordinator asks for until the test writes them, stores appended
//! records in a [`MemLog`] that can be told to fail, and hands out producer
//! ids from a counter that can be told to fail too. Nothing is timed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use proptest::prelude::*;
use riffle_broker::txn::records::{self, TxnLogValue, TxnRecord};
use riffle_broker::txn::state::{
    Output, ProducerIds, TransactionCoordinator, TxnCoordinatorConfig, TxnDescription, TxnList,
    TxnLog, TxnState, COMPLETION_RETRY_BACKOFF_MS,
};

const TXN: &str = "txn"; // partition 2 of 4
const OTHER: &str = "other"; // partition 0 of 4
const PARTITIONS: i32 = 4;
const TIMEOUT_MS: i32 = 5_000;
const MAX_TIMEOUT_MS: i32 = 60_000;
const EXPIRATION_MS: i64 = 100_000;
const ABORT_SCAN_MS: i64 = 1_000;
const EXPIRE_SCAN_MS: i64 = 10_000;
const FIRST_PID: i64 = 1000;
const START_MS: i64 = 1_000_000;

fn config() -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        num_partitions: PARTITIONS,
        max_timeout_ms: MAX_TIMEOUT_MS,
        transactional_id_expiration_ms: EXPIRATION_MS,
        abort_timed_out_interval_ms: ABORT_SCAN_MS,
        remove_expired_interval_ms: EXPIRE_SCAN_MS,
    }
}

fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_string(), partition)
}

// ---- The fakes -------------------------------------------------------------

/// An in-memory `__transaction_state`: every appended record in order, and
/// an error to fail the next append with.
#[derive(Debug, Default)]
struct MemLog {
    records: Vec<(i32, Bytes, Option<Bytes>)>,
    fail_next: Option<ResponseError>,
    appends: usize,
}

impl TxnLog for MemLog {
    fn append(
        &mut self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> Result<(), ResponseError> {
        if let Some(e) = self.fail_next.take() {
            return Err(e);
        }
        assert!(!records.is_empty(), "an empty append");
        self.appends += 1;
        self.records
            .extend(records.into_iter().map(|(k, v)| (partition, k, v)));
        Ok(())
    }
}

impl MemLog {
    fn on(&self, partition: i32) -> Vec<(Bytes, Option<Bytes>)> {
        self.records
            .iter()
            .filter(|(p, _, _)| *p == partition)
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every record (value or tombstone) of `tid`, in order.
    fn values_of(&self, tid: &str) -> Vec<Option<TxnLogValue>> {
        self.records
            .iter()
            .filter_map(|(_, k, v)| match records::decode(k, v.as_deref()) {
                Ok(TxnRecord::Txn {
                    transactional_id,
                    value,
                }) if transactional_id == tid => Some(value),
                Ok(_) => None,
                Err(e) => panic!("a record we wrote does not decode: {e}"),
            })
            .collect()
    }

    fn last(&self, tid: &str) -> TxnLogValue {
        self.values_of(tid)
            .pop()
            .expect("a record")
            .expect("not a tombstone")
    }

    /// What a reload of every partition would hold: the last value of each
    /// id.
    fn replay(&self) -> BTreeMap<String, TxnLogValue> {
        let mut state = BTreeMap::new();
        for (_, k, v) in &self.records {
            match records::decode(k, v.as_deref()).expect("decodes") {
                TxnRecord::Txn {
                    transactional_id,
                    value: Some(v),
                } => {
                    state.insert(transactional_id, v);
                }
                TxnRecord::Txn {
                    transactional_id,
                    value: None,
                } => {
                    state.remove(&transactional_id);
                }
                TxnRecord::Other { .. } => panic!("we wrote a foreign record"),
            }
        }
        state
    }
}

/// Producer ids from a counter; an error to fail the next call with.
#[derive(Debug)]
struct Ids {
    next: i64,
    fail_next: Option<ResponseError>,
}

impl ProducerIds for Ids {
    fn next_producer_id(&mut self) -> Result<i64, ResponseError> {
        if let Some(e) = self.fail_next.take() {
            return Err(e);
        }
        self.next += 1;
        Ok(self.next - 1)
    }
}

// ---- The harness -----------------------------------------------------------

struct Harness {
    core: TransactionCoordinator,
    log: MemLog,
    ids: Ids,
    now: i64,
    /// The coordinator epoch each partition was last loaded at.
    epochs: HashMap<i32, i32>,
    /// WriteMarkers the coordinator asked for, not yet written.
    markers: Vec<Output>,
}

impl Harness {
    /// A coordinator serving every partition at coordinator epoch 1.
    fn new() -> Harness {
        let mut h = Harness {
            core: TransactionCoordinator::new(config()),
            log: MemLog::default(),
            ids: Ids {
                next: FIRST_PID,
                fail_next: None,
            },
            now: START_MS,
            epochs: HashMap::new(),
            markers: Vec::new(),
        };
        for p in 0..PARTITIONS {
            h.core.begin_load(p);
            let out = h.core.load_partition(p, 1, Vec::new(), h.now);
            assert!(out.is_empty());
            h.epochs.insert(p, 1);
        }
        // The first tick runs both scans; later ones every interval.
        let out = h.core.tick(h.now, &mut h.log);
        assert!(out.is_empty());
        h
    }

    fn init_with(
        &mut self,
        tid: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        let mut out = Vec::new();
        let r = self.core.init_producer_id(
            tid,
            timeout_ms,
            expected,
            self.now,
            &mut self.log,
            &mut self.ids,
            &mut out,
        );
        self.markers.extend(out);
        r
    }

    fn init(&mut self, tid: &str) -> Result<(i64, i16), ResponseError> {
        self.init_with(tid, TIMEOUT_MS, None)
    }

    fn add(
        &mut self,
        tid: &str,
        (pid, epoch): (i64, i16),
        partitions: &[(&str, i32)],
    ) -> Result<(), ResponseError> {
        let partitions = partitions.iter().map(|(t, p)| tp(t, *p)).collect();
        self.core
            .add_partitions(tid, pid, epoch, partitions, self.now, &mut self.log)
    }

    fn end(
        &mut self,
        tid: &str,
        (pid, epoch): (i64, i16),
        commit: bool,
    ) -> Result<(), ResponseError> {
        let mut out = Vec::new();
        let r = self
            .core
            .end_txn(tid, pid, epoch, commit, self.now, &mut self.log, &mut out);
        self.markers.extend(out);
        r
    }

    fn take_markers(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.markers)
    }

    /// A producer whose transaction on `t-0` is prepared (its markers
    /// pending).
    fn prepared(&mut self, tid: &str, commit: bool) -> (i64, i16) {
        let pe = self.ongoing(tid);
        self.end(tid, pe, commit).expect("prepared");
        pe
    }

    /// EndTxn, then every marker written: the transaction completes.
    fn finish(&mut self, tid: &str, pe: (i64, i16), commit: bool) {
        self.end(tid, pe, commit).expect("prepared");
        self.write_markers();
    }

    /// Writes every pending marker and tells the coordinator.
    fn write_markers(&mut self) {
        for m in self.take_markers() {
            let Output::WriteMarkers {
                transactional_id,
                producer_id,
                producer_epoch,
                coordinator_epoch,
                ..
            } = m;
            self.core.markers_written(
                &transactional_id,
                producer_id,
                producer_epoch,
                coordinator_epoch,
                self.now,
                &mut self.log,
            );
        }
    }

    /// Moves the clock to `t`, ticking at every deadline on the way.
    fn run_until(&mut self, t: i64) {
        while let Some(d) = self.core.next_deadline().filter(|&d| d <= t) {
            self.now = self.now.max(d);
            let out = self.core.tick(self.now, &mut self.log);
            self.markers.extend(out);
        }
        self.now = t;
    }

    fn advance(&mut self, ms: i64) {
        self.run_until(self.now + ms);
    }

    /// Reloads a partition from the log at the next coordinator epoch, as
    /// a new leader does; returns the markers it asks for.
    fn reload(&mut self, partition: i32) -> Vec<Output> {
        self.core.unload_partition(partition);
        self.core.begin_load(partition);
        let epoch = self.epochs[&partition] + 1;
        self.epochs.insert(partition, epoch);
        self.core
            .load_partition(partition, epoch, self.log.on(partition), self.now)
    }

    fn describe(&self, tid: &str) -> Result<TxnDescription, ResponseError> {
        let mut d = self.core.describe(&[tid.to_string()]);
        assert_eq!(d.len(), 1);
        let (id, r) = d.pop().expect("one");
        assert_eq!(id, tid);
        r
    }

    fn state(&self, tid: &str) -> TxnState {
        self.describe(tid).expect("described").state
    }

    /// A producer with a transaction open on `t-0`.
    fn ongoing(&mut self, tid: &str) -> (i64, i16) {
        let pe = self.init(tid).expect("initialized");
        self.add(tid, pe, &[("t", 0)]).expect("added");
        pe
    }

    /// Stores `value` for `tid` in the log as if another coordinator wrote
    /// it, and reloads the partition.
    fn preload(&mut self, tid: &str, value: TxnLogValue) -> Vec<Output> {
        let partition = self.core.partition_for(tid);
        self.log
            .append(
                partition,
                vec![(records::key(tid), Some(records::value(&value)))],
            )
            .expect("appended");
        self.reload(partition)
    }
}

fn stored(
    pid: i64,
    epoch: i16,
    state: TxnState,
    partitions: &[(&str, i32)],
    start: i64,
) -> TxnLogValue {
    TxnLogValue {
        producer_id: pid,
        producer_epoch: epoch,
        timeout_ms: TIMEOUT_MS,
        state,
        partitions: partitions.iter().map(|(t, p)| tp(t, *p)).collect(),
        last_update_timestamp_ms: START_MS,
        start_timestamp_ms: start,
        previous_producer_id: -1,
        next_producer_id: -1,
        client_transaction_version: 0,
    }
}

fn complete(commit: bool) -> TxnState {
    if commit {
        TxnState::CompleteCommit
    } else {
        TxnState::CompleteAbort
    }
}

fn markers(
    tid: &str,
    (pid, epoch): (i64, i16),
    coordinator_epoch: i32,
    commit: bool,
    partitions: &[(&str, i32)],
) -> Output {
    Output::WriteMarkers {
        transactional_id: tid.to_string(),
        producer_id: pid,
        producer_epoch: epoch,
        coordinator_epoch,
        commit,
        partitions: partitions.iter().map(|(t, p)| tp(t, *p)).collect(),
    }
}

// ---- InitProducerId --------------------------------------------------------

#[test]
fn a_new_transactional_id_gets_a_new_producer_id_at_epoch_0() {
    // handleInitProducerId: no metadata -> a producer id from the manager,
    // epoch -1 bumped to 0, stored as Empty.
    let mut h = Harness::new();
    assert_eq!(h.init(TXN), Ok((FIRST_PID, 0)));
    assert_eq!(
        h.log.last(TXN),
        TxnLogValue {
            last_update_timestamp_ms: h.now,
            ..stored(FIRST_PID, 0, TxnState::Empty, &[], -1)
        }
    );
    assert_eq!(h.log.records[0].0, 2, "written to the id's partition");
    // Another id gets another producer id.
    assert_eq!(h.init(OTHER), Ok((FIRST_PID + 1, 0)));
}

#[test]
fn init_of_an_idle_id_bumps_the_epoch() {
    // prepareIncrementProducerEpoch without an expected epoch, from Empty,
    // CompleteCommit and CompleteAbort; the new timeout is stored.
    let mut h = Harness::new();
    assert_eq!(h.init(TXN), Ok((FIRST_PID, 0)));
    assert_eq!(h.init_with(TXN, 7_000, None), Ok((FIRST_PID, 1)));
    assert_eq!(h.log.last(TXN).timeout_ms, 7_000);
    for commit in [true, false] {
        let pe = h.ongoing(TXN);
        h.finish(TXN, pe, commit);
        assert_eq!(h.state(TXN), complete(commit));
        assert_eq!(h.init(TXN), Ok((FIRST_PID, pe.1 + 1)));
        assert_eq!(h.state(TXN), TxnState::Empty);
    }
}

#[test]
fn init_checks_the_request_before_the_coordinator() {
    // handleInitProducerId: an empty id is INVALID_REQUEST and a timeout
    // outside (0, transaction.max.timeout.ms] INVALID_TRANSACTION_TIMEOUT,
    // whether or not this node coordinates the id.
    let mut h = Harness::new();
    assert_eq!(h.init(""), Err(ResponseError::InvalidRequest));
    for bad in [0, -1, MAX_TIMEOUT_MS + 1] {
        assert_eq!(
            h.init_with(TXN, bad, None),
            Err(ResponseError::InvalidTransactionTimeout)
        );
    }
    h.core.unload_partition(2);
    assert_eq!(
        h.init_with(TXN, 0, None),
        Err(ResponseError::InvalidTransactionTimeout)
    );
    assert_eq!(h.init(TXN), Err(ResponseError::NotCoordinator));
    assert_eq!(h.log.appends, 0);
    assert_eq!(h.init_with(OTHER, MAX_TIMEOUT_MS, None), Ok((FIRST_PID, 0)));
}

#[test]
fn not_coordinator_and_loading() {
    // getTransactionState: NOT_COORDINATOR for a partition not led here,
    // COORDINATOR_LOAD_IN_PROGRESS while it loads, for every API.
    let mut h = Harness::new();
    let pe = h.ongoing(TXN);
    h.core.unload_partition(2);
    assert_eq!(
        h.core.check_coordinator(TXN),
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(h.core.check_coordinator(OTHER), Ok(()));
    h.core.begin_load(2);
    let loading = Err(ResponseError::CoordinatorLoadInProgress);
    assert_eq!(h.core.check_coordinator(TXN), loading);
    assert_eq!(h.init(TXN).map(|_| ()), loading);
    assert_eq!(h.add(TXN, pe, &[("t", 1)]), loading);
    assert_eq!(h.end(TXN, pe, true), loading);
    assert_eq!(
        h.describe(TXN),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        h.core.list(&[], &[], -1, h.now),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    assert_eq!(h.core.owned_partitions(), vec![0, 1, 2, 3]);
    assert!(h.core.loading());
}

#[test]
fn producer_id_errors_pass_through() {
    // Errors.forException of the producer id manager's failure, e.g. a
    // block not yet allocated by the controller: nothing is stored.
    let mut h = Harness::new();
    h.ids.fail_next = Some(ResponseError::CoordinatorLoadInProgress);
    assert_eq!(h.init(TXN), Err(ResponseError::CoordinatorLoadInProgress));
    assert_eq!(h.describe(TXN), Err(ResponseError::TransactionalIdNotFound));
    assert_eq!(h.log.appends, 0);
    assert_eq!(h.init(TXN), Ok((FIRST_PID, 0)));
}

#[test]
fn kip_360_expected_epoch_rules() {
    // prepareIncrementProducerEpoch with an expected epoch.
    let mut h = Harness::new();
    let (pid, e0) = h.init(TXN).expect("initialized");
    // The current producer goes on after an error: bump, remember the
    // last epoch.
    assert_eq!(h.init_with(TXN, TIMEOUT_MS, Some((pid, e0))), Ok((pid, 1)));
    // Its response was lost and it retries: the same answer, no bump.
    assert_eq!(h.init_with(TXN, TIMEOUT_MS, Some((pid, e0))), Ok((pid, 1)));
    // An epoch that is neither the current nor the last one is fenced.
    h.init(TXN)
        .expect("a new producer: epoch 2, last epoch forgotten");
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((pid, 1))),
        Err(ResponseError::ProducerFenced)
    );
    // isValidProducerId: another producer id is fenced.
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((pid + 7, 2))),
        Err(ResponseError::ProducerFenced)
    );
    // The current epoch bumps.
    assert_eq!(h.init_with(TXN, TIMEOUT_MS, Some((pid, 2))), Ok((pid, 3)));
}

#[test]
fn kip_360_expected_epoch_of_an_unknown_id_gets_a_new_producer() {
    // isValidProducerId: an id with no metadata (epoch -1) accepts any
    // expected producer (it recovers from UNKNOWN_PRODUCER_ID after its id
    // expired).
    let mut h = Harness::new();
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((42, 9))),
        Ok((FIRST_PID, 0))
    );
}

#[test]
fn a_new_producer_fences_the_older_one() {
    // The epoch bump of InitProducerId: the old producer's requests carry
    // the old epoch and are PRODUCER_FENCED.
    let mut h = Harness::new();
    let old = h.init(TXN).expect("initialized");
    let new = h.init(TXN).expect("initialized again");
    assert_eq!(new, (old.0, old.1 + 1));
    assert_eq!(
        h.add(TXN, old, &[("t", 0)]),
        Err(ResponseError::ProducerFenced)
    );
    h.add(TXN, new, &[("t", 0)]).expect("the new producer adds");
    assert_eq!(h.end(TXN, old, true), Err(ResponseError::ProducerFenced));
    assert_eq!(
        h.end(TXN, (old.0 + 1, new.1), true),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    h.end(TXN, new, true).expect("the new producer commits");
}

#[test]
fn init_during_a_transaction_aborts_it_with_a_bumped_epoch() {
    // handleInitProducerId on Ongoing: PrepareEpochFence then PrepareAbort
    // at epoch + 1 (never handed out), answered CONCURRENT_TRANSACTIONS;
    // the retry after the abort completes bumps again.
    let mut h = Harness::new();
    let old = h.ongoing(TXN);
    assert_eq!(h.init(TXN), Err(ResponseError::ConcurrentTransactions));
    let fenced = (old.0, old.1 + 1);
    assert_eq!(
        h.log.last(TXN),
        TxnLogValue {
            last_update_timestamp_ms: h.now,
            ..stored(old.0, fenced.1, TxnState::PrepareAbort, &[("t", 0)], h.now)
        }
    );
    assert_eq!(h.markers, vec![markers(TXN, fenced, 1, false, &[("t", 0)])]);
    // While the markers are written, the retry waits.
    assert_eq!(h.init(TXN), Err(ResponseError::ConcurrentTransactions));
    // The zombie is fenced.
    assert_eq!(h.end(TXN, old, true), Err(ResponseError::ProducerFenced));
    assert_eq!(
        h.add(TXN, old, &[("t", 1)]),
        Err(ResponseError::ProducerFenced)
    );
    h.write_markers();
    assert_eq!(h.state(TXN), TxnState::CompleteAbort);
    assert_eq!(h.init(TXN), Ok((old.0, old.1 + 2)));
}

#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    // prepareProducerIdRotation: at epoch Short.MaxValue - 1, a new
    // producer id at epoch 0.
    let mut h = Harness::new();
    let exhausted = i16::MAX - 1;
    h.preload(
        TXN,
        stored(7, exhausted, TxnState::CompleteCommit, &[], START_MS),
    );
    assert_eq!(h.init(TXN), Ok((FIRST_PID, 0)));
    assert_eq!(h.log.last(TXN).producer_id, FIRST_PID);
}

#[test]
fn a_retry_after_a_producer_id_rotation_gets_the_same_answer() {
    // isValidProducerId's third case and the last-epoch retry: the
    // producer asked with its exhausted epoch, the rotation was stored, the
    // answer lost; the retry with the old producer id gets the new one.
    let mut h = Harness::new();
    let exhausted = i16::MAX - 1;
    h.preload(TXN, stored(7, exhausted, TxnState::Empty, &[], -1));
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((7, exhausted))),
        Ok((FIRST_PID, 0))
    );
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((7, exhausted))),
        Ok((FIRST_PID, 0))
    );
    // An old producer id with a non-exhausted epoch is fenced.
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((7, 3))),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(h.ids.next, FIRST_PID + 1, "one rotation");
}

#[test]
fn fencing_at_the_last_epoch_uses_short_max_then_rotates() {
    // Kafka's shouldUseLastEpochToFenceWhenEpochsAreExhausted: the fence
    // of a transaction at Short.MaxValue - 1 aborts at Short.MaxValue; the
    // retry gets a new producer id.
    let mut h = Harness::new();
    let exhausted = i16::MAX - 1;
    h.preload(
        TXN,
        stored(7, exhausted, TxnState::Ongoing, &[("t", 0)], START_MS),
    );
    assert_eq!(h.init(TXN), Err(ResponseError::ConcurrentTransactions));
    assert_eq!(
        h.markers,
        vec![markers(TXN, (7, i16::MAX), 2, false, &[("t", 0)])]
    );
    h.write_markers();
    assert_eq!(h.init(TXN), Ok((FIRST_PID, 0)));
}

#[test]
fn init_while_markers_are_written_is_concurrent() {
    // prepareInitProducerIdTransit: PrepareCommit / PrepareAbort (pending
    // completion) -> CONCURRENT_TRANSACTIONS, even with an expected epoch.
    let mut h = Harness::new();
    let pe = h.prepared(TXN, true);
    assert_eq!(h.init(TXN), Err(ResponseError::ConcurrentTransactions));
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some(pe)),
        Err(ResponseError::ConcurrentTransactions)
    );
}

// ---- AddPartitionsToTxn, AddOffsetsToTxn ------------------------------------

#[test]
fn add_partitions_checks_the_producer() {
    // handleAddPartitionsToTransaction: INVALID_PRODUCER_ID_MAPPING for an
    // unknown id or producer id, PRODUCER_FENCED for another epoch,
    // INVALID_REQUEST for an empty id.
    let mut h = Harness::new();
    assert_eq!(
        h.add(TXN, (FIRST_PID, 0), &[("t", 0)]),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    let (pid, epoch) = h.init(TXN).expect("initialized");
    assert_eq!(
        h.add(TXN, (pid + 1, epoch), &[("t", 0)]),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.add(TXN, (pid, epoch + 1), &[("t", 0)]),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        h.add("", (pid, epoch), &[("t", 0)]),
        Err(ResponseError::InvalidRequest)
    );
    assert_eq!(h.state(TXN), TxnState::Empty);
}

#[test]
fn add_partitions_starts_and_extends_a_transaction() {
    // prepareAddPartitions: from Empty the start time is now; in Ongoing
    // it stays and the partitions are a union; nothing new, nothing
    // written.
    let mut h = Harness::new();
    let pe = h.init(TXN).expect("initialized");
    let started = h.now;
    h.add(TXN, pe, &[("t", 0), ("t", 1)]).expect("added");
    assert_eq!(
        h.log.last(TXN),
        TxnLogValue {
            last_update_timestamp_ms: started,
            ..stored(
                pe.0,
                pe.1,
                TxnState::Ongoing,
                &[("t", 0), ("t", 1)],
                started
            )
        }
    );
    h.advance(10);
    let appends = h.log.appends;
    h.add(TXN, pe, &[("t", 1)]).expect("already in");
    assert_eq!(h.log.appends, appends, "no write for known partitions");
    h.add(TXN, pe, &[("u", 0), ("t", 0)]).expect("one more");
    let last = h.log.last(TXN);
    assert_eq!(last.start_timestamp_ms, started);
    assert_eq!(last.last_update_timestamp_ms, h.now);
    assert_eq!(
        h.describe(TXN).expect("described").topics,
        vec![("t".to_string(), vec![0, 1]), ("u".to_string(), vec![0])]
    );
}

#[test]
fn add_partitions_after_a_completed_transaction_starts_a_new_one() {
    // prepareAddPartitions from CompleteCommit / CompleteAbort: Ongoing,
    // start time now, only the new partitions.
    let mut h = Harness::new();
    for commit in [true, false] {
        let pe = h.ongoing(TXN);
        h.finish(TXN, pe, commit);
        h.advance(100);
        h.add(TXN, pe, &[("u", 3)]).expect("a new transaction");
        let last = h.log.last(TXN);
        assert_eq!(last.state, TxnState::Ongoing);
        assert_eq!(last.start_timestamp_ms, h.now);
        assert_eq!(last.partitions, BTreeSet::from([tp("u", 3)]));
        h.finish(TXN, pe, true);
        h.init(TXN).expect("next producer");
    }
}

#[test]
fn add_partitions_while_markers_are_written_is_concurrent() {
    // validateConcurrentTransactions: PrepareCommit and PrepareAbort.
    let mut h = Harness::new();
    for commit in [true, false] {
        let pe = h.prepared(TXN, commit);
        assert_eq!(
            h.add(TXN, pe, &[("t", 0)]),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            h.add(TXN, pe, &[("x", 0)]),
            Err(ResponseError::ConcurrentTransactions)
        );
        h.write_markers();
    }
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    // KafkaApis.handleAddOffsetsToTxnRequest: the group's partition of
    // __consumer_offsets joins the transaction.
    let mut h = Harness::new();
    let pe = h.init(TXN).expect("initialized");
    h.core
        .add_offsets(TXN, pe.0, pe.1, 17, h.now, &mut h.log)
        .expect("added");
    assert_eq!(
        h.log.last(TXN).partitions,
        BTreeSet::from([tp("__consumer_offsets", 17)])
    );
    assert_eq!(
        h.core
            .add_offsets(TXN, pe.0, pe.1 + 1, 17, h.now, &mut h.log),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn verify_partitions_reports_the_partitions_not_in_the_transaction() {
    // handleVerifyPartitionsInTransaction (KIP-890 part 1).
    let mut h = Harness::new();
    let pe = h.ongoing(TXN);
    let asked = [tp("t", 0), tp("t", 1)];
    assert_eq!(
        h.core.verify_partitions(TXN, pe.0, pe.1, &asked),
        Ok(vec![
            (tp("t", 0), None),
            (tp("t", 1), Some(ResponseError::TransactionAbortable))
        ])
    );
    assert_eq!(
        h.core.verify_partitions(TXN, pe.0, pe.1 + 1, &asked),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        h.core.verify_partitions(OTHER, pe.0, pe.1, &asked),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    let appends = h.log.appends;
    h.end(TXN, pe, true).expect("prepared");
    assert_eq!(
        h.core.verify_partitions(TXN, pe.0, pe.1, &asked),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(h.log.appends, appends + 1, "verification writes nothing");
}

// ---- EndTxn and the markers --------------------------------------------------

#[test]
fn end_txn_commit_prepares_and_asks_for_the_markers() {
    // handleEndTransaction on Ongoing: PrepareCommit stored, then the
    // markers (producer id, epoch, coordinator epoch, partitions) are sent;
    // the answer does not wait for them.
    let mut h = Harness::new();
    let pe = h.ongoing(TXN);
    h.add(TXN, pe, &[("u", 2)]).expect("added");
    let started = h.log.last(TXN).start_timestamp_ms;
    h.advance(50);
    assert_eq!(h.end(TXN, pe, true), Ok(()));
    assert_eq!(
        h.log.last(TXN),
        TxnLogValue {
            last_update_timestamp_ms: h.now,
            ..stored(
                pe.0,
                pe.1,
                TxnState::PrepareCommit,
                &[("t", 0), ("u", 2)],
                started
            )
        }
    );
    assert_eq!(
        h.take_markers(),
        vec![markers(TXN, pe, 1, true, &[("t", 0), ("u", 2)])]
    );
}

#[test]
fn markers_written_completes_the_transaction() {
    // prepareComplete: CompleteCommit / CompleteAbort stored with no
    // partitions, the start time kept.
    let mut h = Harness::new();
    for commit in [true, false] {
        let pe = h.ongoing(TXN);
        let started = h.log.last(TXN).start_timestamp_ms;
        h.end(TXN, pe, commit).expect("prepared");
        h.advance(30);
        h.write_markers();
        assert_eq!(
            h.log.last(TXN),
            TxnLogValue {
                last_update_timestamp_ms: h.now,
                ..stored(pe.0, pe.1, complete(commit), &[], started)
            }
        );
        assert_eq!(h.describe(TXN).expect("described").topics, vec![]);
        h.init(TXN).expect("next producer");
    }
}

#[test]
fn end_txn_retries_and_wrong_decisions() {
    // handleEndTransaction: while the markers are written the same or the
    // other decision is CONCURRENT_TRANSACTIONS (the pending completion is
    // checked before the state); after completion the same decision is
    // NONE, the other INVALID_TXN_STATE.
    let mut h = Harness::new();
    for commit in [true, false] {
        let pe = h.prepared(TXN, commit);
        assert_eq!(
            h.end(TXN, pe, commit),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            h.end(TXN, pe, !commit),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(h.markers.len(), 1, "one WriteMarkers per prepare");
        h.write_markers();
        let appends = h.log.appends;
        assert_eq!(h.end(TXN, pe, commit), Ok(()));
        assert_eq!(h.end(TXN, pe, !commit), Err(ResponseError::InvalidTxnState));
        assert_eq!(h.log.appends, appends, "a retry writes nothing");
        assert!(h.take_markers().is_empty());
        h.init(TXN).expect("next producer");
    }
}

#[test]
fn end_txn_without_a_transaction_is_invalid() {
    // handleEndTransaction on Empty: INVALID_TXN_STATE; unknown id or
    // producer id: INVALID_PRODUCER_ID_MAPPING; other epoch:
    // PRODUCER_FENCED (larger or smaller).
    let mut h = Harness::new();
    assert_eq!(
        h.end(TXN, (FIRST_PID, 0), true),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    let pe = h.init(TXN).expect("initialized");
    assert_eq!(h.end(TXN, pe, true), Err(ResponseError::InvalidTxnState));
    assert_eq!(h.end(TXN, pe, false), Err(ResponseError::InvalidTxnState));
    assert_eq!(
        h.end(TXN, (pe.0 + 1, pe.1), false),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    h.init(TXN).expect("epoch 1");
    assert_eq!(
        h.end(TXN, (pe.0, 0), true),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        h.end(TXN, (pe.0, 2), true),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(h.end("", pe, true), Err(ResponseError::InvalidRequest));
}

#[test]
fn stale_markers_written_are_ignored() {
    // TransactionMarkerChannelManager.writeTxnCompletion: a completion for
    // another coordinator epoch, producer or epoch does nothing.
    let mut h = Harness::new();
    let pe = h.prepared(TXN, true);
    let appends = h.log.appends;
    for (pid, epoch, ce) in [(pe.0, pe.1, 2), (pe.0 + 1, pe.1, 1), (pe.0, pe.1 + 1, 1)] {
        h.core
            .markers_written(TXN, pid, epoch, ce, h.now, &mut h.log);
    }
    h.core
        .markers_written(OTHER, pe.0, pe.1, 1, h.now, &mut h.log);
    assert_eq!(h.log.appends, appends);
    assert_eq!(h.state(TXN), TxnState::PrepareCommit);
    // After the partition moved away and back, the old markers are stale
    // too; the reload asks for them again at the new coordinator epoch.
    let again = h.reload(2);
    assert_eq!(again, vec![markers(TXN, pe, 2, true, &[("t", 0)])]);
    h.write_markers(); // the ones at coordinator epoch 1
    assert_eq!(h.state(TXN), TxnState::PrepareCommit);
    h.markers = again;
    h.write_markers();
    assert_eq!(h.state(TXN), TxnState::CompleteCommit);
    // Once complete, a duplicate is ignored.
    h.core
        .markers_written(TXN, pe.0, pe.1, 2, h.now, &mut h.log);
    assert_eq!(h.log.values_of(TXN).len(), 4);
}

#[test]
fn a_transaction_without_partitions_completes_at_the_next_tick() {
    // An empty AddPartitionsToTxn opens a transaction (Kafka allows it);
    // with no partitions there are no markers, and the completion is
    // stored at once (here: at the next tick, which is due now).
    let mut h = Harness::new();
    let pe = h.init(TXN).expect("initialized");
    h.add(TXN, pe, &[]).expect("opened");
    assert_eq!(h.state(TXN), TxnState::Ongoing);
    h.end(TXN, pe, false).expect("prepared");
    assert!(h.take_markers().is_empty());
    assert_eq!(h.core.next_deadline(), Some(h.now));
    h.advance(0);
    assert_eq!(h.state(TXN), TxnState::CompleteAbort);
}

// ---- Timers --------------------------------------------------------------------

#[test]
fn a_timed_out_transaction_is_aborted_and_its_producer_fenced() {
    // abortTimedOutTransactions: Ongoing with start + timeout < now, found
    // by the scan every abort_timed_out_interval_ms, is aborted at epoch + 1
    // (prepareFenceProducerEpoch): the zombie's commit is fenced.
    let mut h = Harness::new();
    let pe = h.ongoing(TXN);
    let started = h.now;
    h.run_until(started + i64::from(TIMEOUT_MS));
    assert_eq!(
        h.state(TXN),
        TxnState::Ongoing,
        "not yet: start + timeout == now"
    );
    assert!(h.take_markers().is_empty());
    // The deadline is the next scan, not the transaction's timeout.
    let scan = h.core.next_deadline().expect("scans are periodic");
    assert!(scan > started + i64::from(TIMEOUT_MS));
    h.run_until(scan);
    let fenced = (pe.0, pe.1 + 1);
    assert_eq!(h.markers, vec![markers(TXN, fenced, 1, false, &[("t", 0)])]);
    assert_eq!(h.log.last(TXN).state, TxnState::PrepareAbort);
    assert_eq!(h.log.last(TXN).producer_epoch, fenced.1);
    assert_eq!(h.end(TXN, pe, true), Err(ResponseError::ProducerFenced));
    h.write_markers();
    assert_eq!(h.state(TXN), TxnState::CompleteAbort);
    // The old producer cannot add partitions either; the next one gets
    // epoch + 2.
    assert_eq!(
        h.add(TXN, pe, &[("t", 0)]),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(h.init(TXN), Ok((pe.0, pe.1 + 2)));
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    // removeExpiredTransactionalIds: Empty / CompleteCommit / CompleteAbort
    // not updated for transactional.id.expiration.ms, with no pending
    // state, get a tombstone and are removed; open transactions stay.
    let mut h = Harness::new();
    h.init(TXN).expect("Empty");
    let pe = h.ongoing("b"); // partition 2 too
    h.finish("b", pe, true);
    let c = h.ongoing("c"); // Ongoing, partition 3
    h.advance(EXPIRATION_MS - 1);
    assert!(h.describe(TXN).is_ok(), "not yet");
    h.advance(EXPIRE_SCAN_MS + 1);
    assert_eq!(h.describe(TXN), Err(ResponseError::TransactionalIdNotFound));
    assert_eq!(h.describe("b"), Err(ResponseError::TransactionalIdNotFound));
    assert_eq!(h.log.values_of(TXN).last(), Some(&None));
    assert_eq!(h.log.values_of("b").last(), Some(&None));
    // "c" timed out and was aborted; its markers were never written, so it
    // stays in PrepareAbort, which does not expire.
    let described = h.describe("c").expect("c stays");
    assert_eq!(
        (described.state, described.producer_epoch),
        (TxnState::PrepareAbort, c.1 + 1)
    );
    // An expired id starts over with a new producer id.
    assert_eq!(h.init(TXN).map(|(_, e)| e), Ok(0));
    assert_eq!(h.core.snapshot(), h.log.replay());
}

#[test]
fn ongoing_transactions_do_not_expire() {
    // TransactionState.isExpirationAllowed is false for Ongoing and the
    // Prepare states.
    let mut h = Harness::new();
    let pe = h.init_with(TXN, MAX_TIMEOUT_MS, None).expect("initialized");
    h.add(TXN, pe, &[("t", 0)]).expect("added");
    h.end(TXN, pe, true).expect("prepared"); // markers never written
    h.advance(EXPIRATION_MS + EXPIRE_SCAN_MS * 2);
    assert_eq!(h.state(TXN), TxnState::PrepareCommit);
}

#[test]
fn next_deadline_is_the_earliest_scan_or_retry() {
    // Before its first tick, a coordinator is due at once (time 0).
    assert_eq!(
        TransactionCoordinator::new(config()).next_deadline(),
        Some(0)
    );
    let mut h = Harness::new();
    assert_eq!(h.core.next_deadline(), Some(START_MS + ABORT_SCAN_MS));
    h.run_until(START_MS + ABORT_SCAN_MS);
    assert_eq!(h.core.next_deadline(), Some(START_MS + 2 * ABORT_SCAN_MS));
    h.prepared(TXN, true);
    h.log.fail_next = Some(ResponseError::NotEnoughReplicas);
    h.write_markers();
    assert_eq!(
        h.core.next_deadline(),
        Some(h.now + COMPLETION_RETRY_BACKOFF_MS)
    );
}

// ---- Append failures -----------------------------------------------------------

/// Fails the next append with `error`, runs `op`, and checks that it
/// answers `answer` and changes nothing.
fn check_failed_append(
    h: &mut Harness,
    error: ResponseError,
    answer: ResponseError,
    op: impl FnOnce(&mut Harness) -> Result<(), ResponseError>,
) {
    let before = h.core.snapshot();
    let records = h.log.records.len();
    h.log.fail_next = Some(error);
    assert_eq!(op(h), Err(answer));
    assert_eq!(h.core.snapshot(), before);
    assert_eq!(h.log.records.len(), records);
    assert!(h.take_markers().is_empty());
}

#[test]
fn a_failed_append_leaves_the_state_unchanged() {
    // appendTransactionToLog's failure path resets the pending state: the
    // metadata stays as it was, and the error is mapped to a coordinator
    // error (NOT_ENOUGH_REPLICAS -> COORDINATOR_NOT_AVAILABLE,
    // NOT_LEADER_OR_FOLLOWER -> NOT_COORDINATOR).
    let mut h = Harness::new();
    h.log.fail_next = Some(ResponseError::NotEnoughReplicas);
    assert_eq!(h.init(TXN), Err(ResponseError::CoordinatorNotAvailable));
    assert_eq!(h.describe(TXN), Err(ResponseError::TransactionalIdNotFound));
    let pe = h.init(TXN).expect("initialized");
    assert_eq!(
        pe,
        (FIRST_PID + 1, 0),
        "the failed attempt's producer id is not reused"
    );

    check_failed_append(
        &mut h,
        ResponseError::NotEnoughReplicas,
        ResponseError::CoordinatorNotAvailable,
        |h| h.init(TXN).map(|_| ()),
    );
    check_failed_append(
        &mut h,
        ResponseError::NotLeaderOrFollower,
        ResponseError::NotCoordinator,
        |h| h.add(TXN, pe, &[("t", 0)]),
    );
    h.add(TXN, pe, &[("t", 0)]).expect("added");
    check_failed_append(
        &mut h,
        ResponseError::RequestTimedOut,
        ResponseError::CoordinatorNotAvailable,
        |h| h.end(TXN, pe, true),
    );
    // The fence of InitProducerId: the epoch is not bumped in memory, and
    // a retry fences at the same epoch (Kafka: hasFailedEpochFence).
    check_failed_append(
        &mut h,
        ResponseError::NotEnoughReplicas,
        ResponseError::CoordinatorNotAvailable,
        |h| h.init(TXN).map(|_| ()),
    );
    h.add(TXN, pe, &[("t", 1)])
        .expect("the old producer is not fenced by a failed fence");
    assert_eq!(h.init(TXN), Err(ResponseError::ConcurrentTransactions));
    assert_eq!(h.log.last(TXN).producer_epoch, pe.1 + 1);
}

#[test]
fn a_failed_timeout_abort_is_retried_at_the_next_scan() {
    // shouldNotBumpEpochWhenAbortingExpiredTransactionIfAppendToLogFails:
    // the epoch is bumped once, by the abort that is stored.
    let mut h = Harness::new();
    let pe = h.ongoing(TXN);
    h.run_until(h.now + i64::from(TIMEOUT_MS));
    let scan = h.core.next_deadline().expect("a scan");
    h.now = scan;
    h.log.fail_next = Some(ResponseError::NotEnoughReplicas);
    let out = h.core.tick(h.now, &mut h.log);
    assert!(out.is_empty());
    assert_eq!(h.state(TXN), TxnState::Ongoing);
    assert_eq!(h.describe(TXN).expect("d").producer_epoch, pe.1);
    h.advance(ABORT_SCAN_MS);
    assert_eq!(h.state(TXN), TxnState::PrepareAbort);
    assert_eq!(h.describe(TXN).expect("d").producer_epoch, pe.1 + 1);
}

#[test]
fn a_failed_completion_is_retried() {
    // TransactionMarkerChannelManager.tryAppendToLog retries the
    // completion; meanwhile the transaction stays prepared.
    let mut h = Harness::new();
    let pe = h.prepared(TXN, true);
    h.log.fail_next = Some(ResponseError::NotEnoughReplicas);
    h.write_markers();
    assert_eq!(h.state(TXN), TxnState::PrepareCommit);
    assert_eq!(
        h.end(TXN, pe, true),
        Err(ResponseError::ConcurrentTransactions)
    );
    h.log.fail_next = Some(ResponseError::NotEnoughReplicas);
    h.advance(COMPLETION_RETRY_BACKOFF_MS);
    assert_eq!(h.state(TXN), TxnState::PrepareCommit);
    h.advance(COMPLETION_RETRY_BACKOFF_MS);
    assert_eq!(h.state(TXN), TxnState::CompleteCommit);
    assert!(
        h.take_markers().is_empty(),
        "the markers are not asked for again"
    );
}

#[test]
fn a_failed_expiration_keeps_the_id() {
    // writeTombstonesForExpiredTransactionalIds: the id is removed only
    // once its tombstone is stored; the next scan tries again.
    let mut h = Harness::new();
    h.init(TXN).expect("initialized");
    h.run_until(START_MS + EXPIRATION_MS - 1);
    assert!(h.describe(TXN).is_ok());
    // The scan at START_MS + EXPIRATION_MS is the one that finds it.
    h.log.fail_next = Some(ResponseError::NotEnoughReplicas);
    h.run_until(START_MS + EXPIRATION_MS);
    assert!(h.log.fail_next.is_none(), "the tombstone append was tried");
    assert!(h.describe(TXN).is_ok());
    h.advance(EXPIRE_SCAN_MS);
    assert_eq!(h.describe(TXN), Err(ResponseError::TransactionalIdNotFound));
}

// ---- Loading -------------------------------------------------------------------

#[test]
fn a_reload_reproduces_the_state_and_asks_for_the_markers_of_prepared_transactions() {
    // loadTransactionsForTxnTopicPartition: the last record of each id is
    // its state; PrepareCommit / PrepareAbort get their markers sent again
    // with the new coordinator epoch; Ongoing keeps its start time.
    let mut h = Harness::new();
    // Partition 2: "txn" Empty, "b" PrepareCommit, "zombie" Ongoing,
    // "txn-1" CompleteAbort.
    h.init(TXN).expect("Empty");
    let b = h.ongoing("b");
    h.add("b", b, &[("u", 1)]).expect("added");
    h.end("b", b, true).expect("prepared");
    let zombie = h.ongoing("zombie");
    let t1 = h.ongoing("txn-1");
    h.end("txn-1", t1, false).expect("prepared");
    h.write_markers(); // b's and txn-1's markers written: both complete
    let b2 = h.ongoing("b");
    h.end("b", b2, true).expect("prepared again");
    h.take_markers(); // lost with the old leader
    let before = h.core.snapshot();
    let out = h.reload(2);
    assert_eq!(h.core.snapshot(), before);
    assert_eq!(out, vec![markers("b", b2, 2, true, &[("t", 0)])]);
    h.markers = out;
    h.write_markers();
    assert_eq!(h.state("b"), TxnState::CompleteCommit);
    // The zombie's timeout still runs from its start.
    h.advance(i64::from(TIMEOUT_MS) + ABORT_SCAN_MS);
    assert_eq!(h.state("zombie"), TxnState::PrepareAbort);
    assert_eq!(
        h.take_markers(),
        vec![markers(
            "zombie",
            (zombie.0, zombie.1 + 1),
            2,
            false,
            &[("t", 0)]
        )]
    );
}

#[test]
fn a_reload_of_a_prepare_abort_rewrites_abort_markers() {
    let mut h = Harness::new();
    let pe = h.prepared(TXN, false);
    h.take_markers();
    assert_eq!(h.reload(2), vec![markers(TXN, pe, 2, false, &[("t", 0)])]);
}

#[test]
fn loading_skips_what_it_cannot_use() {
    // Kafka's loader: a tombstone removes the id, an unknown key version
    // is skipped. Here also: undecodable records, ids of another
    // partition, and the states Kafka never stores.
    let mut h = Harness::new();
    let mut log = vec![
        (
            records::key(TXN),
            Some(records::value(&stored(5, 0, TxnState::Empty, &[], -1))),
        ),
        (
            records::key("b"),
            Some(records::value(&stored(
                6,
                3,
                TxnState::Ongoing,
                &[("t", 0)],
                START_MS,
            ))),
        ),
        (records::key("b"), None),
        (
            records::key("zombie"),
            Some(records::value(&stored(8, 1, TxnState::Dead, &[], -1))),
        ),
        (
            records::key("txn-1"),
            Some(records::value(&stored(
                9,
                1,
                TxnState::PrepareEpochFence,
                &[("t", 0)],
                START_MS,
            ))),
        ),
        (
            records::key(OTHER),
            Some(records::value(&stored(10, 0, TxnState::Empty, &[], -1))),
        ),
        (
            Bytes::from_static(&[0, 1, 0, 0]),
            Some(Bytes::from_static(b"future")),
        ),
        (records::key("txn-1"), Some(Bytes::from_static(&[0, 0, 1]))),
    ];
    // Records without a producer would break the epoch rules: skipped.
    log.push((
        records::key("txn-1"),
        Some(records::value(&stored(-1, 0, TxnState::Empty, &[], -1))),
    ));
    log.push((
        records::key("txn-1"),
        Some(records::value(&stored(12, -1, TxnState::Empty, &[], -1))),
    ));
    // An Empty record's partitions are ignored, as Kafka's reader does.
    let mut v = records::value(&stored(11, 2, TxnState::Ongoing, &[("t", 9)], -1)).to_vec();
    v[16] = 0; // state Empty, partitions present
    log.push((records::key("b"), Some(Bytes::from(v))));
    h.core.begin_load(2);
    let out = h.core.load_partition(2, 5, log, h.now);
    assert!(out.is_empty());
    let snapshot = h.core.snapshot();
    assert_eq!(snapshot.keys().collect::<Vec<_>>(), vec!["b", TXN]);
    assert_eq!(snapshot[TXN].producer_id, 5);
    assert_eq!(snapshot["b"].state, TxnState::Empty);
    assert!(snapshot["b"].partitions.is_empty());
    assert_eq!(
        h.describe(OTHER),
        Err(ResponseError::TransactionalIdNotFound)
    );
}

#[test]
fn load_partition_without_begin_load_is_ignored() {
    // Kafka installs a load only if its (partition, epoch) is still
    // loading: a partition unloaded meanwhile stays unowned.
    let mut h = Harness::new();
    h.core.begin_load(2);
    h.core.unload_partition(2);
    let log = vec![(
        records::key(TXN),
        Some(records::value(&stored(
            5,
            0,
            TxnState::PrepareCommit,
            &[("t", 0)],
            START_MS,
        ))),
    )];
    assert!(h.core.load_partition(2, 3, log, h.now).is_empty());
    assert_eq!(
        h.core.check_coordinator(TXN),
        Err(ResponseError::NotCoordinator)
    );
}

#[test]
fn a_log_written_by_kafka_with_tagged_fields_loads() {
    // TransactionLogValue version 1 (transaction.version 2): the previous
    // producer id is read from tag 0, which makes the rotation retry rule
    // work across a coordinator move.
    let exhausted = i16::MAX - 1;
    #[rustfmt::skip]
    let value = [
        &[0x00, 0x01][..],                          // value version 1
        &2000i64.to_be_bytes(),                     // producerId
        &[0x00, 0x00],                              // producerEpoch 0
        &TIMEOUT_MS.to_be_bytes(),                  // transactionTimeoutMs
        &[0x00],                                    // Empty
        &[0x00],                                    // partitions: null
        &START_MS.to_be_bytes(),                    // lastUpdate
        &(-1i64).to_be_bytes(),                     // start
        &[0x01, 0x00, 0x08], &7i64.to_be_bytes(),   // tag 0: previousProducerId 7
    ]
    .concat();
    let mut h = Harness::new();
    h.core.begin_load(2);
    let out = h.core.load_partition(
        2,
        2,
        vec![(records::key(TXN), Some(Bytes::from(value)))],
        h.now,
    );
    assert!(out.is_empty());
    let d = h.describe(TXN).expect("loaded");
    assert_eq!(
        (d.producer_id, d.producer_epoch, d.state),
        (2000, 0, TxnState::Empty)
    );
    // Producer 7 retrying after its rotation to 2000 passes the producer
    // id check thanks to the tag, but the last epoch is not stored, so the
    // epoch check fences it, as in Kafka.
    assert_eq!(
        h.init_with(TXN, TIMEOUT_MS, Some((7, exhausted))),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(h.init(TXN), Ok((2000, 1)));
    // What is written back is version 0.
    assert_eq!(
        h.log
            .records
            .last()
            .and_then(|(_, _, v)| v.as_ref())
            .map(|v| v[1]),
        Some(0)
    );
}

// ---- DescribeTransactions, ListTransactions ------------------------------------

#[test]
fn describe_reports_kafkas_fields() {
    // handleDescribeTransactions.
    let mut h = Harness::new();
    let pe = h.ongoing(TXN);
    h.add(TXN, pe, &[("a", 3), ("a", 1)]).expect("added");
    let described = h
        .core
        .describe(&[TXN.to_string(), "nope".to_string(), String::new()]);
    assert_eq!(
        described,
        vec![
            (
                TXN.to_string(),
                Ok(TxnDescription {
                    state: TxnState::Ongoing,
                    producer_id: pe.0,
                    producer_epoch: pe.1,
                    timeout_ms: TIMEOUT_MS,
                    start_timestamp_ms: START_MS,
                    topics: vec![("a".to_string(), vec![1, 3]), ("t".to_string(), vec![0])],
                })
            ),
            (
                "nope".to_string(),
                Err(ResponseError::TransactionalIdNotFound)
            ),
            (String::new(), Err(ResponseError::InvalidRequest)),
        ]
    );
    assert_eq!(h.state(TXN).name(), "Ongoing");
    h.core.unload_partition(2);
    assert_eq!(h.describe(TXN), Err(ResponseError::NotCoordinator));
}

fn names(list: &TxnList) -> Vec<&str> {
    list.transactions
        .iter()
        .map(|t| t.transactional_id.as_str())
        .collect()
}

#[test]
fn list_filters_by_state_producer_and_duration() {
    // listTransactionStates: filters combine; unknown state names are
    // reported and match nothing; the duration filter keeps transactions
    // open longer than it (KIP-994).
    let mut h = Harness::new();
    let a = h.ongoing("a"); // Ongoing since START_MS
    h.advance(100);
    let b = h.init("b").expect("Empty");
    let c = h.ongoing("c"); // Ongoing since START_MS + 100
    h.end("c", c, true).expect("PrepareCommit");
    h.advance(100);

    let all = h.core.list(&[], &[], -1, h.now).expect("listed");
    assert_eq!(names(&all), vec!["a", "b", "c"]);
    assert_eq!(all.transactions[0].producer_id, a.0);
    assert_eq!(all.transactions[2].state, TxnState::PrepareCommit);
    let ongoing = h
        .core
        .list(&["Ongoing".to_string()], &[], -1, h.now)
        .expect("listed");
    assert_eq!(names(&ongoing), vec!["a"]);
    let by_pid = h.core.list(&[], &[b.0, c.0], -1, h.now).expect("listed");
    assert_eq!(names(&by_pid), vec!["b", "c"]);
    let unknown = h
        .core
        .list(
            &["ongoing".to_string(), "Empty".to_string()],
            &[],
            -1,
            h.now,
        )
        .expect("listed");
    assert_eq!(unknown.unknown_state_filters, vec!["ongoing".to_string()]);
    assert_eq!(names(&unknown), vec!["b"]);
    let only_unknown = h
        .core
        .list(&["Nope".to_string()], &[], -1, h.now)
        .expect("listed");
    assert!(only_unknown.transactions.is_empty());
    // Open for more than 150 ms: "a" (200 ms); "c" (100 ms) is not; "b"
    // has no start (-1), so Kafka's arithmetic keeps it.
    let long = h.core.list(&[], &[], 150, h.now).expect("listed");
    assert_eq!(names(&long), vec!["a", "b"]);
    let exactly = h.core.list(&[], &[], 200, h.now).expect("listed");
    assert_eq!(
        names(&exactly),
        vec!["b"],
        "open for exactly the duration: left out"
    );
}

// ---- Properties ------------------------------------------------------------------

/// A step of the random sequence: requests of three producers (one per
/// transactional id, each remembering its last producer id and epoch),
/// markers written in any order or never, time passing, failing appends
/// and reloads of a partition.
#[derive(Debug, Clone)]
enum Step {
    Init {
        id: usize,
        expected: bool,
    },
    Add {
        id: usize,
        partition: i32,
        stale: bool,
    },
    End {
        id: usize,
        commit: bool,
    },
    WriteMarkers {
        pick: prop::sample::Index,
    },
    Advance {
        ms: i64,
    },
    FailNextAppend,
    Reload {
        id: usize,
    },
}

const IDS: [&str; 3] = ["a", "b", "txn-1"]; // partitions 1, 2, 2

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..IDS.len(), any::<bool>()).prop_map(|(id, expected)| Step::Init { id, expected }),
        4 => (0..IDS.len(), 0..3i32, prop::bool::weighted(0.1))
            .prop_map(|(id, partition, stale)| Step::Add { id, partition, stale }),
        3 => (0..IDS.len(), any::<bool>()).prop_map(|(id, commit)| Step::End { id, commit }),
        3 => any::<prop::sample::Index>().prop_map(|pick| Step::WriteMarkers { pick }),
        2 => prop_oneof![Just(1i64), Just(500), Just(3_000), Just(60_000)]
            .prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::FailNextAppend),
        1 => (0..IDS.len()).prop_map(|id| Step::Reload { id }),
    ]
}

struct Sim {
    h: Harness,
    /// Each id's producer: the last (producer id, epoch) it was given.
    producers: HashMap<&'static str, (i64, i16)>,
    /// The highest (producer id, epoch) seen stored for each id.
    highest: HashMap<String, (i64, i16)>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            h: Harness::new(),
            producers: HashMap::new(),
            highest: HashMap::new(),
        }
    }

    fn run(&mut self, step: &Step) {
        let h = &mut self.h;
        let before = h.markers.len();
        match step {
            Step::Init { id, expected } => {
                let tid = IDS[*id];
                let expected = if *expected {
                    self.producers.get(tid).copied()
                } else {
                    None
                };
                if let Ok(pe) = h.init_with(tid, TIMEOUT_MS, expected) {
                    self.producers.insert(tid, pe);
                }
            }
            Step::Add {
                id,
                partition,
                stale,
            } => {
                let tid = IDS[*id];
                if let Some(&(pid, epoch)) = self.producers.get(tid) {
                    let epoch = if *stale { epoch - 1 } else { epoch };
                    let _ = h.add(tid, (pid, epoch), &[("t", *partition)]);
                }
            }
            Step::End { id, commit } => {
                let tid = IDS[*id];
                if let Some(&pe) = self.producers.get(tid) {
                    let _ = h.end(tid, pe, *commit);
                }
            }
            Step::WriteMarkers { pick } => {
                if !h.markers.is_empty() {
                    let m = h.markers.remove(pick.index(h.markers.len()));
                    let Output::WriteMarkers {
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                        ..
                    } = m;
                    h.core.markers_written(
                        &transactional_id,
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                        h.now,
                        &mut h.log,
                    );
                }
            }
            Step::Advance { ms } => h.advance(*ms),
            Step::FailNextAppend => h.log.fail_next = Some(ResponseError::NotEnoughReplicas),
            Step::Reload { id } => {
                let partition = h.core.partition_for(IDS[*id]);
                let before: BTreeMap<String, TxnLogValue> = h
                    .core
                    .snapshot()
                    .into_iter()
                    .filter(|(tid, _)| h.core.partition_for(tid) == partition)
                    .collect();
                // Markers of the old coordinator epoch may still be
                // written; the coordinator must ignore them.
                let out = h.reload(partition);
                let after: BTreeMap<String, TxnLogValue> = h
                    .core
                    .snapshot()
                    .into_iter()
                    .filter(|(tid, _)| h.core.partition_for(tid) == partition)
                    .collect();
                assert_eq!(after, before, "a reload reproduces the state");
                let prepared: BTreeSet<&String> = after
                    .iter()
                    .filter(|(_, v)| {
                        matches!(v.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
                            && !v.partitions.is_empty()
                    })
                    .map(|(tid, _)| tid)
                    .collect();
                let asked: BTreeSet<&String> = out
                    .iter()
                    .map(
                        |Output::WriteMarkers {
                             transactional_id, ..
                         }| transactional_id,
                    )
                    .collect();
                assert_eq!(asked, prepared, "the markers of every prepared transaction");
                let from = h.markers.len();
                h.markers.extend(out);
                self.check_new_markers(from);
                return;
            }
        }
        // Writing markers emits none and removes one.
        self.check_new_markers(before.min(self.h.markers.len()));
    }

    /// Every new WriteMarkers is of a prepare just stored (its id is in the
    /// Prepare state with that producer and epoch), and no two pending ones
    /// are for the same id at the same coordinator epoch: at most one
    /// WriteMarkers per prepare.
    fn check_new_markers(&self, from: usize) {
        let snapshot = self.h.core.snapshot();
        for m in &self.h.markers[from..] {
            let Output::WriteMarkers {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                partitions,
                ..
            } = m;
            let v = &snapshot[transactional_id];
            let state = if *commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            assert_eq!(
                (v.state, v.producer_id, v.producer_epoch),
                (state, *producer_id, *producer_epoch)
            );
            assert_eq!(
                &v.partitions.iter().cloned().collect::<Vec<_>>(),
                partitions
            );
        }
        let mut seen = BTreeSet::new();
        for Output::WriteMarkers {
            transactional_id,
            coordinator_epoch,
            ..
        } in &self.h.markers
        {
            assert!(
                seen.insert((transactional_id.clone(), *coordinator_epoch)),
                "two WriteMarkers for {transactional_id} at coordinator epoch {coordinator_epoch}"
            );
        }
    }

    /// After every step: the memory is what a reload of the log would give,
    /// and no id's (producer id, epoch) went backwards.
    fn check(&mut self) {
        let snapshot = self.h.core.snapshot();
        assert_eq!(snapshot, self.h.log.replay(), "memory equals the log");
        for (tid, v) in &snapshot {
            let now = (v.producer_id, v.producer_epoch);
            if let Some(&high) = self.highest.get(tid) {
                assert!(now >= high, "{tid}: {high:?} -> {now:?}");
            }
            self.highest.insert(tid.clone(), now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operation_sequences_keep_the_invariants(
        steps in proptest::collection::vec(step(), 1..120)
    ) {
        let mut sim = Sim::new();
        for s in &steps {
            sim.run(s);
            sim.check();
        }
    }
}
