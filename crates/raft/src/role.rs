//! The roles of a quorum member and the transitions between them, after
//! Kafka's `QuorumState`.

use crate::types::NodeId;

/// The kind of role, without its data; the transition table is over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleKind {
    /// No leader known and no vote cast in the epoch.
    Unattached,
    /// Voted for a candidate in the epoch; no leader known yet.
    Voted,
    /// Standing for election in the epoch.
    Candidate,
    /// Elected for the epoch.
    Leader,
    /// Following the known leader of the epoch.
    Follower,
    /// Was leader of the epoch and gave it up (shutdown or lost quorum).
    Resigned,
}

impl RoleKind {
    pub const ALL: [RoleKind; 6] = [
        RoleKind::Unattached,
        RoleKind::Voted,
        RoleKind::Candidate,
        RoleKind::Leader,
        RoleKind::Follower,
        RoleKind::Resigned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RoleKind::Unattached => "Unattached",
            RoleKind::Voted => "Voted",
            RoleKind::Candidate => "Candidate",
            RoleKind::Leader => "Leader",
            RoleKind::Follower => "Follower",
            RoleKind::Resigned => "Resigned",
        }
    }
}

/// Whether a transition keeps the epoch or moves to a higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochChange {
    Same,
    Higher,
}

/// The transition table. Any role moves to Unattached, Voted or Follower
/// in a higher epoch. Within one epoch: an unattached node may vote once;
/// unattached, voted and candidate nodes may learn the leader; only a
/// candidate becomes leader and only a leader resigns. A node becomes
/// candidate by starting a new epoch (always `Higher`), which a leader
/// never does. Observers additionally never vote, stand or lead; the core
/// checks that separately.
pub fn transition_allowed(from: RoleKind, to: RoleKind, epoch: EpochChange) -> bool {
    use EpochChange::{Higher, Same};
    use RoleKind::*;
    match (to, epoch) {
        (Unattached, Higher) | (Voted, Higher) | (Follower, Higher) => true,
        (Unattached, Same) => false,
        (Voted, Same) => from == Unattached,
        (Follower, Same) => matches!(from, Unattached | Voted | Candidate),
        (Candidate, Higher) => from != Leader,
        (Candidate, Same) => false,
        (Leader, Same) => from == Candidate,
        (Leader, Higher) => false,
        (Resigned, Same) => from == Leader,
        (Resigned, Higher) => false,
    }
}

/// Role data the driver and operators see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub kind: RoleKind,
    pub epoch: i32,
    pub leader_id: Option<NodeId>,
}
