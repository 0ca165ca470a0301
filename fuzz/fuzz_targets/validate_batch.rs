//! Produce validation on arbitrary bytes: it must never panic, and whatever
//! it accepts must be whole, CRC-valid batches whose records all parse.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use riffle_log::batch::{check_batch, compute_crc, validate_produce, BatchIter, ValidationConfig, HEADER_BYTES};
use riffle_log::records::RecordIter;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let mut config = ValidationConfig::default();
    config.compacted = mode & 1 == 1;
    if mode & 2 == 2 {
        config.timestamp_before_max_ms = 60_000;
        config.timestamp_after_max_ms = 60_000;
    }
    let now = 1_700_000_000_000;
    let mut buf = BytesMut::from(bytes);
    if mode & 4 == 4 {
        // Fix up each frame's CRC so that mutations reach the record walker
        // instead of stopping at the checksum.
        let mut at = 0;
        while buf.len() >= at + HEADER_BYTES {
            let len = i32::from_be_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
            let Some(size) = usize::try_from(len).ok().and_then(|l| l.checked_add(12)) else { break };
            if size < HEADER_BYTES || at + size > buf.len() {
                break;
            }
            let crc = compute_crc(&buf[at..at + size]);
            buf[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
            at += size;
        }
    }
    if let Ok(valid) = validate_produce(buf, &config, now) {
        let mut total = 0;
        for item in BatchIter::new(valid.as_bytes()) {
            let (_, header, batch) = item.expect("an accepted batch re-checks");
            assert_eq!(check_batch(batch).expect("valid"), header);
            if header.compression_id() == 0 {
                let n = RecordIter::new(&batch[HEADER_BYTES..], header.record_count)
                    .expect("count was checked")
                    .map(|r| r.expect("records were checked"))
                    .count();
                assert_eq!(n as i32, header.record_count);
            }
            total += batch.len();
        }
        assert_eq!(total, valid.size_bytes());
    }
});
