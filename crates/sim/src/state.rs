//! The replicated state machine of the simulation: the committed records
//! themselves, in order from offset 0. Its snapshot is the whole list, so
//! a node that installs one can be checked record by record against the
//! committed log the invariants keep.
//!
//! Snapshot format (sim-only; FetchSnapshot ships raw bytes):
//! `"RSIM" | u32 count | count x (i32 epoch | i32 value length or -1 | value)`.

use bytes::Bytes;

use crate::disk::Entry;

const MAGIC: &[u8; 4] = b"RSIM";

#[derive(Debug, Clone, Default)]
pub struct StateMachine {
    /// Applied records, index = offset; its length is the applied end.
    pub entries: Vec<Entry>,
    /// Applied end when the last snapshot was taken or loaded.
    pub snapshot_end: i64,
}

impl StateMachine {
    pub fn applied_end(&self) -> i64 {
        self.entries.len() as i64
    }

    pub fn load(entries: Vec<Entry>) -> StateMachine {
        let snapshot_end = entries.len() as i64;
        StateMachine {
            entries,
            snapshot_end,
        }
    }
}

pub fn encode_snapshot(entries: &[Entry]) -> Bytes {
    let mut out = Vec::with_capacity(8 + entries.len() * 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
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

pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err(format!("snapshot truncated: {} bytes short", n - b.len()));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn int(b: &mut &[u8]) -> Result<i32, String> {
        let raw = take(b, 4)?;
        Ok(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }
    let mut b = bytes;
    if take(&mut b, 4)? != MAGIC {
        return Err("snapshot has a bad magic".into());
    }
    let count = int(&mut b)? as u32 as usize;
    let mut entries = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let epoch = int(&mut b)?;
        let len = int(&mut b)?;
        let value = if len < 0 {
            None
        } else {
            Some(Bytes::copy_from_slice(take(&mut b, len as usize)?))
        };
        entries.push(Entry { epoch, value });
    }
    if !b.is_empty() {
        return Err(format!("snapshot has {} trailing bytes", b.len()));
    }
    Ok(entries)
}
