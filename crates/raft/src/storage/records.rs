//! The records inside a batch, as the state machine and the snapshot
//! reader need them.
//!
//! Decoding uses `riffle_log`'s record walker, which checks every length
//! against the bytes present before it allocates, so a corrupt batch is an
//! error and never a huge allocation. Compressed batches are decompressed
//! with an output cap.

use bytes::Bytes;
use riffle_log::batch::{BatchHeader, HEADER_BYTES};
use riffle_log::compression::{self, Compression};
use riffle_log::records::RecordIter;

/// The most a batch's records may decompress to (64 times the largest
/// batch KRaft writes, 8 MiB).
const DECOMPRESSED_BYTES_MAX: usize = 512 << 20;

/// One record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: i64,
    /// The control record type (LeaderChange 2, SnapshotHeader 3,
    /// SnapshotFooter 4, ...) when the batch is a control batch.
    pub control_type: Option<i16>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// The records of one whole batch whose framing and CRC `header` was
/// checked against (`riffle_log::batch::check_batch`). The error says what
/// is wrong with the records.
pub fn decode_batch(header: &BatchHeader, batch: &[u8]) -> Result<Vec<LogRecord>, String> {
    let at = header.base_offset;
    let section = batch
        .get(HEADER_BYTES..)
        .ok_or_else(|| format!("batch at offset {at} is shorter than its header"))?;
    let codec = header
        .compression()
        .map_err(|e| format!("batch at offset {at}: {e}"))?;
    let decompressed;
    let section = if codec == Compression::None {
        section
    } else {
        decompressed = compression::decompress(codec, section, DECOMPRESSED_BYTES_MAX)
            .map_err(|e| format!("batch at offset {at}: {e}"))?;
        &decompressed[..]
    };
    let control = header.is_control();
    let mut out = Vec::new();
    for record in
        RecordIter::new(section, header.record_count).map_err(|e| format!("batch at {at}: {e}"))?
    {
        let record = record.map_err(|e| format!("batch at offset {at}: {e}"))?;
        let offset = at + i64::from(record.offset_delta);
        if record.offset_delta < 0 || offset > header.last_offset() {
            return Err(format!(
                "batch at offset {at} holds a record at offset delta {} past its last offset {}",
                record.offset_delta,
                header.last_offset()
            ));
        }
        let control_type = if control {
            Some(control_type(record.key).map_err(|e| format!("offset {offset}: {e}"))?)
        } else {
            None
        };
        out.push(LogRecord {
            offset,
            control_type,
            key: record.key.map(Bytes::copy_from_slice),
            value: record.value.map(Bytes::copy_from_slice),
        });
    }
    Ok(out)
}

/// A control record's key: version (int16, 0) and type (int16).
fn control_type(key: Option<&[u8]>) -> Result<i16, String> {
    match key {
        Some(k) if k.len() >= 4 => {
            let version = i16::from_be_bytes([k[0], k[1]]);
            if version < 0 {
                return Err(format!("control record key version {version}"));
            }
            Ok(i16::from_be_bytes([k[2], k[3]]))
        }
        Some(k) => Err(format!("control record key of {} bytes", k.len())),
        None => Err("control record without a key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch;
    use riffle_log::batch::check_batch;

    #[test]
    fn decodes_data_and_control_batches() {
        let values = [Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        let data = batch::data_batch(10, 3, 1000, &values);
        let h = check_batch(&data).expect("valid");
        let records = decode_batch(&h, &data).expect("decodes");
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [10, 11]
        );
        assert!(records.iter().all(|r| r.control_type.is_none()));
        assert_eq!(records[1].value.as_deref(), Some(&b"bc"[..]));

        let control = batch::leader_change_batch(12, 3, 1000, 1, &[1, 2, 3], &[1, 2]);
        let h = check_batch(&control).expect("valid");
        let records = decode_batch(&h, &control).expect("decodes");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].offset, 12);
        assert_eq!(records[0].control_type, Some(batch::CONTROL_LEADER_CHANGE));
    }
}
