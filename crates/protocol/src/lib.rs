//! Kafka wire protocol envelopes for Riffle.
//!
//! The message types themselves come from the `kafka-protocol` crate; this
//! crate adds what a server and a client need around them:
//!
//! - [`frame`]: reading size-prefixed frames with the size checked before
//!   anything is allocated, and memory beyond the first MiB that grows only
//!   with bytes received.
//! - [`versions`]: the API version table Riffle advertises (Apache Kafka
//!   4.0's ranges for every API Riffle serves).
//! - [`request`]: decoding a frame into a [`request::RequestFrame`] (header
//!   plus typed body), with errors that say whether an error response is
//!   possible or the connection must be closed.
//! - [`response`]: encoding a typed response body with the right response
//!   header version.
//! - [`zero_copy`]: responses whose records are sent from log files with
//!   `sendfile` instead of being copied into the encoded bytes.
//!
//! No sockets are opened here apart from reading from an `AsyncRead`; this
//! crate must not depend on the broker, the log or the metadata crates.

pub mod frame;
pub mod request;
pub mod response;
pub mod versions;
pub mod zero_copy;

pub use frame::{read_frame, FrameError};
pub use request::{decode_request, decode_request_for, DecodeError, Request, RequestFrame};
pub use response::{encode_response, encode_response_with_regions, Response};
pub use versions::{supported_range, CONTROLLER_APIS, SUPPORTED_APIS};
