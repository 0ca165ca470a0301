//! `riffle dump-log`: prints segment files the way Kafka's `kafka-dump-log`
//! does, reading them with `riffle-log`'s own checks. A corrupt or torn
//! batch is reported with its position, and the dump of that file stops.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use riffle_log::batch::{BatchHeader, TimestampType, HEADER_BYTES};
use riffle_log::compression::{self, Compression};
use riffle_log::index::{IndexEntry, OffsetPosition, TimestampOffset};
use riffle_log::records::RecordIter;
use riffle_log::segment::{FileBatches, ScanStop};
use riffle_log::{producer_snapshot, AbortedTxn};

pub fn run(
    paths: &[PathBuf],
    print_records: bool,
    verify_index: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "log" || e == "snapshot" || e == "txnindex")
                })
                .collect();
            logs.sort();
            files.extend(logs);
        } else {
            files.push(path.clone());
        }
    }
    let mut clean = true;
    for file in files {
        clean &= match file.extension().and_then(|e| e.to_str()) {
            Some("snapshot") => dump_producer_snapshot(&file, out)?,
            Some("txnindex") => dump_txn_index(&file, out)?,
            _ => dump_segment(&file, print_records, verify_index, out)?,
        };
    }
    anyhow::ensure!(
        clean,
        "some segments hold corrupt or torn batches (see above)"
    );
    Ok(())
}

/// A producer state snapshot, one line per producer, in kafka-dump-log's
/// words. Returns false if the file is not a valid snapshot.
fn dump_producer_snapshot(path: &Path, out: &mut dyn Write) -> Result<bool> {
    writeln!(out, "Dumping {}", path.display())?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match producer_snapshot::decode(&bytes) {
        Ok(entries) => {
            for e in entries {
                let (first_seq, last_seq, last_offset, delta, ts) =
                    e.batches.back().map_or((-1, -1, -1, 0, -1), |b| {
                        (
                            b.first_seq(),
                            b.last_seq,
                            b.last_offset,
                            b.offset_delta,
                            b.timestamp,
                        )
                    });
                writeln!(
                    out,
                    "producerId: {} producerEpoch: {} coordinatorEpoch: {} currentTxnFirstOffset: {} lastTimestamp: {} firstSequence: {} lastSequence: {} lastOffset: {} offsetDelta: {} timestamp: {}",
                    e.producer_id,
                    e.epoch,
                    e.coordinator_epoch,
                    e.current_txn_first_offset
                        .map_or("None".to_string(), |o| format!("Some({o})")),
                    e.last_timestamp,
                    first_seq,
                    last_seq,
                    last_offset,
                    delta,
                    ts
                )?;
            }
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "invalid producer snapshot: {e}")?;
            Ok(false)
        }
    }
}

/// An aborted-transaction index, one line per entry. Returns false if the
/// file's size is not a whole number of entries.
fn dump_txn_index(path: &Path, out: &mut dyn Write) -> Result<bool> {
    writeln!(out, "Dumping {}", path.display())?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for chunk in bytes.chunks(riffle_log::txn_index::ENTRY_BYTES) {
        match AbortedTxn::from_bytes(chunk) {
            Some(a) => writeln!(
                out,
                "version: 0 producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
                a.producer_id, a.first_offset, a.last_offset, a.last_stable_offset
            )?,
            None => {
                writeln!(out, "a torn entry of {} byte(s) at the end", chunk.len())?;
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn codec_name(h: &BatchHeader) -> &'static str {
    match h.compression() {
        Ok(Compression::None) => "none",
        Ok(Compression::Gzip) => "gzip",
        Ok(Compression::Snappy) => "snappy",
        Ok(Compression::Lz4) => "lz4",
        Ok(Compression::Zstd) => "zstd",
        Err(_) => "unknown",
    }
}

/// Dumps one `.log` file; returns false if it held an invalid batch.
fn dump_segment(
    path: &Path,
    print_records: bool,
    verify_index: bool,
    out: &mut dyn Write,
) -> Result<bool> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    writeln!(out, "Dumping {}", path.display())?;
    let mut batches = Vec::new();
    let mut valid = true;
    let mut scan = FileBatches::new(&file, size);
    while let Some(item) = scan.next_batch() {
        let (position, h, batch) = match item {
            Ok(found) => found,
            Err(ScanStop::Invalid { position, reason }) => {
                writeln!(
                    out,
                    "Found an invalid or torn batch at position {position}: {reason}"
                )?;
                valid = false;
                break;
            }
            Err(ScanStop::Io(e)) => {
                return Err(e).with_context(|| format!("reading {}", path.display()))
            }
        };
        let ts_kind = match h.timestamp_type() {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        let last_sequence = if h.base_sequence < 0 {
            -1
        } else {
            h.base_sequence.wrapping_add(h.last_offset_delta)
        };
        writeln!(
            out,
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
             producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} position: {} \
             {}: {} size: {} magic: {} compresscodec: {} crcValid: true",
            h.base_offset,
            h.last_offset(),
            h.record_count,
            h.base_sequence,
            last_sequence,
            h.producer_id,
            h.producer_epoch,
            h.partition_leader_epoch,
            h.is_transactional(),
            h.is_control(),
            position,
            ts_kind,
            h.max_timestamp,
            h.size_bytes(),
            h.magic,
            codec_name(&h),
        )?;
        if print_records {
            print_batch_records(batch, &h, out)?;
        }
        batches.push((position, h));
    }
    if verify_index {
        valid &= verify_indexes(path, &batches, out)?;
    }
    Ok(valid)
}

fn print_batch_records(batch: &[u8], h: &BatchHeader, out: &mut dyn Write) -> Result<()> {
    let section = &batch[HEADER_BYTES..];
    let codec = h.compression()?;
    let owned;
    let records = if codec == Compression::None {
        section
    } else {
        owned =
            compression::decompress(codec, section, compression::decompressed_bytes_max(1 << 20))?;
        &owned[..]
    };
    let marker = if h.is_control() {
        riffle_log::parse_txn_marker(batch)
    } else {
        None
    };
    for record in RecordIter::new(records, h.record_count)? {
        let r = record?;
        let ts = match h.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => h.base_timestamp.saturating_add(r.timestamp_delta),
        };
        let header_keys: Vec<String> = r
            .header_pairs()
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        write!(
            out,
            "| offset: {} {}: {} keySize: {} valueSize: {} headerKeys: [{}]",
            h.base_offset.saturating_add(i64::from(r.offset_delta)),
            if h.timestamp_type() == TimestampType::LogAppendTime {
                "LogAppendTime"
            } else {
                "CreateTime"
            },
            ts,
            r.key.map_or(-1, |k| k.len() as i64),
            r.value.map_or(-1, |v| v.len() as i64),
            header_keys.join(",")
        )?;
        match marker {
            Some((commit, coordinator_epoch)) => writeln!(
                out,
                " endTxnMarker: {} coordinatorEpoch: {}",
                if commit { "COMMIT" } else { "ABORT" },
                coordinator_epoch
            )?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

fn read_entries<E: IndexEntry>(path: &Path) -> Result<Vec<E>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() % E::BYTES == 0,
        "{} has a partial entry",
        path.display()
    );
    Ok(bytes.chunks_exact(E::BYTES).map(E::decode).collect())
}

fn verify_indexes(log: &Path, batches: &[(u64, BatchHeader)], out: &mut dyn Write) -> Result<bool> {
    let base: i64 = log
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .context("segment file name is not a base offset")?;
    let mut ok = true;
    for e in read_entries::<OffsetPosition>(&log.with_extension("index"))? {
        let offset = base + i64::from(e.relative_offset);
        let hit = batches
            .iter()
            .any(|(p, h)| *p == u64::from(e.position) && h.last_offset() == offset);
        if !hit {
            writeln!(
                out,
                "Index entry offset {offset} position {} matches no batch",
                e.position
            )?;
            ok = false;
        }
    }
    for e in read_entries::<TimestampOffset>(&log.with_extension("timeindex"))? {
        let offset = base + i64::from(e.relative_offset);
        let hit = batches
            .iter()
            .any(|(_, h)| h.last_offset() == offset && h.max_timestamp == e.timestamp);
        if !hit {
            writeln!(
                out,
                "Time index entry timestamp {} offset {offset} matches no batch",
                e.timestamp
            )?;
            ok = false;
        }
    }
    writeln!(
        out,
        "Index check: {}",
        if ok { "consistent" } else { "INCONSISTENT" }
    )?;
    Ok(ok)
}
