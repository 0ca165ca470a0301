//! Broker errors that are not answered per partition.

use kafka_protocol::ResponseError;
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

impl BrokerError {
    /// The Kafka error a request that failed with this answers.
    pub fn error_code(&self) -> ResponseError {
        match self {
            BrokerError::CommitTimeout(_) => ResponseError::RequestTimedOut,
            BrokerError::ShuttingDown | BrokerError::NotController(_) => {
                ResponseError::NotController
            }
            _ => ResponseError::UnknownServerError,
        }
    }
}
