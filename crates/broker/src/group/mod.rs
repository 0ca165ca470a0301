//! The group coordinator.

pub mod records;
pub mod state;
pub mod coordinator;
