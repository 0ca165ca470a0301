//! Snapshot files (KIP-630), in Kafka's format.
//!
//! A snapshot of the state machine at end offset `o` (every record below
//! `o` applied) whose record `o - 1` was written in epoch `e` is the file
//! `<o, 20 digits>-<e, 10 digits>.checkpoint` in `__cluster_metadata-0`.
//! It is a sequence of magic-v2 record batches, as Kafka's
//! `RecordsSnapshotWriter` lays them out:
//!
//! 1. a control batch whose first record is a `SnapshotHeaderRecord`
//!    (control type 3, version 0, `last_contained_log_timestamp`);
//! 2. data batches holding the state machine's records;
//! 3. a control batch with a `SnapshotFooterRecord` (control type 4).
//!
//! Batch offsets count from 0 across the file, and every batch carries the
//! snapshot's epoch as its partition leader epoch (Kafka's writer builds
//! them with a `BatchAccumulator` at base offset 0 and the snapshot epoch).
//!
//! Files being written are `<id>-<tag>.checkpoint.part`; they are fsynced
//! and renamed to `<id>.checkpoint` (then the directory is fsynced) only
//! once complete, so a `.checkpoint` file is always whole. Snapshots that
//! are no longer needed are renamed to `.checkpoint.deleted` and then
//! removed, as Kafka does. Leftover `.part` and `.deleted` files are removed
//! when the log is opened.
//!
//! Reading checks every batch's framing and CRC, that offsets are
//! contiguous from 0, that the header comes first and the footer last.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{SnapshotFooterRecord, SnapshotHeaderRecord};
use kafka_protocol::protocol::{Decodable, Encodable};
use riffle_log::batch::{check_batch, BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use tracing::info;

use super::records::decode_batch;
use super::{corrupt, io_error, refused, sync_dir, Result, StorageError};
use crate::batch::{self, CONTROL_SNAPSHOT_FOOTER, CONTROL_SNAPSHOT_HEADER};
use crate::types::OffsetAndEpoch;

pub const SUFFIX: &str = ".checkpoint";
pub const PARTIAL_SUFFIX: &str = ".checkpoint.part";
pub const DELETED_SUFFIX: &str = ".checkpoint.deleted";

/// Data bytes per batch the [`SnapshotWriter`] aims for.
pub const BATCH_BYTES_TARGET: usize = 1024 * 1024;

const OFFSET_WIDTH: usize = 20;
const EPOCH_WIDTH: usize = 10;

/// `00000000000000000042-0000000003` for end offset 42, epoch 3.
pub fn file_stem(id: OffsetAndEpoch) -> String {
    assert!(
        id.offset >= 0 && id.epoch >= 0,
        "a snapshot id is never negative: {id:?}"
    );
    format!("{:020}-{:010}", id.offset, id.epoch)
}

/// `<dir>/<stem>.checkpoint`.
pub fn snapshot_path(dir: &Path, id: OffsetAndEpoch) -> PathBuf {
    dir.join(format!("{}{SUFFIX}", file_stem(id)))
}

fn deleted_path(dir: &Path, id: OffsetAndEpoch) -> PathBuf {
    dir.join(format!("{}{DELETED_SUFFIX}", file_stem(id)))
}

/// What a snapshot file name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFileKind {
    /// `.checkpoint`: complete and immutable.
    Complete,
    /// `.checkpoint.part`: being written, or left by a crash.
    Partial,
    /// `.checkpoint.deleted`: marked for deletion.
    Deleted,
}

/// Parses a snapshot file name as Kafka does: the id is the first 31
/// characters (partial files may carry more before their suffix).
pub fn parse_file_name(name: &str) -> Option<(OffsetAndEpoch, SnapshotFileKind)> {
    let kind = if name.ends_with(PARTIAL_SUFFIX) {
        SnapshotFileKind::Partial
    } else if name.ends_with(DELETED_SUFFIX) {
        SnapshotFileKind::Deleted
    } else if name.ends_with(SUFFIX) {
        SnapshotFileKind::Complete
    } else {
        return None;
    };
    let offset = name.get(..OFFSET_WIDTH)?;
    let dash = name.get(OFFSET_WIDTH..=OFFSET_WIDTH)?;
    let epoch = name.get(OFFSET_WIDTH + 1..OFFSET_WIDTH + 1 + EPOCH_WIDTH)?;
    let rest = &name[OFFSET_WIDTH + 1 + EPOCH_WIDTH..];
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if dash != "-" || !digits(offset) || !digits(epoch) {
        return None;
    }
    // A complete or deleted file has nothing between the id and the suffix.
    if kind != SnapshotFileKind::Partial && !(rest == SUFFIX || rest == DELETED_SUFFIX) {
        return None;
    }
    let id = OffsetAndEpoch::new(offset.parse().ok()?, epoch.parse().ok()?);
    Some((id, kind))
}

/// Every snapshot file in `dir`: id, kind and path.
pub fn list(dir: &Path) -> Result<Vec<(OffsetAndEpoch, SnapshotFileKind, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((id, kind)) = parse_file_name(name) {
            out.push((id, kind, entry.path()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    Ok(out)
}

/// The newest complete snapshot in `dir` and its size in bytes.
pub fn latest_snapshot(dir: &Path) -> Result<Option<(OffsetAndEpoch, u64)>> {
    let latest = list(dir)?
        .into_iter()
        .filter(|(_, kind, _)| *kind == SnapshotFileKind::Complete)
        .max_by_key(|(id, _, _)| *id);
    match latest {
        None => Ok(None),
        Some((id, _, path)) => {
            let size = fs::metadata(&path).map_err(io_error(&path))?.len();
            Ok(Some((id, size)))
        }
    }
}

/// Removes `.part` and `.deleted` files: partial writes a crash left and
/// deletions it interrupted. Returns how many went.
pub fn remove_leftovers(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for (id, kind, path) in list(dir)? {
        if kind != SnapshotFileKind::Complete {
            info!(path = %path.display(), ?id, "removing a leftover snapshot file");
            remove_if_exists(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Deletes every complete snapshot other than `keep`: each is renamed to
/// `.checkpoint.deleted`, then removed (a reader that has it open keeps
/// reading). Returns the ids deleted.
pub fn delete_all_but(dir: &Path, keep: OffsetAndEpoch) -> Result<Vec<OffsetAndEpoch>> {
    let mut deleted = Vec::new();
    for (id, kind, path) in list(dir)? {
        if kind != SnapshotFileKind::Complete || id == keep {
            continue;
        }
        let marked = deleted_path(dir, id);
        fs::rename(&path, &marked).map_err(io_error(&path))?;
        info!(?id, kept = ?keep, "deleting an older snapshot");
        deleted.push(id);
    }
    if deleted.is_empty() {
        return Ok(deleted);
    }
    sync_dir(dir)?;
    for id in &deleted {
        remove_if_exists(&deleted_path(dir, *id))?;
    }
    sync_dir(dir)?;
    Ok(deleted)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn open_snapshot(dir: &Path, id: OffsetAndEpoch) -> Result<(File, PathBuf)> {
    let path = snapshot_path(dir, id);
    match File::open(&path) {
        Ok(f) => Ok((f, path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(StorageError::SnapshotNotFound { path })
        }
        Err(e) => Err(io_error(&path)(e)),
    }
}

/// The size in bytes of snapshot `id`.
pub fn size(dir: &Path, id: OffsetAndEpoch) -> Result<u64> {
    let (file, path) = open_snapshot(dir, id)?;
    Ok(file.metadata().map_err(io_error(&path))?.len())
}

/// Up to `max_bytes` of snapshot `id` from byte `position`, for a
/// FetchSnapshot response (whose records need not be whole batches).
/// Empty at the end of the file; past it is an error.
pub fn read_chunk(
    dir: &Path,
    id: OffsetAndEpoch,
    position: u64,
    max_bytes: usize,
) -> Result<Bytes> {
    let (file, path) = open_snapshot(dir, id)?;
    let len = file.metadata().map_err(io_error(&path))?.len();
    if position > len {
        return Err(refused(
            &path,
            format!("position {position} is past the end of the {len}-byte snapshot"),
        ));
    }
    let n = (len - position).min(max_bytes as u64) as usize;
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, position)
        .map_err(io_error(&path))?;
    Ok(Bytes::from(buf))
}

/// Writes a snapshot of the local state machine. Dropping it before
/// [`SnapshotWriter::finish`] removes the partial file.
#[derive(Debug)]
pub struct SnapshotWriter {
    id: OffsetAndEpoch,
    dir: PathBuf,
    part: PathBuf,
    file: Option<BufWriter<File>>,
    next_offset: i64,
    timestamp_ms: i64,
    size: u64,
}

impl SnapshotWriter {
    /// Starts snapshot `id` in `dir` (the `__cluster_metadata-0`
    /// directory) and writes its header. `last_contained_log_timestamp` is
    /// the timestamp of record `id.offset - 1`; `now_ms` stamps the batches.
    pub fn create(
        dir: &Path,
        id: OffsetAndEpoch,
        last_contained_log_timestamp: i64,
        now_ms: i64,
    ) -> Result<SnapshotWriter> {
        let stem = file_stem(id);
        let done = snapshot_path(dir, id);
        if done.exists() {
            return Err(refused(&done, "the snapshot already exists"));
        }
        // Several writers of one id (a local snapshot and a download, or a
        // retry) must not share a partial file.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let (file, part) = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let part = dir.join(format!("{stem}-{}-{n}{PARTIAL_SUFFIX}", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&part) {
                Ok(f) => break (f, part),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error(&part)(e)),
            }
        };
        let mut writer = SnapshotWriter {
            id,
            dir: dir.to_path_buf(),
            part,
            file: Some(BufWriter::new(file)),
            next_offset: 0,
            timestamp_ms: now_ms,
            size: 0,
        };
        let header = SnapshotHeaderRecord::default()
            .with_version(0)
            .with_last_contained_log_timestamp(last_contained_log_timestamp);
        let mut value = BytesMut::new();
        header
            .encode(&mut value, 0)
            .expect("SnapshotHeaderRecord v0 encodes");
        writer.write_batch(batch::control_batch(
            0,
            id.epoch,
            now_ms,
            CONTROL_SNAPSHOT_HEADER,
            value.freeze(),
        ))?;
        Ok(writer)
    }

    pub fn id(&self) -> OffsetAndEpoch {
        self.id
    }

    /// Bytes written so far.
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    fn write_batch(&mut self, bytes: Bytes) -> Result<()> {
        let header = check_batch(&bytes).expect("a batch we built is valid");
        debug_assert_eq!(header.base_offset, self.next_offset);
        let file = self.file.as_mut().expect("an unfinished writer has a file");
        file.write_all(&bytes).map_err(io_error(&self.part))?;
        self.next_offset = header.next_offset();
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Appends `values` in order, as data batches of about
    /// [`BATCH_BYTES_TARGET`] bytes each.
    pub fn append(&mut self, values: &[Bytes]) -> Result<()> {
        let mut start = 0;
        while start < values.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < values.len()
                && (end == start || bytes + values[end].len() <= BATCH_BYTES_TARGET)
            {
                bytes += values[end].len();
                end += 1;
            }
            let batch = batch::data_batch(
                self.next_offset,
                self.id.epoch,
                self.timestamp_ms,
                &values[start..end],
            );
            self.write_batch(batch)?;
            start = end;
        }
        Ok(())
    }

    /// Writes the footer, fsyncs, renames the file to `<id>.checkpoint`
    /// and fsyncs the directory. Returns the snapshot's size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        let mut value = BytesMut::new();
        SnapshotFooterRecord::default()
            .with_version(0)
            .encode(&mut value, 0)
            .expect("SnapshotFooterRecord v0 encodes");
        self.write_batch(batch::control_batch(
            self.next_offset,
            self.id.epoch,
            self.timestamp_ms,
            CONTROL_SNAPSHOT_FOOTER,
            value.freeze(),
        ))?;
        let file = self
            .file
            .take()
            .expect("an unfinished writer has a file")
            .into_inner()
            .map_err(|e| io_error(&self.part)(e.into_error()))?;
        let size = self.size;
        install(&self.dir, &self.part, file, self.id)?;
        Ok(size)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.part);
        }
    }
}

/// fsyncs the complete partial file, makes it read-only (as Kafka does),
/// renames it to `<id>.checkpoint` and fsyncs the directory.
fn install(dir: &Path, part: &Path, file: File, id: OffsetAndEpoch) -> Result<()> {
    file.sync_all().map_err(io_error(part))?;
    let mut permissions = file.metadata().map_err(io_error(part))?.permissions();
    permissions.set_readonly(true);
    file.set_permissions(permissions).map_err(io_error(part))?;
    drop(file);
    let done = snapshot_path(dir, id);
    fs::rename(part, &done).map_err(io_error(&done))?;
    sync_dir(dir)
}

/// A snapshot being downloaded from the leader, chunk by chunk, into
/// `<id>-download.checkpoint.part`. Dropping it before
/// [`SnapshotDownload::finish`] removes the partial file.
#[derive(Debug)]
pub struct SnapshotDownload {
    id: OffsetAndEpoch,
    dir: PathBuf,
    part: PathBuf,
    file: Option<File>,
    len: u64,
}

impl SnapshotDownload {
    /// Starts downloading `id` into `dir`, discarding an earlier partial
    /// download of the same id.
    pub fn create(dir: &Path, id: OffsetAndEpoch) -> Result<SnapshotDownload> {
        let part = dir.join(format!("{}-download{PARTIAL_SUFFIX}", file_stem(id)));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&part)
            .map_err(io_error(&part))?;
        Ok(SnapshotDownload {
            id,
            dir: dir.to_path_buf(),
            part,
            file: Some(file),
            len: 0,
        })
    }

    pub fn id(&self) -> OffsetAndEpoch {
        self.id
    }

    /// Bytes received so far: the position of the next chunk.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `bytes` at `position`, which must be where the last chunk
    /// ended. Chunks need not hold whole batches.
    pub fn write_chunk(&mut self, position: u64, bytes: &[u8]) -> Result<()> {
        if position != self.len {
            return Err(refused(
                &self.part,
                format!(
                    "chunk at position {position}, but {} bytes were received",
                    self.len
                ),
            ));
        }
        let file = self
            .file
            .as_ref()
            .expect("an unfinished download has a file");
        file.write_all_at(bytes, position)
            .map_err(io_error(&self.part))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Checks the whole file (every batch's CRC, header first, footer
    /// last), fsyncs it, renames it to `<id>.checkpoint` and fsyncs the
    /// directory. A bad file is removed and reported as `Corrupt`.
    /// Returns the size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        let file = self.file.take().expect("an unfinished download has a file");
        if let Err(e) = scan(&self.part, |_, _, _| Ok(())) {
            let _ = fs::remove_file(&self.part);
            return Err(e);
        }
        install(&self.dir, &self.part, file, self.id)?;
        Ok(self.len)
    }
}

impl Drop for SnapshotDownload {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.part);
        }
    }
}

/// What [`scan`] found besides the data.
#[derive(Debug, Clone, Copy)]
struct Summary {
    last_contained_log_timestamp: i64,
    size: u64,
}

/// Reads the snapshot file at `path` batch by batch, checking each, and
/// hands each data record (offset, value) to `on_record`.
fn scan(
    path: &Path,
    mut on_record: impl FnMut(i64, i32, Bytes) -> Result<(), String>,
) -> Result<Summary> {
    let file = File::open(path).map_err(io_error(path))?;
    let size = file.metadata().map_err(io_error(path))?.len();
    let mut reader = BufReader::new(file);
    let mut position = 0u64;
    let mut next_offset = 0i64;
    let mut timestamp = None;
    let mut footer = false;
    let mut buf = Vec::new();
    while position < size {
        let at = |reason: String| corrupt(path, format!("batch at byte {position}: {reason}"));
        let left = size - position;
        if left < LOG_OVERHEAD as u64 {
            return Err(at(format!("{left} trailing bytes are too few for a batch")));
        }
        buf.clear();
        buf.resize(LOG_OVERHEAD, 0);
        reader.read_exact(&mut buf).map_err(io_error(path))?;
        let length = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let batch_size = LOG_OVERHEAD as u64 + u64::try_from(length).unwrap_or(0);
        if batch_size < HEADER_BYTES as u64 || batch_size > left {
            return Err(at(format!(
                "batch length {length} does not fit the {left} bytes left (torn or corrupt)"
            )));
        }
        buf.resize(batch_size as usize, 0);
        reader
            .read_exact(&mut buf[LOG_OVERHEAD..])
            .map_err(io_error(path))?;
        let header = check_batch(&buf).map_err(|e| at(e.to_string()))?;
        if footer {
            return Err(at("data follows the SnapshotFooterRecord".into()));
        }
        if header.base_offset != next_offset {
            return Err(at(format!(
                "base offset {} where {next_offset} was expected",
                header.base_offset
            )));
        }
        let records = decode_batch(&header, &buf).map_err(at)?;
        check_records(
            &header,
            records,
            &mut timestamp,
            &mut footer,
            &mut on_record,
        )
        .map_err(at)?;
        next_offset = header.next_offset();
        position += batch_size;
    }
    let Some(last_contained_log_timestamp) = timestamp else {
        return Err(corrupt(path, "no SnapshotHeaderRecord (empty file?)"));
    };
    if !footer {
        return Err(corrupt(
            path,
            "no SnapshotFooterRecord: the snapshot is incomplete",
        ));
    }
    Ok(Summary {
        last_contained_log_timestamp,
        size,
    })
}

fn check_records(
    header: &BatchHeader,
    records: Vec<super::LogRecord>,
    timestamp: &mut Option<i64>,
    footer: &mut bool,
    on_record: &mut impl FnMut(i64, i32, Bytes) -> Result<(), String>,
) -> Result<(), String> {
    let first_batch = header.base_offset == 0;
    if first_batch && !header.is_control() {
        return Err("the first batch is not the SnapshotHeaderRecord's control batch".into());
    }
    for (i, record) in records.into_iter().enumerate() {
        let offset = record.offset;
        let value = record
            .value
            .ok_or_else(|| format!("the record at offset {offset} has no value"))?;
        match record.control_type {
            None => on_record(offset, header.partition_leader_epoch, value)?,
            Some(CONTROL_SNAPSHOT_HEADER) => {
                if !(first_batch && i == 0) {
                    return Err(format!(
                        "a SnapshotHeaderRecord at offset {offset} is not the first record"
                    ));
                }
                let h = SnapshotHeaderRecord::decode(&mut value.clone(), 0)
                    .map_err(|e| format!("undecodable SnapshotHeaderRecord: {e}"))?;
                *timestamp = Some(h.last_contained_log_timestamp);
            }
            Some(CONTROL_SNAPSHOT_FOOTER) => {
                SnapshotFooterRecord::decode(&mut value.clone(), 0)
                    .map_err(|e| format!("undecodable SnapshotFooterRecord: {e}"))?;
                *footer = true;
            }
            // Kafka writes kraft.version and voter records (5, 6) after
            // the header when the voter set is dynamic; static voters need
            // neither.
            Some(_) => {}
        }
        if first_batch && i == 0 && timestamp.is_none() {
            return Err("the first record is not a SnapshotHeaderRecord".into());
        }
    }
    Ok(())
}

/// A complete snapshot read into memory, checked.
#[derive(Debug, Clone)]
pub struct SnapshotReader {
    id: OffsetAndEpoch,
    path: PathBuf,
    last_contained_log_timestamp: i64,
    size_bytes: u64,
    records: Vec<Bytes>,
}

impl SnapshotReader {
    /// Reads and checks the snapshot file at `path`, whose name gives its
    /// id. Every error names the file.
    pub fn open(path: &Path) -> Result<SnapshotReader> {
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_file_name)
            .filter(|(_, kind)| *kind == SnapshotFileKind::Complete)
            .map(|(id, _)| id)
            .ok_or_else(|| refused(path, "not a <offset>-<epoch>.checkpoint file name"))?;
        if !path.exists() {
            return Err(StorageError::SnapshotNotFound {
                path: path.to_path_buf(),
            });
        }
        let mut records = Vec::new();
        let summary = scan(path, |_, _, value| {
            records.push(value);
            Ok(())
        })?;
        Ok(SnapshotReader {
            id,
            path: path.to_path_buf(),
            last_contained_log_timestamp: summary.last_contained_log_timestamp,
            size_bytes: summary.size,
            records,
        })
    }

    /// Reads snapshot `id` in `dir`.
    pub fn open_id(dir: &Path, id: OffsetAndEpoch) -> Result<SnapshotReader> {
        SnapshotReader::open(&snapshot_path(dir, id))
    }

    pub fn id(&self) -> OffsetAndEpoch {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header's `last_contained_log_timestamp`.
    pub fn last_contained_log_timestamp(&self) -> i64 {
        self.last_contained_log_timestamp
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The data records' values, in order.
    pub fn records(&self) -> &[Bytes] {
        &self.records
    }

    pub fn into_records(self) -> Vec<Bytes> {
        self.records
    }
}

/// Checks the snapshot file at `path` without keeping its records; returns
/// its size.
pub fn validate(path: &Path) -> Result<u64> {
    scan(path, |_, _, _| Ok(())).map(|s| s.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        let id = OffsetAndEpoch::new(42, 3);
        assert_eq!(file_stem(id), "00000000000000000042-0000000003");
        let p = |n: &str| parse_file_name(n);
        assert_eq!(
            p("00000000000000000042-0000000003.checkpoint"),
            Some((id, SnapshotFileKind::Complete))
        );
        assert_eq!(
            p("00000000000000000042-0000000003.checkpoint.deleted"),
            Some((id, SnapshotFileKind::Deleted))
        );
        // Kafka's temporary files carry a random tag.
        assert_eq!(
            p("00000000000000000042-0000000003-123456789.checkpoint.part"),
            Some((id, SnapshotFileKind::Partial))
        );
        assert_eq!(p("00000000000000000042-0000000003x.checkpoint"), None);
        assert_eq!(p("00000000000000000042.log"), None);
        assert_eq!(p("quorum-state"), None);
        assert_eq!(p("0000000000000000004-0000000003.checkpoint"), None);
    }

    #[test]
    fn batches_count_offsets_from_zero_in_the_snapshot_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = OffsetAndEpoch::new(100, 7);
        let mut w = SnapshotWriter::create(dir.path(), id, 55, 1000).expect("create");
        w.append(&[Bytes::from_static(b"x"), Bytes::from_static(b"y")])
            .expect("append");
        w.finish().expect("finish");
        let bytes = fs::read(snapshot_path(dir.path(), id)).expect("read");
        let headers = batch::headers(&bytes).expect("valid batches");
        let offsets: Vec<(i64, i64, i32, bool)> = headers
            .iter()
            .map(|h| {
                (
                    h.base_offset,
                    h.last_offset(),
                    h.partition_leader_epoch,
                    h.is_control(),
                )
            })
            .collect();
        assert_eq!(
            offsets,
            [(0, 0, 7, true), (1, 2, 7, false), (3, 3, 7, true)]
        );
    }
}
