//! `__transaction_state` records in Kafka's formats.
