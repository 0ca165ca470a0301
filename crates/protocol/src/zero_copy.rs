//! Responses whose record bytes go from a log file to the socket without
//! being copied through memory (`sendfile`), while the `kafka-protocol`
//! crate still encodes every field of the message.
//!
//! A handler that answers with records from a file does not read them: it
//! registers each file region with [`FileRegions::placeholder`] and puts the
//! `Bytes` it returns in the message where the records go. That `Bytes` has
//! the region's length and points into a block of zeros that is allocated
//! once and never written (so it costs address space, not memory), at an
//! offset that names the region. Encoding goes through [`SplicingBuf`],
//! which recognises such a slice by its address when the encoder copies it
//! into the buffer and leaves a hole there instead. The result,
//! [`EncodedResponse`], is the inline bytes plus the holes; the connection
//! writes the inline bytes and sends each hole from its file.
//!
//! If a placeholder is met that was not registered, or a registered region
//! is not met exactly once, encoding fails, so the zeros are never sent.

use std::fs::File;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// The address space placeholders are cut from: region `k` of a response
/// starts at byte `k`, so a response can hold regions whose index plus
/// length stay below this. Larger ones are read into memory by the caller.
const PLACEHOLDER_BYTES: usize = 64 * 1024 * 1024;

/// Allocated zeroed and never written: the allocator maps it from the
/// kernel's zero pages, so it adds nothing to the resident set.
static PLACEHOLDER: LazyLock<Box<[u8]>> =
    LazyLock::new(|| vec![0u8; PLACEHOLDER_BYTES].into_boxed_slice());

/// A byte range of an open file, sent as is.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

/// The file regions of one response, in registration order.
#[derive(Debug, Default)]
pub struct FileRegions {
    regions: Vec<FileRegion>,
}

impl FileRegions {
    /// Registers `region` and returns the placeholder to put in the
    /// message, or `None` if the region does not fit the placeholder space
    /// (the caller then reads it into memory).
    pub fn placeholder(&mut self, region: FileRegion) -> Option<Bytes> {
        let start = self.regions.len();
        let len = usize::try_from(region.len).ok()?;
        let end = start.checked_add(len)?;
        if len == 0 || end > PLACEHOLDER_BYTES {
            return None;
        }
        self.regions.push(region);
        let block: &'static [u8] = &PLACEHOLDER;
        Some(Bytes::from_static(&block[start..end]))
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }
}

/// An encoded response: `inline` with a hole before each of `holes`'
/// positions, where that region's bytes go.
#[derive(Debug)]
pub struct EncodedResponse {
    pub inline: Bytes,
    /// (position in `inline`, region), in order of position.
    pub holes: Vec<(usize, FileRegion)>,
}

impl EncodedResponse {
    /// Bytes on the wire: inline and file bytes.
    pub fn len(&self) -> u64 {
        self.inline.len() as u64 + self.holes.iter().map(|(_, r)| r.len).sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `BytesMut` that leaves holes where registered placeholders are copied
/// in. Offsets it reports (`ByteBufMut::offset`) count the holes, so the
/// encoder sees the buffer it would have seen with the bytes copied.
#[derive(Debug)]
pub struct SplicingBuf<'a> {
    inline: BytesMut,
    regions: &'a FileRegions,
    /// (position in `inline`, region index).
    holes: Vec<(usize, usize)>,
    hole_bytes: usize,
    error: Option<String>,
}

impl<'a> SplicingBuf<'a> {
    pub fn new(capacity: usize, regions: &'a FileRegions) -> Self {
        SplicingBuf {
            inline: BytesMut::with_capacity(capacity),
            regions,
            holes: Vec::new(),
            hole_bytes: 0,
            error: None,
        }
    }

    /// The index of the registered region `src` is the placeholder of.
    fn region_of(&self, src: &[u8]) -> Option<Result<usize, String>> {
        let block: &[u8] = &PLACEHOLDER;
        let base = block.as_ptr() as usize;
        let at = (src.as_ptr() as usize).checked_sub(base)?;
        if at >= block.len() || src.is_empty() {
            return None;
        }
        Some(match self.regions.regions.get(at) {
            Some(r) if r.len == src.len() as u64 => Ok(at),
            Some(r) => Err(format!(
                "placeholder {at} is {} bytes, its file region {}",
                src.len(),
                r.len
            )),
            None => Err(format!("placeholder {at} has no registered file region")),
        })
    }

    /// The bytes on the wire so far.
    pub fn logical_len(&self) -> usize {
        self.inline.len() + self.hole_bytes
    }

    /// The inline bytes, mutable (for the size prefix).
    pub fn inline_mut(&mut self) -> &mut BytesMut {
        &mut self.inline
    }

    /// Finishes encoding: every registered region must have been placed
    /// exactly once.
    pub fn finish(self) -> Result<EncodedResponse, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut seen = vec![false; self.regions.regions.len()];
        for &(_, k) in &self.holes {
            if std::mem::replace(&mut seen[k], true) {
                return Err(format!("file region {k} was placed twice"));
            }
        }
        if let Some(k) = seen.iter().position(|s| !s) {
            return Err(format!("file region {k} was never placed"));
        }
        let regions = &self.regions.regions;
        Ok(EncodedResponse {
            inline: self.inline.freeze(),
            holes: self
                .holes
                .into_iter()
                .map(|(at, k)| (at, regions[k].clone()))
                .collect(),
        })
    }
}

// The one unsafe item in Riffle (the workspace denies `unsafe_code`):
// `kafka-protocol` encodes into any `ByteBufMut`, which requires `BufMut`,
// an unsafe trait. SAFETY: every method forwards to the `BytesMut`, whose
// implementation upholds `BufMut`'s contract; `put_slice` either forwards
// or writes nothing (a hole), which the contract allows of any put.
#[allow(unsafe_code)]
unsafe impl BufMut for SplicingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.inline.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee about `cnt` is about the chunk
        // `chunk_mut` returned, which is the `BytesMut`'s.
        unsafe { self.inline.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.inline.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.region_of(src) {
            None => self.inline.put_slice(src),
            Some(Ok(k)) => {
                self.holes.push((self.inline.len(), k));
                self.hole_bytes += src.len();
            }
            Some(Err(e)) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl ByteBufMut for SplicingBuf<'_> {
    fn offset(&self) -> usize {
        self.logical_len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.hole_bytes) {
            Some(at) if at >= self.holes.last().map_or(0, |h| h.0) => self.inline.resize(at, 0),
            _ => {
                self.error
                    .get_or_insert_with(|| "seek into a file region".to_string());
            }
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        // Only record-batch encoding seeks back into what it wrote, never
        // across a hole; message encoding does not.
        let start = r.start.saturating_sub(self.hole_bytes);
        let end = r.end.saturating_sub(self.hole_bytes).min(self.inline.len());
        if r.start < self.hole_bytes || start > end {
            self.error
                .get_or_insert_with(|| "a range across a file region".to_string());
            return &mut [];
        }
        &mut self.inline[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn region(bytes: &[u8]) -> FileRegion {
        let mut f = tempfile_in_target();
        f.write_all(bytes).unwrap();
        FileRegion {
            file: Arc::new(f),
            position: 0,
            len: bytes.len() as u64,
        }
    }

    fn tempfile_in_target() -> File {
        let dir = std::env::temp_dir().join(format!("riffle-zero-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:?}", std::thread::current().id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn placeholders_become_holes_and_other_bytes_stay_inline() {
        let mut regions = FileRegions::default();
        let a = regions.placeholder(region(b"hello")).unwrap();
        let b = regions.placeholder(region(b"world!")).unwrap();
        let mut buf = SplicingBuf::new(16, &regions);
        buf.put_slice(b"[");
        buf.put_slice(&b);
        buf.put_i32(7);
        assert_eq!(buf.offset(), 1 + 6 + 4);
        buf.put_slice(&a);
        buf.put_slice(b"]");
        let out = buf.finish().unwrap();
        assert_eq!(&out.inline[..], b"[\0\0\0\x07]");
        let holes: Vec<(usize, u64)> = out.holes.iter().map(|(at, r)| (*at, r.len)).collect();
        assert_eq!(holes, vec![(1, 6), (5, 5)]);
        assert_eq!(out.len(), 6 + 11);
    }

    #[test]
    fn unplaced_twice_placed_and_unregistered_placeholders_are_errors() {
        let mut regions = FileRegions::default();
        let a = regions.placeholder(region(b"abc")).unwrap();
        let buf = SplicingBuf::new(16, &regions);
        assert!(buf.finish().unwrap_err().contains("never placed"));

        let mut buf = SplicingBuf::new(16, &regions);
        buf.put_slice(&a);
        buf.put_slice(&a);
        assert!(buf.finish().unwrap_err().contains("twice"));

        let none = FileRegions::default();
        let mut buf = SplicingBuf::new(16, &none);
        buf.put_slice(&a);
        assert!(buf.finish().unwrap_err().contains("no registered"));

        // A slice of the right place with the wrong length.
        let mut buf = SplicingBuf::new(16, &regions);
        buf.put_slice(&a[..2]);
        assert!(buf.finish().is_err());
    }

    #[test]
    fn regions_too_large_for_the_placeholder_space_are_refused() {
        let mut regions = FileRegions::default();
        let mut r = region(b"x");
        r.len = PLACEHOLDER_BYTES as u64;
        assert!(regions.placeholder(r.clone()).is_some());
        assert!(regions.placeholder(r).is_none(), "index 1 + the whole space");
        let mut empty = region(b"");
        empty.len = 0;
        assert!(regions.placeholder(empty).is_none());
        assert_eq!(regions.len(), 1);
    }
}
