//! The magic-v2 record batch: header layout, checksum, framing checks, the
//! validation the broker runs on every produced batch, and the in-place writes
//! that assign offsets.
//!
//! Layout (big-endian), as Kafka's `DefaultRecordBatch` documents it:
//!
//! ```text
//!  0 baseOffset int64        8 batchLength int32       12 partitionLeaderEpoch int32
//! 16 magic int8             17 crc uint32 (CRC-32C of bytes 21..end)
//! 21 attributes int16       23 lastOffsetDelta int32   27 baseTimestamp int64
//! 35 maxTimestamp int64     43 producerId int64        51 producerEpoch int16
//! 53 baseSequence int32     57 recordCount int32       61 records
//! ```
//!
//! Base offset and partition leader epoch are outside the checksummed range,
//! which is what lets a leader assign them in place without recomputing it.

use bytes::BytesMut;

use crate::compression::{self, Compression};
use crate::error::BatchError;
use crate::records::RecordIter;

/// Bytes before the part of a batch that `batchLength` counts.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, records excluded.
pub const HEADER_BYTES: usize = 61;
/// The only batch format Riffle stores.
pub const MAGIC_V2: i8 = 2;
/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;
/// The smallest serialized record: length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, one byte each.
pub const RECORD_BYTES_MIN: usize = 7;

const BATCH_LENGTH_MIN: usize = HEADER_BYTES - LOG_OVERHEAD;

pub(crate) mod pos {
    pub const BASE_OFFSET: usize = 0;
    pub const LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
}

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// How a topic stamps its records (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

pub(crate) fn get_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn get_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn get_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the fixed header from the first [`HEADER_BYTES`] of `b`. It
    /// checks nothing but the length of `b`; see [`check_batch`].
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_BYTES {
            return None;
        }
        Some(BatchHeader {
            base_offset: get_i64(b, pos::BASE_OFFSET),
            batch_length: get_i32(b, pos::LENGTH),
            partition_leader_epoch: get_i32(b, pos::PARTITION_LEADER_EPOCH),
            magic: b[pos::MAGIC] as i8,
            crc: get_i32(b, pos::CRC) as u32,
            attributes: get_i16(b, pos::ATTRIBUTES),
            last_offset_delta: get_i32(b, pos::LAST_OFFSET_DELTA),
            base_timestamp: get_i64(b, pos::BASE_TIMESTAMP),
            max_timestamp: get_i64(b, pos::MAX_TIMESTAMP),
            producer_id: get_i64(b, pos::PRODUCER_ID),
            producer_epoch: get_i16(b, pos::PRODUCER_EPOCH),
            base_sequence: get_i32(b, pos::BASE_SEQUENCE),
            record_count: get_i32(b, pos::RECORD_COUNT),
        })
    }

    /// Size of the whole batch on disk and on the wire.
    pub fn size_bytes(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }
    /// Saturating: base offset and leader epoch are outside the CRC, so a
    /// corrupt file can hold any value there; [`check_batch`] refuses
    /// offsets that do not fit.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    /// The compression codec id (attribute bits 0-2).
    pub fn compression_id(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.compression_id())
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// CRC-32C over the checksummed part of a whole batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[pos::ATTRIBUTES..])
}

/// Checks the framing and checksum of the batch at the start of `buf` and
/// returns its header. This is the check for bytes read back from disk or
/// received from a leader: it does not look inside the records.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let size = frame_size(buf)?;
    let magic = buf[pos::MAGIC] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::InvalidRecord(format!(
            "record batch magic v{magic} is not supported, only v2"
        )));
    }
    let header = BatchHeader::parse(buf).ok_or_else(|| {
        BatchError::Corrupt(format!("batch of {size} bytes is shorter than its header"))
    })?;
    let actual = compute_crc(&buf[..size]);
    if actual != header.crc {
        return Err(BatchError::Corrupt(format!(
            "batch at base offset {} has CRC {:#010x}, computed {:#010x}",
            header.base_offset, header.crc, actual
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::InvalidRecord(format!(
            "negative lastOffsetDelta {}",
            header.last_offset_delta
        )));
    }
    if header.record_count < 0 {
        return Err(BatchError::InvalidRecord(format!(
            "negative record count {}",
            header.record_count
        )));
    }
    let offsets_fit = header.base_offset >= 0
        && header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1)
            .is_some();
    if !offsets_fit {
        return Err(BatchError::InvalidRecord(format!(
            "offsets {} + {} are out of range",
            header.base_offset, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Reads the length field of the batch at the start of `buf` and returns the
/// batch's whole size, checking that it is all there.
pub fn frame_size(buf: &[u8]) -> Result<usize, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(BatchError::Corrupt(format!(
            "{} trailing bytes are too few for a batch (at least {})",
            buf.len(),
            HEADER_BYTES
        )));
    }
    let length = get_i32(buf, pos::LENGTH);
    if length < BATCH_LENGTH_MIN as i32 {
        return Err(BatchError::Corrupt(format!(
            "batch length {length} is below the minimum {BATCH_LENGTH_MIN}"
        )));
    }
    let size = length as usize + LOG_OVERHEAD;
    if size > buf.len() {
        return Err(BatchError::Corrupt(format!(
            "batch of {size} bytes is truncated to {} bytes",
            buf.len()
        )));
    }
    Ok(size)
}

/// Iterates over the batches of a buffer, checking framing and CRC of each.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, position: 0 }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    /// The batch's position in the buffer, its header, and its bytes.
    type Item = Result<(usize, BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        match check_batch(rest) {
            Ok(header) => {
                let at = self.position;
                let size = header.size_bytes();
                self.position += size;
                Some(Ok((at, header, &rest[..size])))
            }
            Err(e) => {
                self.position = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// What the validation of produced batches needs to know about the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationConfig {
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `segment.bytes`: the largest record set accepted in one append.
    pub segment_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// How far in the past a CreateTime timestamp may be, in ms
    /// (`message.timestamp.before.max.ms`, bounded by the older
    /// `message.timestamp.difference.max.ms`).
    pub timestamp_before_max_ms: i64,
    /// How far in the future a CreateTime timestamp may be, in ms.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compacted: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        crate::config::LogConfig::default().validation()
    }
}

/// One batch inside a [`ValidatedBatches`] buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSpan {
    pub position: usize,
    pub header: BatchHeader,
}

/// Record batches that passed [`validate_produce`]: the only input a leader
/// append accepts, so unvalidated bytes cannot reach the log.
#[derive(Debug)]
pub struct ValidatedBatches {
    pub(crate) buf: BytesMut,
    pub(crate) batches: Vec<BatchSpan>,
}

impl ValidatedBatches {
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }
    pub fn record_count(&self) -> i64 {
        self.batches
            .iter()
            .map(|b| i64::from(b.header.record_count))
            .sum()
    }
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }
    /// The validated bytes (offsets not yet assigned).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Validates a produced record set, as a partition leader does before an
/// append (Kafka's `UnifiedLog.analyzeAndValidateRecords` and
/// `LogValidator`). Every refusal maps to one Kafka error code.
///
/// Uncompressed batches are checked record by record. Compressed batches are
/// checked at the header level only, unless the topic is compacted (every
/// record needs a key), because Riffle does not decompress on the produce
/// path; see `docs/decisions/0002-log-format-and-validation.md`.
pub fn validate_produce(
    buf: BytesMut,
    config: &ValidationConfig,
    now_ms: i64,
) -> Result<ValidatedBatches, BatchError> {
    if buf.len() > config.segment_bytes {
        return Err(BatchError::RecordListTooLarge {
            size_bytes: buf.len(),
            max_bytes: config.segment_bytes,
        });
    }
    if buf.is_empty() {
        return Err(BatchError::InvalidRecord(
            "a produce request must carry at least one record batch".into(),
        ));
    }
    let mut batches = Vec::new();
    let mut position = 0;
    while position < buf.len() {
        let rest = &buf[position..];
        let size = frame_size(rest)?;
        if size > config.max_message_bytes {
            return Err(BatchError::MessageTooLarge {
                size_bytes: size,
                max_bytes: config.max_message_bytes,
            });
        }
        let header = check_batch(rest)?;
        validate_batch(&rest[..size], &header, config, now_ms)?;
        batches.push(BatchSpan { position, header });
        position += size;
    }
    Ok(ValidatedBatches { buf, batches })
}

fn validate_batch(
    batch: &[u8],
    header: &BatchHeader,
    config: &ValidationConfig,
    now_ms: i64,
) -> Result<(), BatchError> {
    if header.base_offset != 0 {
        return Err(BatchError::InvalidRecord(format!(
            "the base offset of a produced batch must be 0, not {}",
            header.base_offset
        )));
    }
    if header.is_control() {
        return Err(BatchError::InvalidRecord(
            "clients may not write control batches".into(),
        ));
    }
    if header.record_count <= 0 {
        return Err(BatchError::InvalidRecord(format!(
            "record count {} is not positive",
            header.record_count
        )));
    }
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
        return Err(BatchError::InvalidRecord(format!(
            "lastOffsetDelta {} does not match record count {}",
            header.last_offset_delta, header.record_count
        )));
    }
    if header.is_transactional() && !header.has_producer_id() {
        return Err(BatchError::InvalidRecord(
            "a transactional batch needs a producer id".into(),
        ));
    }
    let codec = header
        .compression()
        .map_err(|e| BatchError::InvalidRecord(e.to_string()))?;
    let check_time = config.timestamp_type == TimestampType::CreateTime;
    if check_time {
        check_timestamp(header.base_timestamp, config, now_ms)?;
        check_timestamp(header.max_timestamp, config, now_ms)?;
    }
    let section = &batch[HEADER_BYTES..];
    let decompressed;
    let records = match codec {
        Compression::None => section,
        _ if config.compacted => {
            decompressed = compression::decompress(
                codec,
                section,
                compression::decompressed_bytes_max(config.max_message_bytes),
            )?;
            &decompressed[..]
        }
        _ => return Ok(()),
    };
    let mut seen = 0i32;
    let mut last_delta = -1i64;
    for record in RecordIter::new(records, header.record_count)? {
        let record = record?;
        let delta = i64::from(record.offset_delta);
        if delta <= last_delta || delta > i64::from(header.last_offset_delta) {
            return Err(BatchError::InvalidRecord(format!(
                "record offset delta {delta} is out of order or past lastOffsetDelta {}",
                header.last_offset_delta
            )));
        }
        last_delta = delta;
        if check_time {
            let ts = header.base_timestamp.saturating_add(record.timestamp_delta);
            check_timestamp(ts, config, now_ms)?;
        }
        if config.compacted && record.key.is_none() {
            return Err(BatchError::InvalidRecord(
                "a compacted topic cannot accept a record without a key".into(),
            ));
        }
        seen += 1;
    }
    debug_assert_eq!(seen, header.record_count);
    Ok(())
}

fn check_timestamp(ts: i64, config: &ValidationConfig, now_ms: i64) -> Result<(), BatchError> {
    if ts == NO_TIMESTAMP {
        return Ok(());
    }
    if ts < 0 {
        return Err(BatchError::InvalidTimestamp(format!(
            "timestamp {ts} is negative"
        )));
    }
    if now_ms.saturating_sub(ts) > config.timestamp_before_max_ms {
        return Err(BatchError::InvalidTimestamp(format!(
            "timestamp {ts} is more than message.timestamp.before.max.ms={} before now ({now_ms})",
            config.timestamp_before_max_ms
        )));
    }
    if ts.saturating_sub(now_ms) > config.timestamp_after_max_ms {
        return Err(BatchError::InvalidTimestamp(format!(
            "timestamp {ts} is more than message.timestamp.after.max.ms={} after now ({now_ms})",
            config.timestamp_after_max_ms
        )));
    }
    Ok(())
}

/// Writes base offset and partition leader epoch into a batch in place. The
/// CRC does not cover either, so it stays valid.
pub(crate) fn set_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[pos::BASE_OFFSET..pos::BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[pos::PARTITION_LEADER_EPOCH..pos::PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks a batch LogAppendTime with `now_ms` as its max timestamp and
/// recomputes the CRC, which covers both fields.
pub(crate) fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = get_i16(batch, pos::ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    batch[pos::ATTRIBUTES..pos::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[pos::MAX_TIMESTAMP..pos::MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[pos::CRC..pos::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}
