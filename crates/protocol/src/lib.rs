//! `riffle-protocol`: Kafka framing and request/response envelopes over the
//! `kafka-protocol` crate, the API version table Riffle advertises, and
//! `Connection`, the client side of one TCP connection.
//!
//! Status: empty. It arrives with the single-node broker issue. It must not
//! depend on any other Riffle crate.
