//! `riffle-raft`: KRaft, the Raft metadata quorum of KIP-595 with the
//! snapshots of KIP-630, as a sans-IO core plus a thin tokio driver.
//!
//! Status: empty. It arrives with the KRaft issue. The core must not depend on
//! tokio, sockets, files or clocks; it stores its log through `riffle-log`.
