//! Runs the KRaft simulation over many seeds.
//!
//! - `seeds`: `RIFFLE_SIM_SEEDS` seeds (default below) from
//!   `RIFFLE_SIM_START` (default 0); every failing seed is printed with
//!   its replay command.
//! - `replay_seed`: the one seed in `RIFFLE_SIM_SEED`, with every event
//!   printed when `RIFFLE_SIM_VERBOSE=1` (and the core's logs with
//!   `RUST_LOG=riffle_raft=debug`).
//! - `replays_exactly`: a seed run twice gives the same trace.
//!
//! `RIFFLE_SIM_LENIENT=1` repairs known core codec bugs instead of failing
//! on them; `RIFFLE_SIM_FAULT_MS` changes the length of the fault phase.

use std::time::Instant;

use riffle_sim::{run_seed, SimOptions};

/// Seeds per `cargo test` run: about a minute in a debug build on two
/// cores (see README.md for the measurement).
const DEFAULT_SEEDS: u64 = 300;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

fn options() -> SimOptions {
    let mut options = SimOptions::default();
    if let Some(ms) = env_u64("RIFFLE_SIM_FAULT_MS") {
        options.fault_ms = ms;
    }
    options.strict_codec = !env_flag("RIFFLE_SIM_LENIENT");
    options
}

#[test]
fn seeds() {
    if std::env::var("RIFFLE_SIM_SEED").is_ok() {
        // A replay run: leave the time to `replay_seed`.
        return;
    }
    let count = env_u64("RIFFLE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("RIFFLE_SIM_START").unwrap_or(0);
    let options = options();
    let began = Instant::now();
    let mut failures = Vec::new();
    let mut events = 0u64;
    let mut virtual_ms = 0u64;
    for seed in start..start + count {
        match run_seed(seed, &options) {
            Ok(report) => {
                events += report.events;
                virtual_ms += report.end_ms;
            }
            Err(failure) => {
                if failures.len() < 3 {
                    eprintln!("{failure}");
                }
                failures.push((
                    seed,
                    failure.message.lines().next().unwrap_or("").to_string(),
                ));
            }
        }
    }
    eprintln!(
        "{count} seeds from {start}: {} failed, {events} events, {} virtual s, {:.1} s",
        failures.len(),
        virtual_ms / 1000,
        began.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        for (seed, message) in &failures {
            eprintln!("seed {seed}: {message}");
        }
        panic!(
            "{} of {count} seeds failed; replay one with RIFFLE_SIM_SEED=<seed> cargo test -p riffle-sim --test seeds -- replay_seed --nocapture",
            failures.len()
        );
    }
}

#[test]
fn replay_seed() {
    let Some(seed) = env_u64("RIFFLE_SIM_SEED") else {
        return;
    };
    if env_flag("RIFFLE_SIM_VERBOSE") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut options = options();
    options.verbose = env_flag("RIFFLE_SIM_VERBOSE");
    match run_seed(seed, &options) {
        Ok(report) => eprintln!("{report:#?}"),
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn replays_exactly() {
    let mut options = options();
    options.strict_codec = false;
    for seed in [3, 17] {
        let a = run_seed(seed, &options).map(|r| (r.trace_hash, r.events, r.end_ms));
        let b = run_seed(seed, &options).map(|r| (r.trace_hash, r.events, r.end_ms));
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "seed {seed} replays differently"),
            (Err(a), Err(b)) => {
                assert_eq!(
                    (a.time_ms, &a.message, &a.trace_tail),
                    (b.time_ms, &b.message, &b.trace_tail),
                    "seed {seed} fails differently"
                );
            }
            (a, b) => panic!("seed {seed} replays differently: {a:?} vs {b:?}"),
        }
    }
}
