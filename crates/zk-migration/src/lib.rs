//! `riffle-zk-migration`: the KIP-866 driver that takes over a ZooKeeper-based
//! Kafka cluster's metadata online and dual-writes until finalized.
//!
//! Status: empty. It arrives with the migration issue.
