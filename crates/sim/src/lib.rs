//! `riffle-sim` (test only): a deterministic, seeded simulation of the
//! KRaft quorum of `riffle-raft`.
//!
//! One seed names one run: 1, 3 or 5 voters plus up to two observers, a
//! network that loses, duplicates, delays (reorders) and partitions
//! messages, nodes that crash (losing what they had not flushed, sometimes
//! in the middle of performing the core's actions) and shut down
//! gracefully, and a client proposing records at whichever node believes
//! it leads. There is no real time, no thread and no hash-order
//! dependence: a virtual clock, one event queue ordered by
//! `(time, sequence)` and one seeded generator drive everything, so a
//! failing seed replays exactly.
//!
//! After every event the invariants are checked: at most one leader per
//! epoch, epochs never decrease (across restarts too), a node's high
//! watermark never decreases while it runs and never passes its stable
//! storage, every committed record is on stable storage of a majority of
//! voters, a record is the same on every node that committed it and stays
//! there, and every acknowledged proposal is in the committed log. After
//! the fault phase the network heals and crashed nodes restart; then one
//! leader must be elected and every node (observers too) must catch up
//! and commit one more proposal (liveness).
//!
//! See `README.md` for how to run and replay seeds, and `FINDINGS.md` for
//! what the simulation found.

pub mod codec;
pub mod disk;
pub mod rng;
pub mod scenario;
mod sim;
pub mod state;

pub use crate::scenario::{Scenario, SimOptions};
pub use crate::sim::{run_seed, SimFailure, SimReport};
