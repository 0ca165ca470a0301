//! One segment: a `.log` file of whole batches whose name is its base
//! offset, with its `.index`, `.timeindex` and (once a transaction aborts
//! in it) `.txnindex`.
//!
//! The segment owns its files. Bytes below `size` are immutable except
//! through `truncate_to` and the cleaner's replacement, both done by the
//! single writer; readers get `Arc<File>` handles and positions.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use crate::batch::{check_batch, BatchHeader, TimestampType, HEADER_BYTES, LOG_OVERHEAD};
use crate::compression;
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{BatchError, LogError, Result};
use crate::index::{OffsetIndex, OffsetPosition, TimeIndex};
use crate::records::RecordIter;
use crate::txn_index::TxnIndex;

/// `00000000000000000042.log` for base offset 42 and extension `log`.
pub fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// A contiguous run of whole batches in one segment file, ready to be sent
/// (with `sendfile` or `pread`) without decoding.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
    /// Base offset of the first batch in the slice.
    pub first_offset: i64,
    /// Last offset of the last batch in the slice.
    pub last_offset: i64,
}

impl FileSlice {
    /// Copies the slice into memory. A short read means the log was
    /// truncated under the reader and is reported as an I/O error.
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut out, self.position)?;
        Ok(out)
    }
}

#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TxnIndex,
    /// The transaction index was torn or invalid when opened: the log must
    /// rebuild it by replaying this segment.
    txn_index_damaged: bool,
    index_interval_bytes: u64,
    last_indexed_position: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    first_batch_timestamp: i64,
    created_ms: i64,
    next_offset: i64,
}

/// Reads a file sequentially in large chunks through positional reads.
struct ChunkReader<'f> {
    file: &'f File,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
}

impl<'f> ChunkReader<'f> {
    const CHUNK_BYTES: usize = 1 << 20;

    fn new(file: &'f File) -> Self {
        ChunkReader {
            file,
            buf: vec![0; Self::CHUNK_BYTES],
            buf_start: 0,
            buf_len: 0,
        }
    }

    /// Copies `out.len()` bytes at `position` (which must be below `end`).
    fn read_exact_at(&mut self, out: &mut [u8], position: u64, end: u64) -> std::io::Result<()> {
        let mut done = 0;
        while done < out.len() {
            let at = position + done as u64;
            if at < self.buf_start || at >= self.buf_start + self.buf_len as u64 {
                let want = (Self::CHUNK_BYTES as u64).min(end.saturating_sub(at)) as usize;
                if want == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.file.read_exact_at(&mut self.buf[..want], at)?;
                self.buf_start = at;
                self.buf_len = want;
            }
            let from = (at - self.buf_start) as usize;
            let n = (self.buf_len - from).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[from..from + n]);
            done += n;
        }
        Ok(())
    }
}

/// Why a scan of a segment file stopped before the file's end.
#[derive(Debug)]
pub enum ScanStop {
    /// Reading failed.
    Io(std::io::Error),
    /// The bytes at `position` are not a whole, valid batch: a torn tail or
    /// corruption. Everything before `position` was valid.
    Invalid { position: u64, reason: String },
}

/// One batch found by [`FileBatches`]: its position, header and bytes.
pub type ScannedBatch<'b> = (u64, BatchHeader, &'b [u8]);

/// Reads the whole batches of a segment file in order, checking each one's
/// framing and CRC ([`check_batch`]); the scan stops at the first batch
/// that is torn or invalid. Used by recovery and by `riffle dump-log`.
pub struct FileBatches<'f> {
    reader: ChunkReader<'f>,
    position: u64,
    end: u64,
    batch: Vec<u8>,
    stopped: bool,
}

impl std::fmt::Debug for FileBatches<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBatches")
            .field("position", &self.position)
            .field("end", &self.end)
            .finish()
    }
}

impl<'f> FileBatches<'f> {
    /// Scans `file` from position 0 up to `end` (normally its length).
    pub fn new(file: &'f File, end: u64) -> Self {
        Self::starting_at(file, 0, end)
    }

    /// Scans `file` from `position`, which must be a batch boundary, up to `end`.
    pub fn starting_at(file: &'f File, position: u64, end: u64) -> Self {
        FileBatches {
            reader: ChunkReader::new(file),
            position,
            end,
            batch: Vec::new(),
            stopped: false,
        }
    }

    /// The next batch (its position, header and bytes), `None` at the end,
    /// or why the scan stopped; after an error it returns `None`.
    pub fn next_batch(&mut self) -> Option<Result<ScannedBatch<'_>, ScanStop>> {
        if self.stopped || self.position >= self.end {
            return None;
        }
        match self.read_batch() {
            Ok(header) => {
                let at = self.position;
                self.position += header.size_bytes() as u64;
                Some(Ok((at, header, &self.batch[..])))
            }
            Err(e) => {
                self.stopped = true;
                Some(Err(e))
            }
        }
    }

    fn read_batch(&mut self) -> Result<BatchHeader, ScanStop> {
        let (position, end) = (self.position, self.end);
        let invalid = |reason: String| ScanStop::Invalid { position, reason };
        if position + HEADER_BYTES as u64 > end {
            return Err(invalid(format!(
                "{} bytes of a torn batch header",
                end - position
            )));
        }
        let mut head = [0u8; LOG_OVERHEAD];
        self.reader
            .read_exact_at(&mut head, position, end)
            .map_err(ScanStop::Io)?;
        let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let size = i64::from(length) + LOG_OVERHEAD as i64;
        if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 || position + size as u64 > end {
            return Err(invalid(format!("batch length {length} is invalid or torn")));
        }
        self.batch.resize(size as usize, 0);
        self.reader
            .read_exact_at(&mut self.batch, position, end)
            .map_err(ScanStop::Io)?;
        check_batch(&self.batch).map_err(|e| invalid(e.to_string()))
    }
}

impl Segment {
    pub fn path_for(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
        dir.join(file_name(base_offset, extension))
    }

    /// Creates an empty segment, replacing any files of that name.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment> {
        let log_path = Self::path_for(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(LogError::io(&log_path))?;
        let offset_index = OffsetIndex::create(
            &Self::path_for(dir, base_offset, "index"),
            config.offset_index_entries_max(),
        )?;
        let time_index = TimeIndex::create(
            &Self::path_for(dir, base_offset, "timeindex"),
            config.time_index_entries_max(),
        )?;
        let txn_index = TxnIndex::create(&Self::path_for(dir, base_offset, "txnindex"))?;
        Ok(Self::assemble(
            base_offset,
            log_path,
            file,
            0,
            (offset_index, time_index, txn_index),
            config,
            now_ms,
        ))
    }

    /// A segment over opened files, with nothing known yet about its batches.
    fn assemble(
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        size: u64,
        (offset_index, time_index, txn_index): (OffsetIndex, TimeIndex, TxnIndex),
        config: &LogConfig,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log_path,
            file: Arc::new(file),
            size,
            offset_index,
            time_index,
            txn_index,
            txn_index_damaged: false,
            index_interval_bytes: config.index_interval_bytes,
            last_indexed_position: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: -1,
            created_ms: now_ms,
            next_offset: base_offset,
        }
    }

    /// Opens an existing segment. Returns whether it needs recovery: its
    /// indexes failed their sanity check or its tail is not whole batches.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(Segment, bool)> {
        let log_path = Self::path_for(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(LogError::io(&log_path))?;
        let size = file.metadata().map_err(LogError::io(&log_path))?.len();
        // A missing index is rebuilt, as Kafka does.
        let indexes_exist = Self::path_for(dir, base_offset, "index").exists()
            && Self::path_for(dir, base_offset, "timeindex").exists();
        let (offset_index, offset_ok) = OffsetIndex::open(
            &Self::path_for(dir, base_offset, "index"),
            config.offset_index_entries_max(),
        )?;
        let (time_index, time_ok) = TimeIndex::open(
            &Self::path_for(dir, base_offset, "timeindex"),
            config.time_index_entries_max(),
        )?;
        let (txn_index, txn_ok) = TxnIndex::open(&Self::path_for(dir, base_offset, "txnindex"))?;
        let mut segment = Self::assemble(
            base_offset,
            log_path,
            file,
            size,
            (offset_index, time_index, txn_index),
            config,
            now_ms,
        );
        segment.txn_index_damaged = !txn_ok;
        let indexes_ok =
            indexes_exist && offset_ok && time_ok && segment.offset_index.is_sane(size);
        if !indexes_ok {
            return Ok((segment, true));
        }
        // Find the end offset and max timestamp by walking the batch headers
        // after the last index entry.
        let start = segment
            .offset_index
            .last()
            .map_or(0, |e| u64::from(e.position));
        segment.last_indexed_position = start;
        if let Some(last) = segment.time_index.last() {
            segment.max_timestamp = last.timestamp;
            segment.offset_of_max_timestamp = base_offset + i64::from(last.relative_offset);
        }
        let mut position = start;
        while position < size {
            let Some(header) = segment.try_header_at(position)? else {
                return Ok((segment, true));
            };
            if header.base_offset < segment.next_offset.max(base_offset) && position > start {
                return Ok((segment, true));
            }
            if header.max_timestamp > segment.max_timestamp {
                segment.max_timestamp = header.max_timestamp;
                segment.offset_of_max_timestamp = header.last_offset();
            }
            segment.next_offset = header.next_offset();
            position += header.size_bytes() as u64;
        }
        if segment.next_offset - base_offset > i64::from(i32::MAX) + 1
            || !segment
                .time_index
                .is_sane((segment.next_offset - base_offset) as u32)
        {
            return Ok((segment, true));
        }
        if size > 0 {
            let Some(first) = segment.try_header_at(0)? else {
                return Ok((segment, true));
            };
            segment.first_batch_timestamp = first.max_timestamp;
        }
        Ok((segment, false))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }
    pub(crate) fn txn_index_mut(&mut self) -> &mut TxnIndex {
        &mut self.txn_index
    }
    /// Whether the transaction index was found torn or invalid at open.
    pub fn txn_index_damaged(&self) -> bool {
        self.txn_index_damaged
    }
    pub(crate) fn clear_txn_index_damaged(&mut self) {
        self.txn_index_damaged = false;
    }

    /// The segment's largest record timestamp, or its file's modification
    /// time when no batch has one (Kafka's `largestTimestamp`).
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn corrupt(&self, reason: String) -> LogError {
        LogError::CorruptFile {
            path: self.log_path.clone(),
            reason,
        }
    }

    /// The batch header at `position`, or `None` if no whole, plausible
    /// batch starts there.
    fn try_header_at(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_BYTES as u64 > self.size {
            return Ok(None);
        }
        let mut b = [0u8; HEADER_BYTES];
        self.file
            .read_exact_at(&mut b, position)
            .map_err(LogError::io(&self.log_path))?;
        let Some(h) = BatchHeader::parse(&b) else {
            return Ok(None);
        };
        let plausible = h.batch_length as i64 >= (HEADER_BYTES - LOG_OVERHEAD) as i64
            && position + h.size_bytes() as u64 <= self.size
            && h.last_offset_delta >= 0
            && h.magic == crate::batch::MAGIC_V2;
        Ok(plausible.then_some(h))
    }

    /// The batch header at `position`, which must be a batch boundary below
    /// `size`; anything else means the file changed under us.
    pub fn header_at(&self, position: u64) -> Result<BatchHeader> {
        self.try_header_at(position)?
            .ok_or_else(|| self.corrupt(format!("no valid batch header at position {position}")))
    }

    /// Reads the whole batch at `position`.
    pub fn batch_at(&self, position: u64, header: &BatchHeader) -> Result<Vec<u8>> {
        let mut out = vec![0u8; header.size_bytes()];
        self.file
            .read_exact_at(&mut out, position)
            .map_err(LogError::io(&self.log_path))?;
        Ok(out)
    }

    /// The position of the indexed batch with the largest offset <=
    /// `offset` (0 if none): where a forward scan for `offset` starts.
    fn index_position_at_or_before(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        self.offset_index
            .lookup(relative)
            .map_or(0, |e| u64::from(e.position))
    }

    /// Position and header of the first batch whose last offset is >=
    /// `offset`, starting from the offset index's hint; `None` past the end.
    pub fn translate_offset(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let mut position = self.index_position_at_or_before(offset);
        while position < self.size {
            let header = self.header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the first one holding `start_offset`: at most
    /// `max_bytes` of them (at least one when `min_one`, KIP-74), each with
    /// last offset below `upper_bound`. `None` if the segment has nothing at
    /// or after `start_offset`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: u64,
        upper_bound: i64,
        min_one: bool,
    ) -> Result<Option<FileSlice>> {
        let Some((start, first)) = self.translate_offset(start_offset)? else {
            return Ok(None);
        };
        let mut position = start;
        let mut len = 0u64;
        let mut last_offset = first.base_offset - 1;
        if let Some(jump) = self.index_jump(start, start.saturating_add(max_bytes), upper_bound) {
            let header = self.header_at(jump)?;
            position = jump + header.size_bytes() as u64;
            len = position - start;
            last_offset = header.last_offset();
        }
        while position < self.size {
            let header = if position == start {
                first
            } else {
                self.header_at(position)?
            };
            let size = header.size_bytes() as u64;
            if header.last_offset() >= upper_bound {
                break;
            }
            if len + size > max_bytes && !(len == 0 && min_one) {
                break;
            }
            len += size;
            last_offset = header.last_offset();
            position += size;
        }
        Ok(Some(FileSlice {
            file: Arc::clone(&self.file),
            position: start,
            len,
            first_offset: first.base_offset,
            last_offset,
        }))
    }

    /// Skips over whole batches with the offset index instead of reading
    /// every header (Kafka's `fetchUpperBoundOffset` idea). Returns the
    /// position of the last indexed batch that lies after `start`, ends
    /// within `limit` (the next entry's position is within it) and ends below
    /// `upper_bound`; every batch from `start` up to and including it belongs
    /// in the read.
    fn index_jump(&self, start: u64, limit: u64, upper_bound: i64) -> Option<u64> {
        let entries = self.offset_index.entries();
        let fits = |j: usize| {
            u64::from(entries[j + 1].position) <= limit
                && self.base_offset + i64::from(entries[j].relative_offset) < upper_bound
        };
        // Both conditions are monotone in j, so binary-search the last j.
        let (mut lo, mut hi) = (0usize, entries.len().saturating_sub(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let position = u64::from(entries[lo.checked_sub(1)?].position);
        (position > start).then_some(position)
    }

    /// Appends whole batches that the log has already checked and stamped.
    /// `batches` are (position within `bytes`, header).
    pub fn append(&mut self, bytes: &[u8], batches: &[(usize, BatchHeader)]) -> Result<()> {
        let Some(&(_, last)) = batches.last() else {
            return Ok(());
        };
        assert!(
            batches[0].1.base_offset >= self.next_offset
                && last.last_offset() - self.base_offset <= i64::from(i32::MAX),
            "append of offsets {}..={} to segment {} ending at {} violates the log's checks",
            batches[0].1.base_offset,
            last.last_offset(),
            self.base_offset,
            self.next_offset
        );
        self.file
            .write_all_at(bytes, self.size)
            .map_err(LogError::io(&self.log_path))?;
        for &(at, header) in batches {
            self.index_batch(self.size + at as u64, &header)?;
        }
        self.size += bytes.len() as u64;
        self.next_offset = last.next_offset();
        Ok(())
    }

    /// Kafka's indexing rule, applied per batch: an offset-index entry (with
    /// a time-index entry) once more than `index.interval.bytes` have been
    /// written since the last one.
    fn index_batch(&mut self, position: u64, header: &BatchHeader) -> Result<()> {
        if position == 0 {
            self.first_batch_timestamp = header.max_timestamp;
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if position - self.last_indexed_position > self.index_interval_bytes {
            self.offset_index.push(OffsetPosition {
                relative_offset: self.relative(header.last_offset()),
                position: position as u32,
            })?;
            let rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_push(self.max_timestamp, rel)?;
            self.last_indexed_position = position;
        }
        Ok(())
    }

    fn relative(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        assert!(
            (0..=i64::from(i32::MAX)).contains(&rel),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        rel as u32
    }

    /// Whether appending `batch_bytes` ending at `last_offset` with max
    /// timestamp `max_timestamp` must go to a new segment (Kafka's
    /// `LogSegment.shouldRoll`).
    pub fn should_roll(
        &self,
        config: &LogConfig,
        batch_bytes: u64,
        max_timestamp: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let waited_ms = if self.first_batch_timestamp >= 0 && max_timestamp >= 0 {
            max_timestamp - self.first_batch_timestamp
        } else {
            now_ms - self.created_ms
        };
        self.size + batch_bytes > config.segment_bytes
            || waited_ms > config.segment_ms
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset - self.base_offset > i64::from(i32::MAX)
    }

    /// Re-reads every batch, checking framing, CRC and offsets; rebuilds the
    /// offset and time indexes; cuts the file at the first invalid or torn
    /// batch. Returns the number of bytes cut. Epochs found in batch headers
    /// go to `epochs`. The transaction index loses the entries of markers
    /// that were cut; the log rebuilds missing ones from producer state.
    pub fn recover(&mut self, mut epochs: Option<&mut LeaderEpochCache>) -> Result<u64> {
        self.offset_index.truncate_entries(0)?;
        self.time_index.truncate_entries(0)?;
        self.last_indexed_position = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = -1;
        self.next_offset = self.base_offset;
        let file_size = self
            .file
            .metadata()
            .map_err(LogError::io(&self.log_path))?
            .len();
        let file = Arc::clone(&self.file);
        let mut batches = FileBatches::new(&file, file_size);
        let mut position = 0u64;
        let mut reason = None;
        while let Some(item) = batches.next_batch() {
            let (at, header) = match item {
                Ok((at, header, _)) => (at, header),
                Err(ScanStop::Io(e)) => return Err(LogError::io(&self.log_path)(e)),
                Err(ScanStop::Invalid { reason: r, .. }) => {
                    reason = Some(r);
                    break;
                }
            };
            if header.base_offset < self.next_offset
                || header.last_offset() - self.base_offset > i64::from(i32::MAX)
            {
                reason = Some(format!(
                    "batch at offset {} does not follow offset {}",
                    header.base_offset,
                    self.next_offset - 1
                ));
                break;
            }
            self.size = at;
            self.index_batch(at, &header)?;
            self.next_offset = header.next_offset();
            if let Some(epochs) = epochs.as_deref_mut() {
                epochs.assign(header.partition_leader_epoch, header.base_offset);
            }
            position = at + header.size_bytes() as u64;
        }
        let truncated = file_size - position;
        if let Some(reason) = reason {
            warn!(
                segment = %self.log_path.display(),
                position,
                truncated_bytes = truncated,
                "recovery truncates the segment at an invalid batch: {reason}"
            );
        }
        self.file
            .set_len(position)
            .map_err(LogError::io(&self.log_path))?;
        self.size = position;
        self.txn_index.truncate_to(self.next_offset)?;
        self.seal_time_index()?;
        Ok(truncated)
    }

    /// Appends the segment's max timestamp to the time index, as Kafka does
    /// when a segment stops being active (roll, close, recovery).
    pub fn seal_time_index(&mut self) -> Result<()> {
        if self.max_timestamp >= 0 {
            let rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_push(self.max_timestamp, rel)?;
        }
        Ok(())
    }

    /// Cuts the segment before the batch holding `offset`, and rebuilds its
    /// indexes. Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64> {
        let Some((position, _)) = self.translate_offset(offset)? else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.file
            .set_len(position)
            .map_err(LogError::io(&self.log_path))?;
        self.recover(None)?;
        // An active segment's time index only gets the max-timestamp entry
        // when it is sealed; recover() added it, which is harmless for
        // lookups and matches what a restart would produce.
        Ok(removed)
    }

    /// fsyncs the log file and its indexes (writing pending index entries).
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(LogError::io(&self.log_path))?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// Deletes the segment's files. Readers holding its `Arc<File>` keep
    /// reading the unlinked file.
    pub fn delete(self) -> Result<()> {
        for path in [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(path)(e)),
            }
        }
        self.txn_index.delete()
    }

    /// The (offset, timestamp) of every record of the batch at `position`,
    /// decompressing if needed. LogAppendTime batches stamp every record with
    /// the batch's max timestamp.
    pub fn record_timestamps(
        &self,
        position: u64,
        header: &BatchHeader,
    ) -> Result<Vec<(i64, i64)>> {
        let batch = self.batch_at(position, header)?;
        record_timestamps(&batch, header).map_err(|e| self.corrupt(e.to_string()))
    }

    /// Kafka's `findOffsetByTimestamp`: the first record at or after
    /// `starting_offset` whose timestamp is >= `timestamp`.
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        starting_offset: i64,
    ) -> Result<Option<(i64, i64)>> {
        let hint = self
            .time_index
            .lookup(timestamp)
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset)
            });
        let mut position = self.index_position_at_or_before(hint.max(starting_offset));
        while position < self.size {
            let header = self.header_at(position)?;
            if header.max_timestamp >= timestamp && header.last_offset() >= starting_offset {
                for (offset, ts) in self.record_timestamps(position, &header)? {
                    if ts >= timestamp && offset >= starting_offset {
                        return Ok(Some((ts, offset)));
                    }
                }
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// Renames the segment's files to those of a segment at `base_offset`
    /// in the same directory with the given log extension (cleaner swap).
    pub fn rename_log(&mut self, to: &Path) -> Result<()> {
        std::fs::rename(&self.log_path, to).map_err(LogError::io(&self.log_path))?;
        self.log_path = to.to_path_buf();
        Ok(())
    }
}

/// (offset, timestamp) of every record in a whole batch.
pub fn record_timestamps(
    batch: &[u8],
    header: &BatchHeader,
) -> Result<Vec<(i64, i64)>, BatchError> {
    let codec = header.compression()?;
    let section = &batch[HEADER_BYTES..];
    let owned;
    let records = if codec == compression::Compression::None {
        section
    } else {
        owned =
            compression::decompress(codec, section, compression::decompressed_bytes_max(1 << 20))?;
        &owned[..]
    };
    let mut out = Vec::new();
    for record in RecordIter::new(records, header.record_count)? {
        let record = record?;
        let offset = header
            .base_offset
            .saturating_add(i64::from(record.offset_delta));
        let ts = match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => {
                header.base_timestamp.saturating_add(record.timestamp_delta)
            }
        };
        out.push((offset, ts));
    }
    Ok(out)
}
