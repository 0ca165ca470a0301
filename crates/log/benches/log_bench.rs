//! riffle-log against plain file I/O on the same bytes, in one run.
//!
//! Workloads: batches of 16 KiB and of 1 MiB made of 1 KiB records. For each,
//! the same total bytes are
//! - appended through `validate_produce` + `Log::append_as_leader`, and
//!   written raw with `write_all` to a plain file; both sides start each
//!   append from a fresh copy of the request bytes, as a broker receives them;
//! - read back through `Log::read` (1 MiB fetch budget) then `pread` of the
//!   slice into a reused buffer, and read raw in 1 MiB `read` calls into a
//!   reused buffer.
//!
//! Rows: `append` times `Log::append_as_leader` on validated batches against
//! `write` alone (the target: >= 0.8); `validate+append` times the
//! whole produce path (copy, `validate_produce` with its CRC-32C and record
//! walk, append) against copy + `write`; `read` as above.
//!
//! Runs are interleaved (raw, riffle, raw, riffle, ...) and the median and
//! spread of each are reported with the ratio riffle/raw. Neither side
//! fsyncs: the log's default leaves flushing to the OS, like Kafka.
//!
//! Usage: `cargo bench -p riffle-log --bench log_bench -- [--total-mib N] [--runs N] [--json PATH] [--dir PATH]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use riffle_log::{validate_produce, LoadState, Log, LogConfig};

const T0: i64 = 1_700_000_000_000;
const RECORD_VALUE_BYTES: usize = 1000;

fn batch(records: usize) -> BytesMut {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: T0,
            key: Some(bytes::Bytes::from(format!("key-{i:08}"))),
            value: Some(bytes::Bytes::from(vec![
                (i % 251) as u8;
                RECORD_VALUE_BYTES
            ])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf
}

struct Args {
    total_mib: usize,
    runs: usize,
    json: Option<PathBuf>,
    dir: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        total_mib: 512,
        runs: 5,
        json: None,
        dir: std::env::temp_dir(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = || argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--total-mib" => a.total_mib = value().parse().expect("--total-mib N"),
            "--runs" => a.runs = value().parse().expect("--runs N"),
            "--json" => a.json = Some(PathBuf::from(value())),
            "--dir" => a.dir = PathBuf::from(value()),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Writes `count` fresh copies of `template`; returns the seconds spent in
/// `write` alone and in the whole loop (copy included).
fn raw_write(path: &Path, template: &BytesMut, count: usize) -> (f64, f64) {
    let start = Instant::now();
    let mut f = File::create(path).expect("create");
    let mut writing = 0.0;
    for _ in 0..count {
        // The same fresh copy of the request bytes the log side gets.
        let request = template.clone();
        let t = Instant::now();
        f.write_all(&request).expect("write");
        writing += t.elapsed().as_secs_f64();
    }
    drop(f);
    (writing, start.elapsed().as_secs_f64())
}

fn raw_read(path: &Path) -> (f64, usize) {
    let start = Instant::now();
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        total += n;
        std::hint::black_box(&buf[..n]);
    }
    (start.elapsed().as_secs_f64(), total)
}

/// Validates and appends `count` fresh copies of `template`; returns the
/// seconds spent in `append_as_leader` alone and in the whole loop (copy and
/// validation included).
fn log_append(dir: &Path, template: &BytesMut, count: usize) -> (f64, f64, Log) {
    let config = LogConfig::default();
    let validation = config.validation();
    let mut log = Log::open(dir, config, LoadState::unclean(T0)).expect("open log");
    let start = Instant::now();
    let mut appending = 0.0;
    for _ in 0..count {
        let request = template.clone();
        let valid = validate_produce(request, &validation, T0).expect("valid");
        let t = Instant::now();
        log.append_as_leader(valid, 0, T0).expect("append");
        appending += t.elapsed().as_secs_f64();
    }
    (appending, start.elapsed().as_secs_f64(), log)
}

fn log_read(log: &Log) -> (f64, usize) {
    let start = Instant::now();
    let mut offset = log.log_start_offset();
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    while let Some(slice) = log.read(offset, 1 << 20, i64::MAX, true).expect("read") {
        // Into one reused buffer, as the raw side reads (the broker sends
        // the slice with sendfile instead).
        let len = slice.len as usize;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        slice
            .file
            .read_exact_at(&mut buf[..len], slice.position)
            .expect("slice");
        total += len;
        std::hint::black_box(&buf[..len]);
        offset = slice.last_offset + 1;
    }
    (start.elapsed().as_secs_f64(), total)
}

fn median_spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args = args();
    let work = args
        .dir
        .join(format!("riffle-log-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("bench dir");
    let mut rows = Vec::new();
    let mut json = Vec::new();
    println!(
        "riffle-log benchmark: {} MiB per run, {} runs, interleaved; dir {}",
        args.total_mib,
        args.runs,
        work.display()
    );
    for (name, records) in [("16 KiB batches", 16usize), ("1 MiB batches", 1024usize)] {
        let template = batch(records);
        let count = (args.total_mib << 20) / template.len();
        let bytes = count * template.len();
        let (mut aw, mut pw, mut ar, mut rw, mut qw, mut rr) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for run in 0..args.runs {
            let raw_path = work.join("raw.bin");
            let log_dir = work.join("log-0");
            let _ = std::fs::remove_dir_all(&log_dir);
            let _ = std::fs::remove_file(&raw_path);
            let (w, whole) = raw_write(&raw_path, &template, count);
            let (r, n) = raw_read(&raw_path);
            assert_eq!(n, bytes);
            rw.push(mb_per_s(bytes, w));
            qw.push(mb_per_s(bytes, whole));
            rr.push(mb_per_s(bytes, r));
            std::fs::remove_file(&raw_path).expect("rm raw");
            let (w, whole, log) = log_append(&log_dir, &template, count);
            let (r, n) = log_read(&log);
            assert_eq!(n, bytes);
            aw.push(mb_per_s(bytes, w));
            pw.push(mb_per_s(bytes, whole));
            ar.push(mb_per_s(bytes, r));
            drop(log);
            std::fs::remove_dir_all(&log_dir).expect("rm log");
            eprint!("\r{name}: run {}/{}", run + 1, args.runs);
        }
        eprintln!();
        for (what, riffle, raw) in [
            ("append", aw, rw),
            ("validate+append", pw, qw),
            ("read", ar, rr),
        ] {
            let (rm, rlo, rhi) = median_spread(riffle);
            let (cm, clo, chi) = median_spread(raw);
            let ratio = rm / cm;
            rows.push(format!(
                "| {name:<14} | {what:<15} | {rm:>8.0} ({rlo:.0}-{rhi:.0}) | {cm:>8.0} ({clo:.0}-{chi:.0}) | {ratio:>5.2} |"
            ));
            json.push(format!(
                "{{\"workload\":\"{name}\",\"op\":\"{what}\",\"riffle_mb_s\":{rm:.1},\"riffle_min\":{rlo:.1},\"riffle_max\":{rhi:.1},\"raw_mb_s\":{cm:.1},\"raw_min\":{clo:.1},\"raw_max\":{chi:.1},\"ratio\":{ratio:.3}}}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!();
    println!(
        "| workload       | op              | riffle-log MB/s (min-max) | raw file MB/s (min-max) | ratio |"
    );
    println!(
        "|----------------|-----------------|---------------------------|-------------------------|-------|"
    );
    for row in rows {
        println!("{row}");
    }
    if let Some(path) = args.json {
        std::fs::write(&path, format!("[{}]\n", json.join(",\n"))).expect("write json");
        println!("\nfigures written to {}", path.display());
    }
}
