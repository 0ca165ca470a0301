//! Crash and corruption tests: torn writes at every byte of a segment's
//! tail, random byte flips, torn index files, and corruption in the middle
//! of a multi-segment log. After each, opening the log must not panic, must
//! keep exactly the whole valid batches before the damage, must serve
//! nothing after it, and must take new appends.
//!
//! The rules enforced are Kafka's recovery rules (LogLoader.recoverSegment,
//! LogSegment.recover): after an unclean shutdown every segment past the
//! recovery point is re-read batch by batch, checking framing, CRC-32C and
//! offset order; the segment is cut at the first invalid or torn batch, its
//! indexes are rebuilt, and every later segment is deleted.

// Helpers outside #[test] functions unwrap too; clippy.toml's
// allow-unwrap-in-tests only covers the test functions themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use kafka_protocol::records::Compression;
use riffle_log::{LoadState, Log, LogConfig, LogError};

use common::{decode_all, read_all, small_config, Rec};

const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A deterministic xorshift64 generator (the tests print its seed).
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One batch as written: its records, epoch and place on disk.
#[derive(Debug, Clone)]
struct Batch {
    base: i64,
    epoch: i32,
    recs: Vec<Rec>,
    /// Base offset of the segment holding it.
    segment: i64,
    position: u64,
    size: u64,
}

impl Batch {
    fn next(&self) -> i64 {
        self.base + self.recs.len() as i64
    }
    fn end_position(&self) -> u64 {
        self.position + self.size
    }
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn copy_dir(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).unwrap();
    }
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// (position, base offset, size, last offset, max timestamp) of each batch
/// of a segment file, which must hold whole batches only.
fn parse_segment(path: &Path) -> Vec<(u64, i64, u64, i64, i64)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        assert!(at + 61 <= bytes.len(), "{}: torn header", path.display());
        let size = common::be_i32(&bytes, at + 8) as usize + 12;
        assert!(at + size <= bytes.len(), "{}: torn batch", path.display());
        let base = common::be_i64(&bytes, at);
        let last = base + i64::from(common::be_i32(&bytes, at + 23));
        out.push((
            at as u64,
            base,
            size as u64,
            last,
            common::be_i64(&bytes, at + 35),
        ));
        at += size;
    }
    out
}

/// Each `.index` entry points at the start of a batch ending at base +
/// relative offset; each `.timeindex` entry names the end of a batch with
/// that max timestamp; both lie inside the segment as it is now.
fn check_indexes(dir: &Path, base: i64, ctx: &str) {
    let batches = parse_segment(&seg_path(dir, base, "log"));
    let index = fs::read(seg_path(dir, base, "index")).unwrap();
    assert_eq!(index.len() % 8, 0, "{ctx}: torn .index of segment {base}");
    for e in index.chunks_exact(8) {
        let (rel, pos) = (common::be_u32(e, 0), common::be_u32(e, 4));
        let b = batches
            .iter()
            .find(|b| b.0 == u64::from(pos))
            .unwrap_or_else(|| panic!("{ctx}: .index entry at {pos} is not a batch start"));
        assert_eq!(b.3, base + i64::from(rel), "{ctx}: .index entry at {pos}");
    }
    let times = fs::read(seg_path(dir, base, "timeindex")).unwrap();
    assert_eq!(
        times.len() % 12,
        0,
        "{ctx}: torn .timeindex of segment {base}"
    );
    for e in times.chunks_exact(12) {
        let (ts, rel) = (common::be_i64(e, 0), common::be_u32(e, 8));
        let b = batches
            .iter()
            .find(|b| b.3 == base + i64::from(rel))
            .unwrap_or_else(|| panic!("{ctx}: .timeindex entry {rel} is not a batch end"));
        assert_eq!(b.4, ts, "{ctx}: .timeindex entry {rel}");
    }
}

fn clean_state(leo: i64) -> LoadState {
    LoadState {
        recovery_point: leo,
        log_start_offset: 0,
        had_clean_shutdown: true,
        now_ms: T0,
    }
}

/// Writes `specs` (records, codec, leader epoch) as one batch each, closes
/// the log cleanly, and returns the batches with their places on disk.
fn build(dir: &Path, config: &LogConfig, specs: &[(Vec<Rec>, Compression, i32)]) -> Vec<Batch> {
    let mut log = Log::open(dir, config.clone(), LoadState::unclean(T0)).unwrap();
    let mut batches = Vec::new();
    for (recs, codec, epoch) in specs {
        let info = log
            .append_as_leader(common::validated(recs, *codec, config), *epoch, T0)
            .unwrap();
        batches.push(Batch {
            base: info.first_offset,
            epoch: *epoch,
            recs: recs.clone(),
            segment: 0,
            position: 0,
            size: info.size_bytes,
        });
    }
    let bases = log.segment_base_offsets();
    log.close(T0).unwrap();
    for b in &mut batches {
        b.segment = *bases.iter().rev().find(|s| **s <= b.base).unwrap();
    }
    for seg in &bases {
        for (position, base, size, _, _) in parse_segment(&seg_path(dir, *seg, "log")) {
            let b = batches.iter_mut().find(|b| b.base == base).unwrap();
            assert_eq!(b.size, size);
            b.position = position;
        }
    }
    batches
}

/// Batches of `n_recs` records with small random keys and values.
fn specs(
    rng: &mut XorShift,
    count: usize,
    n_recs: u64,
    value_max: u64,
) -> Vec<(Vec<Rec>, Compression, i32)> {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut epoch = 0;
    (0..count)
        .map(|i| {
            if i > 0 && rng.below(4) == 0 {
                epoch += 1;
            }
            let recs = (0..1 + rng.below(n_recs))
                .map(|j| {
                    let key = (rng.below(5) > 0).then(|| {
                        let n = rng.below(12) as usize;
                        rng.bytes(n)
                    });
                    let value = (rng.below(8) > 0).then(|| {
                        let n = rng.below(value_max) as usize;
                        rng.bytes(n)
                    });
                    Rec {
                        key,
                        value,
                        timestamp: T0 + (i as i64) * 10 + rng.below(30) as i64 - j as i64,
                        headers: vec![],
                    }
                })
                .collect();
            (recs, codecs[i % codecs.len()], epoch)
        })
        .collect()
}

/// The log holds exactly `kept` (whose records may sit at `shift`ed
/// offsets), ends at `leo`, and serves nothing past it.
fn check_contents(log: &Log, kept: &[Batch], leo: i64, check_epochs: bool, ctx: &str) {
    assert_eq!(log.log_end_offset(), leo, "{ctx}: log end offset");
    let got = read_all(log, log.log_start_offset());
    let want: Vec<(i64, &Rec)> = kept
        .iter()
        .flat_map(|b| {
            b.recs
                .iter()
                .enumerate()
                .map(move |(i, r)| (b.base + i as i64, r))
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{ctx}: record count");
    for (g, (offset, r)) in got.iter().zip(&want) {
        assert_eq!(g.offset, *offset, "{ctx}");
        assert_eq!(g.key.as_deref(), r.key.as_deref(), "{ctx}: key at {offset}");
        assert_eq!(
            g.value.as_deref(),
            r.value.as_deref(),
            "{ctx}: value at {offset}"
        );
        assert_eq!(g.timestamp, r.timestamp, "{ctx}: timestamp at {offset}");
    }
    // Nothing at or past the end: no bytes after the corruption are served.
    assert!(
        log.read(leo, 1 << 20, i64::MAX, true).unwrap().is_none(),
        "{ctx}"
    );
    assert!(
        matches!(
            log.read(leo + 1, 1 << 20, i64::MAX, true),
            Err(LogError::OffsetOutOfRange { .. })
        ),
        "{ctx}"
    );
    if check_epochs {
        let mut want_epochs: Vec<(i32, i64)> = Vec::new();
        for b in kept {
            if want_epochs.last().is_none_or(|(e, _)| b.epoch > *e) {
                want_epochs.push((b.epoch, b.base));
            }
        }
        let epochs = common::epochs(log);
        assert_eq!(epochs, want_epochs, "{ctx}: leader epoch cache");
    }
}

/// A new leader append after recovery lands at the log end and reads back.
fn append_and_read(log: &mut Log, config: &LogConfig, ctx: &str) {
    let leo = log.log_end_offset();
    let recs = vec![Rec::kv("after", "the crash", T0 + 1_000)];
    let info = log
        .append_as_leader(common::validated(&recs, Compression::None, config), 99, T0)
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
    assert_eq!(info.first_offset, leo, "{ctx}");
    assert_eq!(log.log_end_offset(), leo + 1, "{ctx}");
    let slice = log.read(leo, 1 << 20, i64::MAX, true).unwrap().unwrap();
    assert_eq!((slice.first_offset, slice.last_offset), (leo, leo), "{ctx}");
    let got = decode_all(slice.read_to_vec().unwrap());
    assert_eq!(got.len(), 1, "{ctx}");
    assert_eq!(got[0].offset, leo, "{ctx}");
    assert_eq!(got[0].key.as_deref(), Some(&b"after"[..]), "{ctx}");
    assert_eq!(got[0].value.as_deref(), Some(&b"the crash"[..]), "{ctx}");
}

// ---------------------------------------------------------------------------
// (a) A torn tail at every byte of the last two batches
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tear {
    /// The file ends at the cut (the append was torn).
    Truncate,
    /// The file keeps its length but is zero from the cut on (the size
    /// reached the disk, the data did not).
    ZeroFill,
    /// Truncated, and opened with the clean-shutdown state anyway: the open
    /// still walks the tail's batch headers and must notice.
    TruncateCleanState,
}

#[test]
fn torn_tail_at_every_byte_keeps_the_whole_batches_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config();
    let orig = tmp.path().join("orig-0");
    let mut rng = XorShift::new(0xA11CE);
    let specs = specs(&mut rng, 6, 4, 40);
    let batches = build(&orig, &config, &specs);
    assert!(batches.iter().all(|b| b.segment == 0), "one segment");
    let leo = batches.last().unwrap().next();
    let log_len = batches.last().unwrap().end_position();
    let from = batches[4].position;
    // The index has entries in the region that gets torn.
    let index_len = fs::read(seg_path(&orig, 0, "index")).unwrap().len();
    assert!(index_len >= 8, "the test needs offset-index entries");

    let orig_bytes = fs::read(seg_path(&orig, 0, "log")).unwrap();
    let dir = tmp.path().join("torn-0");
    for cut in from..=log_len {
        for tear in [Tear::Truncate, Tear::ZeroFill, Tear::TruncateCleanState] {
            let ctx = format!("{tear:?} at byte {cut} of {log_len}");
            copy_dir(&orig, &dir);
            let path = seg_path(&dir, 0, "log");
            match tear {
                Tear::Truncate | Tear::TruncateCleanState => {
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .unwrap()
                        .set_len(cut)
                        .unwrap();
                }
                Tear::ZeroFill => {
                    let mut bytes = fs::read(&path).unwrap();
                    bytes[cut as usize..].fill(0);
                    fs::write(&path, bytes).unwrap();
                }
            }
            let state = if tear == Tear::TruncateCleanState {
                clean_state(leo)
            } else {
                LoadState::unclean(T0)
            };
            let mut log = Log::open(&dir, config.clone(), state)
                .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
            // Zero-filling bytes that were zero already changes nothing; the
            // damage starts at the first byte that changed.
            let damaged_from = if tear == Tear::ZeroFill {
                (cut..log_len)
                    .find(|p| orig_bytes[*p as usize] != 0)
                    .unwrap_or(log_len)
            } else {
                cut
            };
            let kept: Vec<Batch> = batches
                .iter()
                .filter(|b| b.end_position() <= damaged_from)
                .cloned()
                .collect();
            let end = kept.last().map_or(0, Batch::next);
            let boundary = kept.last().map_or(0, Batch::end_position);
            check_contents(&log, &kept, end, true, &ctx);
            // The torn bytes are gone from the file, not merely skipped.
            assert_eq!(
                fs::metadata(&path).unwrap().len(),
                boundary,
                "{ctx}: file length"
            );
            check_indexes(&dir, 0, &ctx);
            append_and_read(&mut log, &config, &ctx);
            log.close(T0).unwrap();
            let log = Log::open(&dir, config.clone(), clean_state(end + 1)).unwrap();
            assert_eq!(log.log_end_offset(), end + 1, "{ctx}: after restart");
            assert_eq!(
                read_all(&log, 0).len(),
                kept.iter().map(|b| b.recs.len()).sum::<usize>() + 1
            );
            check_indexes(&dir, 0, &ctx);
        }
    }

    // Garbage after the last whole batch (a preallocated or half-written
    // tail) is cut off too.
    for len in 1..=80 {
        let ctx = format!("{len} bytes of garbage after the last batch");
        copy_dir(&orig, &dir);
        let path = seg_path(&dir, 0, "log");
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend(rng.bytes(len));
        fs::write(&path, bytes).unwrap();
        let mut log = Log::open(&dir, config.clone(), LoadState::unclean(T0)).unwrap();
        check_contents(&log, &batches, leo, true, &ctx);
        assert_eq!(fs::metadata(&path).unwrap().len(), log_len, "{ctx}");
        append_and_read(&mut log, &config, &ctx);
    }
}

// ---------------------------------------------------------------------------
// (b) Random byte flips in the last segment
// ---------------------------------------------------------------------------

#[test]
fn byte_flips_keep_the_valid_prefix() {
    let seed: u64 = std::env::var("RIFFLE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F11B);
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config();
    let orig = tmp.path().join("orig-0");
    let mut rng = XorShift::new(seed);
    let specs = specs(&mut rng, 40, 5, 60);
    let batches = build(&orig, &config, &specs);
    let segments: Vec<i64> = {
        let mut s: Vec<i64> = batches.iter().map(|b| b.segment).collect();
        s.dedup();
        s
    };
    assert!(segments.len() >= 2, "the test needs several segments");
    eprintln!(
        "SEGS b {} {}",
        segments.len(),
        batches
            .iter()
            .filter(|b| b.segment == *segments.last().unwrap())
            .count()
    );
    let last_seg = *segments.last().unwrap();
    let in_last: Vec<&Batch> = batches.iter().filter(|b| b.segment == last_seg).collect();
    let last_len = in_last.last().unwrap().end_position();
    let orig_last = fs::read(seg_path(&orig, last_seg, "log")).unwrap();

    let dir = tmp.path().join("flipped-0");
    for iteration in 0..200 {
        // Half the flips go to batch headers, which are a small part of
        // the file but where most of the interesting cases are.
        let position = if rng.below(2) == 0 {
            let b = in_last[rng.below(in_last.len() as u64) as usize];
            b.position + rng.below(61)
        } else {
            rng.below(last_len)
        };
        let mask = 1 + rng.below(255) as u8;
        let ctx = format!(
            "seed {seed:#x} (RIFFLE_CRASH_SEED={seed}), iteration {iteration}: \
             byte {position} of segment {last_seg} ^= {mask:#04x}"
        );
        copy_dir(&orig, &dir);
        let path = seg_path(&dir, last_seg, "log");
        let mut bytes = orig_last.clone();
        bytes[position as usize] ^= mask;
        fs::write(&path, &bytes).unwrap();

        let k = in_last
            .iter()
            .position(|b| b.position <= position && position < b.end_position())
            .unwrap();
        let hit = in_last[k];
        let rel = position - hit.position;
        let before: Vec<Batch> = batches
            .iter()
            .filter(|b| b.base < hit.base)
            .cloned()
            .collect();

        let opened = Log::open(&dir, config.clone(), LoadState::unclean(T0));
        let mut log = opened.unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        assert_eq!(log.segment_base_offsets(), segments, "{ctx}");
        // Earlier segments are untouched.
        for seg in &segments[..segments.len() - 1] {
            assert_eq!(
                fs::read(seg_path(&dir, *seg, "log")).unwrap(),
                fs::read(seg_path(&orig, *seg, "log")).unwrap(),
                "{ctx}: segment {seg} changed"
            );
        }
        let file_len = fs::metadata(&path).unwrap().len();
        if (12..16).contains(&rel) {
            // The partition leader epoch is outside the CRC (Kafka's v2
            // format), and recovery does not judge it: every batch stays.
            let end = batches.last().unwrap().next();
            check_contents(&log, &batches, end, false, &ctx);
            assert_eq!(file_len, last_len, "{ctx}");
        } else if rel < 8 {
            // The base offset is outside the CRC too. Recovery catches it
            // only if it breaks offset order (below the previous batch's
            // end, or past what a segment can address); otherwise the
            // batch is kept at its new offsets and the next batch, now
            // behind, is where the segment ends.
            let new_base = common::be_i64(&bytes, hit.position as usize);
            let last_delta = hit.recs.len() as i64 - 1;
            let accepted =
                new_base >= hit.base && new_base + last_delta - last_seg <= i64::from(i32::MAX);
            if accepted {
                let mut kept = before.clone();
                let mut moved = hit.clone();
                moved.base = new_base;
                kept.push(moved);
                check_contents(&log, &kept, new_base + last_delta + 1, false, &ctx);
                assert_eq!(file_len, hit.end_position(), "{ctx}");
            } else {
                check_contents(&log, &before, hit.base, true, &ctx);
                assert_eq!(file_len, hit.position, "{ctx}");
            }
        } else {
            // Length, magic, CRC, or anything the CRC covers: the batch is
            // invalid, and it and everything after it go.
            check_contents(&log, &before, hit.base, true, &ctx);
            assert_eq!(file_len, hit.position, "{ctx}: file length");
        }
        // What is kept is the original bytes (with the flip, if kept).
        let kept_bytes = fs::read(&path).unwrap();
        assert_eq!(kept_bytes[..], bytes[..kept_bytes.len()], "{ctx}");
        for seg in &segments {
            check_indexes(&dir, *seg, &ctx);
        }
        append_and_read(&mut log, &config, &ctx);
    }
}

/// Recovery cuts a segment at its first invalid batch whatever field is
/// damaged (Kafka's LogSegment.recover), including the first batch's
/// length. Here one segment of 10 batches has offset-index entries, and the
/// high byte of its first batch's length field is flipped.
#[test]
fn corrupt_first_batch_header_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config();
    let dir = tmp.path().join("orig-0");
    let mut rng = XorShift::new(0xF1257);
    let specs = specs(&mut rng, 10, 5, 60);
    let batches = build(&dir, &config, &specs);
    assert!(batches.iter().all(|b| b.segment == 0), "one segment");
    assert!(
        !index_bytes(&dir, 0).0.is_empty(),
        "the test needs offset-index entries"
    );
    let path = seg_path(&dir, 0, "log");
    let mut bytes = fs::read(&path).unwrap();
    bytes[8] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    // This used to fail with CorruptFile ("no valid batch header at
    // position 0") from Segment::open, before the log could recover.
    let mut log = Log::open(&dir, config.clone(), LoadState::unclean(T0)).unwrap();
    check_contents(&log, &[], 0, true, "first batch length flipped");
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    append_and_read(&mut log, &config, "first batch length flipped");
}

// ---------------------------------------------------------------------------
// (c) Torn index files with the clean-shutdown state
// ---------------------------------------------------------------------------

fn index_bytes(dir: &Path, base: i64) -> (Vec<u8>, Vec<u8>) {
    (
        fs::read(seg_path(dir, base, "index")).unwrap(),
        fs::read(seg_path(dir, base, "timeindex")).unwrap(),
    )
}

/// Every offset reads back as the batch holding it.
fn check_every_offset(log: &Log, batches: &[Batch], ctx: &str) {
    for b in batches {
        for offset in b.base..b.next() {
            let slice = log.read(offset, 1, i64::MAX, true).unwrap().unwrap();
            assert_eq!(slice.first_offset, b.base, "{ctx}: read at {offset}");
            assert_eq!(slice.position, b.position, "{ctx}: read at {offset}");
            assert_eq!(slice.len, b.size, "{ctx}: read at {offset}");
        }
    }
    // Timestamp lookups use the time index as a hint only.
    for b in batches {
        let ts = b.recs.iter().map(|r| r.timestamp).min().unwrap();
        let want = batches
            .iter()
            .flat_map(|b| {
                b.recs
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (b.base + i as i64, r.timestamp))
            })
            .find(|(_, t)| *t >= ts);
        let got = log
            .offset_for_timestamp(ts)
            .unwrap()
            .map(|t| (t.offset, t.timestamp));
        assert_eq!(got, want, "{ctx}: offset for timestamp {ts}");
    }
}

#[test]
fn torn_index_files_are_rebuilt_on_a_clean_open() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config();
    let orig = tmp.path().join("orig-0");
    let mut rng = XorShift::new(0x1DE7);
    let specs = specs(&mut rng, 50, 5, 100);
    let batches = build(&orig, &config, &specs);
    let mut segments: Vec<i64> = batches.iter().map(|b| b.segment).collect();
    segments.dedup();
    assert!(segments.len() >= 3, "the test needs several segments");
    eprintln!("SEGS c {}", segments.len());
    let leo = batches.last().unwrap().next();
    let originals: Vec<(Vec<u8>, Vec<u8>)> =
        segments.iter().map(|s| index_bytes(&orig, *s)).collect();
    for (offsets, times) in &originals[..segments.len() - 1] {
        assert!(
            offsets.len() >= 16 && times.len() >= 24,
            "the test needs index entries"
        );
    }

    let dir = tmp.path().join("torn-0");
    let targets = [segments[1], *segments.last().unwrap()];
    for seg in targets {
        for ext in ["index", "timeindex"] {
            let entry = if ext == "index" { 8 } else { 12 };
            let good = fs::read(seg_path(&orig, seg, ext)).unwrap();
            let mut variants: Vec<(&str, Vec<u8>)> = vec![
                ("odd-length garbage", rng.bytes(entry * 3 + 5)),
                ("one byte", vec![0x42]),
                ("whole-entry garbage", rng.bytes(entry * 4)),
                (
                    "garbage entry appended",
                    [good.clone(), rng.bytes(entry)].concat(),
                ),
            ];
            if !good.is_empty() {
                variants.push(("torn last entry", good[..good.len() - 3].to_vec()));
            }
            for (what, bytes) in variants {
                let ctx = format!("segment {seg} .{ext}: {what}");
                copy_dir(&orig, &dir);
                fs::write(seg_path(&dir, seg, ext), &bytes).unwrap();
                let log = Log::open(&dir, config.clone(), clean_state(leo))
                    .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
                check_contents(&log, &batches, leo, true, &ctx);
                check_every_offset(&log, &batches, &ctx);
                log.close(T0).unwrap();
                // Rebuilt from the .log: the same files Kafka's rules give,
                // which are the files the log wrote in the first place.
                for (i, s) in segments.iter().enumerate() {
                    assert_eq!(
                        index_bytes(&dir, *s),
                        originals[i],
                        "{ctx}: index files of segment {s} after the rebuild"
                    );
                }
            }
        }
    }
}

/// An offset index that is missing after a clean shutdown (lost, or deleted
/// by an operator) is rebuilt, as Kafka does: LogSegment.sanityCheck throws
/// NoSuchFileException for a missing `.index` and LogLoader recovers the
/// segment, rebuilding both indexes. (A missing `.timeindex` alone Kafka
/// leaves empty, so that case is not asserted.) An empty file is a valid
/// index, so recreating it empty is not the same thing.
#[test]
fn missing_offset_index_is_rebuilt_on_a_clean_open() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small_config();
    let dir = tmp.path().join("orig-0");
    let mut rng = XorShift::new(0x1DE7);
    let specs = specs(&mut rng, 10, 5, 100);
    let batches = build(&dir, &config, &specs);
    let leo = batches.last().unwrap().next();
    let original = index_bytes(&dir, 0);
    assert!(
        !original.0.is_empty(),
        "the test needs offset-index entries"
    );
    fs::remove_file(seg_path(&dir, 0, "index")).unwrap();
    let log = Log::open(&dir, config.clone(), clean_state(leo)).unwrap();
    check_contents(&log, &batches, leo, true, "missing .index");
    log.close(T0).unwrap();
    // Fails: the .index comes back empty (every read of the segment then
    // scans its batch headers from position 0).
    assert_eq!(
        index_bytes(&dir, 0),
        original,
        "segment 0 without its .index"
    );
}

// ---------------------------------------------------------------------------
// (d) Multi-segment logs
// ---------------------------------------------------------------------------

fn multi_segment_log(tmp: &Path) -> (PathBuf, LogConfig, Vec<Batch>, Vec<i64>) {
    let config = small_config();
    let orig = tmp.join("orig-0");
    let mut rng = XorShift::new(0xD15C);
    let specs = specs(&mut rng, 70, 5, 100);
    let batches = build(&orig, &config, &specs);
    let mut segments: Vec<i64> = batches.iter().map(|b| b.segment).collect();
    segments.dedup();
    eprintln!("SEGS d {} {:?}", segments.len(), segments);
    assert!(segments.len() >= 4, "the test needs at least 4 segments");
    for s in &segments {
        assert!(
            batches.iter().filter(|b| b.segment == *s).count() >= 3,
            "the test needs several batches per segment"
        );
    }
    (orig, config, batches, segments)
}

#[test]
fn torn_last_segment_leaves_earlier_segments_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (orig, config, batches, segments) = multi_segment_log(tmp.path());
    let last_seg = *segments.last().unwrap();
    let in_last: Vec<&Batch> = batches.iter().filter(|b| b.segment == last_seg).collect();
    let mut cuts = vec![0, 1, 30, 61, in_last[0].size - 1];
    for b in &in_last[1..] {
        cuts.extend([b.position + 7, b.position + 40, b.position + b.size / 2]);
    }
    let dir = tmp.path().join("torn-0");
    for cut in cuts {
        for recovery_point in [0, last_seg] {
            let ctx = format!("segment {last_seg} cut at {cut}, recovery point {recovery_point}");
            copy_dir(&orig, &dir);
            let path = seg_path(&dir, last_seg, "log");
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let state = LoadState {
                recovery_point,
                log_start_offset: 0,
                had_clean_shutdown: false,
                now_ms: T0,
            };
            let mut log = Log::open(&dir, config.clone(), state)
                .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
            assert_eq!(log.segment_base_offsets(), segments, "{ctx}");
            let kept: Vec<Batch> = batches
                .iter()
                .filter(|b| b.segment < last_seg || b.end_position() <= cut)
                .cloned()
                .collect();
            let end = kept.last().map_or(0, Batch::next).max(last_seg);
            check_contents(&log, &kept, end, true, &ctx);
            for seg in &segments[..segments.len() - 1] {
                assert_eq!(
                    fs::read(seg_path(&dir, *seg, "log")).unwrap(),
                    fs::read(seg_path(&orig, *seg, "log")).unwrap(),
                    "{ctx}: segment {seg} changed"
                );
                assert_eq!(index_bytes(&dir, *seg), index_bytes(&orig, *seg), "{ctx}");
            }
            for seg in &segments {
                check_indexes(&dir, *seg, &ctx);
            }
            append_and_read(&mut log, &config, &ctx);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// A flipped byte in the CRC-covered part of the batch.
    Flip,
    /// The segment file ends in the middle of the batch.
    Tear,
}

#[test]
fn corrupt_middle_segment_ends_the_log_and_deletes_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (orig, config, batches, segments) = multi_segment_log(tmp.path());
    let dir = tmp.path().join("corrupt-0");
    for seg_index in [0, 1, segments.len() - 2] {
        let seg = segments[seg_index];
        let in_seg: Vec<&Batch> = batches.iter().filter(|b| b.segment == seg).collect();
        for batch_index in [0, 1, in_seg.len() - 1] {
            for damage in [Damage::Flip, Damage::Tear] {
                let hit = in_seg[batch_index];
                let ctx = format!(
                    "{damage:?} in batch {} (offset {}) of segment {seg}",
                    batch_index, hit.base
                );
                copy_dir(&orig, &dir);
                let path = seg_path(&dir, seg, "log");
                let mut bytes = fs::read(&path).unwrap();
                match damage {
                    Damage::Flip => bytes[(hit.position + hit.size - 1) as usize] ^= 0x10,
                    Damage::Tear => bytes.truncate((hit.position + hit.size / 2) as usize),
                }
                fs::write(&path, &bytes).unwrap();
                let mut log = Log::open(&dir, config.clone(), LoadState::unclean(T0))
                    .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
                // The log ends at the damaged batch; the segments after the
                // damaged one are deleted, files and all.
                let kept: Vec<Batch> = batches
                    .iter()
                    .filter(|b| b.base < hit.base)
                    .cloned()
                    .collect();
                check_contents(&log, &kept, hit.base, true, &ctx);
                assert_eq!(log.segment_base_offsets(), segments[..=seg_index], "{ctx}");
                assert_eq!(fs::metadata(&path).unwrap().len(), hit.position, "{ctx}");
                for later in &segments[seg_index + 1..] {
                    for ext in ["log", "index", "timeindex"] {
                        assert!(
                            !seg_path(&dir, *later, ext).exists(),
                            "{ctx}: segment {later}'s .{ext} survived"
                        );
                    }
                }
                for s in &segments[..=seg_index] {
                    check_indexes(&dir, *s, &ctx);
                }
                append_and_read(&mut log, &config, &ctx);
                // And the shortened log restarts cleanly.
                log.close(T0).unwrap();
                let log = Log::open(&dir, config.clone(), clean_state(hit.base + 1)).unwrap();
                assert_eq!(log.log_end_offset(), hit.base + 1, "{ctx}");
                assert_eq!(log.segment_base_offsets(), segments[..=seg_index], "{ctx}");
            }
        }
    }
}
