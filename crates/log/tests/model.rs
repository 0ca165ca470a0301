//! Model-based test of the log: random sequences of appends, reads,
//! truncations, rolls and restarts run against a [`Log`] and against a
//! plain in-memory model (the batches, their offsets, records and leader
//! epochs). After every operation the log must agree with the model, and
//! every segment's files must obey Kafka's on-disk rules.
//!
//! The config is `common::small_config()` (segment.bytes 4096,
//! index.interval.bytes 256) so that rolls and index entries happen every
//! few appends.
//!
//! Operations: leader appends of 1-20 records (null and non-null keys and
//! values of 0-300 bytes, every codec, a leader epoch that never decreases),
//! reads, truncate_to, roll, clean close and reopen, and flush then drop
//! (a crash) and unclean reopen. Checks, with the rule each enforces:
//! - log start/end offsets and a full read equal the model: a leader assigns
//!   consecutive offsets from the log end offset and stamps its epoch
//!   (UnifiedLog.appendAsLeader); nothing is lost by a flush-then-crash or a
//!   restart;
//! - each read: the first batch holds the requested offset, whole batches
//!   only, within max_bytes except the one batch min_one allows (KIP-74),
//!   none ending at or past the upper bound, and as many as those rules and
//!   the segment allow (one read never crosses a segment);
//! - truncate_to drops the batch holding the offset and all after it, and
//!   the segments at or after it (LogSegment.truncateTo, UnifiedLog.truncateTo);
//! - a size roll happens exactly when the active segment would pass
//!   segment.bytes (LogSegment.shouldRoll), an explicit roll starts a segment
//!   at the log end offset;
//! - the leader epoch cache holds each epoch's first offset among the
//!   batches still in the log (LeaderEpochFileCache.assign/truncateFromEnd);
//! - every `.index`/`.timeindex` entry points at a real batch, and the files
//!   are exactly what Kafka's indexing rule gives (see [`kafka_indexes`]);
//! - a clean close leaves the same index files that an unclean open, which
//!   rebuilds them from the `.log` files, produces (see `Harness::resealed`
//!   for the one exception Kafka has too).

// Helpers outside #[test] functions unwrap too; clippy.toml's
// allow-unwrap-in-tests only covers the test functions themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use riffle_log::{BatchError, LoadState, Log, LogConfig, LogError};

use common::{decode_all, encode_batch, small_config, Rec};

/// Wall clock at the start of every case; record timestamps are near it.
const T0: i64 = 1_700_000_000_000;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct MRec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

/// One batch as the leader appended it: offsets `base..base + recs.len()`.
#[derive(Debug, Clone)]
struct MBatch {
    base: i64,
    epoch: i32,
    size: u64,
    recs: Vec<MRec>,
}

impl MBatch {
    fn last(&self) -> i64 {
        self.base + self.recs.len() as i64 - 1
    }
    fn next(&self) -> i64 {
        self.base + self.recs.len() as i64
    }
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<MBatch>,
    log_start: i64,
    /// The current leader epoch; it never decreases.
    epoch: i32,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(self.log_start, MBatch::next)
    }

    /// Index of the batch holding `offset` (which is below the end).
    fn batch_holding(&self, offset: i64) -> usize {
        self.batches
            .iter()
            .position(|b| b.base <= offset && offset <= b.last())
            .unwrap_or_else(|| panic!("no batch holds offset {offset}"))
    }

    /// The leader epoch cache Kafka keeps: for each epoch the first offset
    /// its leader wrote, for the epochs that still have a batch in the log.
    fn epochs(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = Vec::new();
        for b in &self.batches {
            if out.last().is_none_or(|(e, _)| b.epoch > *e) {
                out.push((b.epoch, b.base));
            }
        }
        out
    }

    /// (offset, record, epoch) of every record, in offset order.
    fn records(&self) -> Vec<(i64, MRec, i32)> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.recs
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (b.base + i as i64, r.clone(), b.epoch))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// On-disk parsing, independent of riffle-log
// ---------------------------------------------------------------------------

/// A batch header as found in a `.log` file (Kafka's DefaultRecordBatch
/// layout: baseOffset at 0, batchLength at 8, lastOffsetDelta at 23,
/// maxTimestamp at 35).
#[derive(Debug, Clone, Copy)]
struct DiskBatch {
    position: u64,
    base: i64,
    size: u64,
    last: i64,
    max_ts: i64,
}

/// Walks a segment file; it must consist of whole batches only.
fn parse_segment(path: &Path) -> Vec<DiskBatch> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        assert!(
            at + 61 <= bytes.len(),
            "{}: torn header at {at}",
            path.display()
        );
        let size = common::be_i32(&bytes, at + 8) as usize + 12;
        assert!(
            at + size <= bytes.len(),
            "{}: torn batch at {at}",
            path.display()
        );
        let base = common::be_i64(&bytes, at);
        out.push(DiskBatch {
            position: at as u64,
            base,
            size: size as u64,
            last: base + i64::from(common::be_i32(&bytes, at + 23)),
            max_ts: common::be_i64(&bytes, at + 35),
        });
        at += size;
    }
    out
}

/// `.index` entry: (relative offset, position).
type OffsetEntry = (u32, u32);
/// `.timeindex` entry: (timestamp, relative offset).
type TimeEntry = (i64, u32);

/// `.index`: 8-byte entries, u32 relative offset then u32 position.
fn read_offset_index(path: &Path) -> Vec<OffsetEntry> {
    let bytes = fs::read(path).unwrap();
    assert_eq!(bytes.len() % 8, 0, "{} has a torn entry", path.display());
    bytes
        .chunks_exact(8)
        .map(|e| (common::be_u32(e, 0), common::be_u32(e, 4)))
        .collect()
}

/// `.timeindex`: 12-byte entries, i64 timestamp then u32 relative offset.
fn read_time_index(path: &Path) -> Vec<TimeEntry> {
    let bytes = fs::read(path).unwrap();
    assert_eq!(bytes.len() % 12, 0, "{} has a torn entry", path.display());
    bytes
        .chunks_exact(12)
        .map(|e| (common::be_i64(e, 0), common::be_u32(e, 8)))
        .collect()
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// The index files Kafka's rules give for a segment's batches:
/// - offset index (LogSegment.append / LogSegment.recover): an entry
///   (lastOffset of the batch, its position) for each batch that starts more
///   than index.interval.bytes after the previous entry (or the file start);
/// - time index: at each of those points, (max timestamp so far, offset of
///   the batch that first reached it) if it is newer than the last entry
///   (TimeIndex.maybeAppend), plus that pair once more when the segment is
///   sealed (roll, close, recovery: LogSegment.onBecomeInactiveSegment).
fn kafka_indexes(
    base: i64,
    batches: &[DiskBatch],
    interval: u64,
    sealed: bool,
) -> (Vec<OffsetEntry>, Vec<TimeEntry>) {
    let mut offsets = Vec::new();
    let mut times: Vec<(i64, u32)> = Vec::new();
    let push_time = |times: &mut Vec<(i64, u32)>, ts: i64, off: i64| {
        if times.last().is_none_or(|(t, _)| ts > *t) {
            times.push((ts, (off - base) as u32));
        }
    };
    let mut last_indexed = 0u64;
    let mut max_ts = -1i64;
    let mut offset_of_max = base;
    for b in batches {
        if b.max_ts > max_ts {
            max_ts = b.max_ts;
            offset_of_max = b.last;
        }
        if b.position - last_indexed > interval {
            offsets.push(((b.last - base) as u32, b.position as u32));
            push_time(&mut times, max_ts, offset_of_max);
            last_indexed = b.position;
        }
    }
    if sealed && max_ts >= 0 {
        push_time(&mut times, max_ts, offset_of_max);
    }
    (offsets, times)
}

/// Whether `small` is a subsequence of `big`.
fn is_subsequence<T: PartialEq>(small: &[T], big: &[T]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

/// Every `.index` and `.timeindex` file of a directory, by name.
fn index_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".index") || n.ends_with(".timeindex"))
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// Key or value bytes: a length and a seed (cheap to generate and to shrink);
/// `repeat` makes them compressible.
#[derive(Debug, Clone)]
struct BytesSpec {
    len: usize,
    seed: u64,
    repeat: bool,
}

impl BytesSpec {
    fn bytes(&self) -> Vec<u8> {
        let mut x = self.seed | 1;
        (0..self.len)
            .map(|i| {
                if self.repeat {
                    return (self.seed as u8).wrapping_add((i / 16) as u8);
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
struct RecSpec {
    key: Option<BytesSpec>,
    value: Option<BytesSpec>,
    ts_delta: i64,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        recs: Vec<RecSpec>,
        codec: usize,
        new_epoch: bool,
    },
    Read {
        at: u32,
        max_bytes: u64,
        upper: Option<u32>,
        min_one: bool,
    },
    Truncate {
        at: u32,
    },
    Roll,
    CloseReopen,
    /// 0: recovery point 0 (`LoadState::unclean`); 1: the log end offset;
    /// 2: somewhere in between, chosen by the second field.
    FlushDropReopen {
        recovery: u8,
        at: u32,
    },
}

fn bytes_spec() -> impl Strategy<Value = BytesSpec> {
    // Sizes 0-300 bytes, mostly small so that segments hold many batches
    // and get index entries.
    let len = prop_oneof![2 => 0..=24usize, 1 => 0..=300usize];
    (len, any::<u64>(), prop::bool::weighted(0.3)).prop_map(|(len, seed, repeat)| BytesSpec {
        len,
        seed,
        repeat,
    })
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    (
        prop::option::weighted(0.8, bytes_spec()),
        prop::option::weighted(0.85, bytes_spec()),
        0..100_000i64,
    )
        .prop_map(|(key, value, ts_delta)| RecSpec {
            key,
            value,
            ts_delta,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            prop_oneof![
                prop::collection::vec(rec_spec(), 1..=3),
                prop::collection::vec(rec_spec(), 1..=20),
            ],
            0..CODECS.len(),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(recs, codec, new_epoch)| Op::Append {
                recs,
                codec,
                new_epoch
            }),
        4 => (
            any::<u32>(),
            0..6000u64,
            prop::option::of(any::<u32>()),
            any::<bool>()
        )
            .prop_map(|(at, max_bytes, upper, min_one)| Op::Read {
                at,
                max_bytes,
                upper,
                min_one
            }),
        1 => any::<u32>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Roll),
        1 => Just(Op::CloseReopen),
        1 => (0..3u8, any::<u32>()).prop_map(|(recovery, at)| Op::FlushDropReopen { recovery, at }),
    ]
}

// ---------------------------------------------------------------------------
// The harness: a log, its model, and the checks
// ---------------------------------------------------------------------------

struct Harness {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    config: LogConfig,
    log: Option<Log>,
    model: Model,
    now: i64,
    /// Segments whose time index got a "seal" entry (the segment's max
    /// timestamp, as on roll/close/recovery) and that could take appends
    /// afterwards: after a clean close and reopen, after recovery of the
    /// active segment, after a truncation that leaves a non-empty active
    /// segment (which recovery rebuilds and seals; or a rolled one becomes
    /// active again). Kafka's LogSegment.close/recover do the same. A later
    /// append with a newer timestamp leaves that entry in the middle of the
    /// file, where a rebuild from the `.log` would not put it, so for these
    /// segments the time index is only required to contain Kafka's entries.
    resealed: BTreeSet<i64>,
    rebuilds: u32,
}

impl Harness {
    fn new() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("topic-0");
        let config = small_config();
        let log = Log::open(&dir, config.clone(), LoadState::unclean(T0)).unwrap();
        Harness {
            tmp,
            dir,
            config,
            log: Some(log),
            model: Model::default(),
            now: T0,
            resealed: BTreeSet::new(),
            rebuilds: 0,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("log is open")
    }
    fn log_mut(&mut self) -> &mut Log {
        self.log.as_mut().expect("log is open")
    }

    /// Base offset of the segment holding `offset`.
    fn segment_of(bases: &[i64], offset: i64) -> i64 {
        *bases.iter().rev().find(|b| **b <= offset).unwrap()
    }

    /// Bytes in the segment starting at `seg_base`, by the model.
    fn model_segment_size(&self, seg_base: i64, seg_end: i64) -> u64 {
        self.model
            .batches
            .iter()
            .filter(|b| b.base >= seg_base && b.base < seg_end)
            .map(|b| b.size)
            .sum()
    }

    fn apply(&mut self, op: &Op) {
        self.now += 7;
        match op {
            Op::Append {
                recs,
                codec,
                new_epoch,
            } => self.append(recs, CODECS[*codec], *new_epoch),
            Op::Read {
                at,
                max_bytes,
                upper,
                min_one,
            } => self.read(*at, *max_bytes, *upper, *min_one),
            Op::Truncate { at } => self.truncate(*at),
            Op::Roll => self.roll(),
            Op::CloseReopen => self.close_reopen(),
            Op::FlushDropReopen { recovery, at } => self.flush_drop_reopen(*recovery, *at),
        }
        self.check();
    }

    fn append(&mut self, specs: &[RecSpec], codec: Compression, new_epoch: bool) {
        let mut recs: Vec<Rec> = specs
            .iter()
            .map(|s| Rec {
                key: s.key.as_ref().map(BytesSpec::bytes),
                value: s.value.as_ref().map(BytesSpec::bytes),
                timestamp: T0 + s.ts_delta,
                headers: vec![],
            })
            .collect();
        let validation = self.config.validation();
        let limit = self.config.segment_bytes as usize;
        let mut buf: BytesMut = encode_batch(&recs, codec);
        // A produced record set larger than segment.bytes is refused with
        // RECORD_LIST_TOO_LARGE (Kafka's UnifiedLog.analyzeAndValidateRecords).
        while buf.len() > limit {
            let err = riffle_log::validate_produce(buf.clone(), &validation, self.now)
                .expect_err("a record set over segment.bytes is refused");
            assert!(
                matches!(err, BatchError::RecordListTooLarge { .. }),
                "{err}"
            );
            recs.pop();
            buf = encode_batch(&recs, codec);
        }
        let size = buf.len() as u64;
        let validated = riffle_log::validate_produce(buf, &validation, self.now).unwrap();
        assert_eq!(validated.batch_count(), 1);
        if new_epoch {
            self.model.epoch += 1;
        }
        let epoch = self.model.epoch;

        let leo = self.model.end();
        let bases = self.log().segment_base_offsets();
        let active = *bases.last().unwrap();
        let active_size = self.model_segment_size(active, i64::MAX);
        let now = self.now;
        let info = self
            .log_mut()
            .append_as_leader(validated, epoch, now)
            .unwrap();

        // The leader assigns offsets from the log end offset.
        let n = recs.len() as i64;
        assert_eq!(info.first_offset, leo);
        assert_eq!(info.last_offset, leo + n - 1);
        assert_eq!(info.record_count, n);
        assert_eq!(info.size_bytes, size);
        let max_ts = recs.iter().map(|r| r.timestamp).max().unwrap();
        assert_eq!(info.max_timestamp, max_ts);
        assert_eq!(info.offset_of_max_timestamp, leo + n - 1);

        // Kafka's LogSegment.shouldRoll (size rule): a non-empty active
        // segment rolls when the append would take it past segment.bytes.
        let mut want_bases = bases;
        if active_size > 0 && active_size + size > self.config.segment_bytes {
            want_bases.push(leo);
        }
        assert_eq!(self.log().segment_base_offsets(), want_bases, "roll rule");

        self.model.batches.push(MBatch {
            base: leo,
            epoch,
            size,
            recs: recs
                .into_iter()
                .map(|r| MRec {
                    key: r.key,
                    value: r.value,
                    timestamp: r.timestamp,
                })
                .collect(),
        });
    }

    /// Reads from a random offset in [log start, log end + 1] and checks the
    /// result against what the read contract gives for the model.
    fn read(&mut self, at: u32, max_bytes: u64, upper: Option<u32>, min_one: bool) {
        let lso = self.model.log_start;
        let leo = self.model.end();
        let offset = lso + i64::from(at) % (leo - lso + 2);
        let upper_bound = upper.map_or(i64::MAX, |u| lso + i64::from(u) % (leo - lso + 2));
        let result = self.log().read(offset, max_bytes, upper_bound, min_one);
        if offset > leo {
            // A fetch past the log end offset is OFFSET_OUT_OF_RANGE.
            assert!(
                matches!(result, Err(LogError::OffsetOutOfRange { .. })),
                "read at {offset} past the end {leo}: {result:?}"
            );
            return;
        }
        let got = result.unwrap();
        let expected = self.expected_read(offset, max_bytes, upper_bound, min_one);
        let ctx = format!(
            "read(offset {offset}, max_bytes {max_bytes}, upper {upper_bound}, min_one {min_one}) \
             with segments {:?}",
            self.log().segment_base_offsets()
        );
        match (expected, got) {
            (None, None) => {}
            (Some(_), None) => panic!("{ctx}: got nothing"),
            (None, Some(s)) => panic!("{ctx}: expected nothing, got {s:?}"),
            (Some((first, last, position, len)), Some(slice)) => {
                // The first batch holds the offset; whole batches only.
                assert_eq!(slice.first_offset, self.model.batches[first].base, "{ctx}");
                assert_eq!(slice.last_offset, self.model.batches[last].last(), "{ctx}");
                assert_eq!(slice.position, position, "{ctx}");
                assert_eq!(slice.len, len, "{ctx}");
                // Never past the bound; within max_bytes unless the one batch
                // that min_one allows (KIP-74).
                assert!(slice.last_offset < upper_bound.min(leo), "{ctx}");
                assert!(
                    slice.len <= max_bytes || (min_one && first == last),
                    "{ctx}"
                );
                let records = decode_all(slice.read_to_vec().unwrap());
                let want: Vec<(i64, MRec, i32)> = self.model.batches[first..=last]
                    .iter()
                    .flat_map(|b| {
                        b.recs
                            .iter()
                            .enumerate()
                            .map(move |(i, r)| (b.base + i as i64, r.clone(), b.epoch))
                    })
                    .collect();
                assert_records(&records, &want, &ctx);
            }
        }
    }

    /// (first batch, last batch, position, length) that a read must return:
    /// the batch holding `offset`, then following batches of the same
    /// segment while each ends below min(upper_bound, log end) and the total
    /// stays within max_bytes (the first batch always, with min_one).
    fn expected_read(
        &self,
        offset: i64,
        max_bytes: u64,
        upper_bound: i64,
        min_one: bool,
    ) -> Option<(usize, usize, u64, u64)> {
        let upper = upper_bound.min(self.model.end());
        if offset >= upper {
            return None;
        }
        let bases = self.log().segment_base_offsets();
        let first = self.model.batch_holding(offset);
        let seg = Self::segment_of(&bases, self.model.batches[first].base);
        let seg_end = bases.iter().copied().find(|b| *b > seg).unwrap_or(i64::MAX);
        let position = self
            .model
            .batches
            .iter()
            .filter(|b| b.base >= seg && b.base < self.model.batches[first].base)
            .map(|b| b.size)
            .sum();
        let mut len = 0;
        let mut last = None;
        for (i, b) in self.model.batches.iter().enumerate().skip(first) {
            if b.base >= seg_end || b.last() >= upper {
                break;
            }
            if len + b.size > max_bytes && !(len == 0 && min_one) {
                break;
            }
            len += b.size;
            last = Some(i);
        }
        last.map(|last| (first, last, position, len))
    }

    /// truncate_to a random offset in [log start, log end]: the batch holding
    /// it and everything after go (Kafka truncates by whole batch).
    fn truncate(&mut self, at: u32) {
        let lso = self.model.log_start;
        let leo = self.model.end();
        let offset = lso + i64::from(at) % (leo - lso + 1);
        let bases = self.log().segment_base_offsets();
        let now = self.now;
        let removed = self.log_mut().truncate_to(offset, now).unwrap();
        assert_eq!(
            removed,
            offset < leo,
            "truncate_to({offset}) with end {leo}"
        );
        if offset < leo {
            let i = self.model.batch_holding(offset);
            self.model.batches.truncate(i);
            // Segments at or after the offset are deleted; the new active
            // segment was rebuilt (or rolled earlier) and sealed.
            self.resealed.retain(|b| *b < offset);
            let new_bases = self.log().segment_base_offsets();
            let active = *new_bases.last().unwrap();
            if self.model_segment_size(active, i64::MAX) > 0 {
                self.resealed.insert(active);
            }
            let want: Vec<i64> = bases.iter().copied().filter(|b| *b < offset).collect();
            if want.is_empty() {
                assert_eq!(new_bases, vec![offset]);
            } else {
                assert_eq!(new_bases, want, "segments at or after {offset} are deleted");
            }
        }
    }

    fn roll(&mut self) {
        let bases = self.log().segment_base_offsets();
        let leo = self.model.end();
        let now = self.now;
        self.log_mut().roll(now).unwrap();
        let mut want = bases.clone();
        // A roll starts a segment at the log end offset; it is a no-op when
        // the active segment is empty.
        if *bases.last().unwrap() < leo {
            want.push(leo);
        }
        assert_eq!(self.log().segment_base_offsets(), want);
    }

    /// Clean close; then (on a copy) an unclean open that rebuilds every
    /// index from the `.log` files must produce the same index files; then a
    /// clean reopen.
    fn close_reopen(&mut self) {
        let leo = self.model.end();
        let bases = self.log().segment_base_offsets();
        let active = *bases.last().unwrap();
        let now = self.now;
        self.log.take().unwrap().close(now).unwrap();
        if self.model_segment_size(active, i64::MAX) > 0 {
            self.resealed.insert(active);
        }
        // After a clean close every segment, the active one included, is
        // sealed (Kafka's LogSegment.close appends the final time entry).
        self.check_files(&bases, Disk::Closed);

        self.rebuilds += 1;
        let copy = self.tmp.path().join(format!("rebuild-{}", self.rebuilds));
        copy_dir(&self.dir, &copy);
        let rebuilt = Log::open(&copy, self.config.clone(), LoadState::unclean(now)).unwrap();
        assert_eq!(rebuilt.log_end_offset(), leo);
        assert_eq!(rebuilt.segment_base_offsets(), bases);
        rebuilt.close(now).unwrap();
        let incremental = index_files(&self.dir);
        let from_log = index_files(&copy);
        assert_eq!(
            incremental.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            from_log.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, inc), (_, reb)) in incremental.iter().zip(&from_log) {
            let base: i64 = name[..20].parse().unwrap();
            if name.ends_with(".timeindex") && self.resealed.contains(&base) {
                let inc = read_time_index(&self.dir.join(name));
                let reb = read_time_index(&copy.join(name));
                assert!(
                    is_subsequence(&reb, &inc),
                    "{name}: rebuilt {reb:?} is not within incremental {inc:?}"
                );
            } else {
                assert_eq!(
                    inc, reb,
                    "{name}: incremental and rebuilt index files differ"
                );
            }
        }
        for base in &bases {
            assert_eq!(
                fs::read(seg_path(&self.dir, *base, "log")).unwrap(),
                fs::read(seg_path(&copy, *base, "log")).unwrap(),
                "recovery of a whole segment changed it"
            );
        }
        fs::remove_dir_all(&copy).unwrap();

        let state = LoadState {
            recovery_point: leo,
            log_start_offset: self.model.log_start,
            had_clean_shutdown: true,
            now_ms: now,
        };
        let log = Log::open(&self.dir, self.config.clone(), state).unwrap();
        assert_eq!(log.recovery_point(), leo);
        self.log = Some(log);
    }

    /// flush, then drop without closing (a crash after the fsync) and reopen
    /// uncleanly: nothing was torn, so everything must still be there.
    fn flush_drop_reopen(&mut self, recovery: u8, at: u32) {
        let lso = self.model.log_start;
        let leo = self.model.end();
        let now = self.now;
        self.log_mut().flush(now).unwrap();
        assert_eq!(
            self.log().recovery_point(),
            leo,
            "flush moves the recovery point"
        );
        let bases = self.log().segment_base_offsets();
        self.check_files(&bases, Disk::Flushed);
        drop(self.log.take());
        let recovery_point = match recovery {
            0 => 0,
            1 => leo,
            _ => lso + i64::from(at) % (leo - lso + 1),
        };
        // Segments that may hold data past the recovery point are re-read
        // and get rebuilt (and sealed) indexes (Kafka's LogLoader).
        let mut recovered_any = false;
        for (i, base) in bases.iter().enumerate() {
            let end = bases.get(i + 1).copied().unwrap_or(leo);
            if end > recovery_point || *base >= recovery_point {
                recovered_any = true;
                self.resealed.remove(base);
                if i + 1 == bases.len() && end > *base {
                    self.resealed.insert(*base);
                }
            }
        }
        let state = LoadState {
            recovery_point,
            log_start_offset: lso,
            had_clean_shutdown: false,
            now_ms: now,
        };
        let state = if recovery == 0 {
            LoadState::unclean(now)
        } else {
            state
        };
        let log = Log::open(&self.dir, self.config.clone(), state).unwrap();
        let want_rp = if recovered_any { leo } else { recovery_point };
        assert_eq!(log.recovery_point(), want_rp);
        assert_eq!(log.segment_base_offsets(), bases);
        self.log = Some(log);
    }

    /// Checks that hold after every operation.
    fn check(&self) {
        let log = self.log();
        let lso = self.model.log_start;
        let leo = self.model.end();
        assert_eq!(log.log_end_offset(), leo, "log end offset");
        assert_eq!(log.log_start_offset(), lso, "log start offset");

        // Everything from the log start is exactly the model's records.
        let mut records = Vec::new();
        let mut offset = lso;
        while offset < leo {
            let slice = log
                .read(offset, 1 << 20, i64::MAX, true)
                .unwrap()
                .unwrap_or_else(|| panic!("nothing to read at {offset} below the end {leo}"));
            assert_eq!(
                slice.first_offset, offset,
                "reads start on batch boundaries"
            );
            offset = slice.last_offset + 1;
            records.extend(decode_all(slice.read_to_vec().unwrap()));
        }
        assert_eq!(offset, leo);
        assert_eq!(
            log.read(leo, 1 << 20, i64::MAX, true)
                .unwrap()
                .map(|s| s.len),
            None
        );
        assert_records(&records, &self.model.records(), "full read");

        // The leader epoch cache (leader-epoch-checkpoint) follows the log.
        let epochs = common::epochs(log);
        assert_eq!(epochs, self.model.epochs(), "leader epoch cache");

        self.check_files(&log.segment_base_offsets(), Disk::Live);
    }

    /// Every segment's `.log`, `.index` and `.timeindex` against the model
    /// and Kafka's index rules.
    fn check_files(&self, bases: &[i64], disk: Disk) {
        let leo = self.model.end();
        // Exactly the segment files (and the epoch checkpoint): no leftover
        // index of a deleted segment, no temporary files.
        let want: BTreeSet<String> = bases
            .iter()
            .flat_map(|b| ["log", "index", "timeindex"].map(|e| format!("{b:020}.{e}")))
            .collect();
        let mut names: BTreeSet<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.remove("leader-epoch-checkpoint");
        // Producer state snapshots: never above the log end offset.
        names.retain(|n| match riffle_log::producer_snapshot::offset_of(n) {
            Some(offset) => {
                assert!(offset <= leo, "snapshot {n} above the log end {leo}");
                false
            }
            None => true,
        });
        assert_eq!(names, want, "files in the partition directory");

        let mut model_batches = self.model.batches.iter();
        for (i, base) in bases.iter().enumerate() {
            let last_segment = i + 1 == bases.len();
            let end = bases.get(i + 1).copied().unwrap_or(leo);
            let batches = parse_segment(&seg_path(&self.dir, *base, "log"));
            // Segments hold consecutive whole batches, named by the first.
            if let Some(first) = batches.first() {
                assert_eq!(
                    first.base, *base,
                    "segment {base} starts with its base offset"
                );
            }
            for b in &batches {
                let m = model_batches
                    .next()
                    .expect("more batches on disk than in the model");
                assert_eq!((b.base, b.last, b.size), (m.base, m.last(), m.size));
                assert!(b.last < end, "segment {base} overlaps the next one");
            }

            let offsets = read_offset_index(&seg_path(&self.dir, *base, "index"));
            let times = read_time_index(&seg_path(&self.dir, *base, "timeindex"));
            // Each offset-index entry points at the start of a batch whose
            // last offset is base + relative offset.
            for (rel, pos) in &offsets {
                let b = batches
                    .iter()
                    .find(|b| b.position == u64::from(*pos))
                    .unwrap_or_else(|| {
                        panic!("segment {base}: index entry at {pos} is not a batch")
                    });
                assert_eq!(
                    b.last,
                    base + i64::from(*rel),
                    "segment {base}: index entry {pos}"
                );
            }
            // Each time-index entry is (t, o): the batch ending at o is the
            // first in the segment whose max timestamp reaches t, and t is
            // the max timestamp up to it; entries increase.
            for w in times.windows(2) {
                assert!(
                    w[0].0 < w[1].0 && w[0].1 <= w[1].1,
                    "segment {base}: {times:?}"
                );
            }
            for (ts, rel) in &times {
                let at = batches
                    .iter()
                    .position(|b| b.last == base + i64::from(*rel))
                    .unwrap_or_else(|| {
                        panic!("segment {base}: time entry {rel} is not a batch end")
                    });
                assert_eq!(batches[at].max_ts, *ts, "segment {base}: time entry {rel}");
                assert!(
                    batches[..at].iter().all(|b| b.max_ts < *ts),
                    "segment {base}: time entry ({ts}, {rel}) is not the first to reach {ts}"
                );
            }

            let sealed = disk == Disk::Closed || !last_segment;
            let (want_offsets, want_times) =
                kafka_indexes(*base, &batches, self.config.index_interval_bytes, sealed);
            if last_segment && disk == Disk::Live {
                // The active segment's index files may lag its batches until
                // the next flush (entries past the recovery point are rebuilt
                // after a crash anyway): what is there is a prefix.
                assert!(
                    want_offsets.starts_with(&offsets),
                    "segment {base}: offset index {offsets:?} is not a prefix of {want_offsets:?}"
                );
                if !self.resealed.contains(base) {
                    assert!(
                        want_times.starts_with(&times),
                        "segment {base}: time index {times:?} is not a prefix of {want_times:?}"
                    );
                }
                continue;
            }
            assert_eq!(offsets, want_offsets, "segment {base}: offset index");
            if self.resealed.contains(base) {
                assert!(
                    is_subsequence(&want_times, &times),
                    "segment {base}: time index {times:?} lacks Kafka's entries {want_times:?}"
                );
                if sealed {
                    assert_eq!(times.last(), want_times.last(), "segment {base}: sealed");
                }
            } else {
                assert_eq!(times, want_times, "segment {base}: time index");
            }
        }
        assert!(
            model_batches.next().is_none(),
            "model batches missing on disk"
        );
    }
}

/// What the index files on disk are known to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disk {
    /// Between operations: rolled segments are complete (a roll flushes),
    /// the active segment's may lag behind.
    Live,
    /// Right after `flush`: every entry is in the files.
    Flushed,
    /// Right after a clean `close`: complete, and every segment sealed.
    Closed,
}

/// Decoded records against the model: offsets, keys, values, timestamps and
/// the leader epoch stamped in their batch.
fn assert_records(got: &[kafka_protocol::records::Record], want: &[(i64, MRec, i32)], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: record count");
    for (g, (offset, m, epoch)) in got.iter().zip(want) {
        assert_eq!(g.offset, *offset, "{ctx}");
        assert_eq!(g.key.as_deref(), m.key.as_deref(), "{ctx}: key at {offset}");
        assert_eq!(
            g.value.as_deref(),
            m.value.as_deref(),
            "{ctx}: value at {offset}"
        );
        assert_eq!(g.timestamp, m.timestamp, "{ctx}: timestamp at {offset}");
        assert_eq!(g.partition_leader_epoch, *epoch, "{ctx}: epoch at {offset}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 64 cases take about 2 s in a debug build; PROPTEST_CASES=1000 for a soak.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        max_shrink_iters: 2000,
        // No regression files in the source tree; a failure prints its
        // minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..=40)) {
        let mut h = Harness::new();
        h.check();
        for op in &ops {
            h.apply(op);
        }
        // A final clean close and reopen, so every case ends with the
        // rebuild comparison.
        h.apply(&Op::CloseReopen);
    }
}

/// Kafka's TimeIndex.maybeAppend appends only a timestamp newer than the
/// last entry, and an empty time index's last entry is (NO_TIMESTAMP = -1,
/// base offset); so batches without timestamps never get a time-index entry
/// ("If all the messages are in message format v0, the timestamp will always
/// be NoTimestamp. In that case, the time index will be empty").
#[test]
fn batches_without_timestamps_get_no_time_index_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    let config = small_config();
    let mut log = Log::open(&dir, config.clone(), LoadState::unclean(T0)).unwrap();
    for _ in 0..4 {
        // NO_TIMESTAMP is a valid CreateTime timestamp for a producer.
        let recs = vec![Rec {
            key: None,
            value: Some(vec![7; 100]),
            timestamp: -1,
            headers: vec![],
        }];
        let batch = riffle_log::validate_produce(
            encode_batch(&recs, Compression::None),
            &config.validation(),
            T0,
        )
        .unwrap();
        log.append_as_leader(batch, 0, T0).unwrap();
    }
    log.close(T0).unwrap();
    let offsets = read_offset_index(&seg_path(&dir, 0, "index"));
    assert!(!offsets.is_empty(), "the test needs an offset-index entry");
    // Fails: the first index point pushes (-1, 0).
    assert_eq!(read_time_index(&seg_path(&dir, 0, "timeindex")), vec![]);
}
