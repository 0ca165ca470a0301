//! Walking the records inside a batch's (uncompressed) records section
//! without copying them.
//!
//! Riffle reads records only where it must: validation of uncompressed
//! batches, timestamp lookups, and compaction, which keeps the raw bytes of
//! the records it retains. The `kafka-protocol` crate's decoder builds owned
//! `Record` values and reserves `recordCount` entries up front, so it is not
//! used on untrusted bytes here; see `docs/decisions/0002-log-format-and-validation.md`.

use crate::batch::RECORD_BYTES_MIN;
use crate::error::BatchError;

/// One record, borrowed from its records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The whole serialized record, its length prefix included.
    pub bytes: &'a [u8],
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub header_count: i32,
    /// The serialized headers (after the count).
    pub headers: &'a [u8],
}

impl<'a> RawRecord<'a> {
    /// The headers as (key, value) pairs. The record was validated when it
    /// was read, so this cannot fail.
    pub fn header_pairs(&self) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
        let mut out = Vec::with_capacity(self.header_count.max(0) as usize);
        let mut r = Reader::new(self.headers);
        for _ in 0..self.header_count {
            let Ok(key) = r.bytes_field() else { break };
            let Ok(value) = r.bytes_field() else { break };
            out.push((key.unwrap_or_default(), value));
        }
        out
    }
}

/// Iterates over `count` records of a records section; yields an error for
/// the first malformed record, or if bytes remain after the last one.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    reader: Reader<'a>,
    remaining: i32,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Refuses a record count that cannot fit in `section` before anything
    /// is allocated for it.
    pub fn new(section: &'a [u8], count: i32) -> Result<Self, BatchError> {
        if count < 0 || (count as usize).saturating_mul(RECORD_BYTES_MIN) > section.len() {
            return Err(BatchError::Corrupt(format!(
                "record count {count} is implausible for {} bytes of records",
                section.len()
            )));
        }
        Ok(RecordIter {
            reader: Reader::new(section),
            remaining: count,
            failed: false,
        })
    }

    #[inline]
    fn read_record(&mut self) -> Result<RawRecord<'a>, BatchError> {
        let start = self.reader.at;
        let length = self.reader.varint()?;
        if length < 6 || length as usize > self.reader.remaining() {
            return Err(corrupt(format!(
                "record length {length} does not fit the {} bytes left",
                self.reader.remaining()
            )));
        }
        let body_start = self.reader.at;
        let end = body_start + length as usize;
        let mut r = Reader::new(&self.reader.buf[..end]);
        r.at = body_start;
        let attributes = r.u8()? as i8;
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.bytes_field()?;
        let value = r.bytes_field()?;
        let header_count = r.varint()?;
        if header_count < 0 {
            return Err(BatchError::InvalidRecord(format!(
                "negative header count {header_count}"
            )));
        }
        let headers_start = r.at;
        for _ in 0..header_count {
            let key_len = r.varint()?;
            if key_len < 0 {
                return Err(BatchError::InvalidRecord(format!(
                    "negative header key length {key_len}"
                )));
            }
            r.take(key_len as usize)?;
            r.bytes_field()?;
        }
        if r.at != end {
            return Err(corrupt(format!(
                "record declares {length} bytes but its fields take {}",
                r.at - body_start
            )));
        }
        self.reader.at = end;
        Ok(RawRecord {
            bytes: &self.reader.buf[start..end],
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
            headers: &self.reader.buf[headers_start..end],
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RawRecord<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.reader.remaining() > 0 {
                self.failed = true;
                return Some(Err(corrupt(format!(
                    "{} bytes follow the last record of the batch",
                    self.reader.remaining()
                ))));
            }
            return None;
        }
        self.remaining -= 1;
        let record = self.read_record();
        if record.is_err() {
            self.failed = true;
        }
        Some(record)
    }
}

fn corrupt(msg: String) -> BatchError {
    BatchError::Corrupt(msg)
}

#[derive(Debug, Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }
    #[inline]
    fn u8(&mut self) -> Result<u8, BatchError> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or_else(|| corrupt("record ends inside a field".into()))?;
        self.at += 1;
        Ok(b)
    }
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.remaining() {
            return Err(corrupt(format!(
                "field of {n} bytes overruns the record ({} left)",
                self.remaining()
            )));
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    #[inline]
    fn unsigned_varint(&mut self, max_bytes: usize) -> Result<u64, BatchError> {
        // Most varints in a record (lengths, small deltas) are one byte.
        if let Some(&b) = self.buf.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(u64::from(b));
            }
        }
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt(format!("varint longer than {max_bytes} bytes")))
    }
    #[inline]
    fn varint(&mut self) -> Result<i32, BatchError> {
        let raw = self.unsigned_varint(5)?;
        if raw > u64::from(u32::MAX) {
            return Err(corrupt("varint overflows 32 bits".into()));
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }
    #[inline]
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.unsigned_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
    /// A varint length followed by that many bytes; -1 is null.
    #[inline]
    fn bytes_field(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        let len = self.varint()?;
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(BatchError::InvalidRecord(format!("negative length {n}"))),
            n => Ok(Some(self.take(n as usize)?)),
        }
    }
}

/// Appends Kafka's zigzag varint encoding of `v` (used to rebuild records).
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    let mut z = ((v << 1) ^ (v >> 31)) as u32;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends Kafka's zigzag varlong encoding of `v`.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset_delta: i32, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![0u8];
        put_varlong(&mut body, 5);
        put_varint(&mut body, offset_delta);
        for f in [key, value] {
            match f {
                None => put_varint(&mut body, -1),
                Some(b) => {
                    put_varint(&mut body, b.len() as i32);
                    body.extend_from_slice(b);
                }
            }
        }
        put_varint(&mut body, 1);
        put_varint(&mut body, 1);
        body.push(b'h');
        put_varint(&mut body, -1);
        let mut out = Vec::new();
        put_varint(&mut out, body.len() as i32);
        out.extend(body);
        out
    }

    #[test]
    fn walks_records_and_headers() {
        let mut section = record(0, Some(b"k"), None);
        section.extend(record(1, None, Some(b"value")));
        let recs: Vec<_> = RecordIter::new(&section, 2)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs[0].key, Some(&b"k"[..]));
        assert_eq!(recs[0].value, None);
        assert_eq!(recs[1].offset_delta, 1);
        assert_eq!(recs[1].value, Some(&b"value"[..]));
        assert_eq!(recs[1].timestamp_delta, 5);
        assert_eq!(recs[1].header_pairs(), vec![(&b"h"[..], None)]);
        assert_eq!(recs[0].bytes.len() + recs[1].bytes.len(), section.len());
    }

    #[test]
    fn refuses_implausible_count_before_walking() {
        assert!(RecordIter::new(&[0u8; 13], 2).is_err());
        assert!(RecordIter::new(&[0u8; 14], 2).is_ok());
    }

    #[test]
    fn trailing_bytes_and_short_records_are_errors() {
        let mut section = record(0, Some(b"k"), None);
        section.push(0);
        let out: Vec<_> = RecordIter::new(&section, 1).unwrap().collect();
        assert!(out[1].is_err());
        let short = record(0, Some(b"k"), Some(b"v"));
        let cut = &short[..short.len() - 2];
        assert!(RecordIter::new(cut, 1).unwrap().next().unwrap().is_err());
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Reader::new(&b).varint().unwrap(), v);
        }
        for v in [0i64, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            assert_eq!(Reader::new(&b).varlong().unwrap(), v);
        }
    }
}
