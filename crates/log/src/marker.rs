//! Transaction markers: the control batch that ends a transaction on a
//! partition, in Kafka's exact format (`EndTransactionMarker`,
//! `ControlRecordType`, `MemoryRecords.withEndTransactionMarker`).
//!
//! A marker is a batch with attributes transactional|control, the
//! producer's id and epoch, base sequence -1, and one record:
//!
//! ```text
//! key   = version int16 (0), type int16 (0 = ABORT, 1 = COMMIT)
//! value = version int16 (0), coordinatorEpoch int32
//! ```

use crate::batch::{self, pos, BatchHeader, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};
use crate::compression::{self, Compression};
use crate::producer::{MarkerInfo, NO_SEQUENCE};
use crate::records::{put_varint, put_varlong, RecordIter};

/// Control record type of an ABORT marker.
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a COMMIT marker.
pub const CONTROL_TYPE_COMMIT: i16 = 1;
const ATTRIBUTES_MARKER: i16 = (1 << 4) | (1 << 5);

/// A request to end a producer's transaction on this partition (one
/// partition of a WriteTxnMarkers request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    /// COMMIT when true, ABORT when false.
    pub commit: bool,
}

/// Encodes `marker` as one control batch at `offset`, stamped with
/// `leader_epoch` and `timestamp_ms`, its CRC computed.
pub fn encode_marker_batch(
    marker: &TxnMarker,
    offset: i64,
    leader_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let control_type = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut body = vec![0u8]; // record attributes
    put_varlong(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, 4);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&control_type.to_be_bytes());
    put_varint(&mut body, 6);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    put_varint(&mut body, 0); // header count
    let mut record = Vec::with_capacity(body.len() + 1);
    put_varint(&mut record, body.len() as i32);
    record.extend_from_slice(&body);

    let mut b = Vec::with_capacity(HEADER_BYTES + record.len());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_BYTES - LOG_OVERHEAD + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&leader_epoch.to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    b.extend_from_slice(&ATTRIBUTES_MARKER.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&marker.producer_id.to_be_bytes());
    b.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    b.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    debug_assert_eq!(b.len(), HEADER_BYTES);
    b.extend_from_slice(&record);
    let crc = batch::compute_crc(&b);
    b[pos::CRC..pos::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert!(batch::check_batch(&b).is_ok());
    b
}

/// Reads the transaction marker of a whole control batch (its header and
/// records, as read from the log): `Some((commit, coordinator_epoch))` for a
/// COMMIT or ABORT marker, `None` for anything else (a data batch, another
/// control type such as a KRaft record, an emptied control batch, or bytes
/// that do not parse). The CRC is not checked: the log checked it when the
/// batch was written. Never panics, whatever the bytes.
pub fn parse_txn_marker(batch: &[u8]) -> Option<(bool, i32)> {
    let header = BatchHeader::parse(batch)?;
    let info = marker_of(batch, &header)?;
    Some((info.commit, info.coordinator_epoch))
}

/// The marker of a control batch whose header is already parsed.
pub(crate) fn marker_of(batch: &[u8], header: &BatchHeader) -> Option<MarkerInfo> {
    if !header.is_control() || header.record_count < 1 {
        return None;
    }
    let end = header.size_bytes().min(batch.len());
    let section = batch.get(HEADER_BYTES..end)?;
    let codec = header.compression().ok()?;
    let owned;
    let records = if codec == Compression::None {
        section
    } else {
        owned =
            compression::decompress(codec, section, compression::decompressed_bytes_max(1 << 20))
                .ok()?;
        &owned[..]
    };
    let record = RecordIter::new(records, header.record_count)
        .ok()?
        .next()?
        .ok()?;
    let key = record.key?;
    let value = record.value?;
    if key.len() < 4 || value.len() < 6 {
        return None;
    }
    let key_version = i16::from_be_bytes([key[0], key[1]]);
    let control_type = i16::from_be_bytes([key[2], key[3]]);
    let value_version = i16::from_be_bytes([value[0], value[1]]);
    if key_version < 0 || value_version < 0 {
        return None;
    }
    let commit = match control_type {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return None,
    };
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Some(MarkerInfo {
        commit,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_batches_match_kafkas_layout() {
        let m = TxnMarker {
            producer_id: 0x0102_0304_0506_0708,
            producer_epoch: 9,
            coordinator_epoch: 77,
            commit: true,
        };
        let b = encode_marker_batch(&m, 42, 5, 1_700_000_000_000);
        // Kafka: RECORD_BATCH_OVERHEAD (61) + END_TXN_SCHEMA_RECORD_SIZE (17).
        assert_eq!(b.len(), 78);
        let h = batch::check_batch(&b).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 5);
        assert_eq!(h.attributes, 0x30);
        assert_eq!(h.base_sequence, -1);
        assert_eq!((h.producer_id, h.producer_epoch), (m.producer_id, 9));
        assert_eq!(h.record_count, 1);
        // The record: length 16, attributes, ts delta, offset delta,
        // key (len 4: 0, 1), value (len 6: 0, 77), no headers.
        assert_eq!(
            &b[61..],
            &[32, 0, 0, 0, 8, 0, 0, 0, 1, 12, 0, 0, 0, 0, 0, 77, 0][..]
        );
        assert_eq!(parse_txn_marker(&b), Some((true, 77)));
        let abort = encode_marker_batch(&TxnMarker { commit: false, ..m }, 0, 0, 0);
        assert_eq!(parse_txn_marker(&abort), Some((false, 77)));
    }

    #[test]
    fn parsing_never_panics_on_cut_or_garbage_bytes() {
        let b = encode_marker_batch(
            &TxnMarker {
                producer_id: 1,
                producer_epoch: 0,
                coordinator_epoch: 3,
                commit: false,
            },
            0,
            0,
            0,
        );
        for len in 0..b.len() {
            assert_eq!(parse_txn_marker(&b[..len]), None, "cut at {len}");
        }
        let mut other = b.clone();
        other[61 + 8] = 2; // LEADER_CHANGE
        assert_eq!(parse_txn_marker(&other), None);
        assert_eq!(parse_txn_marker(&[0xff; 100]), None);
    }
}
