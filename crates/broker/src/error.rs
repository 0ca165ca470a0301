//! Broker errors that are not answered per partition.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BrokerError {
    /// A configuration problem found at start-up; the message says what to
    /// fix.
    #[error("{0}")]
    Config(String),
    /// A log or metadata file could not be read or written.
    #[error("storage: {0}")]
    Storage(String),
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    /// This node is not the active controller (the quorum leader).
    #[error("not the active controller: {0}")]
    NotController(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// The metadata log did not commit in time.
    #[error("metadata was not committed within {0} ms")]
    CommitTimeout(u64),
}
