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

    /// The wire bytes of an encoded response: inline bytes with each
    /// region's file bytes put in its hole.
    fn spliced(out: &EncodedResponse) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut wire = Vec::new();
        let mut at = 0;
        for (hole, r) in &out.holes {
            wire.extend_from_slice(&out.inline[at..*hole]);
            let mut bytes = vec![0u8; r.len as usize];
            r.file.read_exact_at(&mut bytes, r.position).unwrap();
            wire.extend_from_slice(&bytes);
            at = *hole;
        }
        wire.extend_from_slice(&out.inline[at..]);
        wire
    }

    #[test]
    fn a_fetch_response_with_file_regions_is_byte_for_byte_the_copied_one() {
        use crate::response::{encode_response, encode_response_with_regions, Response};
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        use kafka_protocol::protocol::StrBytes;

        let file_bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        let file = region(&file_bytes).file;
        let ranges = [(0u64, 1200usize), (1200, 3000), (4200, 800)];
        let response = |records: Vec<Bytes>| {
            let partitions = records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_high_watermark(5000)
                        .with_records(Some(r))
                })
                .collect();
            Response::Fetch(FetchResponse::default().with_responses(
                vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(partitions)],
            ))
        };
        let copied = response(
            ranges
                .iter()
                .map(|&(p, l)| Bytes::copy_from_slice(&file_bytes[p as usize..p as usize + l]))
                .collect(),
        );
        let mut regions = FileRegions::default();
        let placeholders = ranges
            .iter()
            .map(|&(position, len)| {
                regions
                    .placeholder(FileRegion {
                        file: file.clone(),
                        position,
                        len: len as u64,
                    })
                    .unwrap()
            })
            .collect();
        let spliced_response = response(placeholders);
        for version in 4..=17 {
            let expected = encode_response(9, version, &copied).unwrap();
            let out =
                encode_response_with_regions(9, version, &spliced_response, &regions).unwrap();
            assert_eq!(out.holes.len(), 3);
            assert_eq!(out.len(), expected.len() as u64, "v{version}");
            assert_eq!(spliced(&out), &expected[..], "v{version}");
            // Without its regions the response cannot be encoded: the
            // placeholders' zeros are never sent.
            assert!(encode_response(9, version, &spliced_response).is_err());
        }
    }

    #[test]
    fn regions_too_large_for_the_placeholder_space_are_refused() {
        let mut regions = FileRegions::default();
        let mut r = region(b"x");
        r.len = PLACEHOLDER_BYTES as u64;
        assert!(regions.placeholder(r.clone()).is_some());
        assert!(
            regions.placeholder(r).is_none(),
            "index 1 + the whole space"
        );
        let mut empty = region(b"");
        empty.len = 0;
        assert!(regions.placeholder(empty).is_none());
        assert_eq!(regions.len(), 1);
    }
}
