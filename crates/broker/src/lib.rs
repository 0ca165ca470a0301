//! `riffle-broker`: listeners, request handlers (one per API), the replica
//! manager and fetchers, the group and transaction coordinators' drivers.
//!
//! Status: empty. It arrives with the single-node broker issue.
