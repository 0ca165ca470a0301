//! Records of the internal topic `__transaction_state`, in Apache Kafka's
//! byte format, so that a transaction log copied from a Kafka cluster loads
//! in Riffle and the other way round.
//!
//! One record per change of a transactional id: the key is
//! `TransactionLogKey` (an int16 key version, 0, then the transactional id)
//! and the value `TransactionLogValue` (an int16 value version, then the
//! id's producer id and epoch, timeout, state, partitions and timestamps).
//! A null value is a tombstone: the transactional id expired and is gone.
//! The schemas are Kafka's
//! `transaction-coordinator/src/main/resources/common/message/TransactionLog{Key,Value}.json`.
//!
//! What is read and written:
//! - Value versions 0 and 1 are read. Version 1 is "flexible" (compact
//!   lengths, tagged fields) and adds three tagged fields for KIP-890's
//!   transaction version 2: the previous and next producer ids and the
//!   client's transaction version. Unknown tags are skipped.
//! - Version 0 is written, as Kafka 3.x and 4.0 do while the cluster's
//!   `transaction.version` is below 2; the tagged fields are then dropped.
//! - The state is an int8 ([`TxnState::id`]). Kafka never writes `Dead` (6;
//!   an expired id is a tombstone) nor `PrepareEpochFence` (7; a fence is
//!   written as `PrepareAbort`), but its reader accepts both, and so does
//!   [`decode`]; the coordinator decides what to do with them.
//! - The partitions are written grouped by topic, topics and partitions in
//!   ascending order (Kafka's order is a hash set's), and as a null array in
//!   the `Empty` state, as Kafka does. A null array reads as no partitions.
//! - A key with a version other than 0 decodes to [`TxnRecord::Other`]:
//!   Kafka's loader skips such records with a warning.
//!
//! The primitives are `group::records`' byte reader and writer (kafka-protocol's
//! encoders are crate-private); the errors are that module's [`RecordError`],
//! plus [`TxnRecordError::UnknownState`].
//! Record batches are built and read with `group::records`' functions,
//! re-exported here: [`build_batch`] for appends, [`read_records`] (or
//! [`read_log`], which also tells the offset to read next) for loading a
//! partition. The records' `(key, value)` go as they are to the
//! coordinator's `load_partition`, which decodes them.

use std::collections::BTreeSet;

use bytes::Bytes;
use thiserror::Error;

pub use crate::group::records::{
    build_batch, read_log, read_records, LogRead, RecordError, STRING_BYTES_MAX,
};
use crate::group::records::{value_version, Reader, Writer};

/// Kafka's name for the transaction log topic.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// The only key version `TransactionLogKey` has.
pub const KEY_VERSION: i16 = 0;
/// The value version written (Kafka's, below `transaction.version` 2).
pub const VALUE_VERSION_WRITTEN: i16 = 0;
const VALUE_VERSION_MAX: i16 = 1;
/// The first flexible version of `TransactionLogValue`.
const FLEXIBLE_VERSION_MIN: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// The states of a transactional id, with the ids Kafka stores them under
/// and the names DescribeTransactions and ListTransactions report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction: after InitProducerId, or a new id.
    Empty,
    /// Partitions were added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) is stored; the commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence is stored; abort markers are
    /// being written.
    PrepareAbort,
    /// The commit markers are written.
    CompleteCommit,
    /// The abort markers are written.
    CompleteAbort,
    /// Kafka's transient state of an id being expired; never stored.
    Dead,
    /// Kafka's transient state of a producer being fenced; never stored.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The int8 stored in `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state of a name, compared exactly as Kafka's `fromName` does
    /// (ListTransactions filters are case-sensitive).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A transactional id's state as stored (`TransactionLogValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition); none in the `Empty` state.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_timestamp_ms: i64,
    /// -1 when no transaction has started.
    pub start_timestamp_ms: i64,
    /// Version 1 only (tag 0); -1 otherwise.
    pub previous_producer_id: i64,
    /// Version 1 only (tag 1); -1 otherwise.
    pub next_producer_id: i64,
    /// Version 1 only (tag 2); 0 otherwise.
    pub client_transaction_version: i16,
}

/// One decoded `__transaction_state` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRecord {
    /// A transactional id's state; `None` is a tombstone.
    Txn {
        transactional_id: String,
        value: Option<TxnLogValue>,
    },
    /// A key version Kafka does not define (a leftover of an aborted
    /// upgrade, says Kafka's loader, which skips it).
    Other { key_version: i16 },
}

/// Why bytes from the log are not a transaction log record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxnRecordError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("TransactionLogValue.transactionStatus: {0} is not a transaction state")]
    UnknownState(i8),
}

// ---------------------------------------------------------------------------
// Encoding.

/// The key of a transactional id's record.
///
/// # Panics
///
/// When the id is longer than [`STRING_BYTES_MAX`]; callers refuse such
/// ids first.
pub fn key(transactional_id: &str) -> Bytes {
    let mut w = Writer::new(false);
    w.i16(KEY_VERSION);
    w.string(transactional_id, "TransactionLogKey.transactionalId");
    w.finish()
}

/// A transactional id's state at [`VALUE_VERSION_WRITTEN`]: the version-1
/// tagged fields are not written.
///
/// # Panics
///
/// When a topic name is longer than [`STRING_BYTES_MAX`].
pub fn value(value: &TxnLogValue) -> Bytes {
    write_value(value, VALUE_VERSION_WRITTEN)
}

/// `TransactionLogValue` at version 0 or 1. Only 0 is written outside
/// tests.
fn write_value(v: &TxnLogValue, version: i16) -> Bytes {
    assert!((0..=VALUE_VERSION_MAX).contains(&version));
    let mut w = Writer::new(version >= FLEXIBLE_VERSION_MIN);
    w.i16(version);
    w.i64(v.producer_id);
    w.i16(v.producer_epoch);
    w.i32(v.timeout_ms);
    w.i8(v.state.id());
    if v.state == TxnState::Empty {
        w.null_array();
    } else {
        let topics = group_by_topic(&v.partitions);
        w.array_len(topics.len());
        for (topic, ids) in topics {
            w.string(topic, "PartitionsSchema.topic");
            w.array_len(ids.len());
            for id in ids {
                w.i32(id);
            }
            w.tagged_fields(&[]);
        }
    }
    w.i64(v.last_update_timestamp_ms);
    w.i64(v.start_timestamp_ms);
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if v.previous_producer_id != -1 {
        tags.push((
            TAG_PREVIOUS_PRODUCER_ID,
            v.previous_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if v.next_producer_id != -1 {
        tags.push((
            TAG_NEXT_PRODUCER_ID,
            v.next_producer_id.to_be_bytes().to_vec(),
        ));
    }
    if v.client_transaction_version != 0 {
        tags.push((
            TAG_CLIENT_TRANSACTION_VERSION,
            v.client_transaction_version.to_be_bytes().to_vec(),
        ));
    }
    w.tagged_fields(&tags);
    w.finish()
}

/// The partitions grouped by topic, both in ascending order.
pub fn group_by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, p) in partitions {
        match out.last_mut() {
            Some((t, ids)) if *t == topic.as_str() => ids.push(*p),
            _ => out.push((topic.as_str(), vec![*p])),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Decoding.

/// Decodes one `__transaction_state` record: its key and its value, `None`
/// for a tombstone. Never panics, whatever the bytes.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, TxnRecordError> {
    let mut k = Reader::new(key, false);
    let key_version = k.i16("key version")?;
    if key_version != KEY_VERSION {
        return Ok(TxnRecord::Other { key_version });
    }
    let transactional_id = k.string("TransactionLogKey.transactionalId")?;
    let value = value.map(read_value).transpose()?;
    Ok(TxnRecord::Txn {
        transactional_id,
        value,
    })
}

fn read_value(bytes: &[u8]) -> Result<TxnLogValue, TxnRecordError> {
    let version = value_version(bytes, "TransactionLogValue", VALUE_VERSION_MAX)?;
    let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VERSION_MIN);
    let producer_id = r.i64("TransactionLogValue.producerId")?;
    let producer_epoch = r.i16("TransactionLogValue.producerEpoch")?;
    let timeout_ms = r.i32("TransactionLogValue.transactionTimeoutMs")?;
    let status = r.i8("TransactionLogValue.transactionStatus")?;
    let state = TxnState::from_id(status).ok_or(TxnRecordError::UnknownState(status))?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = r.opt_array_len("TransactionLogValue.transactionPartitions")? {
        for _ in 0..topics {
            let topic = r.string("PartitionsSchema.topic")?;
            let ids = r.array_len("PartitionsSchema.partitionIds")?;
            for _ in 0..ids {
                partitions.insert((topic.clone(), r.i32("PartitionsSchema.partitionIds")?));
            }
            r.skip_tagged_fields("PartitionsSchema")?;
        }
    }
    let last_update_timestamp_ms = r.i64("TransactionLogValue.transactionLastUpdateTimestampMs")?;
    let start_timestamp_ms = r.i64("TransactionLogValue.transactionStartTimestampMs")?;
    let mut value = TxnLogValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_timestamp_ms,
        start_timestamp_ms,
        previous_producer_id: -1,
        next_producer_id: -1,
        client_transaction_version: 0,
    };
    r.tagged_fields("TransactionLogValue", |tag, mut field| {
        match tag {
            TAG_PREVIOUS_PRODUCER_ID => {
                value.previous_producer_id = field.i64("TransactionLogValue.previousProducerId")?;
            }
            TAG_NEXT_PRODUCER_ID => {
                value.next_producer_id = field.i64("TransactionLogValue.nextProducerId")?;
            }
            TAG_CLIENT_TRANSACTION_VERSION => {
                value.client_transaction_version =
                    field.i16("TransactionLogValue.clientTransactionVersion")?;
            }
            _ => return Ok(()),
        }
        field.end("TransactionLogValue tagged field")
    })?;
    Ok(value)
}

// ---------------------------------------------------------------------------
// Partitioning.

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `Utils.abs(transactionalId.hashCode) % partitions`, the same function as
/// for groups in `__consumer_offsets`.
///
/// # Panics
///
/// When `partitions` is not positive.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::records::partition_for(transactional_id, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cat(pieces: &[&[u8]]) -> Vec<u8> {
        pieces.concat()
    }

    fn ongoing() -> TxnLogValue {
        TxnLogValue {
            producer_id: 1000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a", 1), ("b", 0), ("a", 0)]
                .into_iter()
                .map(|(t, p)| (t.to_string(), p))
                .collect(),
            last_update_timestamp_ms: 5_000,
            start_timestamp_ms: 4_000,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        }
    }

    // --- golden bytes, written from the JSON schemas -----------------------

    #[test]
    fn key_v0_golden() {
        let expected = [0x00, 0x00, 0x00, 0x03, b't', b'x', b'n']; // version 0, "txn"
        assert_eq!(key("txn"), &expected[..]);
        assert_eq!(
            decode(&expected, None).unwrap(),
            TxnRecord::Txn {
                transactional_id: "txn".into(),
                value: None
            }
        );
    }

    #[test]
    fn value_v0_ongoing_golden() {
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x00],                         // value version 0
            &[0, 0, 0, 0, 0, 0, 0x03, 0xE8],       // producerId 1000
            &[0x00, 0x03],                         // producerEpoch 3
            &[0x00, 0x00, 0xEA, 0x60],             // transactionTimeoutMs 60000
            &[0x01],                               // transactionStatus: Ongoing
            &[0x00, 0x00, 0x00, 0x02],             // transactionPartitions: 2 topics
            &[0x00, 0x01], b"a",                   // topic "a"
            &[0x00, 0x00, 0x00, 0x02],             // partitionIds: 2
            &[0, 0, 0, 0], &[0, 0, 0, 1],          // 0, 1
            &[0x00, 0x01], b"b",                   // topic "b"
            &[0x00, 0x00, 0x00, 0x01], &[0, 0, 0, 0], // partitionIds: [0]
            &[0, 0, 0, 0, 0, 0, 0x13, 0x88],       // lastUpdateTimestampMs 5000
            &[0, 0, 0, 0, 0, 0, 0x0F, 0xA0],       // startTimestampMs 4000
        ]);
        assert_eq!(value(&ongoing()), expected);
        assert_eq!(read_value(&expected).unwrap(), ongoing());
    }

    #[test]
    fn value_v0_empty_has_null_partitions_golden() {
        let v = TxnLogValue {
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            ..ongoing()
        };
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x00],
            &[0, 0, 0, 0, 0, 0, 0x03, 0xE8],
            &[0x00, 0x03],
            &[0x00, 0x00, 0xEA, 0x60],
            &[0x00],                               // Empty
            &[0xFF, 0xFF, 0xFF, 0xFF],             // partitions: null
            &[0, 0, 0, 0, 0, 0, 0x13, 0x88],
            &[0xFF; 8],                            // startTimestampMs -1
        ]);
        assert_eq!(value(&v), expected);
        assert_eq!(read_value(&expected).unwrap(), v);
    }

    #[test]
    fn a_complete_state_has_an_empty_not_null_array() {
        let v = TxnLogValue {
            state: TxnState::CompleteCommit,
            partitions: BTreeSet::new(),
            ..ongoing()
        };
        let bytes = value(&v);
        assert_eq!(&bytes[17..21], &[0, 0, 0, 0]);
    }

    #[test]
    fn value_v1_with_tagged_fields_golden() {
        let v = TxnLogValue {
            previous_producer_id: 999,
            next_producer_id: 1001,
            client_transaction_version: 2,
            ..ongoing()
        };
        #[rustfmt::skip]
        let expected = cat(&[
            &[0x00, 0x01],                         // value version 1 (flexible)
            &[0, 0, 0, 0, 0, 0, 0x03, 0xE8],       // producerId
            &[0x00, 0x03],                         // producerEpoch
            &[0x00, 0x00, 0xEA, 0x60],             // transactionTimeoutMs
            &[0x01],                               // Ongoing
            &[0x03],                               // partitions: compact, 2 + 1
            &[0x02], b"a",                         // compact string "a"
            &[0x03], &[0, 0, 0, 0], &[0, 0, 0, 1], // compact array [0, 1]
            &[0x00],                               // PartitionsSchema tagged fields: none
            &[0x02], b"b",
            &[0x02], &[0, 0, 0, 0],
            &[0x00],
            &[0, 0, 0, 0, 0, 0, 0x13, 0x88],       // lastUpdate
            &[0, 0, 0, 0, 0, 0, 0x0F, 0xA0],       // start
            &[0x03],                               // three tagged fields
            &[0x00, 0x08], &[0, 0, 0, 0, 0, 0, 0x03, 0xE7], // tag 0 previousProducerId 999
            &[0x01, 0x08], &[0, 0, 0, 0, 0, 0, 0x03, 0xE9], // tag 1 nextProducerId 1001
            &[0x02, 0x02], &[0x00, 0x02],          // tag 2 clientTransactionVersion 2
        ]);
        assert_eq!(write_value(&v, 1), expected);
        assert_eq!(read_value(&expected).unwrap(), v);
        // Version 0 cannot hold the tagged fields: they are dropped.
        assert_eq!(value(&v), value(&ongoing()));
    }

    #[test]
    fn v1_unknown_tags_are_skipped_and_known_tags_sized_exactly() {
        #[rustfmt::skip]
        let base = cat(&[
            &[0x00, 0x01],
            &[0, 0, 0, 0, 0, 0, 0, 7],
            &[0x00, 0x00],
            &[0x00, 0x00, 0x03, 0xE8],
            &[0x04],                               // CompleteCommit
            &[0x01],                               // no topics
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 1],
        ]);
        let unknown = cat(&[&base, &[0x01, 0x09, 0x02, 0xAB, 0xCD]]);
        let v = read_value(&unknown).unwrap();
        assert_eq!(v.state, TxnState::CompleteCommit);
        assert_eq!(v.previous_producer_id, -1);
        let short_known = cat(&[&base, &[0x01, 0x00, 0x04, 0, 0, 0, 1]]);
        assert!(matches!(
            read_value(&short_known),
            Err(TxnRecordError::Record(RecordError::Truncated { .. }))
        ));
        let long_known = cat(&[&base, &[0x01, 0x02, 0x03, 0, 1, 9]]);
        assert!(matches!(
            read_value(&long_known),
            Err(TxnRecordError::Record(RecordError::BadLength { .. }))
        ));
    }

    #[test]
    fn every_state_id_reads_and_others_are_errors() {
        for s in TxnState::ALL {
            let v = TxnLogValue {
                state: s,
                partitions: if s == TxnState::Empty {
                    BTreeSet::new()
                } else {
                    ongoing().partitions
                },
                ..ongoing()
            };
            assert_eq!(read_value(&value(&v)).unwrap(), v);
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        let mut bad = value(&ongoing()).to_vec();
        bad[16] = 8;
        assert_eq!(read_value(&bad), Err(TxnRecordError::UnknownState(8)));
        assert_eq!(TxnState::from_name("ongoing"), None);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            decode(&[0x00], None),
            Err(TxnRecordError::Record(RecordError::Truncated { .. }))
        ));
        assert_eq!(
            decode(&[0x00, 0x05, 0xFF], None).unwrap(),
            TxnRecord::Other { key_version: 5 }
        );
        assert!(matches!(
            decode(&[0x00, 0x00, 0xFF, 0xFF], None),
            Err(TxnRecordError::Record(RecordError::UnexpectedNull { .. }))
        ));
        assert!(matches!(
            decode(&[0x00, 0x00, 0x00, 0x01, 0xFF], None),
            Err(TxnRecordError::Record(RecordError::NotUtf8 { .. }))
        ));
        assert!(matches!(
            read_value(&[0x00, 0x02]),
            Err(TxnRecordError::Record(RecordError::BadVersion {
                version: 2,
                ..
            }))
        ));
        // A partition count the bytes cannot hold.
        let mut huge = value(&ongoing()).to_vec();
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            read_value(&huge),
            Err(TxnRecordError::Record(RecordError::BadLength { .. }))
        ));
        // Null partition ids.
        let mut null_ids = value(&ongoing()).to_vec();
        null_ids[24..28].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            read_value(&null_ids),
            Err(TxnRecordError::Record(RecordError::UnexpectedNull { .. }))
        ));
    }

    #[test]
    fn partitioning_matches_kafka() {
        // Java: Math.abs("my-txn".hashCode()) % 50, the hash being
        // -1061187895.
        assert_eq!(partition_for("my-txn", 50), 45);
        assert_eq!(partition_for("txn", 50), 6);
    }

    #[test]
    fn records_go_through_batches() {
        let records = vec![(key("t"), Some(value(&ongoing()))), (key("t"), None)];
        let read = read_records(&build_batch(&records, 1)).unwrap();
        let decoded: Vec<TxnRecord> = read
            .iter()
            .map(|(_, k, v)| decode(k, v.as_deref()).unwrap())
            .collect();
        assert_eq!(
            decoded,
            vec![
                TxnRecord::Txn {
                    transactional_id: "t".into(),
                    value: Some(ongoing())
                },
                TxnRecord::Txn {
                    transactional_id: "t".into(),
                    value: None
                },
            ]
        );
    }

    // --- properties ----------------------------------------------------------

    fn arb_value() -> impl Strategy<Value = TxnLogValue> {
        (
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
            proptest::sample::select(TxnState::ALL.to_vec()),
            proptest::collection::btree_set((".{0,6}", any::<i32>()), 0..6),
            any::<i64>(),
            any::<i64>(),
            (
                prop_oneof![Just(-1i64), any::<i64>()],
                prop_oneof![Just(-1i64), any::<i64>()],
                prop_oneof![Just(0i16), any::<i16>()],
            ),
        )
            .prop_map(
                |(pid, epoch, timeout, state, partitions, last, start, tags)| TxnLogValue {
                    producer_id: pid,
                    producer_epoch: epoch,
                    timeout_ms: timeout,
                    state,
                    partitions: if state == TxnState::Empty {
                        BTreeSet::new()
                    } else {
                        partitions
                    },
                    last_update_timestamp_ms: last,
                    start_timestamp_ms: start,
                    previous_producer_id: tags.0,
                    next_producer_id: tags.1,
                    client_transaction_version: tags.2,
                },
            )
    }

    proptest! {
        #[test]
        fn records_round_trip(id in ".{0,12}", v in arb_value(), version in 0i16..=1) {
            let expected = if version == 0 {
                TxnLogValue {
                    previous_producer_id: -1,
                    next_producer_id: -1,
                    client_transaction_version: 0,
                    ..v.clone()
                }
            } else {
                v.clone()
            };
            prop_assert_eq!(
                decode(&key(&id), Some(&write_value(&v, version)[..])).unwrap(),
                TxnRecord::Txn { transactional_id: id.clone(), value: Some(expected) }
            );
            prop_assert_eq!(
                decode(&key(&id), None).unwrap(),
                TxnRecord::Txn { transactional_id: id, value: None }
            );
        }

        #[test]
        fn decode_never_panics(
            key in proptest::collection::vec(any::<u8>(), 0..32),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        ) {
            let _ = decode(&key, value.as_deref());
        }

        #[test]
        fn damaged_values_never_panic(v in arb_value(), version in 0i16..=1, at in any::<prop::sample::Index>(), xor in 1u8..) {
            let mut bytes = write_value(&v, version).to_vec();
            let at = at.index(bytes.len());
            bytes[at] ^= xor;
            let _ = read_value(&bytes);
        }

        #[test]
        fn truncated_values_are_errors(v in arb_value(), version in 0i16..=1, cut in any::<prop::sample::Index>()) {
            let bytes = write_value(&v, version);
            let cut = cut.index(bytes.len());
            prop_assert!(read_value(&bytes[..cut]).is_err());
        }
    }
}
