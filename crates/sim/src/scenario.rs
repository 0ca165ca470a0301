//! What a seed simulates: the cluster shape, the network's misbehaviour,
//! the faults and the core's settings, all drawn from the seed so a seed
//! names one scenario and one run of it.

use crate::rng::SimRng;

/// Run-wide settings (the same for every seed of a test).
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Virtual milliseconds of faults (loss, duplication, reordering,
    /// partitions, crashes, shutdowns) with a client proposing.
    pub fault_ms: u64,
    /// After the faults stop, a leader must be elected and every live node
    /// caught up within this many virtual milliseconds.
    pub liveness_ms: u64,
    /// Fail on any encode/decode problem. When false, known core codec
    /// bugs are repaired before encoding and lossy messages are delivered
    /// as decoded, so the rest of the protocol can still be explored.
    pub strict_codec: bool,
    /// Events of the trace tail printed with a failure.
    pub trace_tail: usize,
    /// Print every event to stderr (for replaying one seed).
    pub verbose: bool,
    /// Let the state machine snapshot at any committed offset, inside a
    /// batch too. Off by default: a follower that installs such a snapshot
    /// cannot append the leader's batch that straddles its new log end
    /// (FINDINGS.md 7), and KRaft's state machines snapshot after whole
    /// batches.
    pub snapshots_inside_batches: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            fault_ms: 8_000,
            liveness_ms: 30_000,
            strict_codec: true,
            trace_tail: 60,
            verbose: false,
            snapshots_inside_batches: false,
        }
    }
}

/// The scenario of one seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub voters: usize,
    pub observers: usize,
    /// One-way latency is uniform in `1..=latency_max_ms`.
    pub latency_max_ms: u64,
    /// Probabilities in millionths.
    pub drop_ppm: u32,
    pub duplicate_ppm: u32,
    /// A delayed message takes up to `delay_max_ms` more (reordering).
    pub delay_ppm: u32,
    pub delay_max_ms: u64,
    /// A request to a crashed or unreachable node is reported to its
    /// sender (`handle_send_failure`) with this probability.
    pub send_failure_ppm: u32,
    /// Time between fault injections.
    pub chaos_min_ms: u64,
    pub chaos_max_ms: u64,
    pub crash_weight: u64,
    pub partition_weight: u64,
    pub shutdown_weight: u64,
    /// A crash may keep a random prefix of the unflushed batches.
    pub torn_writes: bool,
    /// Crashes may strike in the middle of performing a node's actions.
    pub mid_action_crashes: bool,
    /// A node crashes right after persisting its election state (a vote
    /// or a new epoch) with this probability.
    pub crash_after_persist_ppm: u32,
    /// A node crashes while installing a snapshot (between the file and
    /// the log's replacement) or between taking one and `DeleteBefore`.
    pub crash_at_snapshot_ppm: u32,
    /// Take a snapshot every this many committed offsets (0: never).
    pub snapshot_every: i64,
    /// Snapshots may end inside a batch (at any committed offset).
    pub snapshot_inside_batches: bool,
    /// Proposed values carry up to this many bytes of padding.
    pub value_pad_max: u64,
    /// Time between client proposals.
    pub propose_min_ms: u64,
    pub propose_max_ms: u64,
    // The core's settings.
    pub election_timeout_ms: u64,
    pub fetch_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub retry_backoff_ms: u64,
    pub append_linger_ms: u64,
    pub fetch_max_wait_ms: u64,
    pub fetch_max_bytes: usize,
    pub fetch_snapshot_max_bytes: usize,
    pub max_batch_bytes: usize,
}

impl Scenario {
    pub fn from_rng(rng: &mut SimRng) -> Scenario {
        let voters = *rng.pick(&[1, 3, 3, 3, 5, 5]);
        let observers = rng.below(3) as usize;
        let lossy = rng.chance_ppm(700_000);
        let election_timeout_ms = *rng.pick(&[300, 500, 1000]);
        // A parked Fetch must come back well within the follower's fetch
        // timeout (Kafka: 500 ms against 2000 ms; FINDINGS.md 8).
        let fetch_max_wait_ms = (*rng.pick(&[50, 200, 500])).min(election_timeout_ms / 2);
        let latency_max_ms = *rng.pick(&[1, 5, 20, 50]);
        Scenario {
            voters,
            observers,
            latency_max_ms,
            drop_ppm: if lossy {
                *rng.pick(&[5_000, 20_000, 100_000])
            } else {
                0
            },
            duplicate_ppm: if lossy {
                *rng.pick(&[0, 10_000, 50_000])
            } else {
                0
            },
            delay_ppm: if lossy {
                *rng.pick(&[0, 20_000, 100_000])
            } else {
                0
            },
            delay_max_ms: *rng.pick(&[50, 300, 1500]),
            send_failure_ppm: *rng.pick(&[0, 500_000, 1_000_000]),
            chaos_min_ms: 100,
            chaos_max_ms: *rng.pick(&[500, 1500, 4000]),
            crash_weight: rng.below(4),
            partition_weight: rng.below(4),
            shutdown_weight: rng.below(3),
            torn_writes: rng.chance_ppm(700_000),
            mid_action_crashes: rng.chance_ppm(700_000),
            crash_after_persist_ppm: *rng.pick(&[0, 20_000, 100_000, 300_000]),
            crash_at_snapshot_ppm: *rng.pick(&[0, 50_000, 200_000]),
            snapshot_every: *rng.pick(&[0, 10, 40, 200]),
            snapshot_inside_batches: rng.chance_ppm(500_000),
            value_pad_max: *rng.pick(&[0, 40, 300]),
            propose_min_ms: 5,
            propose_max_ms: *rng.pick(&[30, 100, 300]),
            election_timeout_ms,
            fetch_timeout_ms: election_timeout_ms * 2,
            // A parked Fetch must be answered before the request times
            // out (Kafka: fetch.max.wait.ms 500 < request.timeout.ms 2000).
            request_timeout_ms: *rng.pick(&[fetch_max_wait_ms + 4 * latency_max_ms + 100, 2000]),
            retry_backoff_ms: *rng.pick(&[20, 100]),
            append_linger_ms: *rng.pick(&[0, 5, 25]),
            fetch_max_wait_ms,
            fetch_max_bytes: *rng.pick(&[1, 300, 4096, 8 * 1024 * 1024]),
            fetch_snapshot_max_bytes: *rng.pick(&[200, 1024, 1024 * 1024]),
            max_batch_bytes: *rng.pick(&[200, 8 * 1024 * 1024]),
        }
    }
}
