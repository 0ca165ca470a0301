//! `riffle-sim` (test only): a deterministic simulation harness with a
//! virtual clock, a network that drops, duplicates, reorders and partitions,
//! and disks that tear unflushed writes.
//!
//! Status: empty. It arrives with the KRaft issue, whose quorum tests need it.
