//! Helpers shared by the integration tests: batches built by an independent
//! encoder (the `kafka-protocol` crate's `RecordBatchEncoder`) and decoded by
//! its decoder.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riffle_log::{LogConfig, ValidatedBatches};

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    pub fn kv(key: &str, value: &str, timestamp: i64) -> Rec {
        Rec {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            timestamp,
            headers: vec![],
        }
    }
    pub fn tombstone(key: &str, timestamp: i64) -> Rec {
        Rec {
            key: Some(key.as_bytes().to_vec()),
            value: None,
            timestamp,
            headers: vec![],
        }
    }
}

/// Encodes `recs` as one produced batch (base offset 0) with kafka-protocol.
pub fn encode_batch(recs: &[Rec], compression: Compression) -> BytesMut {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = IndexMap::new();
            for (k, v) in &r.headers {
                headers.insert(StrBytes::from_string(k.clone()), v.clone().map(Bytes::from));
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset minus
                // sequence is constant.
                sequence: i as i32,
                timestamp: r.timestamp,
                key: r.key.clone().map(Bytes::from),
                value: r.value.clone().map(Bytes::from),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf
}

/// Who produced a batch: producer id, epoch, first sequence, and whether
/// it is part of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

/// Encodes `recs` as one idempotent (or transactional) produced batch with
/// kafka-protocol, with base sequence `p.base_sequence`.
pub fn encode_producer_batch(recs: &[Rec], p: Producer) -> BytesMut {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: p.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: p.id,
            producer_epoch: p.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder derives the batch's base sequence from the first
            // record; the header is what the log sees.
            sequence: p.base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf
}

/// Validates an encoded batch against `config` (now = its first timestamp).
pub fn validated(recs: &[Rec], compression: Compression, config: &LogConfig) -> ValidatedBatches {
    let now = recs.first().map_or(0, |r| r.timestamp);
    riffle_log::validate_produce(encode_batch(recs, compression), &config.validation(), now)
        .expect("valid batch")
}

/// Decodes every record of `bytes` with kafka-protocol's decoder.
pub fn decode_all(bytes: Vec<u8>) -> Vec<Record> {
    let mut buf = Bytes::from(bytes);
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("decode")
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// Reads every record from `from` to the log end with kafka-protocol.
pub fn read_all(log: &riffle_log::Log, from: i64) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let Some(slice) = log.read(offset, 1 << 20, i64::MAX, true).expect("read") else {
            break;
        };
        let records = decode_all(slice.read_to_vec().expect("slice"));
        offset = slice.last_offset + 1;
        out.extend(records);
    }
    out
}

pub fn small_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.segment_bytes = 4096;
    c.index_interval_bytes = 256;
    c
}

/// Big-endian readers for checking raw file bytes in tests.
pub fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
pub fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
pub fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The leader epoch cache as (epoch, start offset) pairs.
pub fn epochs(log: &riffle_log::Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}
