//! The transaction coordinator: the sans-IO state machine ([`state`]) and
//! the `__transaction_state` record formats ([`records`]).

pub mod records;
pub mod state;
