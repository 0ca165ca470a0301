//! Model-based test of producer state: random interleavings of idempotent
//! and transactional appends from three producers, plain appends, COMMIT
//! and ABORT markers, retries, sequence gaps, epoch bumps, rolls,
//! truncations, compactions, clean restarts and crashes (some losing every
//! producer state snapshot, so the state is rebuilt from the whole log), run
//! against a
//! [`Log`] and against a model that is just the list of batches written.
//!
//! The model derives everything from that list the way Kafka's rules say:
//! - a transaction starts at its producer's first transactional batch and
//!   ends at its marker; the last stable offset (with the high watermark at
//!   the log end) is the first offset of the earliest open transaction;
//! - an ABORT of an open transaction is listed with its first offset, the
//!   marker's offset, and as last stable offset the first offset of the
//!   earliest other open transaction, or the offset after the marker
//!   (Kafka's `ProducerStateManager.lastStableOffset`);
//! - a client's next sequence continues its last batch in the current
//!   epoch, starting at 0 in a new one; its last batch retried is a
//!   duplicate answered with the original offsets; a skipped sequence is
//!   OUT_OF_ORDER_SEQUENCE_NUMBER; a non-transactional batch inside a
//!   transaction is INVALID_TXN_STATE.
//!
//! After every operation the log's first unstable offset, last stable
//! offset, aborted transactions (over the whole log and over ranges) and
//! producer views must equal the model's.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{encode_producer_batch, small_config, Producer, Rec};
use proptest::prelude::*;
use riffle_log::{AbortedTxn, LoadState, Log, LogConfig, LogError, TxnMarker};

const T0: i64 = 1_700_000_000_000;
const PRODUCERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Data {
        p: usize,
        txn: bool,
        n: usize,
    },
    Plain {
        n: usize,
    },
    Marker {
        p: usize,
        commit: bool,
    },
    Retry {
        p: usize,
    },
    Gap {
        p: usize,
    },
    BumpEpoch {
        p: usize,
    },
    Roll,
    Truncate {
        back: usize,
    },
    Compact,
    CloseReopen,
    CrashReopen,
    /// A crash that also loses every snapshot: a full replay of the log.
    CrashLosingSnapshots,
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PRODUCERS;
    prop_oneof![
        8 => (p.clone(), any::<bool>(), 1..4usize).prop_map(|(p, txn, n)| Op::Data { p, txn, n }),
        2 => (1..4usize).prop_map(|n| Op::Plain { n }),
        4 => (p.clone(), any::<bool>()).prop_map(|(p, commit)| Op::Marker { p, commit }),
        1 => p.clone().prop_map(|p| Op::Retry { p }),
        1 => p.clone().prop_map(|p| Op::Gap { p }),
        1 => p.prop_map(|p| Op::BumpEpoch { p }),
        1 => Just(Op::Roll),
        1 => Just(Op::Compact),
        1 => (1..5usize).prop_map(|back| Op::Truncate { back }),

        1 => Just(Op::CloseReopen),
        1 => Just(Op::CrashReopen),
        1 => Just(Op::CrashLosingSnapshots),
    ]
}

fn pid(p: usize) -> i64 {
    100 + p as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Data {
        pid: i64,
        epoch: i16,
        seq: i32,
        txn: bool,
    },
    Marker {
        pid: i64,
        epoch: i16,
        commit: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Batch {
    first: i64,
    last: i64,
    kind: Kind,
}

/// A producer as the model sees it after replaying the batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerModel {
    epoch: i16,
    /// The last data batch of the current epoch: (first seq, count, first offset, last offset).
    last_batch: Option<(i32, i32, i64, i64)>,
    txn_first: Option<i64>,
}

#[derive(Debug, Default)]
struct Derived {
    producers: BTreeMap<i64, ProducerModel>,
    aborted: Vec<AbortedTxn>,
}

impl Derived {
    fn open_txns(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.producers
            .iter()
            .filter_map(|(pid, p)| p.txn_first.map(|f| (f, *pid)))
    }
    fn first_unstable(&self) -> Option<i64> {
        self.open_txns().map(|(f, _)| f).min()
    }
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<Batch>,
    /// Each producer's epoch as its client knows it.
    epochs: [i16; PRODUCERS],
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.last + 1)
    }

    fn derive(&self) -> Derived {
        let mut d = Derived::default();
        for b in &self.batches {
            match b.kind {
                Kind::Plain => {}
                Kind::Data {
                    pid,
                    epoch,
                    seq,
                    txn,
                } => {
                    let p = d.producers.entry(pid).or_default();
                    if p.epoch != epoch {
                        p.epoch = epoch;
                    }
                    p.last_batch = Some((seq, (b.last - b.first + 1) as i32, b.first, b.last));
                    if txn && p.txn_first.is_none() {
                        p.txn_first = Some(b.first);
                    }
                }
                Kind::Marker { pid, epoch, commit } => {
                    let txn_first = d.producers.get(&pid).and_then(|p| p.txn_first);
                    if let (Some(first), false) = (txn_first, commit) {
                        let lso = d
                            .open_txns()
                            .filter(|(_, other)| *other != pid)
                            .map(|(f, _)| f)
                            .min()
                            .unwrap_or(b.first + 1);
                        d.aborted.push(AbortedTxn {
                            producer_id: pid,
                            first_offset: first,
                            last_offset: b.first,
                            last_stable_offset: lso,
                        });
                    }
                    let p = d.producers.entry(pid).or_default();
                    if p.epoch != epoch {
                        p.epoch = epoch;
                        p.last_batch = None;
                    }
                    p.txn_first = None;
                }
            }
        }
        d
    }
}

struct Harness {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    config: LogConfig,
    log: Option<Log>,
    model: Model,
    /// The log end when compaction last ran: like a follower, which only
    /// truncates above its high watermark, the test never truncates below
    /// what the cleaner may have compacted.
    compacted_to: i64,
}

impl Harness {
    fn new() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let mut config = small_config();
        config.segment_bytes = 700;
        config.cleanup_policy_compact = true;
        config.min_cleanable_dirty_ratio = 0.0;
        let log = Log::open(&dir, config.clone(), LoadState::unclean(T0)).unwrap();
        Harness {
            _tmp: tmp,
            dir,
            config,
            log: Some(log),
            model: Model::default(),
            compacted_to: 0,
        }
    }

    fn log(&mut self) -> &mut Log {
        self.log.as_mut().unwrap()
    }

    fn produce(&mut self, p: Producer, n: usize) -> Result<riffle_log::AppendInfo, LogError> {
        // Transactional records have keys of their own, so only the
        // aborted-transaction rule can remove them; the others share keys.
        let end = self.model.end();
        let recs: Vec<Rec> = (0..n)
            .map(|i| {
                let key = if p.transactional {
                    format!("t{end}-{i}")
                } else {
                    format!("k{}", i % 2)
                };
                Rec::kv(&key, &format!("v{end}"), T0)
            })
            .collect();
        let bytes = encode_producer_batch(&recs, p);
        let log = self.log();
        let batches = riffle_log::validate_produce(bytes, &log.config().validation(), T0).unwrap();
        log.append_as_leader(batches, 0, T0)
    }

    fn next_seq(&self, p: usize) -> i32 {
        let d = self.model.derive();
        match d.producers.get(&pid(p)) {
            Some(m) if m.epoch == self.model.epochs[p] => {
                m.last_batch.map_or(0, |(seq, n, _, _)| seq + n)
            }
            _ => 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Data { p, txn, n } => {
                let d = self.model.derive();
                let in_txn = d
                    .producers
                    .get(&pid(p))
                    .is_some_and(|m| m.txn_first.is_some());
                let producer = Producer {
                    id: pid(p),
                    epoch: self.model.epochs[p],
                    base_sequence: self.next_seq(p),
                    transactional: txn,
                };
                let result = self.produce(producer, n);
                if in_txn && !txn {
                    assert!(
                        matches!(result, Err(LogError::InvalidTxnState(_))),
                        "{result:?}"
                    );
                    return;
                }
                let info = result.unwrap();
                assert!(!info.duplicate);
                assert_eq!(info.first_offset, self.model.end());
                self.model.batches.push(Batch {
                    first: info.first_offset,
                    last: info.last_offset,
                    kind: Kind::Data {
                        pid: pid(p),
                        epoch: producer.epoch,
                        seq: producer.base_sequence,
                        txn,
                    },
                });
            }
            Op::Plain { n } => {
                let recs: Vec<Rec> = (0..n).map(|i| Rec::kv(&format!("k{i}"), "v", T0)).collect();
                let config = self.config.clone();
                let info = self
                    .log()
                    .append_as_leader(
                        common::validated(
                            &recs,
                            kafka_protocol::records::Compression::None,
                            &config,
                        ),
                        0,
                        T0,
                    )
                    .unwrap();
                self.model.batches.push(Batch {
                    first: info.first_offset,
                    last: info.last_offset,
                    kind: Kind::Plain,
                });
            }
            Op::Marker { p, commit } => {
                let epoch = self.model.epochs[p];
                let info = self
                    .log()
                    .append_txn_marker(
                        &TxnMarker {
                            producer_id: pid(p),
                            producer_epoch: epoch,
                            coordinator_epoch: 0,
                            commit,
                        },
                        0,
                        T0,
                    )
                    .unwrap();
                self.model.batches.push(Batch {
                    first: info.first_offset,
                    last: info.last_offset,
                    kind: Kind::Marker {
                        pid: pid(p),
                        epoch,
                        commit,
                    },
                });
            }
            Op::Retry { p } => {
                let d = self.model.derive();
                let Some(m) = d.producers.get(&pid(p)) else {
                    return;
                };
                let Some((seq, n, first, last)) = m.last_batch else {
                    return;
                };
                let txn = self
                    .model
                    .batches
                    .iter()
                    .find(|b| b.first == first)
                    .is_some_and(|b| matches!(b.kind, Kind::Data { txn: true, .. }));
                let producer = Producer {
                    id: pid(p),
                    epoch: m.epoch,
                    base_sequence: seq,
                    transactional: txn,
                };
                let info = self.produce(producer, n as usize).unwrap();
                assert!(info.duplicate, "retry of {first}..={last}");
                assert_eq!((info.first_offset, info.last_offset), (first, last));
            }
            Op::Gap { p } => {
                let d = self.model.derive();
                let known = d
                    .producers
                    .get(&pid(p))
                    .is_some_and(|m| m.epoch == self.model.epochs[p] && m.last_batch.is_some());
                if !known {
                    return;
                }
                let in_txn = d.producers[&pid(p)].txn_first.is_some();
                let producer = Producer {
                    id: pid(p),
                    epoch: self.model.epochs[p],
                    base_sequence: self.next_seq(p) + 1,
                    transactional: in_txn,
                };
                let err = self.produce(producer, 1).unwrap_err();
                assert!(matches!(err, LogError::OutOfOrderSequence(_)), "{err}");
            }
            Op::BumpEpoch { p } => {
                let d = self.model.derive();
                if d.producers
                    .get(&pid(p))
                    .is_none_or(|m| m.txn_first.is_none())
                {
                    self.model.epochs[p] += 1;
                }
            }
            Op::Roll => self.log().roll(T0).unwrap(),
            Op::Truncate { back } => {
                let len = self.model.batches.len();
                if back > len {
                    return;
                }
                let to = self.model.batches[len - back].first;
                if to < self.compacted_to {
                    return;
                }
                self.log().truncate_to(to, T0).unwrap();
                self.model.batches.truncate(len - back);
            }
            Op::Compact => {
                let end = self.model.end();
                self.compacted_to = end;
                let log = self.log();
                let lso = log.last_stable_offset(end);
                // Segments wholly below this base are cleanable.
                let bound = log
                    .segment_base_offsets()
                    .into_iter()
                    .rev()
                    .skip(1)
                    .find(|b| *b <= lso)
                    .unwrap_or(0)
                    .min(lso);
                log.compact(T0, end).unwrap();
                self.check_compacted(bound);
            }
            Op::CloseReopen => {
                self.log.take().unwrap().close(T0).unwrap();
                let state = LoadState {
                    recovery_point: self.model.end(),
                    log_start_offset: 0,
                    had_clean_shutdown: true,
                    now_ms: T0,
                };
                self.log = Some(Log::open(&self.dir, self.config.clone(), state).unwrap());
            }
            Op::CrashReopen | Op::CrashLosingSnapshots => {
                drop(self.log.take());
                if matches!(op, Op::CrashLosingSnapshots) {
                    for entry in std::fs::read_dir(&self.dir).unwrap() {
                        let path = entry.unwrap().path();
                        if path.extension().is_some_and(|e| e == "snapshot") {
                            std::fs::remove_file(path).unwrap();
                        }
                    }
                }
                self.log = Some(
                    Log::open(&self.dir, self.config.clone(), LoadState::unclean(T0)).unwrap(),
                );
            }
        }
        self.check(op);
    }

    /// Kafka's cleaner rules for transactions: below `bound` no aborted
    /// record is left; records of open transactions are never touched.
    fn check_compacted(&self, bound: i64) {
        let d = self.model.derive();
        let log = self.log.as_ref().unwrap();
        let mut on_disk = BTreeMap::new();
        let mut offset = 0;
        while let Some(slice) = log.read(offset, 1 << 20, i64::MAX, true).unwrap() {
            let bytes = slice.read_to_vec().unwrap();
            for item in riffle_log::batch::BatchIter::new(&bytes) {
                let (_, h, _) = item.unwrap();
                on_disk.insert(h.base_offset, h.record_count);
            }
            offset = slice.last_offset + 1;
        }
        for b in &self.model.batches {
            let Kind::Data { pid, txn: true, .. } = b.kind else {
                continue;
            };
            let aborted = d.aborted.iter().any(|a| {
                a.producer_id == pid && a.first_offset <= b.first && b.first < a.last_offset
            });
            let open = d
                .producers
                .get(&pid)
                .and_then(|m| m.txn_first)
                .is_some_and(|f| f <= b.first);
            let count = on_disk.get(&b.first).copied();
            if aborted && b.last < bound {
                assert!(
                    count.is_none_or(|c| c == 0),
                    "aborted batch at {} kept {count:?} records",
                    b.first
                );
            }
            if open {
                assert_eq!(
                    count,
                    Some((b.last - b.first + 1) as i32),
                    "open transaction's batch at {} was cleaned",
                    b.first
                );
            }
        }
    }

    fn check(&mut self, op: &Op) {
        let d = self.model.derive();
        let end = self.model.end();
        let log = self.log.as_ref().unwrap();
        let ctx = format!("after {op:?}");
        assert_eq!(log.log_end_offset(), end, "{ctx}");
        assert_eq!(log.first_unstable_offset(), d.first_unstable(), "{ctx}");
        assert_eq!(
            log.last_stable_offset(end),
            d.first_unstable().unwrap_or(end),
            "{ctx}"
        );
        assert_eq!(
            log.aborted_transactions(0, end).unwrap(),
            d.aborted,
            "{ctx}"
        );
        let bounds: Vec<i64> = self.model.batches.iter().map(|b| b.first).collect();
        for (i, &start) in bounds.iter().enumerate().step_by(3) {
            for &upper in bounds[i..].iter().step_by(4).chain([end].iter()) {
                let want: Vec<AbortedTxn> = d
                    .aborted
                    .iter()
                    .filter(|a| a.last_offset >= start && a.first_offset < upper)
                    .copied()
                    .collect();
                assert_eq!(
                    log.aborted_transactions(start, upper).unwrap(),
                    want,
                    "{ctx}: range {start}..{upper}"
                );
            }
        }
        let views: BTreeMap<i64, (i16, i32, i64)> = log
            .producers()
            .iter()
            .map(|v| {
                (
                    v.producer_id,
                    (
                        v.producer_epoch,
                        v.last_sequence,
                        v.current_txn_start_offset,
                    ),
                )
            })
            .collect();
        let want: BTreeMap<i64, (i16, i32, i64)> = d
            .producers
            .iter()
            .map(|(pid, m)| {
                (
                    *pid,
                    (
                        m.epoch,
                        m.last_batch.map_or(-1, |(seq, n, _, _)| seq + n - 1),
                        m.txn_first.unwrap_or(-1),
                    ),
                )
            })
            .collect();
        assert_eq!(views, want, "{ctx}: producers");
        check_no_stray_files(&self.dir, end);
    }
}

/// Snapshots never lie above the log end offset, and every `.txnindex`
/// belongs to a segment that exists.
fn check_no_stray_files(dir: &Path, end: i64) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".txnindex") {
            assert!(
                dir.join(format!("{stem}.log")).exists(),
                "{name} outlived its segment"
            );
        }
        if let Some(offset) = riffle_log::producer_snapshot::offset_of(&name) {
            assert!(offset <= end, "snapshot {name} above the log end {end}");
        }
        assert!(!name.ends_with(".tmp"), "temporary file {name} left behind");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn producer_state_matches_model(ops in prop::collection::vec(op(), 1..=60)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        h.apply(&Op::CloseReopen);
        h.apply(&Op::CrashReopen);
    }
}
