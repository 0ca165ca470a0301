//! Produce validation: each malformed or disallowed batch is refused with
//! the Kafka error code Kafka uses for it, and never panics.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use bytes::BytesMut;
use common::{encode_batch, Rec};
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use riffle_log::batch::{compute_crc, validate_produce, TimestampType, ValidationConfig};
use riffle_log::LogConfig;

const NOW: i64 = 1_700_000_000_000;

fn recs(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::kv(&format!("k{i}"), &format!("value-{i}"), NOW))
        .collect()
}

fn code(buf: BytesMut, config: &ValidationConfig) -> Result<(), ResponseError> {
    validate_produce(buf, config, NOW)
        .map(|_| ())
        .map_err(|e| e.error_code())
}

fn refix_crc(buf: &mut BytesMut) {
    let crc = compute_crc(buf);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn a_well_formed_batch_passes_with_every_codec() {
    let config = ValidationConfig::default();
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let v = validate_produce(encode_batch(&recs(5), c), &config, NOW).unwrap();
        assert_eq!(v.record_count(), 5, "{c:?}");
        assert_eq!(v.batch_count(), 1);
    }
}

#[test]
fn crc_mismatch_is_corrupt_message() {
    let mut b = encode_batch(&recs(3), Compression::None);
    let last = b.len() - 1;
    b[last] ^= 0x01;
    assert_eq!(
        code(b, &ValidationConfig::default()),
        Err(ResponseError::CorruptMessage)
    );
}

#[test]
fn framing_errors_are_corrupt_message() {
    let good = encode_batch(&recs(3), Compression::None);
    let config = ValidationConfig::default();
    // Truncated at every length shorter than the batch.
    for cut in 1..good.len() {
        assert_eq!(
            code(BytesMut::from(&good[..cut]), &config),
            Err(ResponseError::CorruptMessage),
            "cut {cut}"
        );
    }
    // A length field below the header size.
    let mut b = good.clone();
    b[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(code(b, &config), Err(ResponseError::CorruptMessage));
    // A length field announcing 2 GiB.
    let mut b = good.clone();
    b[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(code(b, &config), Err(ResponseError::CorruptMessage));
    // Trailing garbage after a whole batch.
    let mut b = good.clone();
    b.extend_from_slice(&[1, 2, 3]);
    assert_eq!(code(b, &config), Err(ResponseError::CorruptMessage));
}

#[test]
fn record_count_that_cannot_fit_is_refused_before_allocating() {
    let mut b = encode_batch(&recs(2), Compression::None);
    b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    refix_crc(&mut b);
    assert_eq!(
        code(b, &ValidationConfig::default()),
        Err(ResponseError::CorruptMessage)
    );
}

#[test]
fn format_rule_violations_are_invalid_record() {
    let config = ValidationConfig::default();
    type Mutation = Box<dyn Fn(&mut BytesMut)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("magic 1", Box::new(|b| b[16] = 1)),
        (
            "non-zero base offset",
            Box::new(|b| b[0..8].copy_from_slice(&7i64.to_be_bytes())),
        ),
        ("control batch", Box::new(|b| b[22] |= 0x20)),
        (
            "count above lastOffsetDelta + 1",
            Box::new(|b| b[57..61].copy_from_slice(&4i32.to_be_bytes())),
        ),
        (
            "lastOffsetDelta too large",
            Box::new(|b| b[23..27].copy_from_slice(&5i32.to_be_bytes())),
        ),
        (
            "transactional without producer id",
            Box::new(|b| b[22] |= 0x10),
        ),
        (
            "zero records",
            Box::new(|b| {
                b[57..61].copy_from_slice(&0i32.to_be_bytes());
                b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
            }),
        ),
    ];
    for (name, mutate) in cases {
        let mut b = encode_batch(&recs(3), Compression::None);
        mutate(&mut b);
        refix_crc(&mut b);
        let got = code(b, &config);
        assert!(
            got == Err(ResponseError::InvalidRecord) || got == Err(ResponseError::CorruptMessage),
            "{name}: {got:?}"
        );
        if name != "count above lastOffsetDelta + 1" && name != "zero records" {
            assert_eq!(got, Err(ResponseError::InvalidRecord), "{name}");
        }
    }
}

#[test]
fn empty_produce_is_invalid_record() {
    assert_eq!(
        code(BytesMut::new(), &ValidationConfig::default()),
        Err(ResponseError::InvalidRecord)
    );
}

#[test]
fn compacted_topics_refuse_null_keys_even_when_compressed() {
    let mut lc = LogConfig::default();
    lc.set("cleanup.policy", "compact").unwrap();
    let config = lc.validation();
    let mut rs = recs(3);
    rs[1].key = None;
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        assert_eq!(
            code(encode_batch(&rs, c), &config),
            Err(ResponseError::InvalidRecord),
            "{c:?}"
        );
        assert_eq!(code(encode_batch(&recs(3), c), &config), Ok(()), "{c:?}");
    }
}

#[test]
fn timestamps_outside_the_window_are_invalid_timestamp() {
    let mut lc = LogConfig::default();
    lc.set("message.timestamp.difference.max.ms", "60000")
        .unwrap();
    let config = lc.validation();
    let old = vec![Rec::kv("k", "v", NOW - 120_000)];
    let future = vec![Rec::kv("k", "v", NOW + 120_000)];
    let ok = vec![Rec::kv("k", "v", NOW - 30_000)];
    assert_eq!(
        code(encode_batch(&old, Compression::None), &config),
        Err(ResponseError::InvalidTimestamp)
    );
    assert_eq!(
        code(encode_batch(&future, Compression::Lz4), &config),
        Err(ResponseError::InvalidTimestamp)
    );
    assert_eq!(code(encode_batch(&ok, Compression::None), &config), Ok(()));
    // A record inside an uncompressed batch is checked too.
    let mut mixed = recs(2);
    mixed[1].timestamp = NOW - 120_000;
    assert_eq!(
        code(encode_batch(&mixed, Compression::None), &config),
        Err(ResponseError::InvalidTimestamp)
    );
    // LogAppendTime topics ignore producer timestamps.
    let mut lat = config.clone();
    lat.timestamp_type = TimestampType::LogAppendTime;
    assert_eq!(code(encode_batch(&old, Compression::None), &lat), Ok(()));
    // The separate before/after limits apply on their own.
    let mut lc = LogConfig::default();
    lc.set("message.timestamp.after.max.ms", "1000").unwrap();
    assert_eq!(
        code(encode_batch(&future, Compression::None), &lc.validation()),
        Err(ResponseError::InvalidTimestamp)
    );
    assert_eq!(
        code(encode_batch(&old, Compression::None), &lc.validation()),
        Ok(())
    );
}

#[test]
fn size_limits_are_message_too_large_and_record_list_too_large() {
    let big = vec![Rec::kv("k", &"x".repeat(2000), NOW)];
    let mut config = ValidationConfig::default();
    config.max_message_bytes = 1000;
    assert_eq!(
        code(encode_batch(&big, Compression::None), &config),
        Err(ResponseError::MessageTooLarge)
    );
    let b = encode_batch(&big, Compression::None);
    config.max_message_bytes = b.len();
    assert_eq!(
        code(b.clone(), &config),
        Ok(()),
        "exactly max.message.bytes is accepted"
    );
    config.max_message_bytes = b.len() - 1;
    assert_eq!(
        code(b, &config),
        Err(ResponseError::MessageTooLarge),
        "one byte over is refused"
    );
    let mut config = ValidationConfig::default();
    config.segment_bytes = 500;
    assert_eq!(
        code(encode_batch(&big, Compression::None), &config),
        Err(ResponseError::RecordListTooLarge)
    );
}

#[test]
fn random_bytes_never_panic() {
    let config = ValidationConfig::default();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let good = encode_batch(&recs(4), Compression::None);
    for round in 0..5000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = good.clone();
        let flips = 1 + (seed % 4) as usize;
        for f in 0..flips {
            let at = ((seed >> (8 * f)) as usize) % b.len();
            b[at] ^= (seed >> 32) as u8 | 1;
        }
        if round % 3 == 0 {
            refix_crc(&mut b);
        }
        let _ = validate_produce(b, &config, NOW);
    }
}
