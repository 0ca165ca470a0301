//! The transaction coordinator as a sans-IO state machine.
