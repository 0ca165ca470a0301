//! Idempotent and transactional producers through the public API: the
//! producer-state rules of Kafka's `ProducerAppendInfo`, transaction
//! markers, the last stable offset, aborted transactions and the
//! `.txnindex` format, producer state snapshots and recovery.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::fs;
use std::path::Path;

use common::{be_i32, be_i64, encode_producer_batch, small_config, validated, Producer, Rec};
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use riffle_log::{
    parse_txn_marker, AbortedTxn, AppendInfo, LoadState, Log, LogConfig, LogError, TxnMarker,
};

const T0: i64 = 1_700_000_000_000;

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, LoadState::unclean(T0)).unwrap()
}

fn recs(n: usize, ts: i64) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::kv(&format!("k{i}"), &format!("v{i}"), ts))
        .collect()
}

fn idem(id: i64, epoch: i16, seq: i32) -> Producer {
    Producer {
        id,
        epoch,
        base_sequence: seq,
        transactional: false,
    }
}

fn txn(id: i64, epoch: i16, seq: i32) -> Producer {
    Producer {
        transactional: true,
        ..idem(id, epoch, seq)
    }
}

fn produce(log: &mut Log, p: Producer, n: usize) -> Result<AppendInfo, LogError> {
    let bytes = encode_producer_batch(&recs(n, T0), p);
    let batches = riffle_log::validate_produce(bytes, &log.config().validation(), T0).unwrap();
    log.append_as_leader(batches, 1, T0)
}

fn plain(log: &mut Log, n: usize) -> AppendInfo {
    let b = validated(&recs(n, T0), Compression::None, log.config());
    log.append_as_leader(b, 1, T0).unwrap()
}

fn end_txn(log: &mut Log, id: i64, epoch: i16, commit: bool) -> Result<AppendInfo, LogError> {
    log.append_txn_marker(
        &TxnMarker {
            producer_id: id,
            producer_epoch: epoch,
            coordinator_epoch: 0,
            commit,
        },
        1,
        T0,
    )
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

// ---------------------------------------------------------------- idempotence

#[test]
fn a_retried_batch_returns_its_original_offsets_and_writes_nothing() {
    // Kafka's ProducerStateEntry.findDuplicateBatch: same epoch and sequence
    // range as one of the producer's last five batches.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    plain(&mut log, 2);
    let first = produce(&mut log, idem(7, 0, 0), 3).unwrap();
    assert_eq!(
        (first.first_offset, first.last_offset, first.duplicate),
        (2, 4, false)
    );
    let second = produce(&mut log, idem(7, 0, 3), 2).unwrap();
    assert_eq!((second.first_offset, second.last_offset), (5, 6));
    let end = log.log_end_offset();
    let size = log.size_bytes();

    let again = produce(&mut log, idem(7, 0, 0), 3).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.first_offset, again.last_offset), (2, 4));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    let again = produce(&mut log, idem(7, 0, 3), 2).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.first_offset, again.last_offset), (5, 6));
}

#[test]
fn only_the_last_five_batches_are_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    for seq in 0..6 {
        produce(&mut log, idem(1, 0, seq), 1).unwrap();
    }
    // Sequence 0 fell out of the window: it is now out of order, not a duplicate.
    let err = produce(&mut log, idem(1, 0, 0), 1).unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err}");
    assert!(produce(&mut log, idem(1, 0, 1), 1).unwrap().duplicate);
}

#[test]
fn a_sequence_gap_is_out_of_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, idem(1, 0, 0), 2).unwrap();
    let end = log.log_end_offset();
    let err = produce(&mut log, idem(1, 0, 3), 1).unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err}");
    assert_eq!(err.error_code(), ResponseError::OutOfOrderSequenceNumber);
    assert_eq!(log.log_end_offset(), end, "a refused append writes nothing");
    // Overlapping but not identical to a remembered batch is out of order too.
    let err = produce(&mut log, idem(1, 0, 1), 1).unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence(_)));
    produce(&mut log, idem(1, 0, 2), 1).unwrap();
}

#[test]
fn an_older_epoch_is_fenced() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, idem(1, 3, 0), 1).unwrap();
    let err = produce(&mut log, idem(1, 2, 1), 1).unwrap_err();
    assert!(matches!(err, LogError::InvalidProducerEpoch(_)), "{err}");
    assert_eq!(err.error_code(), ResponseError::InvalidProducerEpoch);
}

#[test]
fn a_new_epoch_must_start_at_sequence_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, idem(1, 0, 0), 5).unwrap();
    let err = produce(&mut log, idem(1, 1, 5), 1).unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err}");
    produce(&mut log, idem(1, 1, 0), 1).unwrap();
    produce(&mut log, idem(1, 1, 1), 1).unwrap();
    let view = log.producers();
    assert_eq!(view.len(), 1);
    assert_eq!((view[0].producer_epoch, view[0].last_sequence), (1, 1));
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence() {
    // Kafka's checkSequence accepts any sequence when the partition has no
    // state for the producer, e.g. after producer.id.expiration.ms.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, idem(1, 0, 42), 1).unwrap();
    produce(&mut log, idem(1, 0, 43), 1).unwrap();
    // Last write at T0: not yet expired one ms before the limit.
    log.remove_expired_producers(T0 + 999, 1000);
    assert_eq!(log.producers().len(), 1);
    log.remove_expired_producers(T0 + 1000, 1000);
    assert!(log.producers().is_empty());
    produce(&mut log, idem(1, 0, 500), 1).unwrap();
    assert_eq!(log.producers()[0].last_sequence, 500);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, idem(1, 0, i32::MAX - 1), 1).unwrap();
    produce(&mut log, idem(1, 0, i32::MAX), 1).unwrap();
    produce(&mut log, idem(1, 0, 0), 1).unwrap();
    let err = produce(&mut log, idem(1, 0, 2), 1).unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence(_)));
    // A batch that wraps inside: sequences MAX-1, MAX, 0.
    produce(&mut log, idem(2, 0, i32::MAX - 1), 3).unwrap();
    produce(&mut log, idem(2, 0, 1), 1).unwrap();
}

#[test]
fn a_client_batch_with_a_producer_id_needs_a_sequence() {
    // Kafka's LogValidator.validateBatch (client origin only).
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    let err = produce(&mut log, idem(1, 0, -1), 1).unwrap_err();
    assert_eq!(err.error_code(), ResponseError::InvalidRecord);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn followers_take_producer_state_from_the_leader_without_checks() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), LogConfig::default());
    let mut follower = open(follower_dir.path(), LogConfig::default());
    produce(&mut leader, txn(4, 0, 0), 2).unwrap();
    produce(&mut leader, idem(5, 2, 0), 1).unwrap();
    let slice = leader.read(0, 1 << 20, i64::MAX, true).unwrap().unwrap();
    follower
        .append_as_follower(&slice.read_to_vec().unwrap(), T0)
        .unwrap();
    assert_eq!(follower.producers(), leader.producers());
    assert_eq!(follower.first_unstable_offset(), Some(0));
    end_txn(&mut leader, 4, 0, false).unwrap();
    let slice = leader.read(3, 1 << 20, i64::MAX, true).unwrap().unwrap();
    follower
        .append_as_follower(&slice.read_to_vec().unwrap(), T0)
        .unwrap();
    assert_eq!(follower.first_unstable_offset(), None);
    assert_eq!(
        follower.aborted_transactions(0, 10).unwrap(),
        vec![aborted(4, 0, 3, 4)]
    );
}

// -------------------------------------------------------------- transactions

#[test]
fn the_last_stable_offset_stops_at_the_first_open_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    plain(&mut log, 2); // 0..=1
    produce(&mut log, txn(1, 0, 0), 2).unwrap(); // 2..=3
    plain(&mut log, 1); // 4
    produce(&mut log, txn(2, 0, 0), 1).unwrap(); // 5
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert_eq!(log.last_stable_offset(6), 2);
    assert_eq!(
        log.last_stable_offset(1),
        1,
        "never above the high watermark"
    );
    let commit = end_txn(&mut log, 1, 0, true).unwrap(); // 6
    assert_eq!(commit.first_offset, 6);
    assert_eq!(log.first_unstable_offset(), Some(5));
    // Until the high watermark passes the marker, the committed
    // transaction still holds the LSO (Kafka's unreplicated transactions).
    assert_eq!(log.last_stable_offset(6), 2);
    assert_eq!(log.last_stable_offset(7), 5);
    end_txn(&mut log, 2, 0, false).unwrap(); // 7
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(8), 8);
    log.on_high_watermark_updated(8);
    assert_eq!(log.last_stable_offset(8), 8);
    assert_eq!(
        log.aborted_transactions(0, 8).unwrap(),
        vec![aborted(2, 5, 7, 8)]
    );
}

#[test]
fn a_marker_is_a_control_batch_in_kafkas_format() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, txn(0x0102, 3, 0), 1).unwrap();
    log.append_txn_marker(
        &TxnMarker {
            producer_id: 0x0102,
            producer_epoch: 3,
            coordinator_epoch: 9,
            commit: true,
        },
        4,
        T0 + 5,
    )
    .unwrap();
    let slice = log.read(1, 1 << 20, i64::MAX, true).unwrap().unwrap();
    let b = slice.read_to_vec().unwrap();
    assert_eq!(b.len(), 78);
    assert_eq!(be_i64(&b, 0), 1, "base offset");
    assert_eq!(be_i32(&b, 12), 4, "partition leader epoch");
    assert_eq!(
        i16::from_be_bytes([b[21], b[22]]),
        0x30,
        "transactional|control"
    );
    assert_eq!(be_i64(&b, 27), T0 + 5);
    assert_eq!(be_i64(&b, 43), 0x0102);
    assert_eq!(i16::from_be_bytes([b[51], b[52]]), 3);
    assert_eq!(be_i32(&b, 53), -1, "no sequence");
    assert_eq!(be_i32(&b, 57), 1, "one record");
    assert_eq!(parse_txn_marker(&b), Some((true, 9)));
    // kafka-protocol's decoder reads it as a control record.
    let decoded = common::decode_all(b);
    assert_eq!(decoded.len(), 1);
    assert!(decoded[0].control && decoded[0].transactional);
    assert_eq!(decoded[0].key.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(decoded[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 9][..]));
}

#[test]
fn markers_are_fenced_by_producer_and_coordinator_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, txn(1, 5, 0), 1).unwrap();
    let marker = |epoch, coordinator_epoch| TxnMarker {
        producer_id: 1,
        producer_epoch: epoch,
        coordinator_epoch,
        commit: false,
    };
    let err = log.append_txn_marker(&marker(4, 0), 1, T0).unwrap_err();
    assert_eq!(err.error_code(), ResponseError::InvalidProducerEpoch);
    // A coordinator that bumps the epoch on abort is accepted.
    log.append_txn_marker(&marker(6, 2), 1, T0).unwrap();
    assert_eq!(log.producers()[0].producer_epoch, 6);
    assert_eq!(log.producers()[0].coordinator_epoch, 2);
    let end = log.log_end_offset();
    let err = log.append_txn_marker(&marker(6, 1), 1, T0).unwrap_err();
    assert!(matches!(err, LogError::TransactionCoordinatorFenced(_)));
    assert_eq!(
        err.error_code(),
        ResponseError::TransactionCoordinatorFenced
    );
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn a_marker_without_a_transaction_is_written_and_completes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    let info = end_txn(&mut log, 9, 0, false).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 0));
    assert_eq!(log.log_end_offset(), 1);
    assert!(log.aborted_transactions(0, 1).unwrap().is_empty());
    assert!(!tmp.path().join("00000000000000000000.txnindex").exists());
    assert_eq!(log.producers()[0].current_txn_start_offset, -1);
}

#[test]
fn non_transactional_writes_inside_a_transaction_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, txn(1, 0, 0), 1).unwrap();
    let err = produce(&mut log, idem(1, 0, 1), 1).unwrap_err();
    assert!(matches!(err, LogError::InvalidTxnState(_)), "{err}");
    assert_eq!(err.error_code(), ResponseError::InvalidTxnState);
    produce(&mut log, txn(1, 0, 1), 1).unwrap();
    end_txn(&mut log, 1, 0, true).unwrap();
    // After the commit a new transaction starts at the next batch.
    produce(&mut log, idem(1, 0, 2), 1).unwrap();
    produce(&mut log, txn(1, 0, 3), 1).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(4));
}

#[test]
fn coordinator_appends_need_no_sequence() {
    // The group coordinator's TxnOffsetCommit: transactional, base sequence -1.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    let bytes = encode_producer_batch(&recs(2, T0), txn(3, 1, -1));
    let batches = riffle_log::validate_produce(bytes, &log.config().validation(), T0).unwrap();
    let info = log.append_as_coordinator(batches, 1, T0).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.duplicate),
        (0, 1, false)
    );
    assert_eq!(log.first_unstable_offset(), Some(0));
    let bytes = encode_producer_batch(&recs(1, T0), txn(3, 0, -1));
    let batches = riffle_log::validate_produce(bytes, &log.config().validation(), T0).unwrap();
    let err = log.append_as_coordinator(batches, 1, T0).unwrap_err();
    assert!(matches!(err, LogError::InvalidProducerEpoch(_)));
    end_txn(&mut log, 3, 1, true).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
}

#[test]
fn aborted_transactions_are_found_across_segment_rolls() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = small_config();
    config.segment_bytes = 300;
    let mut log = open(tmp.path(), config);
    // Producer 1 aborts a transaction that spans several segments while
    // producer 2 commits one and aborts another.
    produce(&mut log, txn(1, 0, 0), 3).unwrap(); // 0..=2
    produce(&mut log, txn(2, 0, 0), 3).unwrap(); // 3..=5
    for seq in 1..4 {
        produce(&mut log, txn(1, 0, seq * 3), 3).unwrap();
    }
    end_txn(&mut log, 2, 0, true).unwrap();
    let a1 = end_txn(&mut log, 1, 0, false).unwrap().first_offset;
    produce(&mut log, txn(2, 0, 3), 3).unwrap();
    let p2_first = log.log_end_offset() - 3;
    for _ in 0..3 {
        plain(&mut log, 3);
    }
    let a2 = end_txn(&mut log, 2, 0, false).unwrap().first_offset;
    let end = log.log_end_offset();
    assert!(log.segment_count() >= 4, "{:?}", log.segment_base_offsets());

    let t1 = aborted(1, 0, a1, p2_first.min(a1 + 1));
    let t2 = aborted(2, p2_first, a2, a2 + 1);
    assert_eq!(t1.last_stable_offset, a1 + 1);
    assert_eq!(log.aborted_transactions(0, end).unwrap(), vec![t1, t2]);
    assert_eq!(log.aborted_transactions(a1, end).unwrap(), vec![t1, t2]);
    assert_eq!(log.aborted_transactions(a1 + 1, end).unwrap(), vec![t2]);
    assert_eq!(log.aborted_transactions(0, p2_first).unwrap(), vec![t1]);
    assert_eq!(log.aborted_transactions(a2 + 1, end).unwrap(), vec![]);
    // The entry lives in the segment that holds the marker.
    let holder = *log
        .segment_base_offsets()
        .iter()
        .rfind(|b| **b <= a1)
        .unwrap();
    let bytes = fs::read(tmp.path().join(format!("{holder:020}.txnindex"))).unwrap();
    assert_eq!(&bytes[..34], &t1.to_bytes()[..]);
}

#[test]
fn txnindex_entries_are_kafkas_34_byte_format() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    plain(&mut log, 1);
    produce(&mut log, txn(0x0A0B_0C0D, 0, 0), 2).unwrap(); // 1..=2
    end_txn(&mut log, 0x0A0B_0C0D, 0, false).unwrap(); // 3
    let bytes = fs::read(tmp.path().join("00000000000000000000.txnindex")).unwrap();
    // version int16, producerId int64, firstOffset, lastOffset, lastStableOffset.
    let mut want = vec![0u8, 0];
    want.extend_from_slice(&0x0A0B_0C0Di64.to_be_bytes());
    want.extend_from_slice(&1i64.to_be_bytes());
    want.extend_from_slice(&3i64.to_be_bytes());
    want.extend_from_slice(&4i64.to_be_bytes());
    assert_eq!(bytes, want);
}

// ------------------------------------------------- snapshots and recovery

fn clean_state() -> LoadState {
    LoadState {
        recovery_point: 0,
        log_start_offset: 0,
        had_clean_shutdown: true,
        now_ms: T0,
    }
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    let mut out: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            riffle_log::producer_snapshot::offset_of(&e.unwrap().file_name().to_string_lossy())
        })
        .collect();
    out.sort_unstable();
    out
}

/// Everything the producer state decides, for comparing two logs.
fn observable(log: &Log) -> (Vec<riffle_log::ProducerView>, Option<i64>, Vec<AbortedTxn>) {
    (
        log.producers(),
        log.first_unstable_offset(),
        log.aborted_transactions(0, log.log_end_offset()).unwrap(),
    )
}

/// Two producers with transactions across several small segments: one
/// committed, one aborted, and one still open at the end.
fn busy_log(dir: &Path) -> Log {
    let mut config = small_config();
    config.segment_bytes = 300;
    let mut log = open(dir, config);
    produce(&mut log, idem(9, 1, 0), 2).unwrap();
    produce(&mut log, txn(1, 0, 0), 3).unwrap();
    produce(&mut log, txn(2, 0, 0), 3).unwrap();
    produce(&mut log, txn(1, 0, 3), 3).unwrap();
    end_txn(&mut log, 1, 0, false).unwrap();
    produce(&mut log, idem(9, 1, 2), 3).unwrap();
    produce(&mut log, txn(2, 0, 3), 3).unwrap();
    end_txn(&mut log, 2, 0, true).unwrap();
    produce(&mut log, txn(1, 0, 6), 2).unwrap();
    produce(&mut log, idem(9, 1, 5), 1).unwrap();
    produce(&mut log, txn(2, 0, 6), 1).unwrap();
    end_txn(&mut log, 2, 0, false).unwrap();
    plain(&mut log, 2);
    assert!(log.segment_count() >= 3);
    log
}

#[test]
fn the_snapshot_written_at_close_is_kafkas_format() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, idem(7, 2, 0), 3).unwrap(); // 0..=2, seq 0..=2
    produce(&mut log, txn(8, 1, 0), 2).unwrap(); // 3..=4, ongoing
    log.append_txn_marker(
        &TxnMarker {
            producer_id: 5,
            producer_epoch: 4,
            coordinator_epoch: 6,
            commit: true,
        },
        1,
        T0 + 1,
    )
    .unwrap(); // 5: a producer known only from a marker
    let leo = log.log_end_offset();
    log.close(T0).unwrap();
    let bytes = fs::read(tmp.path().join(format!("{leo:020}.snapshot"))).unwrap();

    // ProducerSnapshot v1: version, crc, entry count, then per producer:
    // id, epoch, last sequence, last offset, offset delta, timestamp,
    // coordinator epoch, current transaction's first offset.
    let mut want: Vec<u8> = Vec::new();
    want.extend_from_slice(&1i16.to_be_bytes());
    want.extend_from_slice(&[0; 4]);
    want.extend_from_slice(&3i32.to_be_bytes());
    let mut entry =
        |id: i64, epoch: i16, seq: i32, last: i64, delta: i32, ts: i64, ce: i32, txn: i64| {
            want.extend_from_slice(&id.to_be_bytes());
            want.extend_from_slice(&epoch.to_be_bytes());
            want.extend_from_slice(&seq.to_be_bytes());
            want.extend_from_slice(&last.to_be_bytes());
            want.extend_from_slice(&delta.to_be_bytes());
            want.extend_from_slice(&ts.to_be_bytes());
            want.extend_from_slice(&ce.to_be_bytes());
            want.extend_from_slice(&txn.to_be_bytes());
        };
    entry(5, 4, -1, -1, 0, T0 + 1, 6, -1);
    entry(7, 2, 2, 2, 2, T0, -1, -1);
    entry(8, 1, 1, 4, 1, T0, -1, 3);
    let crc = crc32c::crc32c(&want[6..]);
    want[2..6].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes, want);

    // Reopened from the snapshot alone (nothing to replay).
    let mut log = Log::open(tmp.path(), small_config(), clean_state()).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(3));
    assert_eq!(log.producers().len(), 3);
    // The last batch is still a duplicate after the restart.
    let dup = produce(&mut log, idem(7, 2, 0), 3).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.first_offset, dup.last_offset), (0, 2));
    produce(&mut log, idem(7, 2, 3), 1).unwrap();
}

#[test]
fn recovery_replays_the_log_after_the_newest_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let log = busy_log(tmp.path());
    let want = observable(&log);
    let config = log.config().clone();
    let snapshots = snapshot_offsets(tmp.path());
    assert!(!snapshots.is_empty(), "rolls take snapshots");
    assert!(
        snapshots.len() <= 3,
        "old snapshots are deleted: {snapshots:?}"
    );
    drop(log); // a crash: no close, no final snapshot
    let log = Log::open(tmp.path(), config.clone(), LoadState::unclean(T0)).unwrap();
    assert_eq!(observable(&log), want);
    drop(log);

    // Without any snapshot the whole log is replayed, and the rebuilt
    // state and transaction indexes are the same.
    for s in snapshot_offsets(tmp.path()) {
        fs::remove_file(tmp.path().join(format!("{s:020}.snapshot"))).unwrap();
    }
    for entry in fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txnindex") {
            fs::remove_file(path).unwrap();
        }
    }
    let log = Log::open(tmp.path(), config, LoadState::unclean(T0)).unwrap();
    assert_eq!(observable(&log), want);
    assert_eq!(
        snapshot_offsets(tmp.path()),
        vec![log.log_end_offset()],
        "a snapshot at the end once recovery made it durable"
    );
}

#[test]
fn a_corrupt_snapshot_is_deleted_and_an_older_one_or_the_log_used() {
    let tmp = tempfile::tempdir().unwrap();
    let log = busy_log(tmp.path());
    let want = observable(&log);
    let config = log.config().clone();
    let leo = log.log_end_offset();
    log.close(T0).unwrap();
    let snapshots = snapshot_offsets(tmp.path());
    assert_eq!(snapshots.last(), Some(&leo));
    let newest = tmp.path().join(format!("{leo:020}.snapshot"));

    // A flipped bit fails the CRC.
    let mut bytes = fs::read(&newest).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x10;
    fs::write(&newest, &bytes).unwrap();
    let log = Log::open(tmp.path(), config.clone(), clean_state()).unwrap();
    assert_eq!(observable(&log), want);
    log.close(T0).unwrap();

    // A short file, a future version, and garbage in every snapshot.
    for (i, s) in snapshot_offsets(tmp.path()).iter().enumerate() {
        let path = tmp.path().join(format!("{s:020}.snapshot"));
        let content: Vec<u8> = match i % 3 {
            0 => vec![0, 1, 2],
            1 => {
                let mut b = fs::read(&path).unwrap();
                b[1] = 2;
                b
            }
            _ => vec![0xAB; 64],
        };
        fs::write(&path, content).unwrap();
    }
    let log = Log::open(tmp.path(), config, clean_state()).unwrap();
    assert_eq!(observable(&log), want);
}

#[test]
fn truncation_reloads_producer_state() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, txn(1, 0, 0), 2).unwrap(); // 0..=1
    produce(&mut log, idem(2, 0, 0), 1).unwrap(); // 2
    end_txn(&mut log, 1, 0, false).unwrap(); // 3
    produce(&mut log, idem(2, 0, 1), 1).unwrap(); // 4
    log.roll(T0).unwrap();
    produce(&mut log, idem(2, 0, 2), 1).unwrap(); // 5
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(
        log.aborted_transactions(0, 6).unwrap(),
        vec![aborted(1, 0, 3, 4)]
    );

    // A follower cuts its log before the abort marker: the transaction is
    // open again and its index entry is gone.
    log.truncate_to(3, T0).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert!(log.aborted_transactions(0, 3).unwrap().is_empty());
    assert_eq!(
        fs::metadata(tmp.path().join("00000000000000000000.txnindex"))
            .unwrap()
            .len(),
        0
    );
    assert!(snapshot_offsets(tmp.path()).iter().all(|s| *s <= 3));
    // Producer 2's batches after offset 3 are forgotten: its sequence 1 is
    // new again, not a duplicate.
    let again = produce(&mut log, idem(2, 0, 1), 1).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.first_offset, 3);

    log.truncate_fully_and_start_at(10, T0).unwrap();
    assert!(log.producers().is_empty());
    assert_eq!(log.first_unstable_offset(), None);
    assert!(snapshot_offsets(tmp.path()).is_empty());
}

#[test]
fn a_torn_marker_reopens_its_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    produce(&mut log, txn(1, 0, 0), 2).unwrap(); // 0..=1
    end_txn(&mut log, 1, 0, false).unwrap(); // 2
    let config = log.config().clone();
    log.close(T0).unwrap();
    // The marker's last bytes never reached the disk.
    let seg = tmp.path().join("00000000000000000000.log");
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let log = Log::open(tmp.path(), config, LoadState::unclean(T0)).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.first_unstable_offset(), Some(0));
    assert!(log.aborted_transactions(0, 2).unwrap().is_empty());
    assert!(
        !snapshot_offsets(tmp.path()).contains(&3),
        "the snapshot past the end is gone"
    );
}

#[test]
fn a_torn_txnindex_is_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let log = busy_log(tmp.path());
    let want = observable(&log);
    let config = log.config().clone();
    log.close(T0).unwrap();
    let mut damaged = 0;
    for entry in fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txnindex") {
            let len = fs::metadata(&path).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len - 10)
                .unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    let log = Log::open(tmp.path(), config, clean_state()).unwrap();
    assert_eq!(observable(&log), want);
}

#[test]
fn retention_deletes_snapshots_below_the_log_start() {
    let tmp = tempfile::tempdir().unwrap();
    let log = busy_log(tmp.path());
    let mut log = log;
    let bases = log.segment_base_offsets();
    let start = bases[bases.len() - 1];
    let txnindexes = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".txnindex"))
            .collect()
    };
    assert!(!txnindexes(tmp.path()).is_empty());
    log.advance_log_start_offset(start, T0).unwrap();
    assert!(snapshot_offsets(tmp.path()).iter().all(|s| *s >= start));
    // The transaction indexes went with their segments.
    for name in txnindexes(tmp.path()) {
        assert!(
            name >= format!("{start:020}"),
            "{name} survived its segment"
        );
    }
    // The open transaction of producer 1 started below the new log start:
    // the LSO is clamped to the log start.
    assert_eq!(
        log.last_stable_offset(log.log_end_offset()),
        start.max(log.first_unstable_offset().unwrap())
    );
}

// ----------------------------------------------------------------- compaction

fn compacted_config() -> LogConfig {
    let mut c = small_config();
    c.set("cleanup.policy", "compact").unwrap();
    c.segment_bytes = 400;
    c
}

fn produce_kv(log: &mut Log, p: Producer, kvs: &[(&str, &str)]) -> AppendInfo {
    let recs: Vec<Rec> = kvs.iter().map(|(k, v)| Rec::kv(k, v, T0)).collect();
    let bytes = encode_producer_batch(&recs, p);
    let batches = riffle_log::validate_produce(bytes, &log.config().validation(), T0).unwrap();
    log.append_as_leader(batches, 1, T0).unwrap()
}

fn plain_kv(log: &mut Log, kvs: &[(&str, &str)]) -> AppendInfo {
    let recs: Vec<Rec> = kvs.iter().map(|(k, v)| Rec::kv(k, v, T0)).collect();
    let b = validated(&recs, Compression::None, log.config());
    log.append_as_leader(b, 1, T0).unwrap()
}

/// A batch as (base offset, record count, is control).
type BatchSummary = (i64, i32, bool);

/// Every batch in the log, and every record as (key, value).
fn contents(log: &Log) -> (Vec<BatchSummary>, Vec<(String, String)>) {
    let mut batches = Vec::new();
    let mut records = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20, i64::MAX, true).unwrap() {
        let bytes = slice.read_to_vec().unwrap();
        for item in riffle_log::batch::BatchIter::new(&bytes) {
            let (_, h, b) = item.unwrap();
            batches.push((h.base_offset, h.record_count, h.is_control()));
            if h.is_control() {
                continue;
            }
            let section = &b[riffle_log::batch::HEADER_BYTES..];
            for r in riffle_log::records::RecordIter::new(section, h.record_count).unwrap() {
                let r = r.unwrap();
                records.push((
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
            }
        }
        offset = slice.last_offset + 1;
    }
    (batches, records)
}

#[test]
fn compaction_removes_aborted_records_and_compacts_committed_ones() {
    // Kafka's LogCleaner: aborted records go whatever their keys; committed
    // transactional records are compacted by key; markers stay.
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), compacted_config());
    let aborted_batch = produce_kv(
        &mut log,
        txn(1, 0, 0),
        &[("a", "aborted"), ("u", "aborted")],
    );
    produce_kv(&mut log, txn(2, 0, 0), &[("c", "c1"), ("d", "d1")]);
    end_txn(&mut log, 1, 0, false).unwrap();
    end_txn(&mut log, 2, 0, true).unwrap();
    plain_kv(&mut log, &[("c", "c2")]);
    for i in 0..12 {
        plain_kv(&mut log, &[("filler", &format!("f{i}"))]);
    }
    let want = observable(&log);
    let end = log.log_end_offset();
    let stats = log.compact(T0, end).unwrap();
    assert!(stats.segments_written > 0);

    let (batches, records) = contents(&log);
    assert!(records.iter().all(|(_, v)| v != "aborted"), "{records:?}");
    assert!(!records.contains(&("c".into(), "c1".into())), "superseded");
    assert!(
        records.contains(&("d".into(), "d1".into())),
        "latest committed"
    );
    assert!(records.contains(&("c".into(), "c2".into())));
    assert_eq!(
        batches.iter().filter(|b| b.2).count(),
        2,
        "both markers kept"
    );
    // Producer 1's last batch stays, emptied, so its epoch and sequence
    // survive a rebuild from the log (Kafka's RETAIN_EMPTY).
    assert!(batches.contains(&(aborted_batch.first_offset, 0, false)));
    // The transaction index still lists the abort.
    assert_eq!(observable(&log), want);

    // A rebuild from the whole compacted log gives the same state.
    let config = log.config().clone();
    drop(log);
    for s in snapshot_offsets(tmp.path()) {
        fs::remove_file(tmp.path().join(format!("{s:020}.snapshot"))).unwrap();
    }
    let mut log = Log::open(tmp.path(), config, LoadState::unclean(T0)).unwrap();
    assert_eq!(observable(&log), want);
    assert!(
        produce_kv(
            &mut log,
            txn(1, 0, 0),
            &[("a", "aborted"), ("u", "aborted")]
        )
        .duplicate
    );
}

#[test]
fn compaction_stops_at_the_first_open_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), compacted_config());
    for i in 0..6 {
        plain_kv(&mut log, &[("x", &format!("early{i}"))]);
    }
    let open_txn = produce_kv(&mut log, txn(1, 0, 0), &[("t", "open")]).first_offset;
    for i in 0..12 {
        plain_kv(&mut log, &[("x", &format!("late{i}"))]);
    }
    let end = log.log_end_offset();
    assert_eq!(log.last_stable_offset(end), open_txn);
    log.compact(T0, end).unwrap();
    let (_, records) = contents(&log);
    // Nothing at or after the open transaction was cleaned: every late
    // value is still there, and the transaction's record too.
    for i in 0..12 {
        assert!(records.contains(&("x".into(), format!("late{i}"))));
    }
    assert!(records.contains(&("t".into(), "open".into())));

    // Once it commits, the rest can be cleaned.
    end_txn(&mut log, 1, 0, true).unwrap();
    for i in 0..12 {
        plain_kv(&mut log, &[("filler", &format!("f{i}"))]);
    }
    let end = log.log_end_offset();
    log.compact(T0, end).unwrap();
    let (_, records) = contents(&log);
    let xs: Vec<&String> = records
        .iter()
        .filter(|(k, _)| k == "x")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(xs, vec!["late11"]);
    assert!(records.contains(&("t".into(), "open".into())));
}
