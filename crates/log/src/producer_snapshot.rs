//! Producer state snapshots: `<20-digit offset>.snapshot` files holding the
//! producer table as of that offset (every batch below it applied), in
//! Kafka's `ProducerSnapshot` format version 1, so that opening a log
//! replays only the batches after the newest snapshot.
//!
//! Layout (big-endian; Kafka's `ProducerSnapshot.json` without flexible
//! versions):
//!
//! ```text
//! 0 version int16 (1)   2 crc uint32 (CRC-32C of bytes 6..end)   6 count int32
//! then `count` entries of 46 bytes:
//!  0 producerId int64   8 epoch int16   10 lastSequence int32   14 lastOffset int64
//! 22 offsetDelta int32 26 timestamp int64 34 coordinatorEpoch int32
//! 38 currentTxnFirstOffset int64 (-1 when none)
//! ```
//!
//! Only the last batch of each producer is stored (as in Kafka), so after a
//! restart duplicates are detected against that one batch until the
//! producer writes more. Files are written to `<name>.tmp`, fsynced and
//! renamed, so a crash leaves either the old set of snapshots or the new one;
//! a file that still fails its CRC is deleted by the log when it opens.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{LogError, Result};
use crate::producer::{BatchMetadata, ProducerEntry};

pub const SNAPSHOT_VERSION: i16 = 1;
pub const SUFFIX: &str = ".snapshot";
const CRC_AT: usize = 2;
const ENTRIES_AT: usize = 6;
const HEADER_BYTES: usize = 10;
/// Size of one producer entry.
pub const ENTRY_BYTES: usize = 46;

/// The snapshot file for `offset` in `dir`.
pub fn path_for(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

/// The offset a snapshot file name stands for.
pub fn offset_of(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Encodes producer entries in Kafka's snapshot format.
pub fn encode<'a>(entries: impl IntoIterator<Item = &'a ProducerEntry>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    let mut count = 0i32;
    for e in entries {
        b.extend_from_slice(&e.producer_id.to_be_bytes());
        b.extend_from_slice(&e.epoch.to_be_bytes());
        b.extend_from_slice(&e.last_seq().to_be_bytes());
        b.extend_from_slice(&e.last_data_offset().to_be_bytes());
        b.extend_from_slice(&e.last_offset_delta().to_be_bytes());
        b.extend_from_slice(&e.last_timestamp.to_be_bytes());
        b.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        b.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        count += 1;
    }
    b[ENTRIES_AT..ENTRIES_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[ENTRIES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Decodes a snapshot, or says why it is not one.
pub fn decode(b: &[u8]) -> std::result::Result<Vec<ProducerEntry>, String> {
    if b.len() < HEADER_BYTES {
        return Err(format!("{} bytes are too few for a snapshot", b.len()));
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let stored = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
    let computed = crc32c::crc32c(&b[ENTRIES_AT..]);
    if stored != computed {
        return Err(format!(
            "CRC {stored:#010x} does not match the computed {computed:#010x}"
        ));
    }
    let count = i32::from_be_bytes([b[6], b[7], b[8], b[9]]);
    let expected = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(ENTRY_BYTES))
        .and_then(|n| n.checked_add(HEADER_BYTES));
    if expected != Some(b.len()) {
        return Err(format!(
            "{count} entries do not fit the {} bytes of the file",
            b.len()
        ));
    }
    let i16_at = |at: usize| i16::from_be_bytes([b[at], b[at + 1]]);
    let i32_at = |at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let i64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        i64::from_be_bytes(a)
    };
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at = HEADER_BYTES + i * ENTRY_BYTES;
        let last_offset = i64_at(at + 14);
        let timestamp = i64_at(at + 26);
        let current_txn = i64_at(at + 38);
        let mut entry = ProducerEntry::empty(i64_at(at));
        entry.epoch = i16_at(at + 8);
        entry.last_timestamp = timestamp;
        entry.coordinator_epoch = i32_at(at + 34);
        entry.current_txn_first_offset = (current_txn >= 0).then_some(current_txn);
        if last_offset >= 0 {
            entry.batches.push_back(BatchMetadata {
                last_seq: i32_at(at + 10),
                last_offset,
                offset_delta: i32_at(at + 22),
                timestamp,
            });
        }
        out.push(entry);
    }
    Ok(out)
}

/// The offsets of the snapshot files in `dir`.
pub fn list(dir: &Path) -> Result<BTreeSet<i64>> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(LogError::io(dir))? {
        let entry = entry.map_err(LogError::io(dir))?;
        if let Some(offset) = offset_of(&entry.file_name().to_string_lossy()) {
            out.insert(offset);
        }
    }
    Ok(out)
}

/// Writes a snapshot atomically: temporary file, fsync, rename, fsync of
/// the directory.
pub fn write(dir: &Path, offset: i64, bytes: &[u8]) -> Result<()> {
    let path = path_for(dir, offset);
    let tmp = dir.join(format!("{offset:020}{SUFFIX}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(LogError::io(&tmp))?;
    f.write_all(bytes).map_err(LogError::io(&tmp))?;
    f.sync_all().map_err(LogError::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(LogError::io(&tmp))?;
    checkpoint::sync_dir(dir)
}

/// Deletes the snapshot at `offset`, if any.
pub fn delete(dir: &Path, offset: i64) -> Result<()> {
    let path = path_for(dir, offset);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(offset_of("00000000000000000042.snapshot"), Some(42));
        assert_eq!(offset_of("0000000000000000042.snapshot"), None);
        assert_eq!(offset_of("00000000000000000042.snapshot.tmp"), None);
    }

    #[test]
    fn corrupt_snapshots_are_refused() {
        let mut e = ProducerEntry::empty(5);
        e.epoch = 1;
        let good = encode([&e]);
        assert_eq!(good.len(), 10 + 46);
        assert_eq!(decode(&good).unwrap(), vec![e]);
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err());
        }
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped).is_err());
    }
}
