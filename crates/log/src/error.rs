//! Errors of the log, and their mapping to Kafka error codes (in one place).

use std::io;
use std::path::PathBuf;

use kafka_protocol::ResponseError;

/// Why a record batch was refused. Each variant is one Kafka error code, so
/// the broker answers a produce request with [`BatchError::error_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Framing or checksum is wrong: the bytes are not a batch (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// The batch is well framed but breaks a rule of the format or the topic
    /// (INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A timestamp is outside the window the topic accepts (INVALID_TIMESTAMP).
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// One batch is larger than `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size_bytes} bytes exceeds max.message.bytes={max_bytes}")]
    MessageTooLarge { size_bytes: usize, max_bytes: usize },
    /// The whole record set is larger than a segment (RECORD_LIST_TOO_LARGE).
    #[error("record set of {size_bytes} bytes exceeds segment.bytes={max_bytes}")]
    RecordListTooLarge { size_bytes: usize, max_bytes: usize },
}

impl BatchError {
    /// The Kafka error this refusal is reported as.
    pub fn error_code(&self) -> ResponseError {
        match self {
            BatchError::Corrupt(_) => ResponseError::CorruptMessage,
            BatchError::InvalidRecord(_) => ResponseError::InvalidRecord,
            BatchError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
            BatchError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge,
        }
    }
}

/// Errors of log operations. The variants differ in what the caller does:
/// `Batch` and `OffsetOutOfRange` are the client's fault and answered with
/// their Kafka code; the four producer-state refusals (`OutOfOrderSequence`,
/// `InvalidProducerEpoch`, `InvalidTxnState`, `TransactionCoordinatorFenced`)
/// refuse an append without writing anything and are answered with theirs; `Io` and `CorruptFile` take the log directory offline
/// (KAFKA_STORAGE_ERROR); `InvalidConfig` refuses a config change or start-up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("offset {requested} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A follower-style append whose offsets do not continue the log.
    #[error("append at offset {got} does not continue the log end offset {expected}")]
    NonMonotonicAppend { expected: i64, got: i64 },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file on disk could not be understood and cannot be rebuilt.
    #[error("corrupt file {path}: {reason}")]
    CorruptFile { path: PathBuf, reason: String },
    #[error("invalid value for configuration {key}: {reason}")]
    InvalidConfig { key: String, reason: String },
    /// A produced batch does not continue its producer's sequence
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER); the producer resends or resets.
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// A batch or marker carries a producer epoch older than the one the
    /// partition knows: a fenced zombie (INVALID_PRODUCER_EPOCH).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A non-transactional write from a producer inside a transaction
    /// (INVALID_TXN_STATE).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction marker from a coordinator older than the last one seen
    /// for the producer (TRANSACTION_COORDINATOR_FENCED).
    #[error("transaction coordinator fenced: {0}")]
    TransactionCoordinatorFenced(String),
}

impl LogError {
    /// The Kafka error code to answer a request with.
    pub fn error_code(&self) -> ResponseError {
        match self {
            LogError::Batch(e) => e.error_code(),
            LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            LogError::NonMonotonicAppend { .. } => ResponseError::UnknownServerError,
            LogError::Io { .. } | LogError::CorruptFile { .. } => ResponseError::KafkaStorageError,
            LogError::InvalidConfig { .. } => ResponseError::InvalidConfig,
            LogError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
            LogError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            LogError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            LogError::TransactionCoordinatorFenced(_) => {
                ResponseError::TransactionCoordinatorFenced
            }
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { path, source }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
