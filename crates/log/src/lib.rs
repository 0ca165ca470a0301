//! `riffle-log`: the segmented, append-only partition log in Apache Kafka's
//! on-disk format, used for partition logs and for the metadata log.
//!
//! A partition is a directory `<topic>-<partition>/` of segments, each a
//! `.log` file of magic-v2 record batches exactly as Kafka writes them, named
//! by its 20-digit base offset, with a sparse `.index`, a `.timeindex` and,
//! once a transaction aborts in it, a `.txnindex`, plus Kafka's
//! `leader-epoch-checkpoint` and producer state `.snapshot` files. A log
//! directory adds the clean-shutdown marker and the recovery-point,
//! log-start-offset and cleaner checkpoints.
//!
//! Main types:
//! - [`batch`]: the batch header, [`batch::validate_produce`] (the broker's
//!   check of every produced batch, each refusal a Kafka error code) and
//!   [`batch::ValidatedBatches`], the only input a leader append accepts.
//! - [`log::Log`]: append (as leader, assigning offsets in place; or as
//!   follower), read as [`segment::FileSlice`]s of whole batches, timestamp
//!   lookups, roll, retention, truncation, flush, recovery.
//! - [`cleaner`]: compaction. [`dir::LogDir`]: a `log.dirs` entry.
//! - [`producer`]: idempotent and transactional producer state (sequence
//!   and epoch checks, ongoing transactions), pure logic; the log applies it
//!   on every append and exposes the last stable offset, aborted
//!   transactions and [`ProducerView`]s.
//! - [`marker`]: COMMIT/ABORT control batches ([`TxnMarker`],
//!   [`parse_txn_marker`]). [`txn_index`]: the `.txnindex` of aborted
//!   transactions per segment. [`producer_snapshot`]: `<offset>.snapshot`
//!   files of the producer state, so opening a log replays only its tail.
//!
//! Concurrency: one writer, many readers. Everything that changes a log
//! takes `&mut Log`; reads take `&Log` and return positions in files that
//! are immutable below the log end offset. A reader keeps an `Arc<File>`, so
//! a segment deleted by retention stays readable until the reader drops it.
//! Truncation is the one change that can cut bytes under a reader holding an
//! older slice; its read then comes up short and fails with an I/O error,
//! which the broker answers as a retriable error.
//!
//! Durability: appends are written with `pwrite` and left to the OS unless
//! `flush.messages`/`flush.ms` say otherwise (Kafka's default); a rolled
//! segment and a closed log are fsynced; [`log::Log::flush`] is explicit
//! (the Raft log calls it on every append). After an unclean stop every
//! segment past the recovery point is re-read, CRC and offsets checked,
//! cut at the first torn or corrupt batch, and its indexes rebuilt.
//!
//! This crate does no networking and has no async runtime: it must not
//! depend on tokio or on any other Riffle crate.

pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod compression;
pub mod config;
pub mod dir;
pub mod epoch;
pub mod error;
pub mod index;
pub mod log;
mod log_producers;
pub mod marker;
pub mod producer;
pub mod producer_snapshot;
pub mod records;
pub mod segment;
pub mod txn_index;

pub use batch::{validate_produce, BatchHeader, TimestampType, ValidatedBatches, ValidationConfig};
pub use config::LogConfig;
pub use dir::{LogDir, TopicPartition};
pub use error::{BatchError, LogError};
pub use log::{AppendInfo, LoadState, Log, TimestampAndOffset};
pub use log_producers::ProducerView;
pub use marker::{parse_txn_marker, TxnMarker};
pub use segment::FileSlice;
pub use txn_index::AbortedTxn;
