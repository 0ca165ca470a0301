//! Size-prefixed frames: a big-endian `i32` length, then that many bytes.

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most buffer a frame gets before its bytes arrive. A larger frame's
/// buffer then doubles with what has really been received, so a client
/// announcing a large (allowed) frame and sending slowly holds at most twice
/// what it has sent. 1 MiB covers a produce request of one full batch at
/// Kafka's default `message.max.bytes` in one allocation, with no copies
/// while it grows.
const UPFRONT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than socket.request.max.bytes ({max_bytes})")]
    TooLarge { size: i64, max_bytes: usize },
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("connection closed after {read} of {expected} frame bytes")]
    Truncated { read: usize, expected: usize },
    #[error("connection closed inside a frame's size prefix")]
    TruncatedPrefix,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` means the peer closed the connection cleanly
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut have = 0;
    while have < prefix.len() {
        let n = reader.read(&mut prefix[have..]).await?;
        if n == 0 {
            return if have == 0 {
                Ok(None)
            } else {
                Err(FrameError::TruncatedPrefix)
            };
        }
        have += n;
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max_bytes {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max_bytes,
        });
    }
    let mut buf = BytesMut::with_capacity(size.min(UPFRONT_BYTES));
    while buf.len() < size {
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len().min(size - buf.len()));
        }
        let want = size - buf.len();
        let n = (&mut *reader).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                read: buf.len(),
                expected: size,
            });
        }
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn reads_frames_back_to_back() {
        let mut data: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        block_on(async {
            assert_eq!(
                &read_frame(&mut data, 10).await.unwrap().unwrap()[..],
                &[7, 8]
            );
            assert!(read_frame(&mut data, 10).await.unwrap().unwrap().is_empty());
            assert_eq!(&read_frame(&mut data, 10).await.unwrap().unwrap()[..], &[9]);
            assert!(read_frame(&mut data, 10).await.unwrap().is_none());
        });
    }

    #[test]
    fn frames_larger_than_the_upfront_buffer_grow_to_their_size() {
        let size = 3 * UPFRONT_BYTES + 17;
        let mut data = (size as i32).to_be_bytes().to_vec();
        data.extend((0..size).map(|i| (i % 251) as u8));
        let mut reader = &data[..];
        block_on(async {
            let frame = read_frame(&mut reader, 4 * UPFRONT_BYTES)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&frame[..], &data[4..]);
            assert!(frame.capacity() < 2 * size);
        });
    }

    #[test]
    fn refuses_oversized_and_negative_sizes_before_reading_the_body() {
        block_on(async {
            let mut data: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
            assert!(matches!(
                read_frame(&mut data, 104_857_600).await,
                Err(FrameError::TooLarge {
                    size: 2_147_483_647,
                    ..
                })
            ));
            let mut data: &[u8] = &[0xff, 0xff, 0xff, 0xfe];
            assert!(matches!(
                read_frame(&mut data, 100).await,
                Err(FrameError::NegativeSize(-2))
            ));
        });
    }

    #[test]
    fn truncated_frames_are_errors() {
        block_on(async {
            let mut data: &[u8] = &[0, 0, 0, 100, 1, 2, 3];
            assert!(matches!(
                read_frame(&mut data, 1000).await,
                Err(FrameError::Truncated {
                    read: 3,
                    expected: 100
                })
            ));
            let mut data: &[u8] = &[0, 0];
            assert!(matches!(
                read_frame(&mut data, 1000).await,
                Err(FrameError::TruncatedPrefix)
            ));
        });
    }
}
