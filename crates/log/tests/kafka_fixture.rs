//! Compatibility with a partition directory built from Kafka's documented
//! format by an independent generator (`fixtures/kafka-segment/make_fixture.py`,
//! pure Python): Riffle opens it, reads it, and rebuilds and rewrites its
//! files byte for byte.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use riffle_log::{LoadState, Log, LogConfig};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-segment")
}

fn expected() -> Value {
    serde_json::from_str(&fs::read_to_string(fixture_dir().join("expected.json")).unwrap()).unwrap()
}

fn copy_fixture(to: &Path) -> PathBuf {
    let dst = to.join("fixture-0");
    fs::create_dir_all(&dst).unwrap();
    for entry in fs::read_dir(fixture_dir().join("fixture-0")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

fn unhex(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    })
}

fn check_log_matches_fixture(log: &Log, exp: &Value) {
    assert_eq!(
        log.log_end_offset(),
        exp["log_end_offset"].as_i64().unwrap()
    );
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.segment_base_offsets(), vec![0, 48]);
    let epochs = common::epochs(log);
    assert_eq!(epochs, vec![(0, 0), (1, 15), (4, 53)]);

    // Every batch is found at its documented offset, position and size.
    for b in exp["batches"].as_array().unwrap() {
        let base = b["base_offset"].as_i64().unwrap();
        let slice = log.read(base, 1, i64::MAX, true).unwrap().unwrap();
        assert_eq!(slice.first_offset, base);
        assert_eq!(slice.last_offset, b["last_offset"].as_i64().unwrap());
        assert_eq!(slice.position, b["position"].as_u64().unwrap());
        assert_eq!(slice.len, b["size_bytes"].as_u64().unwrap());
    }

    // Records, decoded by kafka-protocol, are the documented ones.
    let records = common::read_all(log, 0);
    let exp_records: Vec<&Value> = exp["records"].as_array().unwrap().iter().collect();
    let data: Vec<_> = records.iter().filter(|r| !r.control).collect();
    let exp_data: Vec<_> = exp_records
        .iter()
        .filter(|r| {
            let off = r["offset"].as_i64().unwrap();
            !exp["batches"].as_array().unwrap().iter().any(|b| {
                b["is_control"].as_bool().unwrap() && b["base_offset"].as_i64().unwrap() == off
            })
        })
        .collect();
    assert_eq!(data.len(), exp_data.len());
    for (r, e) in data.iter().zip(exp_data) {
        assert_eq!(r.offset, e["offset"].as_i64().unwrap());
        assert_eq!(
            r.timestamp,
            e["timestamp"].as_i64().unwrap(),
            "offset {}",
            r.offset
        );
        assert_eq!(r.key.as_deref().map(<[u8]>::to_vec), unhex(&e["key"]));
        assert_eq!(r.value.as_deref().map(<[u8]>::to_vec), unhex(&e["value"]));
        let headers: Vec<(String, Option<Vec<u8>>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_deref().map(<[u8]>::to_vec)))
            .collect();
        let exp_headers: Vec<(String, Option<Vec<u8>>)> = e["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().to_string(), unhex(&h[1])))
            .collect();
        // kafka-protocol keeps headers in a map, so a repeated name collapses.
        for (k, v) in &headers {
            assert!(
                exp_headers.iter().any(|(ek, ev)| ek == k && ev == v),
                "header {k} at {}",
                r.offset
            );
        }
    }

    // Timestamp lookups: the first record in offset order whose timestamp is
    // at least the target.
    let timeline: Vec<(i64, i64)> = exp_records
        .iter()
        .map(|r| {
            (
                r["offset"].as_i64().unwrap(),
                r["timestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut targets: Vec<i64> = timeline.iter().map(|(_, t)| *t).collect();
    targets.extend([0, 1_700_000_000_000, i64::MAX]);
    for target in targets {
        let want = timeline.iter().find(|(_, t)| *t >= target).copied();
        let got = log
            .offset_for_timestamp(target)
            .unwrap()
            .map(|t| (t.offset, t.timestamp));
        assert_eq!(got, want, "timestamp {target}");
    }
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!(
        max.timestamp,
        exp["max_timestamp"]["timestamp"].as_i64().unwrap()
    );
    assert_eq!(
        max.offset,
        exp["max_timestamp"]["record_offset"].as_i64().unwrap()
    );
}

#[test]
fn opens_a_kafka_partition_after_clean_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture(tmp.path());
    let state = LoadState {
        recovery_point: 61,
        log_start_offset: 0,
        had_clean_shutdown: true,
        now_ms: 1_700_000_020_000,
    };
    let log = Log::open(&dir, LogConfig::default(), state).unwrap();
    check_log_matches_fixture(&log, &expected());
}

#[test]
fn recovery_rebuilds_kafkas_index_files_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture(tmp.path());
    for ext in ["index", "timeindex"] {
        for base in [0, 48] {
            fs::write(dir.join(format!("{base:020}.{ext}")), b"garbage!!").unwrap();
        }
    }
    let log = Log::open(
        &dir,
        LogConfig::default(),
        LoadState::unclean(1_700_000_020_000),
    )
    .unwrap();
    check_log_matches_fixture(&log, &expected());
    log.close(1_700_000_020_000).unwrap();
    for name in [
        "00000000000000000000.log",
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
        "00000000000000000048.log",
        "00000000000000000048.index",
        "00000000000000000048.timeindex",
        "leader-epoch-checkpoint",
    ] {
        let want = fs::read(fixture_dir().join("fixture-0").join(name)).unwrap();
        let got = fs::read(dir.join(name)).unwrap();
        assert_eq!(got, want, "{name} differs from Kafka's");
    }
}

#[test]
fn appending_kafkas_batches_writes_kafkas_files() {
    let exp = expected();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("copy-0");
    let mut log = Log::open(&dir, LogConfig::default(), LoadState::unclean(0)).unwrap();
    for seg in exp["segments"].as_array().unwrap() {
        let bytes = fs::read(
            fixture_dir()
                .join("fixture-0")
                .join(seg["log_file"].as_str().unwrap()),
        )
        .unwrap();
        log.roll(0).unwrap();
        // One batch per append, as a follower copies them.
        let mut at = 0;
        while at < bytes.len() {
            let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize + 12;
            log.append_as_follower(&bytes[at..at + len], 0).unwrap();
            at += len;
        }
    }
    log.close(0).unwrap();
    for entry in fs::read_dir(fixture_dir().join("fixture-0")).unwrap() {
        let entry = entry.unwrap();
        let got = fs::read(dir.join(entry.file_name())).unwrap();
        assert_eq!(
            got,
            fs::read(entry.path()).unwrap(),
            "{:?} differs",
            entry.file_name()
        );
    }
}
