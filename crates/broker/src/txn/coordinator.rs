//! The driver of the transaction coordinator.

/// Kafka's name for the transaction log topic.
pub const TXN_TOPIC: &str = "__transaction_state";
