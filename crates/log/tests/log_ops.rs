//! Log operations end to end through the public API: leader and follower
//! appends, reads (KIP-74, upper bounds), lookups, rolling, retention,
//! DeleteRecords, truncation, flush policy, and the log directory.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::fs;

use common::{decode_all, encode_batch, read_all, small_config, validated, Rec};
use kafka_protocol::records::Compression;
use riffle_log::{LoadState, Log, LogConfig, LogDir, LogError, TimestampType, TopicPartition};

const T0: i64 = 1_700_000_000_000;

fn tiny_config() -> LogConfig {
    let mut c = small_config();
    c.segment_bytes = 1024;
    c
}

fn open(dir: &std::path::Path, config: LogConfig) -> Log {
    Log::open(dir, config, LoadState::unclean(T0)).unwrap()
}

fn append(log: &mut Log, n: usize, ts: i64, epoch: i32) -> riffle_log::AppendInfo {
    let recs: Vec<Rec> = (0..n)
        .map(|i| {
            Rec::kv(
                &format!("key-{i}"),
                &format!("value-{}-{i}", log.log_end_offset()),
                ts,
            )
        })
        .collect();
    let batch = validated(&recs, Compression::None, log.config());
    log.append_as_leader(batch, epoch, ts).unwrap()
}

#[test]
fn leader_append_assigns_offsets_and_round_trips_through_kafka_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    let mut expected = Vec::new();
    for (i, codec) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let recs: Vec<Rec> = (0..4)
            .map(|j| Rec {
                key: (j != 1).then(|| format!("k{i}{j}").into_bytes()),
                value: (j != 2).then(|| vec![i as u8; 100 * j]),
                timestamp: T0 + (i * 10 + j) as i64,
                headers: vec![("h".into(), Some(b"v".to_vec())), ("n".into(), None)],
            })
            .collect();
        let info = log
            .append_as_leader(validated(&recs, codec, log.config()), 3, T0)
            .unwrap();
        assert_eq!(info.first_offset, (i * 4) as i64);
        assert_eq!(info.last_offset, (i * 4 + 3) as i64);
        assert_eq!(info.record_count, 4);
        assert_eq!(info.log_append_time_ms, -1);
        expected.extend(recs);
    }
    assert_eq!(log.log_end_offset(), 20);
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 20);
    for (i, (r, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.partition_leader_epoch, 3);
        assert_eq!(r.timestamp, e.timestamp);
        assert_eq!(r.key.as_deref(), e.key.as_deref());
        assert_eq!(r.value.as_deref(), e.value.as_deref());
        assert_eq!(r.headers.len(), 2);
    }
    assert_eq!(log.leader_epochs().latest_epoch(), Some(3));
}

#[test]
fn log_append_time_overwrites_timestamps_and_keeps_the_crc_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.message_timestamp_type = TimestampType::LogAppendTime;
    let mut log = open(tmp.path(), config);
    let recs = vec![Rec::kv("a", "1", 5), Rec::kv("b", "2", 6)];
    let info = log
        .append_as_leader(validated(&recs, Compression::Lz4, log.config()), 0, T0 + 42)
        .unwrap();
    assert_eq!(info.log_append_time_ms, T0 + 42);
    // kafka-protocol's decoder checks the CRC.
    let got = read_all(&log, 0);
    assert!(got
        .iter()
        .all(|r| r.timestamp_type == kafka_protocol::records::TimestampType::LogAppend));
    assert_eq!(log.max_timestamp().unwrap().unwrap().timestamp, T0 + 42);
    assert_eq!(
        log.offset_for_timestamp(T0 + 42).unwrap().unwrap().offset,
        0
    );
}

#[test]
fn reads_return_whole_batches_within_budget_and_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    for _ in 0..10 {
        append(&mut log, 5, T0, 0);
    }
    let one = log.read(0, 1, i64::MAX, true).unwrap().unwrap();
    assert_eq!(
        (one.first_offset, one.last_offset),
        (0, 4),
        "KIP-74: at least one whole batch"
    );
    assert!(
        log.read(0, 1, i64::MAX, false).unwrap().is_none()
            || log.read(0, 1, i64::MAX, false).unwrap().unwrap().len == 0
    );
    let sizes: Vec<u64> = (1..4)
        .map(|b| log.read(b * 5, 1, i64::MAX, true).unwrap().unwrap().len)
        .collect();
    let budget = sizes.iter().sum::<u64>() + 1;
    let three = log.read(7, budget, i64::MAX, true).unwrap().unwrap();
    assert_eq!(
        (three.first_offset, three.last_offset),
        (5, 19),
        "starts at the batch holding 7"
    );
    assert_eq!(
        three.len,
        budget - 1,
        "whole batches within the byte budget"
    );
    let bounded = log.read(0, 1 << 20, 23, true).unwrap().unwrap();
    assert_eq!(
        bounded.last_offset, 19,
        "no batch reaching the upper bound is returned"
    );
    assert!(
        log.read(20, 1 << 20, 23, true).unwrap().is_none(),
        "batch 20..=24 crosses the bound 23"
    );
    assert!(
        log.read(50, 1 << 20, i64::MAX, true).unwrap().is_none(),
        "at the log end: nothing yet"
    );
    assert!(matches!(
        log.read(51, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let records = decode_all(three.read_to_vec().unwrap());
    assert_eq!(records.first().unwrap().offset, 5);
}

#[test]
fn rolls_on_size_time_and_index_full() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(&tmp.path().join("size"), tiny_config());
    for _ in 0..40 {
        append(&mut log, 3, T0, 0);
    }
    assert!(log.segment_count() > 3);
    for w in log.segment_base_offsets().windows(2) {
        assert!(w[0] < w[1]);
    }
    let dir = log.dir().to_path_buf();
    for base in log.segment_base_offsets() {
        let size = fs::metadata(dir.join(format!("{base:020}.log")))
            .unwrap()
            .len();
        assert!(size <= 1024, "segment {base} is {size} bytes");
    }
    assert_eq!(read_all(&log, 0).len(), 120);

    let mut config = LogConfig::default();
    config.segment_ms = 1000;
    let mut log = open(&tmp.path().join("time"), config);
    append(&mut log, 1, T0, 0);
    append(&mut log, 1, T0 + 500, 0);
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 1, T0 + 1500, 0);
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 2],
        "segment.ms uses record timestamps"
    );

    let mut config = LogConfig::default();
    config.segment_index_bytes = 16; // two offset-index entries
    config.index_interval_bytes = 0;
    let mut log = open(&tmp.path().join("index"), config);
    for _ in 0..6 {
        append(&mut log, 1, T0, 0);
    }
    assert!(log.segment_count() >= 2, "a full index rolls the segment");
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn retention_by_time_and_bytes_never_passes_the_high_watermark() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = tiny_config();
    config.retention_ms = 10_000;
    let mut log = open(tmp.path(), config);
    for i in 0..30 {
        append(&mut log, 3, T0 + i * 1000, 0);
    }
    let segments = log.segment_count();
    assert!(segments > 2, "{segments} segments");
    // Nothing is old enough yet.
    assert_eq!(
        log.delete_old_segments(T0 + 5_000, log.log_end_offset())
            .unwrap(),
        0
    );
    // Everything is old, but the high watermark protects what is above it.
    let deleted = log.delete_old_segments(T0 + 1_000_000, 30).unwrap();
    assert!(deleted > 0);
    assert!(log.log_start_offset() <= 30);
    assert_eq!(
        read_all(&log, log.log_start_offset())
            .first()
            .unwrap()
            .offset,
        log.log_start_offset()
    );
    // With the high watermark at the end, all go and an empty active segment remains.
    log.delete_old_segments(T0 + 1_000_000, log.log_end_offset())
        .unwrap();
    assert_eq!(log.log_start_offset(), 90);
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.segment_base_offsets(), vec![90]);
    append(&mut log, 1, T0 + 2_000_000, 0);
    assert_eq!(read_all(&log, 90).len(), 1);

    let mut config = small_config();
    config.retention_ms = -1;
    config.retention_bytes = 8192;
    let mut log = open(&tmp.path().join("bytes"), config);
    for i in 0..60 {
        append(&mut log, 3, T0 + i, 0);
    }
    log.delete_old_segments(T0, log.log_end_offset()).unwrap();
    assert!(log.size_bytes() <= 8192 + 4096, "size {}", log.size_bytes());
    assert!(log.size_bytes() > 8192 - 4096);
}

#[test]
fn delete_records_advances_the_log_start_offset_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("orders", 0);
    let mut dir = LogDir::open(tmp.path(), |_| small_config(), T0).unwrap();
    let log = dir.get_or_create(&tp, small_config(), T0).unwrap();
    for _ in 0..30 {
        append(log, 3, T0, 0);
    }
    assert!(log.advance_log_start_offset(40, T0).unwrap());
    assert!(
        !log.advance_log_start_offset(10, T0).unwrap(),
        "never moves back"
    );
    assert!(matches!(
        log.advance_log_start_offset(1000, T0),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.segment_base_offsets()[0] <= 40);
    assert!(matches!(
        log.read(39, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(log, 40).first().unwrap().offset,
        39,
        "the batch holding 40 starts at 39"
    );
    dir.close(T0).unwrap();
    assert!(tmp.path().join(".kafka_cleanshutdown").exists());
    let text = fs::read_to_string(tmp.path().join("log-start-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n1\norders 0 40\n");

    let dir = LogDir::open(tmp.path(), |_| small_config(), T0).unwrap();
    assert!(
        !tmp.path().join(".kafka_cleanshutdown").exists(),
        "the marker is consumed at open"
    );
    let log = dir.get(&tp).unwrap();
    assert_eq!(log.log_start_offset(), 40);
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.recovery_point(), 90);
}

#[test]
fn truncation_removes_whole_batches_and_fixes_indexes_and_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), small_config());
    for i in 0..30 {
        append(&mut log, 3, T0 + i, (i / 10) as i32);
    }
    assert_eq!(log.leader_epochs().entries().len(), 3);
    assert!(log.truncate_to(50, T0).unwrap());
    assert_eq!(
        log.log_end_offset(),
        48,
        "the batch 48..=50 holding offset 50 is gone"
    );
    assert_eq!(log.end_offset_for_epoch(1), (1, 48));
    assert_eq!(log.leader_epochs().latest_epoch(), Some(1));
    assert_eq!(read_all(&log, 0).len(), 48);
    let info = append(&mut log, 2, T0, 4);
    assert_eq!(info.first_offset, 48);
    assert_eq!(read_all(&log, 40).last().unwrap().offset, 49);
    assert!(!log.truncate_to(100, T0).unwrap());
    // Truncating below the log start empties the log and restarts it there.
    log.advance_log_start_offset(30, T0).unwrap();
    log.truncate_to(10, T0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    // Reopening finds the same state.
    drop(log);
    let log = open(tmp.path(), small_config());
    assert_eq!(log.log_end_offset(), 10);
}

#[test]
fn follower_appends_keep_offsets_and_refuse_going_backwards() {
    let tmp = tempfile::tempdir().unwrap();
    let mut leader = open(&tmp.path().join("leader"), LogConfig::default());
    for _ in 0..5 {
        append(&mut leader, 4, T0, 2);
    }
    let slice = leader.read(0, 1 << 20, i64::MAX, true).unwrap().unwrap();
    let bytes = slice.read_to_vec().unwrap();
    let mut follower = open(&tmp.path().join("follower"), LogConfig::default());
    let info = follower.append_as_follower(&bytes, T0).unwrap().unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 19));
    assert_eq!(follower.leader_epochs().latest_epoch(), Some(2));
    assert!(matches!(
        follower.append_as_follower(&bytes, T0),
        Err(LogError::NonMonotonicAppend { .. })
    ));
    assert!(follower.append_as_follower(&[], T0).unwrap().is_none());
    assert_eq!(read_all(&follower, 0).len(), 20);
    let mut torn = bytes.clone();
    torn.truncate(bytes.len() - 3);
    let mut fresh = open(&tmp.path().join("fresh"), LogConfig::default());
    assert!(matches!(
        fresh.append_as_follower(&torn[..], T0),
        Err(LogError::Batch(_))
    ));
    assert_eq!(
        fresh.log_end_offset(),
        0,
        "a set with a torn batch is refused whole"
    );
}

#[test]
fn flush_messages_moves_the_recovery_point() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = LogConfig::default();
    config.flush_messages = 10;
    let mut log = open(tmp.path(), config);
    append(&mut log, 4, T0, 0);
    assert_eq!(log.recovery_point(), 0);
    append(&mut log, 8, T0, 0);
    assert_eq!(
        log.recovery_point(),
        12,
        "12 unflushed messages >= flush.messages=10"
    );
    append(&mut log, 1, T0, 0);
    assert_eq!(log.recovery_point(), 12);
    let mut config = LogConfig::default();
    config.flush_ms = 1000;
    log.set_config(config);
    assert!(!log.maybe_flush(T0 + 10).unwrap());
    assert!(log.maybe_flush(T0 + 5000).unwrap());
    assert_eq!(log.recovery_point(), 13);
}

#[test]
fn timestamp_lookups_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), tiny_config());
    for i in 0..40i64 {
        // Timestamps go up by 10 per batch, with one batch out of order.
        let ts = if i == 20 { T0 } else { T0 + i * 10 };
        let recs: Vec<Rec> = (0..3).map(|j| Rec::kv("k", "v", ts + j)).collect();
        log.append_as_leader(validated(&recs, Compression::Gzip, log.config()), 0, ts)
            .unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(
        log.offset_for_timestamp(T0 + 101).unwrap().unwrap().offset,
        31
    );
    assert_eq!(
        log.offset_for_timestamp(T0 + 102).unwrap().unwrap().offset,
        32
    );
    assert_eq!(
        log.offset_for_timestamp(T0 + 103).unwrap().unwrap().offset,
        33
    );
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
    assert!(log.offset_for_timestamp(T0 + 10_000).unwrap().is_none());
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (T0 + 392, 119));
}

#[test]
fn log_dir_deletes_partitions_and_survives_unclean_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = LogDir::open(tmp.path(), |_| LogConfig::default(), T0).unwrap();
    for p in 0..3 {
        let log = dir
            .get_or_create(&TopicPartition::new("t", p), LogConfig::default(), T0)
            .unwrap();
        append(log, 2 + p as usize, T0, 0);
    }
    assert!(dir.delete(&TopicPartition::new("t", 1)).unwrap());
    assert!(!tmp.path().join("t-1").exists());
    dir.checkpoint().unwrap();
    drop(dir); // no clean shutdown
    let dir = LogDir::open(tmp.path(), |_| LogConfig::default(), T0).unwrap();
    let parts: Vec<_> = dir.partitions().cloned().collect();
    assert_eq!(
        parts,
        vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)]
    );
    assert_eq!(
        dir.get(&TopicPartition::new("t", 2))
            .unwrap()
            .log_end_offset(),
        4
    );
}

#[test]
fn unknown_files_and_leftovers_are_handled_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    append(&mut log, 3, T0, 0);
    log.close(T0).unwrap();
    fs::write(tmp.path().join("00000000000000000100.index"), [0u8; 8]).unwrap();
    fs::write(
        tmp.path().join("00000000000000000000.log.cleaned"),
        b"half written",
    )
    .unwrap();
    fs::write(
        tmp.path().join("leader-epoch-checkpoint"),
        b"0\n5\nnonsense",
    )
    .unwrap();
    let log = open(tmp.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 3);
    assert!(
        !tmp.path().join("00000000000000000100.index").exists(),
        "orphan index removed"
    );
    assert!(!tmp.path().join("00000000000000000000.log.cleaned").exists());
    assert_eq!(
        log.leader_epochs().latest_epoch(),
        Some(0),
        "corrupt checkpoint rebuilt from batches"
    );
}

#[test]
fn encoder_batches_with_many_records_validate_and_append() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), LogConfig::default());
    let recs: Vec<Rec> = (0..1000)
        .map(|i| Rec::kv(&i.to_string(), "v", T0))
        .collect();
    let batch = riffle_log::validate_produce(
        encode_batch(&recs, Compression::Zstd),
        &log.config().validation(),
        T0,
    )
    .unwrap();
    let info = log.append_as_leader(batch, 0, T0).unwrap();
    assert_eq!(info.last_offset, 999);
    assert_eq!(read_all(&log, 500).len(), 1000);
}
