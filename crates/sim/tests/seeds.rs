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
//! on them; `RIFFLE_SIM_FAULT_MS` changes the length of the fault phase;
//! `RIFFLE_SIM_SNAPSHOTS_INSIDE_BATCHES=1` lets snapshots end inside a
//! batch (FINDINGS.md 7); `RIFFLE_SIM_SLOW_MS=<ms>` prints the seeds that
//! took at least that long to converge after the faults;
//! `RIFFLE_SIM_THREADS` sets how many threads run seeds (default: cores).

use std::time::Instant;

use riffle_sim::{run_seed, SimOptions};

/// Seeds per `cargo test` run: about a minute in a debug build on two
/// cores (see README.md for the measurement).
const DEFAULT_SEEDS: u64 = 3500;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

/// What the passing seeds exercised, summed.
#[derive(Debug, Default)]
struct Totals {
    events: u64,
    virtual_s: u64,
    slowest_convergence_ms: u64,
    leaders: u64,
    committed: u64,
    acknowledged: u64,
    crashes: u64,
    mid_action_crashes: u64,
    shutdowns: u64,
    partitions: u64,
    dropped: u64,
    duplicated: u64,
    snapshots_taken: u64,
    snapshots_installed: u64,
    log_recoveries: u64,
    spin_ticks: u64,
    codec_issues: std::collections::BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, r: &riffle_sim::SimReport) {
        self.events += r.events;
        self.virtual_s += r.end_ms / 1000;
        self.slowest_convergence_ms = self.slowest_convergence_ms.max(r.converged_after_ms);
        self.leaders += r.leaders as u64;
        self.committed += r.committed as u64;
        self.acknowledged += r.acknowledged;
        self.crashes += r.crashes;
        self.mid_action_crashes += r.mid_action_crashes;
        self.shutdowns += r.shutdowns;
        self.partitions += r.partitions;
        self.dropped += r.dropped;
        self.duplicated += r.duplicated;
        self.snapshots_taken += r.snapshots_taken;
        self.snapshots_installed += r.snapshots_installed;
        self.log_recoveries += r.log_recoveries;
        self.spin_ticks += r.spin_ticks;
        for (k, v) in &r.codec_issues {
            *self.codec_issues.entry(k.clone()).or_default() += v;
        }
    }
}

fn options() -> SimOptions {
    let mut options = SimOptions::default();
    if let Some(ms) = env_u64("RIFFLE_SIM_FAULT_MS") {
        options.fault_ms = ms;
    }
    options.strict_codec = !env_flag("RIFFLE_SIM_LENIENT");
    options.snapshots_inside_batches = env_flag("RIFFLE_SIM_SNAPSHOTS_INSIDE_BATCHES");
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
    let slow_ms = env_u64("RIFFLE_SIM_SLOW_MS");
    let began = Instant::now();
    // Seeds are independent: spread them over the cores (RIFFLE_SIM_THREADS
    // to override), then report in seed order.
    let threads = env_u64("RIFFLE_SIM_THREADS")
        .map(|t| t.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(count.max(1) as usize);
    let results: Vec<(u64, Result<riffle_sim::SimReport, riffle_sim::SimFailure>)> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads as u64)
                .map(|w| {
                    let options = &options;
                    scope.spawn(move || {
                        (start + w..start + count)
                            .step_by(threads)
                            .map(|seed| (seed, run_seed(seed, options)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<_> = workers
                .into_iter()
                .flat_map(|w| w.join().expect("a simulation thread panicked"))
                .collect();
            all.sort_by_key(|r| r.0);
            all
        });
    let mut failures = Vec::new();
    let mut total = Totals::default();
    for (seed, result) in results {
        match result {
            Ok(report) => {
                if slow_ms.is_some_and(|ms| report.converged_after_ms >= ms) {
                    eprintln!(
                        "seed {seed} converged {} ms after the faults stopped (epoch {})",
                        report.converged_after_ms, report.max_epoch
                    );
                }
                total.add(&report);
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
        "{count} seeds from {start} on {threads} threads: {} failed in {:.1} s; passing seeds: {total:?}",
        failures.len(),
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
