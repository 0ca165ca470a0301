//! `riffle-metadata`: metadata records, the immutable `MetadataImage` they
//! replay into, and the controller logic that validates admin requests and
//! emits records (sans-IO).
//!
//! Status: empty. It arrives with the single-node broker issue. It must not
//! depend on the broker or on any I/O crate.
