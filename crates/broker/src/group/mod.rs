//! The group coordinator.

pub mod coordinator;
pub mod records;
pub mod state;
