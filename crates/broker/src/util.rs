//! Small helpers shared by the handlers.

use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::protocol::StrBytes;

/// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A `StrBytes` from an owned string.
pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
