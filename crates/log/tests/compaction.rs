//! Compaction (`cleanup.policy=compact`): the latest record per key survives
//! at its original offset, tombstones go after `delete.retention.ms`, and a
//! crash during the segment swap loses nothing.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{read_all, validated, Rec};
use kafka_protocol::records::Compression;
use riffle_log::{LoadState, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;

fn compacted_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.set("cleanup.policy", "compact").unwrap();
    c.segment_bytes = 2048;
    c.index_interval_bytes = 128;
    c
}

/// Appends `rounds` of updates to `keys` keys; returns key -> (offset, value)
/// of the latest write.
fn fill(
    log: &mut Log,
    keys: usize,
    rounds: usize,
    codec: Compression,
) -> BTreeMap<String, (i64, Option<Vec<u8>>)> {
    let mut latest = BTreeMap::new();
    for round in 0..rounds {
        let recs: Vec<Rec> = (0..keys)
            .map(|k| {
                if round == rounds - 1 && k % 5 == 0 {
                    Rec::tombstone(&format!("key-{k}"), T0 + round as i64)
                } else {
                    Rec::kv(
                        &format!("key-{k}"),
                        &format!("round-{round}"),
                        T0 + round as i64,
                    )
                }
            })
            .collect();
        let info = log
            .append_as_leader(validated(&recs, codec, log.config()), 0, T0)
            .unwrap();
        for (i, r) in recs.iter().enumerate() {
            latest.insert(
                format!("key-{i}"),
                (info.first_offset + i as i64, r.value.clone()),
            );
        }
    }
    latest
}

fn append_other(log: &mut Log) {
    let recs = vec![Rec::kv("other", "x", T0)];
    log.append_as_leader(validated(&recs, Compression::None, log.config()), 0, T0)
        .unwrap();
}

/// The last (offset, value) read for each key, checking offsets increase.
fn latest_seen(log: &Log) -> BTreeMap<String, (i64, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut last = -1;
    for r in read_all(log, log.log_start_offset()) {
        assert!(r.offset > last, "offsets increase");
        last = r.offset;
        out.insert(
            String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
            (r.offset, r.value.map(|v| v.to_vec())),
        );
    }
    out
}

fn survivors(log: &Log) -> BTreeMap<String, (i64, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    for r in read_all(log, log.log_start_offset()) {
        let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
        let prev = out.insert(key.clone(), (r.offset, r.value.map(|v| v.to_vec())));
        assert!(prev.is_none(), "key {key} survives twice");
    }
    out
}

#[test]
fn keeps_the_latest_record_per_key_at_its_offset() {
    for codec in [Compression::None, Compression::Lz4, Compression::Gzip] {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = Log::open(tmp.path(), compacted_config(), LoadState::unclean(T0)).unwrap();
        let latest = fill(&mut log, 10, 40, codec);
        log.roll(T0).unwrap();
        let end = log.log_end_offset();
        let before = log.size_bytes();
        let stats = log.compact(T0, end).unwrap();
        assert!(stats.records_removed > 0, "{codec:?}");
        assert!(
            log.size_bytes() < before / 4,
            "{codec:?}: {} -> {}",
            before,
            log.size_bytes()
        );
        assert_eq!(log.log_end_offset(), end, "offsets are kept");
        assert_eq!(survivors(&log), latest, "{codec:?}");
        // Tombstones survive the first pass.
        assert!(survivors(&log).values().any(|(_, v)| v.is_none()));
        // Reopening (indexes rebuilt or loaded) sees the same data.
        drop(log);
        let log = Log::open(tmp.path(), compacted_config(), LoadState::unclean(T0)).unwrap();
        assert_eq!(survivors(&log), latest);
    }
}

#[test]
fn tombstones_go_after_delete_retention_ms_once_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = compacted_config();
    config.delete_retention_ms = 60_000;
    let mut log = Log::open(tmp.path(), config, LoadState::unclean(T0)).unwrap();
    let latest = fill(&mut log, 10, 20, Compression::None);
    log.roll(T0).unwrap();
    let end = log.log_end_offset();
    log.compact(T0, end).unwrap();
    // New dirty data, so a second pass runs; too early for tombstones.
    append_other(&mut log);
    log.roll(T0).unwrap();
    log.compact(T0 + 10_000, log.log_end_offset()).unwrap();
    assert!(survivors(&log).values().any(|(_, v)| v.is_none()));
    // Later than delete.retention.ms: they go.
    append_other(&mut log);
    log.roll(T0).unwrap();
    let stats = log.compact(T0 + 120_000, log.log_end_offset()).unwrap();
    assert!(stats.tombstones_removed > 0);
    let after = survivors(&log);
    assert!(after.values().all(|(_, v)| v.is_some()));
    for (k, (offset, value)) in latest.iter().filter(|(_, (_, v))| v.is_some()) {
        assert_eq!(after.get(k), Some(&(*offset, value.clone())), "{k}");
    }
}

#[test]
fn respects_the_upper_bound_and_never_touches_the_active_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = Log::open(tmp.path(), compacted_config(), LoadState::unclean(T0)).unwrap();
    fill(&mut log, 5, 30, Compression::None);
    let stats = log.compact(T0, 0).unwrap();
    assert_eq!(stats.segments_read, 0, "nothing below the high watermark 0");
    let before = read_all(&log, 0).len();
    let active_base = *log.segment_base_offsets().last().unwrap();
    log.compact(T0, log.log_end_offset()).unwrap();
    let active: Vec<_> = read_all(&log, 0)
        .into_iter()
        .filter(|r| r.offset >= active_base)
        .collect();
    assert_eq!(
        active.len() as i64,
        log.log_end_offset() - active_base,
        "active segment untouched"
    );
    assert!(read_all(&log, 0).len() < before);
    assert_eq!(
        log.maybe_compact(T0, log.log_end_offset()).unwrap(),
        None,
        "nothing dirty left"
    );
}

#[test]
fn a_crash_during_the_swap_is_completed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = Log::open(tmp.path(), compacted_config(), LoadState::unclean(T0)).unwrap();
    let latest = fill(&mut log, 8, 30, Compression::None);
    log.roll(T0).unwrap();
    let end = log.log_end_offset();
    let bases = log.segment_base_offsets();
    // Simulate a crash after `.swap` was written, before the old segments
    // were deleted: compact a copy, then put its first segment back as a
    // swap file next to the original, uncompacted segments.
    let copy = tempfile::tempdir().unwrap();
    for e in fs::read_dir(tmp.path()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    drop(log);
    let mut compacted = Log::open(copy.path(), compacted_config(), LoadState::unclean(T0)).unwrap();
    compacted.compact(T0, end).unwrap();
    let first = bases[0];
    fs::copy(
        copy.path().join(format!("{first:020}.log")),
        tmp.path().join(format!("{first:020}.log.swap")),
    )
    .unwrap();
    fs::write(
        tmp.path().join(format!("{:020}.log.cleaned", bases[1])),
        b"partial",
    )
    .unwrap();
    let first_path = tmp.path().join(format!("{first:020}.log"));
    let uncompacted = fs::metadata(&first_path).unwrap().len();
    let log = Log::open(tmp.path(), compacted_config(), LoadState::unclean(T0)).unwrap();
    assert!(
        fs::metadata(&first_path).unwrap().len() < uncompacted,
        "the swap replaced the segment"
    );
    assert!(!tmp.path().join(format!("{first:020}.log.swap")).exists());
    assert_eq!(log.log_end_offset(), end);
    // Every key's latest value is still there, at its offset, and nothing
    // is duplicated (offsets strictly increase).
    assert_eq!(latest_seen(&log), latest);
}
