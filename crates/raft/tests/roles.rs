//! The quorum roles and the moves between them.
//!
//! `transition_table_matches_kafka` checks `riffle_raft::transition_allowed`
//! against the table below, written from Kafka's `QuorumState`: any role
//! moves to Unattached, Voted or Follower at a higher epoch; within an
//! epoch an unattached node may vote, an unattached, voted or candidate
//! node may learn the leader, a candidate may win and a leader may resign;
//! every node but a leader may stand in a new epoch. Everything else is
//! refused.
//!
//! The other tests drive a `RaftCore` into each role through its inputs
//! and check that the moves the table forbids do not happen: a voter does
//! not vote twice in an epoch, a leader refuses votes in its epoch, a
//! follower does not switch leaders within an epoch, a resigned leader
//! does not follow another node in its epoch, an observer never votes or
//! stands.

#[path = "scenarios/support.rs"]
mod support;

use std::collections::BTreeSet;

use riffle_raft::{
    transition_allowed, Action, EpochChange, LogState, NodeId, OffsetAndEpoch, RaftConfig,
    RaftCore, RaftRequest, RaftResponse, RoleKind,
};

use support::*;

/// Expected transitions. Rows are the role a node is in, columns the role
/// it moves to. `S`: allowed within the same epoch; `H`: allowed into a
/// higher epoch; `SH`: both; `.`: never.
const TABLE: &str = "
              Unattached  Voted  Candidate  Leader  Follower  Resigned
  Unattached  H           SH     H          .       SH        .
  Voted       H           H      H          .       SH        .
  Candidate   H           H      H          S       SH        .
  Leader      H           H      .          .       H         S
  Follower    H           H      H          .       H         .
  Resigned    H           H      H          .       H         .
";

fn kind_named(name: &str) -> RoleKind {
    RoleKind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or_else(|| panic!("unknown role `{name}` in TABLE"))
}

/// `(from, to, epoch change) -> allowed`, from [`TABLE`].
fn expected_table() -> Vec<(RoleKind, RoleKind, EpochChange, bool)> {
    let mut lines = TABLE.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<RoleKind> = lines
        .next()
        .expect("header")
        .split_whitespace()
        .map(kind_named)
        .collect();
    let mut out = Vec::new();
    let mut rows = 0;
    for line in lines {
        let mut cells = line.split_whitespace();
        let from = kind_named(cells.next().expect("row name"));
        let cells: Vec<&str> = cells.collect();
        assert_eq!(
            cells.len(),
            header.len(),
            "row {from:?} has a cell per column"
        );
        for (to, cell) in header.iter().zip(cells) {
            assert!(
                matches!(cell, "S" | "H" | "SH" | "."),
                "cell `{cell}` ({from:?} -> {to:?}) is one of S, H, SH, ."
            );
            out.push((from, *to, EpochChange::Same, cell.contains('S')));
            out.push((from, *to, EpochChange::Higher, cell.contains('H')));
        }
        rows += 1;
    }
    assert_eq!(rows, RoleKind::ALL.len(), "a row per role");
    out
}

#[test]
fn transition_table_matches_kafka() {
    let table = expected_table();
    assert_eq!(table.len(), 6 * 6 * 2);
    let wrong: Vec<String> = table
        .iter()
        .filter(|(from, to, change, allowed)| transition_allowed(*from, *to, *change) != *allowed)
        .map(|(from, to, change, allowed)| {
            format!(
                "{} -> {} ({change:?} epoch): expected {}, transition_allowed says {}",
                from.name(),
                to.name(),
                if *allowed { "allowed" } else { "refused" },
                if *allowed { "refused" } else { "allowed" },
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "transition table differs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_role_is_reachable_from_a_higher_epoch_backwards() {
    // Leader and Resigned are never entered by changing epoch: a leader is
    // elected in the epoch it stood in, and resigns in its own epoch.
    for from in RoleKind::ALL {
        assert!(!transition_allowed(
            from,
            RoleKind::Leader,
            EpochChange::Higher
        ));
        assert!(!transition_allowed(
            from,
            RoleKind::Resigned,
            EpochChange::Higher
        ));
        assert!(!transition_allowed(
            from,
            RoleKind::Candidate,
            EpochChange::Same
        ));
    }
}

// ---- driving a core ---------------------------------------------------------

struct Node {
    core: RaftCore,
    now: u64,
    next_id: u64,
}

impl Node {
    fn start(id: NodeId, voters: &[NodeId], persisted: Option<riffle_raft::ElectionState>) -> Node {
        let voters: BTreeSet<NodeId> = voters.iter().copied().collect();
        let config = RaftConfig::new(id, CLUSTER, voters);
        let core = RaftCore::new(config, persisted, LogState::default(), 0, 0);
        let mut node = Node {
            core,
            now: 0,
            next_id: 1,
        };
        node.actions();
        node
    }

    fn actions(&mut self) -> Vec<Action> {
        self.core.take_actions()
    }

    fn kind(&self) -> RoleKind {
        self.core.role_info().kind
    }

    fn tick(&mut self, ms: u64) -> Vec<Action> {
        self.now += ms;
        self.core.tick(self.now);
        self.actions()
    }

    fn request(&mut self, r: RaftRequest) -> Vec<Action> {
        let id = self.next_id;
        self.next_id += 1;
        self.core.handle_request(self.now, id, r);
        self.actions()
    }

    fn vote(&mut self, candidate: NodeId, epoch: i32) -> Vec<Action> {
        self.request(RaftRequest::Vote(vote_request(
            Some(CLUSTER.into()),
            candidate,
            epoch,
            OffsetAndEpoch::new(100, epoch - 1),
        )))
    }

    fn begin_epoch(&mut self, leader: NodeId, epoch: i32) -> Vec<Action> {
        self.request(RaftRequest::BeginQuorumEpoch(begin_epoch_request(
            Some(CLUSTER.into()),
            leader,
            epoch,
        )))
    }

    /// Answers the last Vote request sent to `from` among `actions`.
    fn reply_vote(&mut self, actions: &[Action], from: NodeId, granted: bool) -> Vec<Action> {
        let (seq, epoch) = actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Send {
                    to,
                    seq,
                    request: RaftRequest::Vote(v),
                } if *to == from => Some((*seq, v.topics[0].partitions[0].replica_epoch)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no Vote request to {from} in {actions:?}"));
        let r = RaftResponse::Vote(vote_response(0, 0, epoch, -1, granted));
        self.core.handle_response(self.now, from, seq, r);
        self.actions()
    }

    /// A voter of {1,2,3} elected leader of epoch 1: it stands after its
    /// election timeout and node 2 grants.
    fn leader() -> Node {
        let mut n = Node::start(1, &[1, 2, 3], None);
        let sent = n.tick(2000);
        assert_eq!(n.kind(), RoleKind::Candidate);
        n.reply_vote(&sent, 2, true);
        assert_eq!(n.kind(), RoleKind::Leader);
        n
    }
}

fn persists(actions: &[Action]) -> Vec<&riffle_raft::ElectionState> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::PersistElectionState(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The vote answer among `actions`: (granted, partition error, epoch, leader).
fn vote_answer(actions: &[Action]) -> (bool, String, i32, i32) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Respond {
                response: RaftResponse::Vote(v),
                ..
            } => {
                let p = &v.topics[0].partitions[0];
                Some((
                    p.vote_granted,
                    error_name(p.error_code),
                    p.leader_epoch,
                    i32::from(p.leader_id),
                ))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Vote response in {actions:?}"))
}

#[test]
fn unattached_votes_once_per_epoch() {
    let mut n = Node::start(1, &[1, 2, 3], None);
    assert_eq!(n.kind(), RoleKind::Unattached);
    let a = n.vote(2, 1);
    assert!(vote_answer(&a).0);
    assert_eq!(n.kind(), RoleKind::Voted);
    assert_eq!(n.core.election_state().voted_id, Some(2));

    // Voted -> Voted in the same epoch is refused: no second vote, and
    // nothing written.
    let a = n.vote(3, 1);
    assert_eq!(vote_answer(&a), (false, "NONE".into(), 1, -1));
    assert!(persists(&a).is_empty(), "nothing persisted: {a:?}");
    assert_eq!(n.kind(), RoleKind::Voted);
    assert_eq!(n.core.election_state().voted_id, Some(2));

    // Voted -> Follower in the same epoch is allowed.
    n.begin_epoch(2, 1);
    assert_eq!(n.kind(), RoleKind::Follower);
    assert_eq!(n.core.leader_id(), Some(2));
    assert_eq!(
        n.core.election_state().voted_id,
        Some(2),
        "the vote stays on record"
    );
}

#[test]
fn follower_keeps_its_leader_within_an_epoch() {
    let mut n = Node::start(1, &[1, 2, 3], None);
    n.begin_epoch(2, 4);
    assert_eq!(n.kind(), RoleKind::Follower);
    // Follower -> Follower of another leader in the same epoch: refused.
    let a = n.begin_epoch(3, 4);
    assert!(persists(&a).is_empty(), "{a:?}");
    assert_eq!(n.core.leader_id(), Some(2));
    // A follower does not vote in its leader's epoch.
    let a = n.vote(3, 4);
    assert_eq!(vote_answer(&a), (false, "NONE".into(), 4, 2));
    // Into a higher epoch it may follow anyone.
    n.begin_epoch(3, 5);
    assert_eq!(n.core.role_info().leader_id, Some(3));
    assert_eq!(n.core.epoch(), 5);
}

#[test]
fn candidate_refuses_other_candidates_in_its_epoch() {
    let mut n = Node::start(1, &[1, 2, 3], None);
    n.tick(2000);
    assert_eq!(n.kind(), RoleKind::Candidate);
    let epoch = n.core.epoch();
    let a = n.vote(2, epoch);
    assert!(!vote_answer(&a).0);
    assert_eq!(n.kind(), RoleKind::Candidate);
    // Candidate -> Follower in the same epoch when another node won.
    n.begin_epoch(3, epoch);
    assert_eq!(n.kind(), RoleKind::Follower);
    assert_eq!(n.core.epoch(), epoch);
}

#[test]
fn candidate_stands_again_in_a_new_epoch_never_the_same() {
    let mut n = Node::start(1, &[1, 2, 3], None);
    let sent = n.tick(2000);
    let epoch = n.core.epoch();
    n.reply_vote(&sent, 2, false);
    n.reply_vote(&sent, 3, false);
    assert_eq!(n.kind(), RoleKind::Candidate);
    // Candidate -> Candidate only by a new epoch, after the backoff.
    let a = n.tick(n.core.config().election_backoff_max_ms);
    assert_eq!(n.kind(), RoleKind::Candidate);
    assert_eq!(n.core.epoch(), epoch + 1);
    assert_eq!(persists(&a)[0].voted_id, Some(1));
}

#[test]
fn leader_refuses_votes_in_its_epoch() {
    let mut n = Node::leader();
    let a = n.vote(2, 1);
    assert_eq!(vote_answer(&a), (false, "NONE".into(), 1, 1));
    assert!(persists(&a).is_empty(), "{a:?}");
    assert_eq!(n.kind(), RoleKind::Leader);
    // Leader -> Follower in its own epoch: refused.
    let a = n.begin_epoch(3, 1);
    assert!(persists(&a).is_empty(), "{a:?}");
    assert_eq!(n.kind(), RoleKind::Leader);
}

#[test]
fn leader_steps_down_to_a_higher_epoch() {
    let mut n = Node::leader();
    // Leader -> Unattached -> Voted at a higher epoch.
    let a = n.vote(3, 2);
    assert_eq!(vote_answer(&a), (true, "NONE".into(), 2, -1));
    assert_eq!(n.kind(), RoleKind::Voted);
    assert_eq!(n.core.epoch(), 2);
    let written = persists(&a);
    assert_eq!(written.len(), 2, "{a:?}");
    assert_eq!((written[0].epoch, written[0].voted_id), (2, None));
    assert_eq!((written[1].epoch, written[1].voted_id), (2, Some(3)));
}

#[test]
fn leader_never_stands_directly() {
    // Without fetches the leader resigns (check-quorum) in its epoch; only
    // from Resigned does it stand, in a new epoch.
    let mut n = Node::leader();
    n.tick(n.core.config().fetch_timeout_ms);
    assert_eq!(n.kind(), RoleKind::Resigned);
    assert_eq!(n.core.epoch(), 1);
    n.tick(2 * n.core.config().election_timeout_ms);
    assert_eq!(n.kind(), RoleKind::Candidate);
    assert_eq!(n.core.epoch(), 2);
}

#[test]
fn resigned_leader_does_not_follow_or_vote_in_its_epoch() {
    let mut n = Node::leader();
    n.core.shutdown(n.now);
    n.actions();
    assert_eq!(n.kind(), RoleKind::Resigned);
    // Resigned -> Follower in the same epoch: refused.
    let a = n.begin_epoch(2, 1);
    assert!(persists(&a).is_empty(), "{a:?}");
    assert_eq!(n.kind(), RoleKind::Resigned);
    // No vote in the epoch it led.
    let a = n.vote(2, 1);
    assert_eq!(vote_answer(&a), (false, "NONE".into(), 1, 1));
    // Into a higher epoch it follows (Kafka grants votes while shutting
    // down too).
    n.begin_epoch(2, 2);
    assert_eq!(n.kind(), RoleKind::Follower);
    assert_eq!(n.core.leader_id(), Some(2));
}

#[test]
fn restarted_roles_come_from_the_quorum_state() {
    use riffle_raft::ElectionState;
    let voters: BTreeSet<NodeId> = [1, 2, 3].into();
    let state = |epoch, leader_id, voted_id| ElectionState {
        epoch,
        leader_id,
        voted_id,
        voters: voters.clone(),
    };
    let cases = [
        (state(3, None, None), RoleKind::Unattached),
        (state(3, None, Some(2)), RoleKind::Voted),
        (state(3, None, Some(1)), RoleKind::Candidate),
        (state(3, Some(2), Some(2)), RoleKind::Follower),
        // A leader restarts resigned: it must not lead or vote in its epoch again.
        (state(3, Some(1), Some(1)), RoleKind::Resigned),
    ];
    for (persisted, kind) in cases {
        let n = Node::start(1, &[1, 2, 3], Some(persisted.clone()));
        assert_eq!(n.kind(), kind, "from {persisted:?}");
        assert_eq!(n.core.epoch(), 3);
    }
}

#[test]
fn observer_never_votes_stands_or_leads() {
    let mut n = Node::start(4, &[1, 2, 3], None);
    assert_eq!(n.kind(), RoleKind::Unattached);
    let a = n.vote(2, 1);
    let (granted, error, _, _) = vote_answer(&a);
    assert!(!granted);
    assert_eq!(error, "INCONSISTENT_VOTER_SET");
    assert!(persists(&a).is_empty(), "{a:?}");
    for _ in 0..10 {
        n.tick(10_000);
        assert_eq!(n.kind(), RoleKind::Unattached);
    }
    // An observer may follow.
    n.begin_epoch(2, 3);
    assert_eq!(n.kind(), RoleKind::Follower);
}

#[test]
fn role_changes_are_reported_and_persisted_first() {
    // Every RoleChanged action that moves to a new epoch or a vote comes
    // after the PersistElectionState that makes it durable.
    let mut n = Node::start(1, &[1, 2, 3], None);
    let a = n.tick(2000);
    let persist = a
        .iter()
        .position(|a| matches!(a, Action::PersistElectionState(_)))
        .expect("persisted");
    let role = a
        .iter()
        .position(|a| matches!(a, Action::RoleChanged(r) if r.kind == RoleKind::Candidate))
        .expect("role reported");
    let first_send = a
        .iter()
        .position(|a| matches!(a, Action::Send { .. }))
        .expect("votes sent");
    assert!(persist < role && role < first_send, "{a:?}");
}
