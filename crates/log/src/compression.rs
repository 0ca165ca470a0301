//! Record compression codecs, as Kafka numbers them.
//!
//! Compression goes through the `kafka-protocol` crate's compressors.
//! Decompression calls the same codec crates directly, because Riffle must
//! cap the output size: a few bytes of zstd or gzip can expand to gigabytes,
//! and these bytes come from clients and disks.

use std::io::Read;

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::error::BatchError;

/// Kafka's compression codec ids (batch attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_id(id: u8) -> Result<Compression, BatchError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => {
                return Err(BatchError::Corrupt(format!(
                    "unknown compression codec id {other}"
                )))
            }
        })
    }
}

/// The most bytes a records section may decompress to: 64 times the largest
/// batch the topic accepts, and never less than 64 MiB.
pub fn decompressed_bytes_max(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(64).max(64 << 20)
}

/// Decompresses a records section, failing if the output would pass
/// `max_bytes`.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let fail =
        |e: std::io::Error| BatchError::Corrupt(format!("{codec:?} decompression failed: {e}"));
    let mut out = Vec::new();
    let limit = max_bytes as u64 + 1;
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(input)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(fail)?;
        }
        Compression::Lz4 => {
            lz4::Decoder::new(input)
                .map_err(fail)?
                .take(limit)
                .read_to_end(&mut out)
                .map_err(fail)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(input)
                .map_err(fail)?
                .take(limit)
                .read_to_end(&mut out)
                .map_err(fail)?;
        }
        Compression::Snappy => out = decompress_snappy(input, max_bytes)?,
    }
    if out.len() > max_bytes {
        return Err(BatchError::Corrupt(format!(
            "{codec:?} records expand past {max_bytes} bytes"
        )));
    }
    Ok(out)
}

/// Snappy as Kafka's Java client writes it: xerial's framing (a 16-byte
/// header, then blocks each prefixed by a 4-byte length), or one raw block.
fn decompress_snappy(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, BatchError> {
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    let fail = |e: snap::Error| BatchError::Corrupt(format!("snappy decompression failed: {e}"));
    let mut out = Vec::new();
    let block = |b: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let n = snap::raw::decompress_len(b).map_err(fail)?;
        if out.len().saturating_add(n) > max_bytes {
            return Err(BatchError::Corrupt(format!(
                "Snappy records expand past {max_bytes} bytes"
            )));
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(b, &mut out[start..])
            .map_err(fail)?;
        Ok(())
    };
    if input.len() >= 16 && input.starts_with(XERIAL_MAGIC) {
        let mut at = 16;
        while at < input.len() {
            if at + 4 > input.len() {
                return Err(BatchError::Corrupt("truncated snappy block length".into()));
            }
            let len = u32::from_be_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]])
                as usize;
            at += 4;
            if len > input.len() - at {
                return Err(BatchError::Corrupt("truncated snappy block".into()));
            }
            block(&input[at..at + len], &mut out)?;
            at += len;
        }
    } else {
        block(input, &mut out)?;
    }
    Ok(out)
}

/// Compresses a records section with `codec`.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = BytesMut::new();
    // kafka-protocol's compressors take an anyhow closure; the error is mapped below.
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.put_slice(input);
        Ok(())
    };
    let result = match codec {
        Compression::None => {
            out.put_slice(input);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
    };
    result.map_err(|e| BatchError::Corrupt(format!("{codec:?} compression failed: {e}")))?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let c = compress(codec, &input).unwrap();
            assert_eq!(
                decompress(codec, &c, input.len()).unwrap(),
                input,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn output_cap_is_enforced() {
        let input = vec![0u8; 1 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let c = compress(codec, &input).unwrap();
            assert!(decompress(codec, &c, (1 << 20) - 1).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(decompress(codec, b"not compressed at all", 1024).is_err());
        }
    }
}
