//! `riffle-client`: Riffle's Rust producer, consumer and admin client, with
//! KIP-909/KIP-899 bootstrap behaviour (no DNS failure in a constructor,
//! rebootstrap on metadata loss).
//!
//! Status: empty. It arrives with the client issue.
