//! Minimal reproductions of the core bugs the simulation found, one test
//! per entry of `FINDINGS.md`. They drive `RaftCore` directly, without the
//! simulation, so each shows one rule. They are ignored while the bug is
//! open (run them with `cargo test -p riffle-sim --test findings -- --ignored`);
//! remove the `#[ignore]` with the fix.

use std::collections::BTreeSet;

use bytes::BytesMut;
use kafka_protocol::messages::{fetch_response, FetchResponse, TopicName, VoteRequest};
use kafka_protocol::protocol::{Encodable, StrBytes};
use riffle_raft::types::{METADATA_TOPIC, METADATA_TOPIC_ID};
use riffle_raft::{
    Action, ElectionState, LogState, RaftConfig, RaftCore, RaftRequest, RaftResponse,
};

fn voters(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

fn config(id: i32, ids: &[i32]) -> RaftConfig {
    RaftConfig::new(id, "c", voters(ids))
}

fn sent_fetch(actions: &[Action]) -> Option<(i32, u64, &kafka_protocol::messages::FetchRequest)> {
    actions.iter().find_map(|a| match a {
        Action::Send {
            to,
            seq,
            request: RaftRequest::Fetch(f),
        } => Some((*to, *seq, f)),
        _ => None,
    })
}

/// FINDINGS.md 1: the Fetch request a follower sends must encode at v16,
/// the version KRaft controllers speak (Fetch v15+ has no top-level
/// ReplicaId; the replica is in ReplicaState).
#[test]
#[ignore = "core bug: FINDINGS.md 1"]
fn fetch_request_encodes_at_v16() {
    let persisted = ElectionState {
        epoch: 1,
        leader_id: Some(2),
        voted_id: None,
        voters: voters(&[1, 2, 3]),
    };
    let mut core = RaftCore::new(
        config(1, &[1, 2, 3]),
        Some(persisted),
        LogState::default(),
        0,
        0,
    );
    let actions = core.take_actions();
    let (_, _, fetch) = sent_fetch(&actions).expect("a follower fetches at once");
    let mut buf = BytesMut::new();
    fetch
        .encode(&mut buf, 16)
        .expect("a Fetch request encodes at v16");
}

/// FINDINGS.md 2: a voter that refuses a vote in a higher epoch keeps the
/// rest of its election timeout (Kafka `QuorumState.transitionToUnattached`
/// keeps `remainingElectionTimeMs` for unattached, voted and candidate
/// states). Restarting it lets a candidate with a stale log, which retries
/// within `election.backoff.max.ms` (1000) while the others wait a full
/// 1000..2000 ms, keep the quorum leaderless forever.
#[test]
#[ignore = "core bug: FINDINGS.md 2"]
fn refused_vote_keeps_the_election_timer() {
    // Node 1 holds records of epoch 1; node 2 stands with an empty log.
    let log = LogState {
        start_offset: 0,
        end_offset: 5,
        epochs: vec![(1, 0)],
        latest_snapshot: None,
    };
    let persisted = ElectionState::unattached(1, voters(&[1, 2, 3]));
    let mut core = RaftCore::new(config(1, &[1, 2, 3]), Some(persisted), log, 0, 0);
    core.take_actions();
    let deadline = core.next_deadline();
    assert!(deadline >= 1000 && deadline < 2000, "deadline {deadline}");
    let vote = VoteRequest::default()
        .with_cluster_id(Some(StrBytes::from_static_str("c")))
        .with_topics(vec![
            kafka_protocol::messages::vote_request::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                .with_partitions(vec![
                    kafka_protocol::messages::vote_request::PartitionData::default()
                        .with_partition_index(0)
                        .with_replica_epoch(2)
                        .with_replica_id(2.into())
                        .with_last_offset_epoch(0)
                        .with_last_offset(0),
                ]),
        ]);
    core.handle_request(deadline - 1, 1, RaftRequest::Vote(vote));
    let actions = core.take_actions();
    let granted = actions.iter().any(|a| {
        matches!(a, Action::Respond { response: RaftResponse::Vote(v), .. }
            if v.topics[0].partitions[0].vote_granted)
    });
    assert!(!granted, "a stale log gets no vote");
    assert_eq!(core.epoch(), 2, "the higher epoch is adopted");
    assert!(
        core.next_deadline() <= deadline,
        "refusing a vote pushed the election from {deadline} to {}",
        core.next_deadline()
    );
}

/// FINDINGS.md 3: a follower truncates a diverging log only at a batch
/// boundary. Kafka (`KafkaMetadataLog.truncateToEndOffset`) takes
/// `min(local end, leader end)` only when the local log has the diverging
/// epoch itself; otherwise it truncates to where the local epoch ends.
/// Taking the minimum across different epochs lands inside a local batch,
/// which no log can truncate to (riffle-log truncates the whole batch, so
/// the core's idea of the log end and the disk disagree).
#[test]
#[ignore = "core bug: FINDINGS.md 3"]
fn diverging_truncation_lands_on_a_batch_boundary() {
    // Follower 1: one batch of epoch 1 at 0..=2, one of epoch 3 at 3.
    // Leader 2 (epoch 4): epoch 2 at 0..=1, epoch 4 from 2.
    let log = LogState {
        start_offset: 0,
        end_offset: 4,
        epochs: vec![(1, 0), (3, 3)],
        latest_snapshot: None,
    };
    let persisted = ElectionState {
        epoch: 4,
        leader_id: Some(2),
        voted_id: None,
        voters: voters(&[1, 2, 3]),
    };
    let mut core = RaftCore::new(config(1, &[1, 2, 3]), Some(persisted), log, 0, 0);
    let actions = core.take_actions();
    let (to, seq, _) = sent_fetch(&actions).expect("a follower fetches at once");
    assert_eq!(to, 2);
    // The leader's answer to Fetch(offset 4, last epoch 3): its epoch 2
    // (the largest at most 3) ends at 2.
    let partition = fetch_response::PartitionData::default()
        .with_partition_index(0)
        .with_high_watermark(0)
        .with_current_leader(
            fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(2.into())
                .with_leader_epoch(4),
        )
        .with_diverging_epoch(
            fetch_response::EpochEndOffset::default()
                .with_epoch(2)
                .with_end_offset(2),
        );
    let response = FetchResponse::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_topic_id(METADATA_TOPIC_ID)
            .with_partitions(vec![partition]),
    ]);
    core.handle_response(10, 2, seq, RaftResponse::Fetch(response));
    let truncated: Vec<i64> = core
        .take_actions()
        .iter()
        .filter_map(|a| match a {
            Action::Truncate { end_offset } => Some(*end_offset),
            _ => None,
        })
        .collect();
    // Batch boundaries of the local log: 0, 3, 4. Kafka truncates to 3
    // (the end of local epoch 1) and converges on the next Fetch.
    assert_eq!(truncated, vec![3], "truncation inside the batch 0..=2");
}
