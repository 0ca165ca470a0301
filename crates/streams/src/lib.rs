//! `riffle-streams`: a topology DSL, tasks, and KIP-892 transactional state
//! stores that commit atomically with their changelog offsets.
//!
//! Status: empty. It arrives with the streams issue. It depends on
//! `riffle-client` only, never on the broker.
