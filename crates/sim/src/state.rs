//! The replicated state machine of the simulation: a chained digest of
//! every committed record in order, plus the records applied since the
//! last snapshot. Its snapshot holds the digest of the whole prefix and
//! the last few records, so it stays small (as a real state machine's
//! does) while a node that installs one can still be checked exactly
//! against the committed log the invariants keep.
//!
//! Snapshot format (sim-only; FetchSnapshot ships raw bytes):
//! `"RSIM" | i64 end | i32 epoch | u64 digest | i64 tail start | u32 count |
//! count x (i32 epoch | i32 value length or -1 | value)`.

use bytes::Bytes;

use crate::disk::Entry;

const MAGIC: &[u8; 4] = b"RSIM";
/// Records a snapshot carries besides the digest (to make it span several
/// FetchSnapshot chunks and to check records, not only the digest).
pub const SNAPSHOT_TAIL: i64 = 64;

/// The digest of the empty log.
pub const DIGEST_EMPTY: u64 = 0xcbf2_9ce4_8422_2325;

/// The digest of a prefix extended by the record at `offset` (FNV-1a).
pub fn chain(prev: u64, offset: i64, e: &Entry) -> u64 {
    let mut h = prev;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&offset.to_le_bytes());
    eat(&e.epoch.to_le_bytes());
    match &e.value {
        Some(v) => {
            eat(&(v.len() as u32).to_le_bytes());
            eat(v);
        }
        None => eat(&[0xff; 4]),
    }
    h
}

/// What a snapshot file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotData {
    /// Exclusive end: the snapshot covers offsets below it.
    pub end: i64,
    /// Epoch of the record at `end - 1`.
    pub epoch: i32,
    /// Digest of the records below `end`.
    pub digest: u64,
    /// The records `tail_start..end`.
    pub tail_start: i64,
    pub tail: Vec<Entry>,
}

impl SnapshotData {
    /// The record at `offset` if the tail holds it.
    pub fn entry(&self, offset: i64) -> Option<&Entry> {
        if offset < self.tail_start || offset >= self.end {
            return None;
        }
        self.tail.get((offset - self.tail_start) as usize)
    }
}

#[derive(Debug, Clone)]
pub struct StateMachine {
    /// Offset of `entries[0]` (the end of the snapshot it started from).
    pub base: i64,
    /// Records applied since `base`.
    pub entries: Vec<Entry>,
    /// `digests[i]` is the digest of the records below `base + i`.
    pub digests: Vec<u64>,
    /// Applied end when the last snapshot was taken or loaded.
    pub snapshot_end: i64,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine {
            base: 0,
            entries: Vec::new(),
            digests: vec![DIGEST_EMPTY],
            snapshot_end: 0,
        }
    }
}

impl StateMachine {
    pub fn applied_end(&self) -> i64 {
        self.base + self.entries.len() as i64
    }

    /// The digest of the records below `offset` (`base..=applied_end`).
    pub fn digest_at(&self, offset: i64) -> Option<u64> {
        let i = usize::try_from(offset - self.base).ok()?;
        self.digests.get(i).copied()
    }

    pub fn entry(&self, offset: i64) -> Option<&Entry> {
        let i = usize::try_from(offset - self.base).ok()?;
        self.entries.get(i)
    }

    pub fn apply(&mut self, entry: Entry) {
        let offset = self.applied_end();
        let prev = *self.digests.last().expect("digests start non-empty");
        self.digests.push(chain(prev, offset, &entry));
        self.entries.push(entry);
    }

    pub fn load(s: &SnapshotData) -> StateMachine {
        StateMachine {
            base: s.end,
            entries: Vec::new(),
            digests: vec![s.digest],
            snapshot_end: s.end,
        }
    }

    /// The snapshot of the records below `end` (`base < end <= applied_end`).
    pub fn snapshot(&self, end: i64) -> Option<SnapshotData> {
        let digest = self.digest_at(end)?;
        let epoch = self.entry(end - 1)?.epoch;
        let tail_start = (end - SNAPSHOT_TAIL).max(self.base);
        let from = (tail_start - self.base) as usize;
        let to = (end - self.base) as usize;
        Some(SnapshotData {
            end,
            epoch,
            digest,
            tail_start,
            tail: self.entries[from..to].to_vec(),
        })
    }
}

pub fn encode_snapshot(s: &SnapshotData) -> Bytes {
    let mut out = Vec::with_capacity(40 + s.tail.len() * 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&s.end.to_be_bytes());
    out.extend_from_slice(&s.epoch.to_be_bytes());
    out.extend_from_slice(&s.digest.to_be_bytes());
    out.extend_from_slice(&s.tail_start.to_be_bytes());
    out.extend_from_slice(&(s.tail.len() as u32).to_be_bytes());
    for e in &s.tail {
        out.extend_from_slice(&e.epoch.to_be_bytes());
        match &e.value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    Bytes::from(out)
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotData, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err(format!("snapshot truncated: {} bytes short", n - b.len()));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn array<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], String> {
        let raw = take(b, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(raw);
        Ok(out)
    }
    let mut b = bytes;
    if take(&mut b, 4)? != MAGIC {
        return Err("snapshot has a bad magic".into());
    }
    let end = i64::from_be_bytes(array(&mut b)?);
    let epoch = i32::from_be_bytes(array(&mut b)?);
    let digest = u64::from_be_bytes(array(&mut b)?);
    let tail_start = i64::from_be_bytes(array(&mut b)?);
    let count = u32::from_be_bytes(array(&mut b)?) as usize;
    let mut tail = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let epoch = i32::from_be_bytes(array(&mut b)?);
        let len = i32::from_be_bytes(array(&mut b)?);
        let value = if len < 0 {
            None
        } else {
            Some(Bytes::copy_from_slice(take(&mut b, len as usize)?))
        };
        tail.push(Entry { epoch, value });
    }
    if !b.is_empty() {
        return Err(format!("snapshot has {} trailing bytes", b.len()));
    }
    if tail_start + tail.len() as i64 != end {
        return Err(format!(
            "snapshot tail {tail_start}+{} does not end at {end}",
            tail.len()
        ));
    }
    Ok(SnapshotData {
        end,
        epoch,
        digest,
        tail_start,
        tail,
    })
}
