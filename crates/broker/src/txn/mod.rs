//! The transaction coordinator: the sans-IO state machine ([`state`]), the
//! `__transaction_state` record formats ([`records`]) and the driver that
//! runs it on a broker ([`coordinator`]).

pub mod coordinator;
pub mod markers;
pub mod records;
pub mod state;
